//! The Node twin (`compare/node-chat`) speaks step 5's contract word for word:
//! the same scenario is played against both servers, and every HTTP answer,
//! acknowledgement and event each socket receives must be the same, names, keys
//! and values (only timestamps may differ). Renaming an event, a key or an
//! error message in either server makes this test fail.
//!
//! It needs the twin installed (`npm ci` in `compare/node-chat`), so it is
//! ignored by a plain `cargo test`; `scripts/test.sh` runs it with
//! `--include-ignored`, after installing the twin.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Options, PASSWORD, TestApp, spawn_app_built_by, spawn_node_app};
use testkit::JsSocket;

/// How long a socket must stay silent before a step's events are taken as
/// complete. Presence is gathered for 100 ms before it is sent, so this must be
/// well above that.
const QUIET: Duration = Duration::from_millis(400);

#[tokio::test]
#[ignore = "needs the Node twin: `npm ci` in compare/node-chat \
            (scripts/test.sh runs it)"]
async fn the_node_twin_answers_every_step_exactly_as_step05_does() {
    let rust = spawn_app_built_by(step05_chat::build, Options::default()).await;
    let node = spawn_node_app(Options::default()).await;

    let (rust_transcript, node_transcript) =
        tokio::join!(play(&rust), play(&node));

    assert!(
        rust_transcript.len() > 60,
        "the scenario recorded too little"
    );
    for (n, (ours, theirs)) in
        rust_transcript.iter().zip(&node_transcript).enumerate()
    {
        assert_eq!(
            ours,
            theirs,
            "entry {n} differs (left: step05, right: the Node twin); \
             step05's transcript up to there:\n{}",
            lines(&rust_transcript[..n])
        );
    }
    assert_eq!(
        rust_transcript.len(),
        node_transcript.len(),
        "one transcript is longer.\nstep05:\n{}\nNode twin:\n{}",
        lines(&rust_transcript),
        lines(&node_transcript)
    );
}

fn lines(entries: &[Value]) -> String {
    entries
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What one server answered, entry by entry.
#[derive(Default)]
struct Transcript(Vec<Value>);

impl Transcript {
    /// Records an HTTP answer: status and body. With `exact: false` only the
    /// body's shape counts (the text of a JSON parser's error is each library's
    /// own).
    async fn http(
        &mut self,
        step: &str,
        response: reqwest::Response,
        exact: bool,
    ) -> String {
        let status = response.status().as_u16();
        let cookie = support::session_cookie(&response).unwrap_or_default();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let body = if exact {
            normalize(&body)
        } else {
            shape(&body)
        };
        self.0
            .push(json!({ "http": step, "status": status, "body": body }));
        cookie
    }

    /// Records an acknowledgement.
    fn ack(&mut self, step: &str, ack: Value) {
        self.0
            .push(json!({ "ack": step, "value": normalize(&ack) }));
    }

    /// Records every event `socket` received since the last call, until it is
    /// quiet.
    async fn events(&mut self, who: &str, socket: &JsSocket) {
        for event in socket.drain(QUIET).await {
            let entry = match event.name.as_str() {
                // When the client upgrades from polling to WebSocket is the
                // client's business.
                "upgrade" => continue,
                "connect" => json!({ "socket": who, "event": "connect" }),
                "connect_error" | "disconnect" => {
                    let detail = &event.raw[if event.name == "disconnect" {
                        "reason"
                    } else {
                        "message"
                    }];
                    json!({
                        "socket": who,
                        "event": event.name,
                        "detail": detail
                    })
                }
                _ => json!({
                    "socket": who,
                    "event": event.name,
                    "args": normalize(&event.raw["args"])
                }),
            };
            self.0.push(entry);
        }
    }
}

/// The value with every timestamp (`ts`) replaced by a marker: the one thing
/// that may differ.
fn normalize(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| {
                    let value = if key == "ts" && value.is_i64() {
                        json!("<ts>")
                    } else {
                        normalize(value)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(normalize).collect())
        }
        other => other.clone(),
    }
}

/// The value's keys and the types of its leaves.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), shape(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::String(_) => json!("<string>"),
        Value::Number(_) => json!("<number>"),
        Value::Bool(_) => json!("<bool>"),
        Value::Null => Value::Null,
    }
}

