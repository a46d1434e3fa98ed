//! The self-checks of the chapter's exercises, one per exercise. They are
//! `#[ignore]`d so that `cargo test` stays green on the starter code; run one
//! with `cargo test -p step02-sessions --test exercises ex1 -- --ignored`. Each
//! fails on the code as shipped and passes once the exercise is done.
//!
//! They talk plain HTTP and read the JSON as `serde_json::Value`, so they
//! compile whatever fields your `SessionView` has.

use std::time::Duration as StdDuration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::Value;
use step01_http_vs_socket::{now_ms, serve};
use step02_sessions::{MemoryStore, SessionConfig, app};
use time::Duration;
use tokio::time::Instant;
use tower_sessions::cookie::Key;

/// The app under test on a free port, and a client that keeps no cookies: each
/// check says exactly which `Cookie` it sends.
struct TestApp {
    address: String,
    client: reqwest::Client,
}

async fn spawn_app(config: &SessionConfig) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address =
        format!("http://{}", listener.local_addr().expect("local address"));
    let router = app(config, MemoryStore::default());
    tokio::spawn(serve(listener, router, std::future::pending()));
    TestApp {
        address,
        client: reqwest::Client::new(),
    }
}

fn config() -> SessionConfig {
    SessionConfig::with_key(
        Key::try_from(&[7u8; 64][..]).expect("64 bytes is a valid key"),
    )
}

/// A `Set-Cookie` header, as `name=value` and the `Max-Age` it carries.
struct SetCookie {
    pair: String,
    max_age: Option<i64>,
}

impl TestApp {
    /// `POST path`, sending `cookie` if there is one; returns the status and
    /// the session cookie that came back, if any.
    async fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
    ) -> (StatusCode, Option<SetCookie>) {
        let mut request = self.client.post(format!("{}{path}", self.address));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.expect("POST");
        let set_cookie = response.headers().get(SET_COOKIE).map(|value| {
            parse_set_cookie(value.to_str().expect("ASCII header"))
        });
        (response.status(), set_cookie)
    }

    /// `POST /api/visit`, which must succeed; returns the cookie it set.
    async fn visit(&self, cookie: Option<&str>) -> SetCookie {
        let (status, set_cookie) = self.post("/api/visit", cookie).await;
        assert!(status.is_success(), "POST /api/visit answered {status}");
        set_cookie
            .expect("POST /api/visit writes the session, so it sets the cookie")
    }

    /// `GET /api/session` sending exactly `cookie`, as JSON.
    async fn session(&self, cookie: &str) -> Value {
        let response = self
            .client
            .get(format!("{}/api/session", self.address))
            .header(COOKIE, cookie)
            .send()
            .await
            .expect("GET /api/session");
        assert_eq!(response.status(), StatusCode::OK, "GET /api/session");
        response.json().await.expect("JSON")
    }
}

fn parse_set_cookie(header: &str) -> SetCookie {
    let mut parts = header.split(';').map(str::trim);
    let pair = parts.next().unwrap_or_default().to_owned();
    let max_age = parts
        .filter_map(|attribute| attribute.strip_prefix("Max-Age="))
        .find_map(|value| value.parse().ok());
    SetCookie { pair, max_age }
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex1_last_visit() {
    let app = spawn_app(&config()).await;

    let stranger = app.session("").await;
    assert!(
        stranger["last_visit_ms"].is_null(),
        "no visit yet, so no time: {stranger}"
    );

    let before = now_ms();
    let cookie = app.visit(None).await.pair;
    let after = now_ms();
    let first = app.session(&cookie).await;
    let first_ms = first["last_visit_ms"].as_u64().unwrap_or_else(|| {
        panic!(
            "after a visit, GET /api/session needs a `last_visit_ms` \
             number: {first}"
        )
    });
    assert!(
        before.saturating_sub(1000) <= first_ms && first_ms <= after + 1000,
        "last_visit_ms is {first_ms}, but the visit happened between {before} \
         and {after} (milliseconds since the Unix epoch)"
    );

    tokio::time::sleep(StdDuration::from_millis(50)).await;
    app.visit(Some(&cookie)).await;
    let second = app.session(&cookie).await;
    let second_ms = second["last_visit_ms"].as_u64().unwrap_or_default();
    assert!(
        second_ms > first_ms,
        "a second visit must update the time: {first_ms} then {second_ms}"
    );
    assert_eq!(second["visits"], 2, "the counter still counts: {second}");
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex2_absolute_expiry() {
    // max_age now counts from a session's first write, not from its last one.
    let app = spawn_app(&config().max_age(Duration::seconds(6))).await;

    let alice_first = app.visit(None).await;
    let alice_started = Instant::now();
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    let alice_second = app.visit(Some(&alice_first.pair)).await;
    let bob_first = app.visit(None).await;

    // Alice's second write keeps her deadline, so its cookie has less time
    // left...
    let (first, second) = (alice_first.max_age, alice_second.max_age);
    assert!(
        matches!((first, second), (Some(a), Some(b)) if b < a),
        "alice's second write, 3 s after her first, set Max-Age {second:?} \
         after {first:?}: it moved the deadline instead of keeping it"
    );
    // ...while Bob, new at that moment, gets the whole max_age: the deadline is
    // per session.
    let bob = bob_first.max_age;
    assert!(
        matches!((first, bob), (Some(a), Some(b)) if b >= a - 1),
        "bob's first write set Max-Age {bob:?}, alice's {first:?}: a new \
         session must get the whole max_age, counted from its own first write"
    );
    assert_eq!(
        app.session(&alice_second.pair).await["visits"],
        2,
        "3 s into a 6 s life, the session is still there"
    );

    // 6.5 s after her first write: past her deadline, however recent her last
    // write.
    tokio::time::sleep_until(alice_started + StdDuration::from_millis(6500))
        .await;
    let session = app.session(&alice_second.pair).await;
    assert_eq!(
        session["visits"], 0,
        "6.5 s after its first write, the session should be gone: {session}"
    );
    assert!(session["session_id"].is_null(), "{session}");
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex3_new_id() {
    let app = spawn_app(&config()).await;
    let old = app.visit(None).await.pair;
    app.visit(Some(&old)).await;
    let before = app.session(&old).await;

    let (status, set_cookie) = app.post("/api/new-id", Some(&old)).await;

    assert!(status.is_success(), "POST /api/new-id answered {status}");
    let new = set_cookie
        .expect("POST /api/new-id must send the new cookie")
        .pair;
    assert_ne!(new, old, "the cookie must carry a new id");
    let after = app.session(&new).await;
    assert_eq!(after["visits"], 2, "the data is kept: {after}");
    assert!(after["session_id"].is_string(), "{after}");
    assert_ne!(after["session_id"], before["session_id"], "a new id");
    // Whoever still holds the old cookie holds nothing.
    let replayed = app.session(&old).await;
    assert_eq!(
        replayed["visits"], 0,
        "the old cookie still works: {replayed}"
    );
    assert!(replayed["session_id"].is_null(), "{replayed}");
}
