//! The checks of chapter 5's exercises, one per exercise. Each fails on the
//! code as shipped and passes once the exercise is done:
//!
//! ```console
//! cargo test -p step05-chat --test exercises ex2 -- --ignored
//! ```
//!
//! They are `#[ignore]`d so that `cargo test` stays green on unsolved code.

mod support;

use serde_json::{Value, json};
use support::{Options, TestApp, assert_silent, say};
use testkit::{DEFAULT_WAIT, JsSocket};

/// The chat as `step05_chat::build` builds it (your code), on a free port,
/// over a fresh database.
async fn spawn_app() -> TestApp {
    support::spawn_app_built_by(step05_chat::build, Options::default()).await
}

/// The payload of the next `event` that reaches `socket`, which belongs to
/// `who`.
async fn received(socket: &JsSocket, event: &str, who: &str) -> Value {
    socket
        .try_next_named(event, DEFAULT_WAIT)
        .await
        .unwrap_or_else(|| {
            panic!("{who} got no `{event}` within {DEFAULT_WAIT:?}")
        })
        .data()
        .clone()
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex1_shorter_messages() {
    let app = spawn_app().await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    let (bob, _) = app.connected(&app.register("bob").await).await;

    let longest = say(&alice, json!("x".repeat(280))).await;
    assert_eq!(longest["ok"], true, "280 characters are allowed: {longest}");
    bob.next_named("chat message").await;

    let too_long = say(&alice, json!("x".repeat(281))).await;
    assert_eq!(
        too_long,
        json!({ "error": "text must be 1 to 280 characters" }),
        "a message of 281 characters must be refused"
    );
    assert_silent(&bob, "chat message").await;
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex2_private_messages() {
    let app = spawn_app().await;
    let alice_cookie = app.register("alice").await;
    let bob_cookie = app.register("bob").await;
    let alice_id = app.user_id(&alice_cookie).await;
    let bob_id = app.user_id(&bob_cookie).await;
    // Two tabs each for alice and bob, and carol, who must hear nothing.
    let (alice, _) = app.connected(&alice_cookie).await;
    let (alice_other_tab, _) = app.connected(&alice_cookie).await;
    let (bob, _) = app.connected(&bob_cookie).await;
    let (bob_other_tab, _) = app.connected(&bob_cookie).await;
    let (carol, _) = app.connected(&app.register("carol").await).await;

    // The `from` in the payload is a lie, and must be ignored.
    let payload = json!({ "to": bob_id, "text": "psst, bob",
                          "from": { "id": bob_id, "username": "bob" } });
    let ack = alice
        .emit_with_ack("private message", json!([payload]))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let id = ack["id"]
        .as_i64()
        .expect("the ack carries the message's id");

    for (who, socket) in [
        ("alice (the sender)", &alice),
        ("alice's other tab", &alice_other_tab),
        ("bob", &bob),
        ("bob's other tab", &bob_other_tab),
    ] {
        let message = received(socket, "private message", who).await;
        assert_eq!(message["id"], id, "{message}");
        assert_eq!(
            message["from"],
            json!({ "id": alice_id, "username": "alice" }),
            "{message}"
        );
        assert_eq!(message["to"], bob_id, "{message}");
        assert_eq!(message["text"], "psst, bob", "{message}");
        assert!(message["ts"].as_i64().is_some(), "{message}");
    }
    assert_silent(&carol, "private message").await;
    assert_silent(&carol, "chat message").await;

    let unknown = alice
        .emit_with_ack(
            "private message",
            json!([{ "to": 999_999, "text": "anyone?" }]),
        )
        .await;
    assert!(
        unknown["error"].is_string(),
        "an unknown recipient must get an error, got {unknown}"
    );
    assert_silent(&alice, "private message").await;
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex3_older_messages() {
    // No rate limit: the check sends 60 messages at once.
    let options = Options {
        rate_limit: Some((1000, 1000.0)),
        ..Options::default()
    };
    let app = support::spawn_app_built_by(step05_chat::build, options).await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    let mut ids = Vec::new();
    for n in 0..60 {
        let ack = say(&alice, json!(format!("message {n}"))).await;
        ids.push(ack["id"].as_i64().expect("the message is stored"));
    }
    let message_ids = |page: &Value| -> Vec<i64> {
        page["messages"]
            .as_array()
            .map(|all| all.iter().filter_map(|m| m["id"].as_i64()).collect())
            .unwrap_or_default()
    };

    // Bob's history is the newest 50; he scrolls up for the 10 before them.
    let (bob, history) = app.connected(&app.register("bob").await).await;
    assert_eq!(
        message_ids(&history),
        ids[10..],
        "the history: the newest 50"
    );
    let before = json!([{ "room": "general", "before": ids[10] }]);
    let older = bob.emit_with_ack("older", before).await;
    assert_eq!(message_ids(&older), ids[..10], "the 10 before: {older}");
    assert_eq!(
        (&older["room"], &older["more"]),
        (&json!("general"), &json!(false))
    );

    // Before the first message there is nothing; a room not joined is refused.
    let first = json!([{ "room": "general", "before": ids[0] }]);
    let none = bob.emit_with_ack("older", first).await;
    assert_eq!(message_ids(&none), Vec::<i64>::new(), "{none}");
    let elsewhere = json!([{ "room": "rust", "before": ids[10] }]);
    let refused = bob.emit_with_ack("older", elsewhere).await;
    assert_eq!(refused, json!({ "error": "you have not joined this room" }));
}