/// The scenario: every route, event, acknowledgement and refusal of the
/// contract, in order.
async fn play(app: &TestApp) -> Vec<Value> {
    let mut log = Transcript::default();
    let credentials =
        |name: &str| json!({ "username": name, "password": PASSWORD });

    // ---- HTTP
    let alice = app.post_json("/register", None, credentials("alice")).await;
    log.http("register alice", alice, true).await;
    let bob = app.post_json("/register", None, credentials("Bob")).await;
    let bob = log.http("register Bob, stored as bob", bob, true).await;
    for (step, body) in [
        ("a taken name", credentials("ALICE")),
        ("a short name", credentials("al")),
        (
            "a short password",
            json!({ "username": "carol", "password": "short" }),
        ),
    ] {
        let response = app.post_json("/register", None, body).await;
        log.http(step, response, true).await;
    }
    let missing = app
        .post_json("/register", None, json!({ "username": "carol" }))
        .await;
    log.http("no password", missing, false).await;
    let not_json = app.post_not_json("/register").await;
    log.http("not JSON", not_json, false).await;
    let wrong = json!({ "username": "alice", "password": "wrong password" });
    let wrong = app.post_json("/login", None, wrong).await;
    log.http("a wrong password", wrong, true).await;
    let login = app.post_json("/login", None, credentials("alice")).await;
    let alice = log.http("login alice", login, true).await;
    for (step, cookie) in [("me, anonymous", None), ("me, alice", Some(&alice))]
    {
        let mut request = app.http.get(app.url("/me"));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        log.http(step, request.send().await.expect("GET /me"), true)
            .await;
    }
    let handshake = app
        .http
        .get(app.url("/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .expect("GET /socket.io/");
    log.http("an anonymous handshake", handshake, true).await;
    let csrf = app
        .http
        .post(app.url("/login"))
        .header("origin", "http://evil.example")
        .json(&credentials("alice"))
        .send()
        .await
        .expect("POST /login");
    log.http("a login from a foreign page", csrf, true).await;

    // ---- connecting
    let a = app.socket(Some(&alice), json!({})).await;
    log.events("alice", &a).await;
    let b = app.socket(Some(&bob), json!({})).await;
    log.events("bob", &b).await;
    log.events("alice", &a).await;

    // ---- messages
    let alice_socket = &a;
    let say = |payload: Value| async move {
        alice_socket
            .emit_with_ack("chat message", json!([payload]))
            .await
    };
    log.ack("hello", say(json!("hello")).await);
    let forged =
        json!({ "room": "general", "text": " I am bob ", "user": { "id": 2 } });
    log.ack("a forged user", say(forged).await);
    for (step, payload) in [
        ("a number", json!(42)),
        ("null", Value::Null),
        ("blank text", json!({ "text": "   " })),
        ("1001 characters", json!("x".repeat(1001))),
        ("a control character", json!("bell\u{7}")),
        ("nothing visible", json!("\u{200B}\u{200B}")),
        ("a bad room", json!({ "room": "Nope!", "text": "x" })),
        (
            "a room not joined",
            json!({ "room": "elsewhere", "text": "x" }),
        ),
        (
            "a bad clientOffset",
            json!({ "text": "x", "clientOffset": "" }),
        ),
        ("text not a string", json!({ "text": 5 })),
    ] {
        log.ack(step, say(payload).await);
    }
    let once = json!({ "text": "only once", "clientOffset": "page-1" });
    log.ack("with a clientOffset", say(once.clone()).await);
    log.ack("the same clientOffset again", say(once).await);
    log.events("alice", &a).await;
    log.events("bob", &b).await;

    // ---- rooms, typing
    log.ack(
        "alice joins rust",
        a.emit_with_ack("join", json!(["rust"])).await,
    );
    log.ack(
        "a bad room name",
        a.emit_with_ack("join", json!(["UPPER"])).await,
    );
    log.ack(
        "a room that is a number",
        a.emit_with_ack("join", json!([7])).await,
    );
    log.events("alice", &a).await;
    let ferris = json!({ "room": "rust", "text": "ferris" });
    log.ack("alice in rust", say(ferris).await);
    let refused = b.emit_with_ack(
        "chat message",
        json!([{ "room": "rust", "text": "hi" }]),
    );
    log.ack("bob, not in rust", refused.await);
    log.ack(
        "bob joins rust",
        b.emit_with_ack("join", json!(["rust"])).await,
    );
    log.events("alice", &a).await;
    log.events("bob", &b).await;
    let typing = a.emit_with_ack("typing", json!([{ "room": "general" }]));
    log.ack("alice types", typing.await);
    let typing = a.emit_with_ack("typing", json!([{ "room": "elsewhere" }]));
    log.ack("alice types elsewhere", typing.await);
    log.events("alice", &a).await;
    log.events("bob", &b).await;
    log.ack(
        "alice leaves rust",
        a.emit_with_ack("leave", json!(["rust"])).await,
    );
    log.ack(
        "alice leaves general",
        a.emit_with_ack("leave", json!(["general"])).await,
    );
    a.emit("no such event", json!([{ "x": 1 }])).await;
    log.ack("after an unknown event", say(json!("still here")).await);
    log.events("alice", &a).await;
    log.events("bob", &b).await;

    // ---- catching up
    b.close().await;
    log.events("bob", &b).await;
    log.events("alice", &a).await;
    log.ack("while bob is away", say(json!("missed 1")).await);
    log.ack("still away", say(json!("missed 2")).await);
    let last_seen = json!({ "auth": { "serverOffset": 1 } });
    let b = app.socket(Some(&bob), last_seen).await;
    log.events("bob", &b).await;
    log.events("alice", &a).await;

    // ---- logging out, and the refusals of the handshake
    let logout = app.post_json("/logout", Some(&alice), json!({})).await;
    log.http("alice logs out", logout, true).await;
    log.events("alice", &a).await;
    log.events("bob", &b).await;
    let again = app.socket(Some(&alice), json!({})).await;
    log.events("alice, logged out", &again).await;
    let foreign = json!({
        "transports": ["websocket"],
        "extraHeaders": { "cookie": bob, "origin": "http://evil.example" }
    });
    let foreign = app.socket(None, foreign).await;
    log.events("bob, from a foreign page", &foreign).await;
    log.0
}
