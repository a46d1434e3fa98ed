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

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex2_the_batches_are_counted() {
    let app = spawn_app().await;
    let stats = || async {
        let response = app.http.get(app.url("/stats")).send().await;
        let response = response.expect("GET /stats");
        assert_eq!(response.status(), 200, "GET /stats");
        response.json::<Value>().await.expect("a JSON body")
    };
    let none = json!({ "batches": 0, "messages": 0 });
    assert_eq!(stats().await, none, "nothing stored yet");

    // One at a time: each message waits for its acknowledgement before the
    // next is sent, so each is a batch of its own.
    let (alice, _) = app.connected(&app.register("alice").await).await;
    for text in ["one", "two", "three"] {
        assert_eq!(say(&alice, json!(text)).await["ok"], true, "{text}");
    }
    let three = json!({ "batches": 3, "messages": 3 });
    assert_eq!(stats().await, three, "three messages sent one at a time");

    // Ten at once: however the room's task groups them, every message is in
    // exactly one batch.
    let sent = (0..10).map(|n| say(&alice, json!(format!("at once {n}"))));
    for ack in futures_util::future::join_all(sent).await {
        assert_eq!(ack["ok"], true, "{ack}");
    }
    let counted = stats().await;
    assert_eq!(counted["messages"], 13, "{counted}");
    let batches = counted["batches"].as_u64().unwrap_or_default();
    assert!((4..=13).contains(&batches), "{counted}");
}
