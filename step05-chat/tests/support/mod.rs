//! One `spawn_app` for every step-5 test: the real chat on a free port, over a
//! fresh SQLite file, with the official Socket.IO client and an HTTP client at
//! hand.
//!
//! `CHAT_SERVER=node` runs the same tests against step 5's Node.js twin
//! (`compare/node-chat`, chapter "Rust and Node side by side"):
//! `spawn_app_with` then starts `node compare/node-chat/server.js` as a
//! process, on a free loopback port, over a fresh database, with the settings
//! of [`Options`] passed as environment variables. The contract (`chat.rs`,
//! `delivery.rs`, `limits.rs`, `browser.rs`, `ending_sessions.rs`) runs
//! against both; the exercise
//! checks (`spawn_app_built_by`) and the cluster tests (crate
//! `scaling-with-redis`, which the twin lacks) test Rust code and stay
//! Rust-only.
#![allow(dead_code)] // each test file uses a different part of this helper

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use step02_sessions::SessionConfig;
use step03_passport_like_auth::argon2;
use step04_socket_middleware::SocketSettings;
use step05_chat::limits::MessageRate;
use step05_chat::{ChatConfig, ChatServer};
use testkit::{JsClient, JsSocket};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tower_sessions::cookie::Key;

pub const PASSWORD: &str = "a long enough password";

pub struct TestApp {
    pub address: SocketAddr,
    pub http: reqwest::Client,
    pub js: JsClient,
    pub database: Arc<tempfile::TempDir>,
    pub key: Key,
    server: Server,
}

/// The server under test: step 5 in this process, or the Node twin in its own.
enum Server {
    InProcess {
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
    },
    Node(Child),
}

/// Which implementation of the contract the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// step05-chat, built in this process (the default).
    Rust,
    /// `chat-under-load` (chapter "The chat under load"), built in this
    /// process: step 5's chat with the delivery machinery for 10,000 sockets.
    UnderLoad,
    /// `compare/node-chat`, started with `node`.
    Node,
}

/// `CHAT_SERVER`: unset or `rust` for step 5, `chat-under-load` for the
/// chapter of that name, `node` for the Node twin.
pub fn implementation() -> Implementation {
    match std::env::var("CHAT_SERVER").as_deref() {
        Err(_) | Ok("" | "rust") => Implementation::Rust,
        Ok("chat-under-load") => Implementation::UnderLoad,
        Ok("node") => Implementation::Node,
        Ok(other) => panic!(
            "CHAT_SERVER must be `rust`, `chat-under-load` or `node`, \
             not {other:?}"
        ),
    }
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
    /// Override the users per page of the online list (`PRESENCE_PAGE`).
    pub presence_page: Option<usize>,
    /// Override the limits (sockets per user, rooms, messages per room).
    pub limits: Option<step05_chat::limits::ChatLimits>,
    /// Override how long a login lasts, however active
    /// (`SESSION_ABSOLUTE_LIFETIME_SECS`).
    pub absolute_lifetime_secs: Option<u32>,
    /// Override how often a live socket re-reads its session.
    pub session_recheck: Option<Duration>,
}

