//! One `spawn_app` for every step-5 test: the real chat on a free port, over a fresh SQLite
//! file, with the official Socket.IO client and an HTTP client at hand.
#![allow(dead_code)] // each test file uses a different part of this helper

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use step02_sessions::SessionConfig;
use step03_passport_like_auth::argon2;
use step04_socket_middleware::SocketSettings;
use step05_chat::rate_limit::RateLimiter;
use step05_chat::{ChatConfig, ChatServer};
use testkit::{JsClient, JsSocket};
use tokio::sync::oneshot;
use tower_sessions::cookie::Key;

pub const PASSWORD: &str = "a long enough password";

pub struct TestApp {
    pub address: SocketAddr,
    pub http: reqwest::Client,
    pub js: JsClient,
    pub database: Arc<tempfile::TempDir>,
    pub key: Key,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

/// How to start the server; `Default` is a fresh database and a fresh key.
#[derive(Default)]
pub struct Options {
    /// Reuse this database folder (to restart "the same" server).
    pub database: Option<Arc<tempfile::TempDir>>,
    /// Reuse this cookie key (a restart with the same `SESSION_SECRET`).
    pub key: Option<Key>,
    /// Override the rate limit (burst, per second).
    pub rate_limit: Option<(u32, f64)>,
    /// Override the packets one socket's queue holds (`SOCKET_BUFFER`).
    pub socket_buffer: Option<usize>,
    /// Override the limits (sockets per user, rooms, messages per room).
    pub limits: Option<step05_chat::limits::ChatLimits>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    spawn_app_built_by(step05_chat::build, options).await
}

/// [`spawn_app_with`], with the server built by `build` instead of `step05_chat::build`: the
/// exercise checks pass the `build` under test (the student's, or the reference solutions').
pub async fn spawn_app_built_by<F, Fut, E>(build: F, options: Options) -> TestApp
where
    F: FnOnce(ChatConfig) -> Fut,
    Fut: Future<Output = Result<ChatServer, E>>,
    E: std::fmt::Debug,
{
    let build = |config| async {
        let chat = build(config).await.expect("build the chat");
        let io = chat.io.clone();
        (chat.router, async move { io.close().await })
    };
    spawn_server(build, options).await
}

/// The lowest level: `build` returns the router to serve and what to do on shutdown (close
/// the sockets). Another crate's tests (`scaling-with-redis`) start their servers with it.
pub async fn spawn_server<F, Fut, C>(build: F, options: Options) -> TestApp
where
    F: FnOnce(ChatConfig) -> Fut,
    Fut: Future<Output = (axum::Router, C)>,
    C: Future<Output = ()> + Send + 'static,
{
    let database = options
        .database
        .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("temp dir")));
    let key = options.key.unwrap_or_else(Key::generate);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address = listener.local_addr().expect("local address");
    let mut config = test_config(
        address,
        &database,
        &key,
        options.rate_limit.unwrap_or((20, 5.0)),
    );
    if let Some(packets) = options.socket_buffer {
        config.socket_buffer = packets;
    }
    if let Some(limits) = options.limits.clone() {
        config.limits = limits;
    }
    let (router, close) = build(config).await;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            stopped.await.ok();
            close.await;
        };
        step01_http_vs_socket::serve(listener, router, shutdown)
            .await
            .expect("server failed");
    });
    TestApp {
        address,
        http: reqwest::Client::new(),
        js: JsClient::start().await,
        database,
        key,
        stop: Some(stop),
        server,
    }
}

/// The settings of every test server: listening on `address`, over the database in
/// `database`, signing cookies with `key`, with a rate limit of (burst, per second).
pub fn test_config(
    address: SocketAddr,
    database: &tempfile::TempDir,
    key: &Key,
    (burst, per_second): (u32, f64),
) -> ChatConfig {
    ChatConfig {
        database_url: database_url(database),
        sessions: SessionConfig::with_key(key.clone()),
        sockets: SocketSettings {
            allowed_origins: step05_chat::config::allowed_origins(address, None),
            session_recheck: Duration::from_secs(30),
            limits: Default::default(),
        },
        rate_limit: RateLimiter::new(burst, per_second),
        // Cheap hashing: the tests are about the chat, not about Argon2's cost.
        hashing: argon2::Params::new(8, 1, 1, None).expect("valid argon2 params"),
        socket_buffer: step05_chat::delivery::DEFAULT_SOCKET_BUFFER,
        limits: step05_chat::limits::ChatLimits::default(),
        auth_limits: step03_passport_like_auth::AuthLimits::default(),
    }
}

