//! Abuse limits, from the outside: what an attacker with a laptop tries first.
//!
//! - anonymous handshakes are refused over HTTP and cost the server no memory;
//! - a message bigger than the limit, or a binary one, closes the connection;
//! - a page on another site cannot post to `/login`, `/register` or `/logout`;
//! - requests of an admitted connection do not read the session store again;
//! - a restart never hands an old cookie to a new user.
//!
//! Two tests measure this process's memory (`VmRSS`), in which the server runs.
//! So all tests here take turns, through [`SERIAL`]: another test's password
//! hashing (19 MiB per Argon2 hash) must not show up in a figure.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use step01_http_vs_socket::serve;
use step02_sessions::SessionConfig;
use step03_passport_like_auth::{MemoryUserStore, Passport};
use step04_socket_middleware::{
    AllowedOrigins, SocketSettings, app, in_memory_stores,
};
use testkit::{JsClient, JsSocket, session_cookie};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tower_sessions::MemoryStore;
use tower_sessions::cookie::Key;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

const PASSWORD: &str = "correct horse battery";
const EVIL: &str = "http://evil.example";
const MIB: u64 = 1024 * 1024;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct TestApp {
    address: SocketAddr,
    http: reqwest::Client,
}

/// Step 4's app over `store`, with alice registered, signing cookies with
/// `key`.
async fn spawn_app_with<S>(
    passport: Passport<MemoryUserStore>,
    store: S,
    key: &Key,
) -> TestApp
where
    S: SessionStore + Clone,
{
    let sessions = SessionConfig::with_key(key.clone());
    let address = testkit::spawn_server(|listener, address| {
        let settings =
            SocketSettings::new(AllowedOrigins::for_port(address.port(), None));
        let router = app(passport, &sessions, store, settings);
        serve(listener, router, std::future::pending())
    })
    .await;
    TestApp {
        address,
        http: reqwest::Client::new(),
    }
}

async fn spawn_app<S: SessionStore + Clone>(store: S) -> TestApp {
    let passport = Passport::new(MemoryUserStore::default());
    passport
        .register("alice", PASSWORD)
        .await
        .expect("register alice");
    spawn_app_with(passport, store, &Key::generate()).await
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn own_origin(&self) -> String {
        format!("http://localhost:{}", self.address.port())
    }

    /// Posts a login *form*, as an HTML `<form>` on any site can, from `origin`
    /// if given.
    async fn post_form(
        &self,
        path: &str,
        username: &str,
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url(path))
            .form(&[("username", username), ("password", PASSWORD)]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send().await.expect("POST a form")
    }

    async fn login(&self, username: &str) -> String {
        let response = self.post_form("/login", username, None).await;
        assert_eq!(response.status(), 200, "login as {username}");
        session_cookie(&response).expect("login sets a session cookie")
    }

    /// The status and body of `GET /me` with `cookie`.
    async fn me(&self, cookie: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url("/me"))
            .header("cookie", cookie)
            .send()
            .await
            .expect("GET /me");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn socket(
        &self,
        js: &JsClient,
        cookie: &str,
        transports: Value,
    ) -> JsSocket {
        let opts = json!({
            "extraHeaders": { "cookie": cookie },
            "transports": transports
        });
        js.connect(&self.url("/"), opts).await
    }
}

/// This process's resident memory, in bytes (Linux).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status")
        .expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// Sends `count` handshakes (`GET /socket.io/?EIO=4&transport=polling`), 50 at