impl Options {
    /// Every rate lifted (a user's, a room's, the refusals before a cut), the
    /// other limits as by default: for a test that sends thousands of
    /// messages quickly.
    pub fn every_rate_lifted() -> Self {
        Options {
            rate_limit: Some((1_000_000, 1e6)),
            limits: Some(step05_chat::limits::ChatLimits {
                room_messages_per_second: 1e6,
                refusals_per_10s: 1_000_000,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// The chat with `options`: step 5 in this process, or with `CHAT_SERVER=node`
/// the Node twin.
pub async fn spawn_app_with(options: Options) -> TestApp {
    match implementation() {
        Implementation::Rust => {
            spawn_app_built_by(step05_chat::build, options).await
        }
        Implementation::UnderLoad => {
            spawn_app_built_by(chat_under_load::build, options).await
        }
        Implementation::Node => spawn_node_app(options).await,
    }
}

/// [`spawn_app_with`], with the server built by `build` instead of
/// `step05_chat::build` (a test that changes the built server passes its own).
///
/// Always Rust, in this process, whatever `CHAT_SERVER` says: what it tests is
/// Rust code.
pub async fn spawn_app_built_by<F, Fut, E>(
    build: F,
    options: Options,
) -> TestApp
where
    F: FnOnce(ChatConfig) -> Fut,
    Fut: Future<Output = Result<ChatServer, E>>,
    E: std::fmt::Debug,
{
    let build = |config| async {
        let chat = build(config).await.expect("build the chat");
        let (io, tasks) = (chat.io.clone(), chat.tasks.clone());
        (chat.router, async move {
            io.close().await;
            tasks.stop().await;
        })
    };
    spawn_server(build, options).await
}

/// The lowest level: `build` returns the router to serve and what to do on
/// shutdown (close the sockets). Another crate's tests (`scaling-with-redis`)
/// start their servers with it.
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
    if let Some(users) = options.presence_page {
        config.presence_page = users;
    }
    if let Some(limits) = options.limits.clone() {
        config.limits = limits;
    }
    if let Some(every) = options.session_recheck {
        config.sockets.session_recheck = every;
    }
    if let Some(seconds) = options.absolute_lifetime_secs {
        let lifetime =
            tower_sessions::cookie::time::Duration::seconds(seconds.into());
        config.sessions.absolute_lifetime = lifetime;
    }
    let (router, close) = build(config).await;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
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
        server: Server::InProcess {
            stop: Some(stop),
            task,
        },
    }
}

/// The twin's folder, `compare/node-chat`, or `NODE_CHAT_DIR`: another copy of
/// the twin (a branch being worked on) under these same tests.
pub fn node_chat_dir() -> PathBuf {
    match std::env::var_os("NODE_CHAT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../compare/node-chat")
        }
    }
}

/// Starts `node compare/node-chat/server.js` on a free loopback port (`PORT=0`;
/// the port is read from the line it prints), over `options`' database, with
/// `options`' key as its `SESSION_SECRET`.
pub async fn spawn_node_app(options: Options) -> TestApp {
    let dir = node_chat_dir();
    assert!(
        dir.join("node_modules/.package-lock.json").exists(),
        "the Node twin is not installed: run `npm ci` in {} \
         (bash scripts/test.sh does it)",
        dir.display()
    );
    let database = options
        .database
        .clone()
        .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("temp dir")));
    let key = options.key.clone().unwrap_or_else(Key::generate);
    let mut command = Command::new("node");
    command
        .arg(dir.join("server.js"))
        // Only what this test sets: nothing leaks in from the developer's
        // shell, and the folder it runs in has no `.env`.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(node_env(&options, database_url(&database), &key))
        .current_dir(database.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .expect("cannot start `node`: is Node.js installed?");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let started = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) =
            lines.next_line().await.expect("read the twin's output")
        {
            if let Some(url) =
                line.strip_prefix("The chat is running: open http://")
            {
                return url.trim_end_matches('/').parse::<SocketAddr>().ok();
            }
        }
        None
    })
    .await;
    let Ok(Some(address)) = started else {
        let exited = tokio::time::timeout(Duration::from_secs(1), child.wait());
        let status = exited.await.ok().and_then(Result::ok);
        panic!(
            "the Node twin did not start ({status:?}; its error, if any, is \
             above). A crash with no message is often its SQLite module built \
             for another Node.js: scripts/test.sh builds it for the Node.js it \
             runs, which is .tools/node/node_modules/node/bin/node when the \
             system's is older than 22.12"
        );
    };
    // Keep reading, so that a full pipe never blocks the server.
    tokio::spawn(
        async move { while let Ok(Some(_)) = lines.next_line().await {} },
    );
    TestApp {
        address,
        http: reqwest::Client::new(),
        js: JsClient::start().await,
        database,
        key,
        server: Server::Node(child),
    }
}

