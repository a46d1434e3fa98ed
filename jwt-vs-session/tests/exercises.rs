//! The self-checks of the exercises of the "JWT vs session" chapter. Each one
//! fails on the code as shipped and passes once the exercise is done:
//!
//! ```console
//! cargo test -p jwt-vs-session --test exercises ex1 -- --ignored
//! ```
//!
//! They build the app with `token_app` (see `support::spawn_token_app`), so
//! that is the function your changes must reach.

mod support;

use std::time::Duration;

use jwt_vs_session::TokenConfig;
use serde_json::json;
use support::spawn_token_app;

const SECRET: &[u8] = b"the exercise checks' secret, 32+ bytes";

fn five_minute_tokens() -> TokenConfig {
    TokenConfig::new(SECRET).expect("a long enough secret")
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex1_close_at_expiry() {
    // A two-second token, so the check is quick.
    let tokens = five_minute_tokens().with_lifetime(Duration::from_secs(2));
    let app = spawn_token_app(tokens).await;
    let (_, token) = app.login_and_get_token("alice").await;
    let socket = app.socket(json!({ "auth": { "token": token } })).await;
    socket.expect_connect().await;
    // Waits up to 10 s: the token is dead after at most 3.
    socket.next_named("token expired").await;
    let disconnect = socket.next_named("disconnect").await;
    assert_eq!(disconnect.raw["reason"], "io server disconnect");
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex2_revoke_on_logout() {
    let app = spawn_token_app(five_minute_tokens()).await;
    let (cookie, token) = app.login_and_get_token("alice").await;
    let open = app.socket(json!({ "auth": { "token": token } })).await;
    open.expect_connect().await;

    assert_eq!(app.logout(&cookie).await, 204);

    let disconnect = open.next_named("disconnect").await;
    assert_eq!(disconnect.raw["reason"], "io server disconnect");
    let again = app.socket(json!({ "auth": { "token": token } })).await;
    assert_eq!(again.expect_connect_error().await, "Invalid token: revoked");
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex3_bearer_header() {
    let app = spawn_token_app(five_minute_tokens()).await;
    let (_, token) = app.login_and_get_token("alice").await;
    // What a Node.js client can do and a browser's WebSocket cannot: set a
    // header.
    for transports in [json!(["polling"]), json!(["websocket"])] {
        let socket = app
            .socket(json!({
                "extraHeaders": { "authorization": format!("Bearer {token}") },
                "transports": transports,
            }))
            .await;
        socket.expect_connect().await;
        assert_eq!(
            socket.emit_with_ack("whoami", json!([])).await["username"],
            "alice",
            "{transports}"
        );
    }
    // The `auth` payload still works.
    let socket = app.socket(json!({ "auth": { "token": token } })).await;
    socket.expect_connect().await;
}
