//! Exercise 1, solved: a token socket is closed when its token expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef};
use socketioxide::handler::ConnectHandler;
use step02_sessions::SessionConfig;
use step03_passport_like_auth::{Passport, User, UserStore};
use step04_socket_middleware::{
    SocketSettings, around_sockets, check_origin, register_handlers,
};
use tower_sessions::SessionStore;

use crate::{Claims, TokenConfig, authenticate_token, token_routes};

// ANCHOR: close_at_expiry
/// Greets the user, then closes the socket when its token expires. The client
/// is told why first, so it can fetch a new token and reconnect.
async fn greet_until_expiry(
    socket: SocketRef,
    Extension(user): Extension<User>,
    Extension(claims): Extension<Claims>,
) {
    socket.emit("welcome", &user).ok();
    let expires_at = UNIX_EPOCH + Duration::from_secs(claims.exp);
    // Already expired (a clock jumped)? Then the wait is zero.
    let left = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::spawn(async move {
        tokio::time::sleep(left).await;
        if socket.connected() {
            tracing::info!(sid = %socket.id, "token expired: disconnecting");
            socket.emit("token expired", &()).ok();
            socket.disconnect().ok();
        }
    });
}
// ANCHOR_END: close_at_expiry

/// The starter's `token_app`, with `greet_until_expiry` in place of `greet`.
pub fn token_app<U: UserStore>(
    passport: Passport<U>,
    sessions: &SessionConfig,
    store: impl SessionStore + Clone,
    settings: SocketSettings,
    tokens: TokenConfig,
) -> Router {
    let (socket_layer, io) = settings
        .limits
        .apply(SocketIo::builder())
        .with_state(settings.allowed_origins.clone())
        .with_state(tokens.clone())
        .with_state(passport.users().clone())
        .build_layer();
    io.ns(
        "/",
        greet_until_expiry // the one change: the starter has `greet`
            .with(register_handlers)
            .with(authenticate_token::<U>)
            .with(check_origin),
    );
    let routes = token_routes(passport.clone(), tokens).layer(socket_layer);
    around_sockets(routes, passport, sessions, store, &settings)
}