/// The twin's environment for `options`: step 5's variables where step 5 has
/// one, and `NODE_CHAT_TEST_SETTINGS` for what these tests set in-process in
/// `ChatConfig` (the message rate, the pace of joins and leaves, cheap password
/// hashing).
///
/// One difference: `ChatLimits::off()` becomes `RATE_LIMITS=off`, which also
/// lifts the login throttles that the in-process server keeps. No test with the
/// limits off counts logins.
fn node_env(
    options: &Options,
    database_url: String,
    key: &Key,
) -> Vec<(&'static str, String)> {
    let secret: String =
        key.master().iter().map(|b| format!("{b:02x}")).collect();
    let (burst, per_second) = options.rate_limit.unwrap_or((20, 5.0));
    let mut test = json!({
        "messageRate": [burst, per_second],
        // Cheap hashing, as in `test_config`.
        "hashing": { "memoryCost": 8, "timeCost": 1, "parallelism": 1 },
    });
    let mut env = vec![
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("DATABASE_URL", database_url),
        ("SESSION_SECRET", secret),
        ("RUST_LOG", "warn".to_owned()),
    ];
    if let Some(packets) = options.socket_buffer {
        env.push(("SOCKET_BUFFER", packets.to_string()));
    }
    if let Some(users) = options.presence_page {
        env.push(("PRESENCE_PAGE", users.to_string()));
    }
    if let Some(every) = options.session_recheck {
        test["sessionRecheckMs"] = json!(every.as_millis());
    }
    if let Some(seconds) = options.absolute_lifetime_secs {
        env.push(("SESSION_ABSOLUTE_LIFETIME_SECS", seconds.to_string()));
    }
    match &options.limits {
        Some(limits) if !limits.enabled => {
            env.push(("RATE_LIMITS", "off".to_owned()))
        }
        Some(limits) => {
            env.push((
                "MAX_SOCKETS_PER_USER",
                limits.sockets_per_user.to_string(),
            ));
            env.push((
                "MAX_ROOMS_PER_SOCKET",
                limits.rooms_per_socket.to_string(),
            ));
            let per_room = limits.room_messages_per_second.to_string();
            env.push(("ROOM_MESSAGES_PER_SECOND", per_room));
            test["roomChangesPerSecond"] =
                json!(limits.room_changes_per_second);
            test["refusalsPer10s"] = json!(limits.refusals_per_10s);
            let cap = limits.room_history_cap.to_string();
            env.push(("ROOM_HISTORY_CAP", cap));
        }
        None => {}
    }
    // The twin on several cores (`WORKERS`, compare/node-chat's README): the
    // same contract, run again by scripts/test.sh with NODE_CHAT_WORKERS=2.
    if let Ok(workers) = std::env::var("NODE_CHAT_WORKERS") {
        env.push(("WORKERS", workers));
    }
    // The twin takes test settings (a cheap hash) only from a test run.
    env.push(("NODE_ENV", "test".to_owned()));
    env.push(("NODE_CHAT_TEST_SETTINGS", test.to_string()));
    env
}

