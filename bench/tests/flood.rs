//! `flood` at a small scale against step 5's chat in this process: every flooding connection
//! does its part, and the memory read along the way is a real process's.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bench::flood::{Flood, run_flood};
use tower_sessions::cookie::Key;

/// Step 5's chat as the load generator's tests build it; the folder holds its database.
async fn spawn_step05() -> (SocketAddr, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let addr = listener.local_addr().expect("local address");
    let config = support::step05_config(addr, &data, Key::generate());
    let chat = step05_chat::build(config).await.expect("build the chat");
    tokio::spawn(step01_http_vs_socket::serve(
        listener,
        chat.router,
        std::future::pending(),
    ));
    (addr, data)
}

async fn small_flood(flood: Flood) {
    let (addr, _data) = spawn_step05().await;
    // The server is in this process: its memory is ours.
    let reports = run_flood(addr, std::process::id(), flood, 10, Duration::ZERO, 2, None)
        .await
        .expect("the flood runs");
    assert_eq!(reports.len(), 2, "one report per round");
    for report in reports {
        assert_eq!(report.completed, 10, "{flood:?}: {report:?}");
        assert!(report.before_kib > 0, "{report:?}");
        assert!(report.peak_kib >= report.before_kib, "{report:?}");
        assert_eq!(report.trimmed_kib, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_of_a_catch_up_flood_gets_every_message_it_missed() {
    small_flood(Flood::CatchUp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_of_a_rooms_flood_gets_into_every_room() {
    small_flood(Flood::Rooms).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unfinished_head_of_a_headers_flood_is_ended_by_the_server() {
    small_flood(Flood::Headers).await;
}
