//! Catching up in a room the room's task no longer remembers.
//!
//! Step 5's contract tests (`CHAT_SERVER=chat-under-load`) come back to a room
//! whose task still holds every message they missed, so they are served from
//! its memory. Here the server restarts first: the room's task reads only the
//! newest 1,024 messages when it starts, and a client that left off before
//! them is served from the database. The promise is the same either way.

// Formatted as step 5's code is (its own rustfmt.toml), not as this crate's.
#[rustfmt::skip]
#[path = "../../step05-chat/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use chat_under_load::sequencer::insert_batch;
use serde_json::{Value, json};
use step03_passport_like_auth::User;
use step05_chat::messages::{MessageStore, NewMessage};
use support::{Options, TestApp, assert_silent, database_url, say, spawn_app_built_by};
use testkit::JsSocket;

/// Messages stored in `lobby` while the chat was down.
const STORED: usize = 1100;

/// A chat whose `lobby` holds one message Alice saw, then [`STORED`] more,
/// stored while the server was stopped. Returns the restarted chat, Alice's
/// cookie, and the ids of the `lobby` messages, oldest first.
async fn restarted_with_a_long_lobby() -> (TestApp, String, Vec<i64>) {
    let app = spawn_app_built_by(chat_under_load::build, Options::default()).await;
    let alice = app.register("alice").await;
    let bob = User {
        id: app.user_id(&app.register("bob").await).await,
        username: "bob".into(),
    };
    let restart = app.stop().await;

    let folder = restart.database.as_ref().expect("the same database");
    let pool = step05_chat::db::open_database(&database_url(folder))
        .await
        .expect("open");
    let store = MessageStore::new(pool);
    let batch: Vec<NewMessage> = (0..=STORED)
        .map(|n| NewMessage {
            user: bob.clone(),
            text: format!("lobby {n}"),
            client_offset: None,
        })
        .collect();
    let ids = insert_batch(&store, "lobby", &batch)
        .await
        .into_iter()
        .map(|stored| match stored.expect("stored") {
            step05_chat::messages::Stored::New(message) => message.id,
            other => panic!("stored twice: {other:?}"),
        })
        .collect();

    let app = spawn_app_built_by(chat_under_load::build, restart).await;
    (app, alice, ids)
}

/// Reads `count` `chat message` events and returns their ids.
async fn receive_ids(socket: &JsSocket, count: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let wait = Duration::from_secs(10);
        let Some(event) = socket.try_next_named("chat message", wait).await else {
            panic!(
                "got {} of {count} messages, then nothing for {wait:?}",
                ids.len()
            );
        };
        ids.push(event.data()["id"].as_i64().expect("a message id"));
    }
    ids
}

fn history_ids(joined: &Value) -> Vec<i64> {
    let history = joined["history"].as_array().expect("a history");
    history
        .iter()
        .map(|message| message["id"].as_i64().expect("an id"))
        .collect()
}

/// Alice joins `lobby` again, having last seen `ids[seen]`: her history ends
/// there, then the newest 1,000 after it come once, in order, then live ones.
async fn rejoin_after(seen: usize) {
    let (app, alice, ids) = restarted_with_a_long_lobby().await;
    let (alice, _) = app.connected(&alice).await;
    let rejoin = json!([{ "room": "lobby", "serverOffset": ids[seen] }]);
    let joined = alice.emit_with_ack("join", rejoin).await;
    assert_eq!(joined["ok"], true, "{joined}");

    let history = history_ids(&joined);
    assert_eq!(history, ids[seen.saturating_sub(49)..=seen], "its window");
    let missed = &ids[seen + 1..];
    let replayed = missed.len().min(1000);
    assert_eq!(joined["truncated"], missed.len() > 1000, "truncated flag");
    let got = receive_ids(&alice, replayed).await;
    assert_eq!(
        got,
        missed[missed.len() - replayed..],
        "the newest, in order"
    );
    assert_silent(&alice, "chat message").await; // and each once

    let (bob, _) = app.connected(&app.login("bob").await).await;
    assert_eq!(
        bob.emit_with_ack("join", json!(["lobby"])).await["ok"],
        true
    );
    let id = say(&bob, json!({ "room": "lobby", "text": "live" })).await["id"].as_i64();
    assert_eq!(receive_ids(&alice, 1).await, [id.expect("stored")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_from_a_room_longer_than_its_memory_gets_the_newest_1000_and_is_told() {
    rejoin_after(0).await; // 1,100 missed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_from_a_room_longer_than_its_memory_gets_every_one_of_1000() {
    rejoin_after(STORED - 1000).await; // 1,000 missed, 50 seen before them
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_whose_offset_is_not_a_number_gets_the_newest_history_only() {
    let (app, alice, ids) = restarted_with_a_long_lobby().await;
    let (alice, _) = app.connected(&alice).await;
    let rejoin = json!([{ "room": "lobby", "serverOffset": "12" }]);
    let joined = alice.emit_with_ack("join", rejoin).await;
    assert_eq!(history_ids(&joined), ids[ids.len() - 50..]);
    assert_eq!(joined["truncated"], false);
    assert_silent(&alice, "chat message").await;
}