/// The settings of every test server: listening on `address`, over the database
/// in `database`, signing cookies with `key`, with a rate limit of (burst, per
/// second).
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
            allowed_origins:
                step04_socket_middleware::AllowedOrigins::for_listener(
                    address, None,
                ),
            session_recheck: step04_socket_middleware::SESSION_RECHECK,
            limits: Default::default(),
        },
        rate_limit: MessageRate { burst, per_second },
        // Cheap hashing: the tests are about the chat, not about Argon2's cost.
        hashing: argon2::Params::new(8, 1, 1, None)
            .expect("valid argon2 params"),
        socket_buffer: step05_chat::config::DEFAULT_SOCKET_BUFFER,
        presence_page: step05_chat::config::PRESENCE_PAGE,
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

    /// Stops the server (sockets closed, requests finished) and hands back what
    /// a restart needs: the same database folder and the same key.
    pub async fn stop(mut self) -> Options {
        match &mut self.server {
            Server::InProcess { stop, task } => {
                if let Some(stop) = stop.take() {
                    stop.send(()).ok();
                }
                tokio::time::timeout(Duration::from_secs(10), task)
                    .await
                    .expect("the server stops within 10 s")
                    .expect("the server task ended cleanly");
            }
            Server::Node(child) => {
                // SIGTERM, as a service manager would: the twin closes its
                // sockets and exits.
                let pid = child.id().expect("the twin is running").to_string();
                let signal =
                    Command::new("kill").args(["-TERM", &pid]).status().await;
                assert!(
                    signal.is_ok_and(|status| status.success()),
                    "kill -TERM {pid}"
                );
                let exit =
                    tokio::time::timeout(Duration::from_secs(10), child.wait())
                        .await
                        .expect("the twin stops within 10 s")
                        .expect("wait for the twin");
                assert!(exit.success(), "the twin exited with {exit}");
            }
        }
        Options {
            database: Some(self.database.clone()),
            key: Some(self.key.clone()),
            rate_limit: None,
            socket_buffer: None,
            presence_page: None,
            limits: None,
            absolute_lifetime_secs: None,
            session_recheck: None,
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
        self.session_from("/register", username, 201).await
    }

    /// Logs `username` in and returns the session cookie.
    pub async fn login(&self, username: &str) -> String {
        self.session_from("/login", username, 200).await
    }

    /// Posts `username` and [`PASSWORD`] to `path`, expects `status`, and
    /// returns the session cookie the answer sets.
    async fn session_from(
        &self,
        path: &str,
        username: &str,
        status: u16,
    ) -> String {
        let credentials = json!({ "username": username, "password": PASSWORD });
        let response = self.post_json(path, None, credentials).await;
        assert_eq!(response.status(), status, "{path} {username}");
        session_cookie(&response).expect("the answer sets a session cookie")
    }

    /// Posts a body that claims to be JSON and is not.
    pub async fn post_not_json(&self, path: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("POST")
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

    /// Opens a socket with the session `cookie`; `extra` is merged into
    /// `io(url, opts)`.
    pub async fn socket(&self, cookie: Option<&str>, extra: Value) -> JsSocket {
        let mut opts = json!({});
        if let Some(cookie) = cookie {
            opts["extraHeaders"] = json!({ "cookie": cookie });
        }
        if let (Some(opts), Some(extra)) =
            (opts.as_object_mut(), extra.as_object())
        {
            opts.extend(extra.clone());
        }
        self.js.connect(&self.url("/"), opts).await
    }

    /// A socket that is connected and has received its `history`, which is
    /// returned.
    pub async fn connected(&self, cookie: &str) -> (JsSocket, Value) {
        self.connected_with(cookie, json!({})).await
    }

    pub async fn connected_with(
        &self,
        cookie: &str,
        extra: Value,
    ) -> (JsSocket, Value) {
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

/// The texts of a `history` event's messages, oldest first.
pub fn history_texts(history: &Value) -> Vec<&str> {
    history["messages"]
        .as_array()
        .expect("a history has messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect()
}

/// Sends a chat message and returns the acknowledgement.
pub async fn say(socket: &JsSocket, payload: Value) -> Value {
    socket.emit_with_ack("chat message", json!([payload])).await
}

/// Asks `check` until it says yes, for at most ten seconds (a slow machine is
/// given time; a promise that is never kept still fails). Whether it did.
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // then ask again
    }
}

/// Asserts that no `event` reaches `socket` for a little while.
pub async fn assert_silent(socket: &JsSocket, event: &str) {
    let got = socket
        .try_next_named(event, Duration::from_millis(400))
        .await;
    assert!(got.is_none(), "unexpected `{event}`: {got:?}");
}

/// The browser steps (for `testkit`'s Chromium driver) for `who` to open the
/// page and create an account named after themselves.
pub fn register_in_page(url: &str, who: &str) -> Vec<Value> {
    vec![
        json!({ "page": who, "goto": url }),
        json!({ "page": who, "fill": "#username", "value": who }),
        json!({ "page": who, "fill": "#password", "value": PASSWORD }),
        json!({ "page": who, "click": "#register-button" }),
        json!({ "page": who, "waitText": "#me", "text": who }),
        json!({ "page": who, "waitText": "#status", "text": "connected" }),
    ]
}
