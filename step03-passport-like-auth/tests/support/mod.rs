//! What the integration tests share: the real app on a free port.
#![allow(dead_code)] // each test binary uses its part

use std::net::SocketAddr;

use step02_sessions::{MemoryStore, SessionConfig};
use step03_passport_like_auth::argon2::Params;
use step03_passport_like_auth::{
    AuthLimits, MemoryUserStore, Passport, UserStore, app, seed_demo_users,
};
use tower_sessions::cookie::Key;

// ANCHOR: serve_for_tests
/// Starts the real app for any user store, with a fresh in-memory session
/// store.
pub async fn serve<U: UserStore>(passport: Passport<U>) -> SocketAddr {
    let session_layer =
        SessionConfig::with_key(Key::generate()).layer(MemoryStore::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(step01_http_vs_socket::serve(
        listener,
        app(passport, session_layer),
        std::future::pending(),
    ));
    address
}
// ANCHOR_END: serve_for_tests

/// The app with the demo users, `limits`, and hashing cheap enough for tests.
pub async fn spawn_demo_app(limits: AuthLimits) -> SocketAddr {
    serve(demo_passport(limits).await).await
}

/// A passport over the demo users, with `limits` and cheap hashing.
pub async fn demo_passport(limits: AuthLimits) -> Passport<MemoryUserStore> {
    let params = Params::new(8, 1, 1, None).expect("valid Argon2 parameters");
    let passport = Passport::with_hasher_params(MemoryUserStore::new(), params)
        .with_limits(limits);
    seed_demo_users(&passport).await.expect("seed demo users");
    passport
}
