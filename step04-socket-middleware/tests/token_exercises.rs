//! The self-checks of the exercises of the "JWT vs session" chapter. Each one fails on the code as
//! shipped and passes once the exercise is done:
//!
//! ```console
//! cargo test -p step04-socket-middleware --test token_exercises ex1 -- --ignored
//! ```
//!
//! They build the app with `token_app`, so that is the function your changes must reach.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use step02_sessions::SessionConfig;
use step03_passport_like_auth::{MemoryUserStore, Passport};
use step04_socket_middleware::{AllowedOrigins, SocketSettings, TokenConfig};
use testkit::{JsClient, JsSocket};
use tower_sessions::MemoryStore;
use tower_sessions::cookie::Key;

// The reference solutions (`--features solutions`, used by CI) or your code.
#[cfg(not(feature = "solutions"))]
use step04_socket_middleware::token_auth as under_test;
#[cfg(feature = "solutions")]
use step04_socket_middleware::token_solutions as under_test;

const PASSWORD: &str = "correct horse battery";
const SECRET: &[u8] = b"the exercise checks' secret, 32+ bytes";

struct TestApp {
    address: SocketAddr,
    http: reqwest::Client,
    js: JsClient,
}

async fn spawn_app(tokens: TokenConfig) -> TestApp {
    let passport = Passport::new(MemoryUserStore::default());
    passport
        .register("alice", PASSWORD)
        .await
        .expect("register alice");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address = listener.local_addr().expect("local address");
    let settings = SocketSettings {
        allowed_origins: AllowedOrigins::for_port(address.port(), None),
        session_recheck: Duration::from_secs(30),
    };
    let sessions = SessionConfig::with_key(Key::generate());
    let router = under_test::token_app(
        passport,
        &sessions,
        MemoryStore::default(),
        settings,
        tokens,
    );
    tokio::spawn(step01_http_vs_socket::serve(
        listener,
        router,
        std::future::pending(),
    ));
    TestApp {
        address,
        http: reqwest::Client::new(),
        js: JsClient::start().await,
    }
}

fn five_minute_tokens() -> TokenConfig {
    TokenConfig::new(SECRET).expect("a long enough secret")
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Logs alice in; returns her session cookie and a token from `POST /token`.
    async fn login_and_get_token(&self) -> (String, String) {
        let response = self
            .http
            .post(self.url("/login"))
            .json(&json!({ "username": "alice", "password": PASSWORD }))
            .send()
            .await
            .expect("POST /login");
        assert_eq!(response.status(), 200);
        let set_cookie = response.headers()["set-cookie"].to_str().expect("ASCII");
        let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
        let response = self
            .http
            .post(self.url("/token"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("POST /token");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("a JSON body");
        let token = body["token"].as_str().expect("a token").to_owned();
        (cookie, token)
    }

    async fn socket(&self, opts: Value) -> JsSocket {
        self.js.connect(&self.url("/"), opts).await
    }
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex1_close_at_expiry() {
    // A two-second token, so the check is quick.
    let app = spawn_app(five_minute_tokens().with_lifetime(Duration::from_secs(2))).await;
    let (_, token) = app.login_and_get_token().await;
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
    let app = spawn_app(five_minute_tokens()).await;
    let (cookie, token) = app.login_and_get_token().await;
    let open = app.socket(json!({ "auth": { "token": token } })).await;
    open.expect_connect().await;

    let logout = app
        .http
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("POST /logout");
    assert_eq!(logout.status(), 204);

    let disconnect = open.next_named("disconnect").await;
    assert_eq!(disconnect.raw["reason"], "io server disconnect");
    let again = app.socket(json!({ "auth": { "token": token } })).await;
    assert_eq!(again.expect_connect_error().await, "Invalid token: revoked");
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex3_bearer_header() {
    let app = spawn_app(five_minute_tokens()).await;
    let (_, token) = app.login_and_get_token().await;
    // What a Node.js client can do and a browser's WebSocket cannot: set a header.
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
