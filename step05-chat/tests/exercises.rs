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
use support::{Options, TestApp, assert_silent, history_texts, say};
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
async fn ex3_edit_and_delete_own_messages() {
    let app = spawn_app().await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    let (bob, _) = app.connected(&app.register("bob").await).await;
    let id = say(&alice, json!("helo")).await["id"].clone();
    assert!(id.is_i64(), "alice's message was sent: {id}");
    bob.next_named("chat message").await;

    // Bob may do neither to alice's message, and nobody hears of his attempts.
    let not_yours = json!({ "error": "not your message" });
    let edit = bob
        .emit_with_ack(
            "edit message",
            json!([{ "id": id, "text": "bob was here" }]),
        )
        .await;
    assert_eq!(edit, not_yours, "bob edits alice's message");
    let delete = bob
        .emit_with_ack("delete message", json!([{ "id": id }]))
        .await;
    assert_eq!(delete, not_yours, "bob deletes alice's message");
    assert_silent(&alice, "message edited").await;
    assert_silent(&alice, "message deleted").await;

    // Alice may, and everyone in the room sees it.
    let edit = alice
        .emit_with_ack("edit message", json!([{ "id": id, "text": "hello" }]))
        .await;
    assert_eq!(edit["ok"], true, "alice edits her message: {edit}");
    for (who, socket) in [("alice", &alice), ("bob", &bob)] {
        let edited = received(socket, "message edited", who).await;
        assert_eq!(edited["id"], id, "{edited}");
        assert_eq!(edited["room"], "general", "{edited}");
        assert_eq!(edited["text"], "hello", "{edited}");
        assert_eq!(edited["user"]["username"], "alice", "{edited}");
    }
    let carol_cookie = app.register("carol").await;
    let (_, history) = app.connected(&carol_cookie).await;
    assert_eq!(history_texts(&history), ["hello"], "the edit is stored");

    let delete = alice
        .emit_with_ack("delete message", json!([{ "id": id }]))
        .await;
    assert_eq!(delete["ok"], true, "alice deletes her message: {delete}");
    for (who, socket) in [("alice", &alice), ("bob", &bob)] {
        let deleted = received(socket, "message deleted", who).await;
        assert_eq!(deleted, json!({ "id": id, "room": "general" }));
    }
    let (_, history) = app.connected(&carol_cookie).await;
    assert!(
        history_texts(&history).is_empty(),
        "the message is gone: {history}"
    );
}
