//! The checks of the exercises of the chapter "The chat under load", one per
//! exercise. Each fails on the code as shipped and passes once the exercise is
//! done:
//!
//! ```console
//! cargo test -p chat-under-load --test exercises ex1 -- --ignored
//! ```
//!
//! They are `#[ignore]`d so that `cargo test` stays green on unsolved code.

// Formatted as step 5's code is (its own rustfmt.toml), not as this crate's.
#[rustfmt::skip]
#[path = "../../step05-chat/tests/support/mod.rs"]
mod support;

use serde_json::{Value, json};
use support::{Options, TestApp, assert_silent, history_texts, say};
use testkit::{DEFAULT_WAIT, JsSocket};

/// The chat as `chat_under_load::build` builds it (your code), on a free port,
/// over a fresh database.
async fn spawn_app() -> TestApp {
    support::spawn_app_built_by(chat_under_load::build, Options::default()).await
}

/// The payload of the next `event` that reaches `socket`, which belongs to
/// `who`.
async fn received(socket: &JsSocket, event: &str, who: &str) -> Value {
    socket
        .try_next_named(event, DEFAULT_WAIT)
        .await
        .unwrap_or_else(|| panic!("{who} got no `{event}` within {DEFAULT_WAIT:?}"))
        .data()
        .clone()
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex1_edit_and_delete_own_messages() {
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
    // Carol enters `general` from the room task's memory: the edit must be
    // there too, not only in the database.
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
