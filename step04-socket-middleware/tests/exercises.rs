//! The self-checks of the chapter's exercises. Each one fails on the code as
//! shipped and passes once the exercise is done. They are `#[ignore]`d so that
//! `cargo test` stays green while you work; run one with `cargo test -p
//! step04-socket-middleware --test exercises ex1 -- --ignored`.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Value, json};
use step01_http_vs_socket::serve;
use step02_sessions::SessionConfig;
use step03_passport_like_auth::{MemoryUserStore, Passport};
use step04_socket_middleware::{
    AllowedOrigins, SESSION_RECHECK, SocketSettings, app,
};
use testkit::{JsClient, JsSocket};
use tower_sessions::cookie::Key;
use tower_sessions::session::Id;
use tower_sessions::{MemoryStore, SessionStore};

const PASSWORD: &str = "correct horse battery";

struct TestApp {
    address: SocketAddr,
    /// The server's session store, so that a check can delete a session behind
    /// its back.
    store: MemoryStore,
    http: reqwest::Client,
    js: JsClient,
}

/// The app under test with the users alice, bob and mallory.
async fn spawn_app(
    max_age: time::Duration,
    session_recheck: Duration,
) -> TestApp {
    let passport = Passport::new(MemoryUserStore::default());
    for name in ["alice", "bob", "mallory"] {
        passport
            .register(name, PASSWORD)
            .await
            .expect("register a test user");
    }
    let sessions = SessionConfig::with_key(Key::generate()).max_age(max_age);
    let store = MemoryStore::default();
    let app_store = store.clone();
    let address = testkit::spawn_server(|listener, address| {
        let origins = AllowedOrigins::for_port(address.port(), None);
        let settings = SocketSettings {
            session_recheck,
            ..SocketSettings::new(origins)
        };
        let router = app(passport, &sessions, app_store, settings);
        serve(listener, router, std::future::pending())
    })
    .await;
    TestApp {
        address,
        store,
        http: reqwest::Client::new(),
        js: JsClient::start().await,
    }
}

/// Sessions that last, and a timer that re-checks them too rarely to matter in
/// a check.
async fn spawn_default_app() -> TestApp {
    spawn_app(time::Duration::days(30), Duration::from_secs(60)).await
}

impl TestApp {
    /// Logs in over HTTP and returns the session cookie, as `id=...`.
    async fn login(&self, username: &str) -> String {
        let base_url = format!("http://{}", self.address);
        testkit::login(&self.http, &base_url, username, PASSWORD).await
    }

    /// Opens a socket with the official JS client, with this cookie (or none).
    async fn socket(&self, cookie: Option<&str>) -> JsSocket {
        let headers = match cookie {
            Some(cookie) => json!({ "cookie": cookie }),
            None => json!({}),
        };
        let url = format!("http://{}/", self.address);
        self.js
            .connect(&url, json!({ "extraHeaders": headers }))
            .await
    }
}

/// The session id inside a signed cookie `id=<signature><id>`: the signature is
/// 44 characters of base64, the id the 22 after it.
fn session_id(cookie: &str) -> Id {
    let value = cookie.strip_prefix("id=").expect("the session cookie");
    let id = value.get(44..).expect("a signed cookie value");
    Id::from_str(id).expect("a session id")
}

async fn whoami(socket: &JsSocket) -> Value {
    socket.emit_with_ack("whoami", json!([])).await
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex1_recheck_interval() {
    // The session runs out in the store 3 seconds after the login; nobody logs
    // out.
    let app = spawn_app(time::Duration::seconds(3), SESSION_RECHECK).await;
    let cookie = app.login("alice").await;
    let socket = app.socket(Some(&cookie)).await;
    socket.expect_connect().await;

    // Re-checked every second, the socket hears of it about a second later,
    // well within 10 seconds. Re-checked every 30 seconds, it goes on as alice
    // for up to half a minute.
    let ended = socket
        .try_next_named("session ended", Duration::from_secs(10))
        .await;
    assert!(
        ended.is_some(),
        "no `session ended` within 10 s of the session's expiry: \
         SESSION_RECHECK is {:?}",
        SESSION_RECHECK
    );
    let disconnect = socket.next_named("disconnect").await;
    assert_eq!(disconnect.raw["reason"], "io server disconnect");
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex2_banned_users() {
    let app = spawn_default_app().await;

    let mallory = app.socket(Some(&app.login("mallory").await)).await;
    assert_eq!(
        mallory.connect_outcome().await,
        Err("Banned".to_owned()),
        "mallory is logged in, and banned: she must get connect_error \
         \"Banned\""
    );

    // Everybody else is treated as before.
    let alice = app.socket(Some(&app.login("alice").await)).await;
    alice.expect_connect().await;
    assert_eq!(whoami(&alice).await["username"], "alice");
    let anonymous = app.socket(None).await;
    assert_eq!(
        anonymous.expect_connect_error().await,
        "xhr poll error",
        "nobody logged in is still refused over HTTP (a 401 to the handshake), \
         not Banned"
    );
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex3_open_tabs() {
    let app = spawn_default_app().await;
    // Alice: two tabs of one browser (one session) and a second browser. Bob:
    // one tab.
    let first_browser = app.login("alice").await;
    let second_browser = app.login("alice").await;
    let alice_tabs = [
        app.socket(Some(&first_browser)).await,
        app.socket(Some(&first_browser)).await,
        app.socket(Some(&second_browser)).await,
    ];
    let bob = app.socket(Some(&app.login("bob").await)).await;
    for socket in alice_tabs.iter().chain([&bob]) {
        socket.expect_connect().await;
    }

    let me = whoami(&alice_tabs[0]).await;
    assert_eq!(me["username"], "alice", "whoami still says who: {me}");
    assert_eq!(me["tabs"], 3, "alice has three sockets open: {me}");
    assert_eq!(whoami(&bob).await["tabs"], 1, "bob has one");

    // A closed tab stops counting once the server has seen it go.
    alice_tabs[2].close().await;
    let deadline = tokio::time::Instant::now() + testkit::DEFAULT_WAIT;
    loop {
        let me = whoami(&alice_tabs[0]).await;
        if me["tabs"] == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a closed tab is still counted: {me}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex4_recheck_on_every_event() {
    // The timer re-checks only every 60 s: only a check on the event can be in
    // time.
    let app = spawn_default_app().await;
    let cookie = app.login("alice").await;
    let socket = app.socket(Some(&cookie)).await;
    socket.expect_connect().await;
    assert_eq!(
        whoami(&socket).await["username"],
        "alice",
        "a live session is answered as before"
    );

    // An administrator deletes the session behind the app's back: no logout, no
    // hook.
    app.store
        .delete(&session_id(&cookie))
        .await
        .expect("delete the session");
    socket.emit("whoami", json!([])).await;

    let ended = socket
        .try_next_named("session ended", Duration::from_secs(10))
        .await;
    assert!(
        ended.is_some(),
        "`whoami` on a deleted session must end the socket (`session ended`), \
         not answer"
    );
    let disconnect = socket.next_named("disconnect").await;
    assert_eq!(disconnect.raw["reason"], "io server disconnect");
}