pub fn database_url(dir: &tempfile::TempDir) -> String {
    let path: PathBuf = dir.path().join("chat.db");
    format!("sqlite://{}", path.display())
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops the server (sockets closed, requests finished) and hands back what a restart
    /// needs: the same database folder and the same key.
    pub async fn stop(mut self) -> Options {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .expect("the server stops within 10 s")
            .expect("the server task ended cleanly");
        Options {
            database: Some(self.database.clone()),
            key: Some(self.key.clone()),
            rate_limit: None,
            socket_buffer: None,
            limits: None,
        }
    }

    pub async fn post_json(
        &self,
        path: &str,
        cookie: Option<&str>,
        body: Value,
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).json(&body);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.expect("POST")
    }

    /// Registers `username` and returns the session cookie (`name=value`).
    pub async fn register(&self, username: &str) -> String {
        let response = self
            .post_json(
                "/register",
                None,
                json!({ "username": username, "password": PASSWORD }),
            )
            .await;
        assert_eq!(response.status(), 201, "register {username}");
        session_cookie(&response).expect("register sets a session cookie")
    }

    /// Logs `username` in and returns the session cookie.
    pub async fn login(&self, username: &str) -> String {
        let response = self
            .post_json(
                "/login",
                None,
                json!({ "username": username, "password": PASSWORD }),
            )
            .await;
        assert_eq!(response.status(), 200, "login {username}");
        session_cookie(&response).expect("login sets a session cookie")
    }

    /// The id of the user logged in with `cookie`, from `GET /me`.
    pub async fn user_id(&self, cookie: &str) -> i64 {
        let me: Value = self
            .http
            .get(self.url("/me"))
            .header("cookie", cookie)
            .send()
            .await
            .expect("GET /me")
            .json()
            .await
            .expect("a JSON body");
        me["id"].as_i64().expect("GET /me answers with an id")
    }

    /// Opens a socket with the session `cookie`; `extra` is merged into `io(url, opts)`.
    pub async fn socket(&self, cookie: Option<&str>, extra: Value) -> JsSocket {
        let mut opts = json!({});
        if let Some(cookie) = cookie {
            opts["extraHeaders"] = json!({ "cookie": cookie });
        }
        if let (Some(opts), Some(extra)) = (opts.as_object_mut(), extra.as_object()) {
            opts.extend(extra.clone());
        }
        self.js.connect(&self.url("/"), opts).await
    }

    /// A socket that is connected and has received its `history`, which is returned.
    pub async fn connected(&self, cookie: &str) -> (JsSocket, Value) {
        self.connected_with(cookie, json!({})).await
    }

    pub async fn connected_with(&self, cookie: &str, extra: Value) -> (JsSocket, Value) {
        let socket = self.socket(Some(cookie), extra).await;
        socket.expect_connect().await;
        let history = socket.next_named("history").await.data().clone();
        (socket, history)
    }
}

pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    let set_cookie = response.headers().get("set-cookie")?.to_str().ok()?;
    Some(set_cookie.split(';').next()?.to_owned())
}

/// Sends a chat message and returns the acknowledgement.
pub async fn say(socket: &JsSocket, payload: Value) -> Value {
    socket.emit_with_ack("chat message", json!([payload])).await
}

/// Asserts that no `event` reaches `socket` for a little while.
pub async fn assert_silent(socket: &JsSocket, event: &str) {
    let got = socket
        .try_next_named(event, Duration::from_millis(400))
        .await;
    assert!(got.is_none(), "unexpected `{event}`: {got:?}");
}
