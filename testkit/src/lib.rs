//! Test support shared by every step.
//!
//! The tests of this project talk to the servers with the *official* Socket.IO client, the
//! `socket.io-client` package from npm, because that is what browsers and Node.js apps use:
//! a Rust-only client could agree with a Rust-only server on a mistake. [`JsClient`] starts
//! `node testkit/js/bridge.mjs` and drives it line by line with JSON, so the tests themselves
//! stay in Rust and read like user stories.
//!
//! ```no_run
//! # async fn demo() {
//! let client = testkit::JsClient::start().await;
//! let socket = client.connect("http://127.0.0.1:3000", serde_json::json!({})).await;
//! socket.expect_connect().await;
//! let ack = socket.emit_with_ack("ping", serde_json::json!([{"client_time_ms": 1.0}])).await;
//! # }
//! ```

mod presence;
pub mod transcript;

pub use presence::OnlineList;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};

/// The pinned official Socket.IO browser client, as every page of the project loads it.
pub const SOCKET_IO_CDN_URL: &str = "https://cdn.socket.io/4.8.3/socket.io.min.js";

/// Its Subresource Integrity hash, as published in the Socket.IO docs. A test checks that the
/// npm package's file has this very hash, so tests serve the bytes users get from the CDN.
pub const SOCKET_IO_SRI: &str =
    "sha384-kzavj5fiMwLKzzD1f8S7TeoVIEi7uKHvbTA3ueZkrzYq75pNQUiUi6Dy98Q3fxb0";

/// Computes the `sha384-...` SRI value of a file.
pub fn sri_sha384(path: &Path) -> String {
    use base64::Engine;
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let digest = sha2::Sha384::digest(&bytes);
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// How long a test waits for an expected event before it fails.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// The folder holding `package.json` and `bridge.mjs`.
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// The `socket.io-client` browser bundle from npm: the same file the pages load from the CDN
/// (its SRI hash is checked by a test), served to the headless browser when tests run offline.
pub fn socket_io_browser_bundle() -> PathBuf {
    ensure_node_modules();
    js_dir().join("node_modules/socket.io-client/dist/socket.io.min.js")
}

/// Installs the npm packages pinned in `testkit/js/package-lock.json` once, if missing.
///
/// Several test binaries may start at once (cargo-nextest), so the install is guarded by a
/// lock directory: `mkdir` either creates it or fails, atomically.
pub fn ensure_node_modules() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = js_dir();
        let marker = dir.join("node_modules/.package-lock.json");
        if marker.exists() {
            return;
        }
        let lock = dir.join(".install-lock");
        let mut waited = Duration::ZERO;
        while std::fs::create_dir(&lock).is_err() {
            if marker.exists() {
                return;
            }
            assert!(
                waited < Duration::from_secs(300),
                "waited 5 minutes for {} to go away; delete it if no npm is running",
                lock.display()
            );
            std::thread::sleep(Duration::from_millis(500));
            waited += Duration::from_millis(500);
        }
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status();
        std::fs::remove_dir(&lock).ok();
        match status {
            Ok(s) if s.success() => {}
            other => panic!(
                "`npm ci` in {} failed ({other:?}). The tests need Node.js and npm: \
                 run `bash scripts/test.sh`, which installs what is missing.",
                dir.display()
            ),
        }
    });
}

/// Starts a server for a test on a free port of `127.0.0.1` and returns its address.
///
/// `start` gets the bound listener and its address, because an app often needs its own port
/// before it exists (its allowed origins name it), and returns the server future, e.g.
/// `serve(listener, router, std::future::pending())`. It runs in the background for the rest
/// of the test.
pub async fn spawn_server<F, S>(start: F) -> std::net::SocketAddr
where
    F: FnOnce(tokio::net::TcpListener, std::net::SocketAddr) -> S,
    S: Future + Send + 'static,
    S::Output: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(start(listener, address));
    address
}

