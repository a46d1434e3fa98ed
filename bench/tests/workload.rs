//! The load generator against real servers in this process: the floor, and step 5's chat (over
//! a fresh SQLite file, with logins). A tiny workload must arrive complete, once, in order, and
//! the report's numbers must add up.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bench::{Report, Target, Workload};
use socketioxide::SocketIo;
use socketioxide::adapter::LocalAdapter;
use tower_sessions::cookie::Key;

/// 3 users × 3 tabs, each user sends 5 messages at 10/s.
fn tiny() -> Workload {
    Workload {
        users: 3,
        tabs: 3,
        senders: 3,
        messages: 5,
        rate: 10.0,
        drain: Duration::from_secs(5),
    }
}

fn target(name: &str, addr: SocketAddr, login: bool) -> Target {
    Target {
        name: name.into(),
        nodes: vec![addr],
        login,
        pids: Vec::new(),
    }
}

async fn spawn_floor() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(bench::floor::serve(listener));
    addr
}

/// Step 5's chat, as its own tests build it, with cheap password hashing and no rate limit.
/// The temporary folder holds the database: keep it until the test ends.
async fn spawn_step05() -> (SocketAddr, SocketIo<LocalAdapter>, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let addr = listener.local_addr().expect("local address");
    let config = support::step05_config(addr, &data, Key::generate());
    let chat = step05_chat::build(config).await.expect("build the chat");
    let io = chat.io;
    tokio::spawn(step01_http_vs_socket::serve(
        listener,
        chat.router,
        std::future::pending(),
    ));
    (addr, io, data)
}

/// Everything sent reached every socket, live, once and in order; and the totals agree.
fn assert_complete(report: &Report, workload: &Workload) {
    assert_eq!(report.sockets, 9);
    assert_eq!(report.connect_failures, 0);
    assert_eq!(report.messages_sent, workload.total_messages());
    assert_eq!(report.messages_acked, report.messages_sent);
    assert_eq!(report.messages_refused, 0);
    assert_eq!(
        report.expected_deliveries,
        workload.sockets() * workload.total_messages()
    );
    assert_eq!(report.delivered_live, report.expected_deliveries);
    assert_eq!(report.delivered_total, report.expected_deliveries);
    assert_eq!(report.delivered_live_pct, 100.0);
    assert_eq!(report.delivered_total_pct, 100.0);
    assert_eq!((report.duplicates, report.out_of_order), (0, 0));
    assert_eq!(report.disconnects, 0);
    assert!(report.connects_per_sec > 0.0);
    assert!(report.latency_ms_p50 <= report.latency_ms_p99);
    assert!(report.latency_ms_p99 <= report.latency_ms_max);
    // The server runs in this process: its memory and CPU are not measured apart.
    assert_eq!(report.rss_kib_per_socket, None);
    assert_eq!(report.cpu_secs_per_million, None);
    assert!(report.loadgen_cpu_secs_per_million.is_some());
    assert!(report.load_average.is_some());
    // Every delivery went out in some segment (where `ss` is installed to count them).
    if let Some(segments) = report.segments_per_thousand {
        assert!(segments > 0.0, "no segment counted");
    }
}

#[tokio::test]
async fn a_tiny_workload_reaches_every_socket_of_the_floor() {
    let workload = tiny();
    let addr = spawn_floor().await;
    let report = bench::run(&workload, &target("floor", addr, false))
        .await
        .expect("run");
    assert_complete(&report, &workload);
}

#[tokio::test]
async fn a_tiny_workload_reaches_every_socket_of_step05() {
    let workload = tiny();
    let (addr, _io, _data) = spawn_step05().await;
    let report = bench::run(&workload, &target("step05", addr, true))
        .await
        .expect("run");
    assert_complete(&report, &workload);
}

#[tokio::test]
async fn sockets_dropped_by_step05_catch_up_on_what_they_missed() {
    // Slower, so the server can drop everyone in the middle of the sending.
    let workload = Workload {
        rate: 4.0,
        ..tiny()
    };
    let (addr, io, _data) = spawn_step05().await;
    let sockets = workload.sockets();
    let drop_everyone = tokio::spawn(async move {
        while io.sockets().len() < sockets {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The run waits 1 s after the last connect, then sends for about 1.25 s.
        tokio::time::sleep(Duration::from_millis(1700)).await;
        io.disconnect().await.expect("disconnect every socket");
    });
    let report = bench::run(&workload, &target("step05", addr, true))
        .await
        .expect("run");
    drop_everyone
        .await
        .expect("the server dropped every socket");

    assert_eq!(report.disconnects, sockets);
    assert_eq!(report.messages_sent, workload.total_messages());
    assert!(
        report.delivered_live < report.expected_deliveries,
        "some messages were sent while the sockets were away: {report:?}"
    );
    assert_eq!(
        report.delivered_total, report.expected_deliveries,
        "{report:?}"
    );
    assert_eq!((report.duplicates, report.out_of_order), (0, 0));
}

#[tokio::test]
async fn a_bad_workload_is_refused_with_a_reason() {
    let workload = Workload {
        senders: 4,
        ..tiny()
    };
    let addr = spawn_floor().await;
    let error = bench::run(&workload, &target("floor", addr, false))
        .await
        .expect_err("more senders than users");
    assert!(error.to_string().contains("senders (4)"), "{error}");
}
