//! A server that stops leaves nothing running. Its background jobs (the session
//! cleanup, the housekeeping, the rooms' tasks) belong to the server's
//! `BackgroundTasks` and stop with it; a job spawned and forgotten would still
//! be counted here.
//!
//! One test in its own file, so its process runs nothing else: every task of
//! the test's runtime, and every task on the rooms' thread, is this server's.

// Formatted as step 5's code is (its own rustfmt.toml), not as this crate's.
#[rustfmt::skip]
#[path = "../../step05-chat/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use chat_under_load::sequencer::rooms_tasks_alive;
use serde_json::json;
use support::{Options, say, spawn_app_built_by};

#[tokio::test]
async fn a_server_that_stops_leaves_no_task_running() {
    let runtime = tokio::runtime::Handle::current();
    let app = spawn_app_built_by(chat_under_load::build, Options::default()).await;
    let (alice, _) = app.connected(&app.register("alice").await).await;
    // Its acknowledgement means general's task ran, on the rooms' thread.
    assert_eq!(say(&alice, json!("hello")).await["ok"], true);
    let running = (runtime.metrics().num_alive_tasks(), rooms_tasks_alive());
    assert!(
        running.0 > 0 && running.1 > 0,
        "nothing to stop: {running:?}"
    );

    alice.close().await;
    drop(alice); // the test's own client, and its tasks
    app.stop().await;

    // The server's own tasks end at once; its connections' tasks as their
    // sockets close.
    let mut left = (usize::MAX, usize::MAX);
    for _ in 0..50 {
        left = (runtime.metrics().num_alive_tasks(), rooms_tasks_alive());
        if left == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        left,
        (0, 0),
        "tasks still running 5 s after the server stopped \
         (this runtime, the rooms' thread); while it ran: {running:?}"
    );
}