/// Logs `username` in over HTTP, as the pages do (`POST {base_url}/login` with a JSON body),
/// and returns the session cookie. Panics unless the server answers `200` with a cookie.
pub async fn login(
    http: &reqwest::Client,
    base_url: &str,
    username: &str,
    password: &str,
) -> String {
    let response = http
        .post(format!("{base_url}/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("POST /login");
    assert_eq!(response.status(), 200, "login as {username}");
    session_cookie(&response).expect("login sets a session cookie")
}

/// Logs out the session of `cookie` (`POST {base_url}/logout`) and returns the status.
pub async fn logout(http: &reqwest::Client, base_url: &str, cookie: &str) -> reqwest::StatusCode {
    http.post(format!("{base_url}/logout"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("POST /logout")
        .status()
}

/// The cookie a response sets, as `name=value`: what a `Cookie` header sends back.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    let set_cookie = response.headers().get("set-cookie")?.to_str().ok()?;
    Some(set_cookie.split(';').next()?.to_owned())
}

/// One event received by a socket of the bridge, as the JS client saw it.
#[derive(Debug, Clone)]
pub struct Event {
    /// `connect`, `connect_error`, `disconnect`, `upgrade`, or the name the server emitted.
    pub name: String,
    /// The whole JSON line, e.g. `{"event":"connect_error","message":"Unauthorized"}`.
    pub raw: Value,
}

impl Event {
    /// The arguments of a server event (`socket.emit("x", a, b)` gives `[a, b]`).
    pub fn args(&self) -> &[Value] {
        self.raw["args"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The first argument of a server event, or `null`.
    pub fn data(&self) -> &Value {
        self.args().first().unwrap_or(&Value::Null)
    }
}

type Replies = HashMap<u64, oneshot::Sender<Value>>;
type Inboxes = HashMap<String, mpsc::UnboundedSender<Event>>;

/// A running `node bridge.mjs`: a factory for sockets that use the official JS client.
#[derive(Debug, Clone)]
pub struct JsClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    stdin: AsyncMutex<ChildStdin>,
    replies: Mutex<Replies>,
    inboxes: Mutex<Inboxes>,
    next_id: AtomicU64,
    // Kept so the child is killed when the last handle goes away.
    _child: AsyncMutex<Child>,
}

impl JsClient {
    /// Starts the bridge (installing the npm packages first if they are missing).
    pub async fn start() -> Self {
        tokio::task::spawn_blocking(ensure_node_modules)
            .await
            .expect("npm install task panicked");
        let mut child = Command::new("node")
            .arg(js_dir().join("bridge.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect(
                "cannot start `node`: is Node.js installed? (bash scripts/test.sh installs it)",
            );
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let inner = Arc::new(Inner {
            stdin: AsyncMutex::new(stdin),
            replies: Mutex::new(HashMap::new()),
            inboxes: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            _child: AsyncMutex::new(child),
        });
        let reader = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Some(inner) = reader.upgrade() else { break };
                let Ok(message) = serde_json::from_str::<Value>(&line) else {
                    eprintln!("bridge printed a non-JSON line: {line}");
                    continue;
                };
                inner.dispatch(message);
            }
        });
        JsClient { inner }
    }

    /// Opens a socket to `url` with the given `io(url, opts)` options, for example
    /// `{"transports": ["websocket"], "extraHeaders": {"cookie": "id=..."}}`.
    /// Reconnection is off unless the options turn it on.
    pub async fn connect(&self, url: &str, opts: Value) -> JsSocket {
        let name = format!("s{}", self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.inner.inboxes).insert(name.clone(), tx);
        self.request(json!({"op": "connect", "name": name, "url": url, "opts": opts}))
            .await;
        JsSocket {
            client: self.clone(),
            name,
            inbox: AsyncMutex::new(rx),
            seen: Mutex::new(VecDeque::new()),
        }
    }

    /// Opens `count` sockets that each emit `event` with `args` in the very callback that
    /// reports the connection, and returns how many of them got an acknowledgement.
    pub async fn connect_and_emit_many(
        &self,
        url: &str,
        opts: Value,
        count: usize,
        event: &str,
        args: Value,
    ) -> (usize, Value) {
        let reply = self
            .request(json!({
                "op": "connect_and_emit_many", "url": url, "opts": opts,
                "count": count, "event": event, "args": args, "timeoutMs": 20_000,
            }))
            .await;
        let acked = reply["acked"].as_u64().unwrap_or(0) as usize;
        (acked, reply["failures"].clone())
    }

    /// Opens `count` sockets that each disconnect the instant they connect (a tab opened and
    /// closed at once), and returns how many did connect (and then closed).
    pub async fn connect_and_close_many(&self, url: &str, opts: Value, count: usize) -> usize {
        let reply = self
            .request(json!({
                "op": "connect_and_close_many", "url": url, "opts": opts, "count": count,
            }))
            .await;
        reply["closed"].as_u64().unwrap_or(0) as usize
    }

    /// Blocks this client's Node.js process for `duration`: its sockets read nothing, send
    /// nothing, answer no ping, like a frozen tab. Returns when the process runs again.
    pub async fn freeze(&self, duration: Duration) {
        self.request(json!({"op": "freeze", "ms": duration.as_millis() as u64}))
            .await;
    }

    /// [`Self::connect_and_close_many`], each socket emitting `event` with `args` just before
    /// it closes (a tab that sent something as it closed).
    pub async fn connect_emit_and_close_many(
        &self,
        url: &str,
        opts: Value,
        count: usize,
        event: &str,
        args: Value,
    ) -> usize {
        let reply = self
            .request(json!({
                "op": "connect_and_close_many", "url": url, "opts": opts, "count": count,
                "event": event, "args": args,
            }))
            .await;
        reply["closed"].as_u64().unwrap_or(0) as usize
    }

    async fn request(&self, mut command: Value) -> Value {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        command["id"] = json!(id);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.replies).insert(id, tx);
        let mut line = command.to_string();
        line.push('\n');
        {
            let mut stdin = self.inner.stdin.lock().await;
            stdin
                .write_all(line.as_bytes())
                .await
                .expect("bridge stdin closed: did node crash? (see its stderr above)");
            stdin.flush().await.expect("flush bridge stdin");
        }
        let reply = tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .expect("the bridge did not answer within 60 s")
            .expect("the bridge went away");
        if let Some(error) = reply.get("error") {
            panic!("bridge error for {command}: {error}");
        }
        reply
    }
}

impl Inner {
    fn dispatch(&self, message: Value) {
        if let Some(id) = message.get("reply").and_then(Value::as_u64) {
            if let Some(tx) = lock(&self.replies).remove(&id) {
                tx.send(message).ok();
            }
            return;
        }
        let (Some(name), Some(event)) = (
            message.get("name").and_then(Value::as_str),
            message.get("event").and_then(Value::as_str),
        ) else {
            eprintln!("bridge: unexpected message {message}");
            return;
        };
        if let Some(tx) = lock(&self.inboxes).get(name) {
            tx.send(Event {
                name: event.to_owned(),
                raw: message.clone(),
            })
            .ok();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread poisons the lock; the data is still fine for the others.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One socket of the official JS client, seen from a Rust test.
#[derive(Debug)]
pub struct JsSocket {
    client: JsClient,
    name: String,
    inbox: AsyncMutex<mpsc::UnboundedReceiver<Event>>,
    // Events read while waiting for another one: kept, so a later `next_named` can find them.
    seen: Mutex<VecDeque<Event>>,
}

impl JsSocket {
    /// Waits for the next event called `name` (skipping, but keeping, others).
    /// Panics after [`DEFAULT_WAIT`].
    pub async fn next_named(&self, name: &str) -> Event {
        self.try_next_named(name, DEFAULT_WAIT)
            .await
            .unwrap_or_else(|| panic!("no `{name}` event within {DEFAULT_WAIT:?}"))
    }

    /// Waits up to `wait` for the next event called `name`; `None` if none came.
    pub async fn try_next_named(&self, name: &str, wait: Duration) -> Option<Event> {
        {
            let mut seen = lock(&self.seen);
            if let Some(pos) = seen.iter().position(|e| e.name == name) {
                return seen.remove(pos);
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut inbox = self.inbox.lock().await;
        loop {
            match tokio::time::timeout_at(deadline, inbox.recv()).await {
                Ok(Some(event)) if event.name == name => return Some(event),
                Ok(Some(other)) => lock(&self.seen).push_back(other),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Every event received so far and then until none comes for `quiet`, in the order they
    /// arrived (including those kept aside while an earlier call waited for another name).
    pub async fn drain(&self, quiet: Duration) -> Vec<Event> {
        let mut events: Vec<Event> = lock(&self.seen).drain(..).collect();
        let mut inbox = self.inbox.lock().await;
        while let Ok(Some(event)) = tokio::time::timeout(quiet, inbox.recv()).await {
            events.push(event);
        }
        events
    }

    /// Waits for the outcome of the handshake: `Ok(transport)` on `connect`,
    /// `Err(message)` on `connect_error`.
    pub async fn connect_outcome(&self) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + DEFAULT_WAIT;
        loop {
            if let Some(outcome) = self.take_outcome() {
                return outcome;
            }
            let mut inbox = self.inbox.lock().await;
            match tokio::time::timeout_at(deadline, inbox.recv()).await {
                Ok(Some(event)) => lock(&self.seen).push_back(event),
                _ => panic!("neither `connect` nor `connect_error` within {DEFAULT_WAIT:?}"),
            }
        }
    }

    fn take_outcome(&self) -> Option<Result<String, String>> {
        let mut seen = lock(&self.seen);
        let pos = seen
            .iter()
            .position(|e| e.name == "connect" || e.name == "connect_error")?;
        let event = seen.remove(pos)?;
        let text = |key: &str| event.raw[key].as_str().unwrap_or_default().to_owned();
        Some(if event.name == "connect" {
            Ok(text("transport"))
        } else {
            Err(text("message"))
        })
    }

    /// Waits for `connect` and returns the transport it connected with; panics on
    /// `connect_error`.
    pub async fn expect_connect(&self) -> String {
        match self.connect_outcome().await {
            Ok(transport) => transport,
            Err(message) => panic!("expected to connect, got connect_error {message:?}"),
        }
    }

    /// Waits for `connect_error` and returns its message; panics if the socket connected.
    pub async fn expect_connect_error(&self) -> String {
        match self.connect_outcome().await {
            Ok(transport) => panic!("expected connect_error, but connected over {transport}"),
            Err(message) => message,
        }
    }

    /// Emits `event` with `args` (a JSON array: one element per argument), no ack.
    pub async fn emit(&self, event: &str, args: Value) {
        self.client
            .request(json!({"op": "emit", "name": self.name, "event": event, "args": args}))
            .await;
    }

    /// Emits `event` with `args` and returns the acknowledgement's first argument.
    pub async fn emit_with_ack(&self, event: &str, args: Value) -> Value {
        let reply = self
            .client
            .request(json!({
                "op": "emit", "name": self.name, "event": event, "args": args,
                "ack": true, "timeoutMs": DEFAULT_WAIT.as_millis() as u64,
            }))
            .await;
        reply["ack"].clone()
    }

    /// Emits `event` once for each entry of `args_list` (each a JSON array of arguments), all
    /// at once without waiting for acknowledgements in between, and returns the
    /// acknowledgements' first arguments in order (`{"error": ...}` for one that never came).
    pub async fn emit_many(&self, event: &str, args_list: Vec<Value>) -> Vec<Value> {
        let reply = self
            .client
            .request(json!({
                "op": "emit_many", "name": self.name, "event": event, "argsList": args_list,
                "timeoutMs": DEFAULT_WAIT.as_millis() as u64,
            }))
            .await;
        reply["acks"].as_array().cloned().unwrap_or_default()
    }

    /// Disconnects the socket from the client side.
    pub async fn close(&self) {
        self.client
            .request(json!({"op": "close", "name": self.name}))
            .await;
    }
}

/// Runs a browser scenario (see `testkit/js/browser.mjs` for the steps) in headless
/// Chromium, through Playwright, and returns its report: `{"ok", "read": {...}, "errors"}`.
///
/// Panics with Playwright's message, and the paths of failure screenshots, if a step fails.
pub async fn browser_run(steps: Value) -> Value {
    run_browser(steps, false).await
}

/// [`browser_run`] in a browser whose network reaches nothing but this machine, as in a
/// classroom without Internet: every request to a host other than `localhost` or `127.0.0.1`
/// fails (the CDN's Socket.IO client included). The report's `blocked` lists their URLs.
pub async fn browser_run_without_internet(steps: Value) -> Value {
    run_browser(steps, true).await
}

async fn run_browser(steps: Value, no_internet: bool) -> Value {
    tokio::task::spawn_blocking(ensure_node_modules)
        .await
        .expect("npm install task panicked");
    let output = Command::new("node")
        .arg(js_dir().join("browser.mjs"))
        .arg(steps.to_string())
        .env("BROWSER_NO_INTERNET", if no_internet { "1" } else { "0" })
        .output()
        .await
        .expect("cannot start `node`");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "the browser script printed no report.\nstdout: {stdout}\nstderr: {}\n\
             Is Chromium installed? (bash scripts/test.sh installs it)",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(report["ok"], true, "browser scenario failed: {report}");
    report
}

/// Opens `url`, waits until each `(selector, text)` pair shows that text, and saves a
/// screenshot to `png`: the shortest browser scenario.
pub async fn browser_check(url: &str, png: &Path, conditions: &[(&str, &str)]) -> Value {
    let mut steps = vec![json!({ "goto": url })];
    for (selector, text) in conditions {
        steps.push(json!({ "waitText": selector, "text": text }));
    }
    steps.push(json!({ "screenshot": png }));
    browser_run(Value::Array(steps)).await
}

/// A throw-away `redis-server` on a free loopback port, for the scaling tests; killed when
/// dropped. Nothing is saved to disk.
#[derive(Debug)]
pub struct RedisServer {
    /// `redis://127.0.0.1:PORT`
    pub url: String,
    child: std::process::Child,
}

impl RedisServer {
    /// Starts `redis-server` (installed by `scripts/test.sh`) and waits until it answers.
    pub async fn start() -> Self {
        // Ask the OS for a free port, then hand it to Redis. (Another process could take it in
        // between; on a test machine that is rare enough, and the start would fail loudly.)
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("find a free port")
            .port();
        let server = RedisServer {
            url: format!("redis://127.0.0.1:{port}"),
            child: spawn_redis(port),
        };
        wait_for_redis(port).await;
        server
    }

    /// Stops the server at once, as a crash would.
    pub fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }

    /// Starts the server again on the same port (empty: nothing was saved), as after a crash.
    pub async fn restart(&mut self) {
        self.kill();
        let port: u16 = self
            .url
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("the URL ends with the port");
        self.child = spawn_redis(port);
        wait_for_redis(port).await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_redis(port: u16) -> std::process::Child {
    std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("cannot start `redis-server`: run `bash scripts/test.sh`, which installs it")
}

async fn wait_for_redis(port: u16) {
    for _ in 0..100 {
        if redis_answers(port).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server on port {port} did not answer PING within 5 s");
}

/// Sends `PING` in Redis's wire protocol and checks for `+PONG`.
async fn redis_answers(port: u16) -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await.is_ok() && &reply == b"+PONG\r\n"
}
