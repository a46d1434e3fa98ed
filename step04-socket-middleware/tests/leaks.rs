//! A closed socket must not be kept alive by step 4's own background work.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::json;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use step01_http_vs_socket::serve;
use step04_socket_middleware::{
    SessionWatch, SocketSession, let_go, watch_session,
};
use testkit::JsClient;
use tower_sessions::session::Id;
use tower_sessions::{MemoryStore, SessionStore};

/// The session watch holds the socket (and so its queue) and a handle on the
/// store. It used to let go only at its next look, up to
/// `SESSION_RECHECK` (30 s) after the socket closed; `let_go` in the
/// disconnect handler ends it at once. Each watch that is still running holds
/// one clone of the store: their count says how many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_socket_s_session_watch_ends_at_once_not_at_its_next_look() {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::default());
    let (layer, io) = SocketIo::new_layer();
    let watched = store.clone();
    io.ns("/", async move |socket: SocketRef| {
        // What `authenticate_socket` records for a logged-in socket.
        socket.extensions.insert(SocketSession(Id::default()));
        socket.on_disconnect(async |socket: SocketRef| let_go(&socket));
        let watch = SessionWatch {
            store: watched.clone(),
            every: Duration::from_secs(30),
            lifetime: step02_sessions::DEFAULT_ABSOLUTE_LIFETIME,
        };
        tokio::spawn(watch_session(socket, watch));
    });
    let baseline = Arc::strong_count(&store); // this test's, and the handler's
    let address = testkit::spawn_server(|listener, _| {
        serve(listener, Router::new().layer(layer), std::future::pending())
    })
    .await;

    let js = JsClient::start().await;
    let url = format!("http://{address}/");
    let socket = js
        .connect(&url, json!({ "transports": ["websocket"] }))
        .await;
    socket.expect_connect().await;
    let watching =
        wait_until(|| Arc::strong_count(&store) == baseline + 1).await;
    assert!(watching, "the socket's session is watched");

    socket.close().await;
    let released = wait_until(|| Arc::strong_count(&store) == baseline).await;
    assert!(
        released,
        "the watch ended within 10 s of the socket closing"
    );
}

/// Asks `check` until it says yes, for at most ten seconds. Whether it did.
async fn wait_until(check: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // then ask again
    }
    true
}
