//! What a socket leaves behind when it goes: nothing. Each test here failed
//! before its fix, in the race that breaks it, on the multi-threaded runtime.
//!
//! Rust-only (step 5, or `CHAT_SERVER=chat-under-load`): they look inside the
//! server through its `io` handle, which the Node twin does not have.

mod support;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::json;
use socketioxide::SocketIo;
use step05_chat::ChatServer;
use step05_chat::limits::ChatLimits;
use support::{Implementation, Options, TestApp, eventually, implementation};

/// The chat chosen by `CHAT_SERVER` (Rust only), and its `io` handle.
async fn spawn_with_io(options: Options) -> (TestApp, SocketIo) {
    let kept = Arc::new(OnceLock::new());
    let keep = kept.clone();
    let build = move |config| async move {
        let built: Result<ChatServer, String> = match implementation() {
            Implementation::UnderLoad => chat_under_load::build(config)
                .await
                .map_err(|error| error.to_string()),
            _ => step05_chat::build(config)
                .await
                .map_err(|error| error.to_string()),
        };
        if let Ok(server) = &built {
            keep.set(server.io.clone()).ok();
        }
        built
    };
    let app = support::spawn_app_built_by(build, options).await;
    let io = kept.get().expect("the server was built").clone();
    (app, io)
}

async fn has_room(io: &SocketIo, room: &str) -> bool {
    let rooms = io.rooms().await.expect("the local adapter cannot fail");
    rooms.iter().any(|name| name == room)
}

/// A `join` handled after its socket closed used to put the socket's id in
/// the room for ever: the adapter had already taken it out of every room, so
/// nothing would again. A flood of tabs closing as they join makes the race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_that_lands_after_its_socket_closed_leaves_nothing_in_the_room()
{
    let options = Options {
        limits: Some(ChatLimits::off()),
        ..Options::default()
    };
    let (app, io) = spawn_with_io(options).await;
    let cookie = app.register("alice").await;
    let opts = json!({
        "transports": ["websocket"],
        "extraHeaders": { "cookie": cookie },
    });
    let joining = json!([{ "room": "closing" }]);
    for _round in 0..5 {
        let url = app.url("/");
        let closed = app
            .js
            .connect_emit_and_close_many(
                &url,
                opts.clone(),
                100,
                "join",
                joining.clone(),
            )
            .await;
        assert_eq!(closed, 100, "every socket connected, joined and closed");
    }
    let empty = eventually(|| async { io.sockets().is_empty() }).await;
    assert!(empty, "every socket is gone");
    let left = eventually(|| async { !has_room(&io, "closing").await }).await;
    assert!(left, "no closed socket is left in the room `closing`");
}

/// A socket whose entry into `general` failed (here, the database lost its
/// messages table) used to stay connected, outside `general`, hearing
/// nothing. It must be disconnected, and shown online to nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_whose_entry_fails_is_disconnected_and_shown_to_nobody() {
    let (app, io) = spawn_with_io(Options::default()).await;
    let alice = app.register("alice").await;

    let file = app.database.path().join("chat.db");
    let url = format!("sqlite://{}", file.display());
    let db = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open the file");
    let rename = "ALTER TABLE messages RENAME TO messages_away";
    sqlx::query(rename).execute(&db).await.expect("break");

    let alice_socket = app.socket(Some(&alice), json!({})).await;
    let outcome = alice_socket.connect_outcome().await;
    if outcome.is_ok() {
        let gone =
            alice_socket.try_next_named("disconnect", Duration::from_secs(10));
        assert!(gone.await.is_some(), "a socket outside general is let go");
    }
    let gone = eventually(|| async { io.sockets().is_empty() }).await;
    assert!(gone, "alice's socket is closed on the server too");

    let restore = "ALTER TABLE messages_away RENAME TO messages";
    sqlx::query(restore).execute(&db).await.expect("repair");
    // Whoever comes next is shown who is there: alice never was in.
    let (bob, _) = app.connected(&app.register("bob").await).await;
    bob.next_named("presence").await;
    let (carol, _) = app.connected(&app.register("carol").await).await;
    let presence = carol.next_named("presence").await;
    let users = presence.data()["users"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = users
        .iter()
        .filter_map(|user| user["username"].as_str())
        .collect();
    assert_eq!(names, ["bob", "carol"]);
}