/// a time, with these headers, and returns how many were answered with each
/// status.
async fn handshakes(
    app: &TestApp,
    count: usize,
    headers: &[(&str, &str)],
) -> std::collections::BTreeMap<u16, usize> {
    let url = app.url("/socket.io/?EIO=4&transport=polling");
    let statuses: Vec<u16> = futures_util::stream::iter(0..count)
        .map(|_| {
            let mut request = app.http.get(&url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            async move {
                let response =
                    request.send().await.expect("a handshake request");
                response.status().as_u16()
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let mut counts = std::collections::BTreeMap::new();
    for status in statuses {
        *counts.entry(status).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_anonymous_handshakes_are_refused_and_cost_no_memory() {
    let _turn = SERIAL.lock().await;
    let app = spawn_app(MemoryStore::default()).await;
    let cookie = app.login("alice").await;
    // Warm-up: the first requests grow the allocator's and hyper's pools once
    // and for all.
    handshakes(&app, 500, &[]).await;

    let before = rss_bytes();
    let anonymous = handshakes(&app, 10_000, &[]).await;
    let foreign =
        handshakes(&app, 1_000, &[("cookie", &cookie), ("origin", EVIL)]).await;
    let after = rss_bytes();

    eprintln!(
        "10,000 anonymous + 1,000 foreign handshakes: RSS {:.1} MiB -> {:.1} \
         MiB",
        before as f64 / MIB as f64,
        after as f64 / MIB as f64
    );
    assert_eq!(anonymous.into_iter().collect::<Vec<_>>(), [(401, 10_000)]);
    assert_eq!(foreign.into_iter().collect::<Vec<_>>(), [(403, 1_000)]);
    assert!(
        after.saturating_sub(before) < 20 * MIB,
        "RSS grew by {} MiB",
        after.saturating_sub(before) / MIB
    );

    // Meanwhile, a logged-in user connects as ever.
    let js = JsClient::start().await;
    let socket = app
        .socket(&js, &cookie, json!(["polling", "websocket"]))
        .await;
    socket.expect_connect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_closes_the_connection_and_is_never_buffered()
{
    let _turn = SERIAL.lock().await;
    let app = spawn_app(MemoryStore::default()).await;
    let cookie = app.login("alice").await;
    let js = JsClient::start().await;
    // Built once: the test's own copies must not count as the server's memory.
    let megabyte = json!(["x".repeat(1_000_000)]);
    let line = json!(["a line of chat, well within the limit"]);

    for transports in [json!(["websocket"]), json!(["polling"])] {
        let sockets: Vec<JsSocket> = futures_util::future::join_all(
            (0..10).map(|_| app.socket(&js, &cookie, transports.clone())),
        )
        .await;
        for socket in &sockets {
            socket.expect_connect().await;
            // Within the limit: answered as ever.
            let me = socket.emit_with_ack("whoami", line.clone()).await;
            assert_eq!(me["username"], "alice", "{transports}");
        }
        let before = rss_bytes();
        for socket in &sockets {
            socket.emit("whoami", megabyte.clone()).await;
        }
        let mut reasons = Vec::new();
        for socket in &sockets {
            let closed = socket
                .try_next_named("disconnect", Duration::from_secs(5))
                .await;
            reasons.push(closed.map(|event| event.raw["reason"].clone()));
        }
        let after = rss_bytes();
        eprintln!(
            "{transports}: 10 x 1 MB messages: RSS {:.1} MiB -> {:.1} MiB",
            before as f64 / MIB as f64,
            after as f64 / MIB as f64
        );
        for reason in reasons {
            let reason = reason.expect("a 1 MB message closes the connection");
            let reason = reason.as_str().unwrap_or_default();
            assert!(reason.starts_with("transport"), "{transports}: {reason}");
        }
        assert!(
            after.saturating_sub(before) < 8 * MIB,
            "{transports}: RSS grew by {} MiB",
            after.saturating_sub(before) / MIB
        );
    }
}

/// A raw Engine.IO WebSocket, to send what the official client never would.
type RawSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn raw_websocket(
    app: &TestApp,
    cookie: Option<&str>,
) -> Result<RawSocket, tungstenite::Error> {
    let url =
        format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.address);
    let mut request = url.into_client_request()?;
    if let Some(cookie) = cookie {
        let cookie = cookie.parse().expect("an ASCII cookie");
        request.headers_mut().insert("cookie", cookie);
    }
    let tcp = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    let (socket, _) = tokio_tungstenite::client_async(request, tcp).await?;
    Ok(socket)
}

/// The next Engine.IO packet, or `None` once the server has closed the
/// connection. Engine.IO pings (`2`) are answered (`3`) on the way, as a client
/// must.
async fn next_text(socket: &mut RawSocket) -> Option<String> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("the server answers or closes within 5 s");
        match frame {
            Some(Ok(Message::Text(ping))) if ping.as_str() == "2" => {
                socket.send(Message::text("3")).await.ok();
            }
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => continue, // ping, pong
        }
    }
}

#[tokio::test]
async fn a_websocket_without_a_login_is_refused_at_the_http_upgrade() {
    let _turn = SERIAL.lock().await;
    let app = spawn_app(MemoryStore::default()).await;
    match raw_websocket(&app, None).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected a 401 to the upgrade, got {other:?}"),
    }
}

#[tokio::test]
async fn a_binary_event_closes_the_connection() {
    let _turn = SERIAL.lock().await;
    let app = spawn_app(MemoryStore::default()).await;
    let cookie = app.login("alice").await;
    let mut socket = raw_websocket(&app, Some(&cookie))
        .await
        .expect("a logged-in upgrade");
    assert!(
        next_text(&mut socket)
            .await
            .is_some_and(|open| open.starts_with('0'))
    );
    socket
        .send(Message::text("40"))
        .await
        .expect("send CONNECT");
    let connected = next_text(&mut socket).await.expect("CONNECT answered");
    assert!(connected.starts_with("40{"), "{connected}");
    // A text event first: answered, so the connection itself is fine.
    socket
        .send(Message::text(r#"421["whoami"]"#))
        .await
        .expect("send an event");
    let mut answer = next_text(&mut socket).await.expect("an answer");
    while !answer.starts_with("431") {
        answer = next_text(&mut socket).await.expect("the acknowledgement");
    }

    // `52-`: a binary event with 1 attachment. Refused as soon as it is
    // announced.
    let binary = r#"452-["whoami",{"_placeholder":true,"num":0}]"#;
    socket.send(Message::text(binary)).await.expect("send");
    socket.send(Message::binary(vec![0u8; 1024])).await.ok();
    while let Some(text) = next_text(&mut socket).await {
        assert!(
            !text.starts_with("43"),
            "a binary event was answered: {text}"
        );
    }
}

#[tokio::test]
async fn cross_site_posts_are_refused_before_any_session_exists() {
    let _turn = SERIAL.lock().await;
    let app = spawn_app(MemoryStore::default()).await;
    for path in ["/login", "/register", "/logout"] {
        let response = app.post_form(path, "alice", Some(EVIL)).await;
        assert_eq!(response.status(), 403, "{path}");
        assert!(response.headers().get("set-cookie").is_none(), "{path}");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body, json!({ "error": "Forbidden origin" }), "{path}");
    }
    // Sandboxed pages and some redirects send `Origin: null`: not ours either.
    let null = app.post_form("/login", "alice", Some("null")).await;
    assert_eq!(null.status(), 403);
    // A browser that sends no Origin but says the request is cross-site.
    let cross_site = app
        .http
        .post(app.url("/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .expect("POST /login");
    assert_eq!(cross_site.status(), 403);

    // The refused registration created nobody: the name is still free.
    let own = app.own_origin();
    let register = app.post_form("/register", "mallory", Some(&own)).await;
    assert_eq!(register.status(), 201);
    // Our own page, and curl (no Origin at all), log in as ever.
    let ours = app.post_form("/login", "alice", Some(&own)).await;
    assert_eq!(ours.status(), 200);
    assert!(session_cookie(&ours).is_some());
    app.login("alice").await;
}

/// A session store that counts how often it is read.
#[derive(Debug, Clone, Default)]
struct CountingStore {
    inner: MemoryStore,
    loads: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl SessionStore for CountingStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.inner.create(record).await
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.inner.save(record).await
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(id).await
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.inner.delete(id).await
    }
}

#[tokio::test]
async fn requests_of_an_admitted_polling_connection_do_not_read_the_session_store()
 {
    let _turn = SERIAL.lock().await;
    let store = CountingStore::default();
    let app = spawn_app(store.clone()).await;
    let cookie = app.login("alice").await;
    let js = JsClient::start().await;
    let socket = app.socket(&js, &cookie, json!(["polling"])).await;
    socket.expect_connect().await;

    let before = store.loads.load(Ordering::SeqCst);
    for _ in 0..20 {
        // Over long-polling, each event is a POST and each answer ends a GET.
        let me = socket.emit_with_ack("whoami", json!([])).await;
        assert_eq!(me["username"], "alice");
    }
    let reads = store.loads.load(Ordering::SeqCst) - before;
    eprintln!("20 events over long-polling: {reads} session store reads");
    assert_eq!(reads, 0);
}

#[tokio::test]
async fn a_restart_never_hands_an_old_cookie_to_a_new_user() {
    let _turn = SERIAL.lock().await;
    // SESSION_SECRET is set: the same key across the restart
    let key = Key::generate();
    let register = async |app: &TestApp, name: &str| {
        let response = app.post_form("/register", name, None).await;
        assert_eq!(response.status(), 201, "register {name}");
        session_cookie(&response).expect("registering logs in")
    };

    // The first run, with the stores `main` uses.
    let (passport, store) = in_memory_stores();
    let first_run = spawn_app_with(passport, store, &key).await;
    let old_cookie = register(&first_run, "first_u").await;
    let (_, me) = first_run.me(&old_cookie).await;
    assert_eq!(me["username"], "first_u");

    // The restart: new stores, as `main` makes them, and a new user who gets id
    // 1 again.
    let (passport, store) = in_memory_stores();
    let second_run = spawn_app_with(passport, store, &key).await;
    let new_cookie = register(&second_run, "second_u").await;
    let (_, second) = second_run.me(&new_cookie).await;
    assert_eq!(second["id"], me["id"], "the new user has the old user's id");

    assert_eq!(
        second_run.me(&old_cookie).await,
        (401, json!({ "error": "Unauthorized" }))
    );
    let handshake = second_run
        .http
        .get(second_run.url("/socket.io/?EIO=4&transport=polling"))
        .header("cookie", &old_cookie)
        .send()
        .await
        .expect("a handshake");
    assert_eq!(handshake.status(), 401);
}

/// Not a check: the figures of chapter 4 ("Refuse before allocating"). How many
/// times one long-polling socket makes the server read the session store in a
/// minute, idle (only Engine.IO's heartbeat) and busy (an event and its
/// acknowledgement every second). Run it with `cargo test -p
/// step04-socket-middleware --test limits measure -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a two-minute measurement, not a check"]
async fn measure_session_reads_of_one_polling_socket_per_minute() {
    let _turn = SERIAL.lock().await;
    let store = CountingStore::default();
    let app = spawn_app(store.clone()).await;
    let cookie = app.login("alice").await;
    let js = JsClient::start().await;
    let socket = app.socket(&js, &cookie, json!(["polling"])).await;
    socket.expect_connect().await;
    let minute = Duration::from_secs(60);
    let reads = || store.loads.load(Ordering::SeqCst);

    let start = reads();
    tokio::time::sleep(minute).await;
    let idle = reads() - start;

    let start = (reads(), tokio::time::Instant::now());
    let mut events = 0;
    while start.1.elapsed() < minute {
        socket.emit_with_ack("whoami", json!([])).await;
        events += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let busy = reads() - start.0;
    eprintln!(
        "one polling socket for a minute: idle, {idle} session store reads; \
         {events} events, {busy} session store reads (the session watch reads \
         twice a minute)"
    );
}
