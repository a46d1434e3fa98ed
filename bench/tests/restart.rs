//! The restart scenario against servers in this process: the floor, and step 5's chat over a
//! SQLite file that outlives the restart. A stop here closes every socket and the listener,
//! as `SIGTERM` does; a new server is then built on the same port, over the same database,
//! with the same session key. Tens of sockets: every one must come back; on step 5 every
//! acknowledged message must reach every socket, once, in order.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bench::restart::{Backoff, Restart, RestartPlan};
use bench::servers::StopSignal;
use bench::{RestartReport, Target, Workload};
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_sessions::cookie::Key;

/// 4 users × 6 tabs = 24 sockets; 3 of them send 16 messages at 8/s, through the restart.
fn workload() -> Workload {
    Workload {
        users: 4,
        tabs: 6,
        senders: 3,
        messages: 16,
        rate: 8.0,
        drain: Duration::from_secs(5),
    }
}

/// Stopped a second into the sending (time for a few acknowledgements even on a busy
/// machine); a quick back-off so the test is quick.
fn plan() -> RestartPlan {
    RestartPlan {
        stop_after: Duration::from_secs(1),
        backoff: Backoff {
            first: Duration::from_millis(50),
            max: Duration::from_millis(400),
            jitter: 0.5,
        },
        ack_timeout: Duration::from_secs(2),
        patience: Duration::from_secs(20),
        ..RestartPlan::new(StopSignal::Term)
    }
}

/// Which server, and how to build it again.
enum Kind {
    Floor,
    Step05 { data: tempfile::TempDir, key: Key },
}

/// A server in this process that can be stopped and built again on the same port.
struct InProcess {
    kind: Kind,
    addr: SocketAddr,
    running: Option<(JoinHandle<std::io::Result<()>>, SocketIo)>,
}

impl InProcess {
    async fn launch(kind: Kind) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("local address");
        let mut server = InProcess {
            kind,
            addr,
            running: None,
        };
        server.serve(listener).await;
        server
    }

    async fn serve(&mut self, listener: TcpListener) {
        let (router, io) = match &self.kind {
            Kind::Floor => bench::floor::app(),
            Kind::Step05 { data, key } => {
                let chat = step05_chat::build(support::step05_config(self.addr, data, key.clone()))
                    .await
                    .expect("build the chat");
                (chat.router, chat.io)
            }
        };
        let serving = step01_http_vs_socket::serve(listener, router, std::future::pending());
        self.running = Some((tokio::spawn(serving), io));
    }
}

impl Restart for InProcess {
    async fn stop(&mut self, _signal: StopSignal) -> Result<(), String> {
        let (serving, io) = self.running.take().ok_or("not running")?;
        // The listener first, so no socket comes back to the old server; then every socket.
        serving.abort();
        serving.await.ok();
        io.close().await;
        Ok(())
    }

    async fn start(&mut self) -> Result<(), String> {
        let listener = TcpListener::bind(self.addr)
            .await
            .map_err(|error| format!("bind {} again: {error}", self.addr))?;
        self.serve(listener).await;
        Ok(())
    }
}

async fn restart(name: &str, kind: Kind, login: bool) -> RestartReport {
    let mut server = InProcess::launch(kind).await;
    let target = Target {
        name: name.into(),
        nodes: vec![server.addr],
        login,
        pids: Vec::new(),
    };
    bench::run_restart(&workload(), &plan(), &target, &mut server)
        .await
        .expect("run")
}

/// Every socket was dropped once and came back; every message was sent and acknowledged.
fn assert_all_back(report: &RestartReport) {
    let workload = workload();
    assert_eq!(report.sockets, workload.sockets());
    assert_eq!(report.connect_failures, 0);
    assert_eq!(report.sockets_back, workload.sockets(), "{report:?}");
    assert!(report.disconnects >= workload.sockets(), "{report:?}");
    let (p99, all) = (report.back_ms_p99, report.back_ms_all);
    assert!(p99.is_some_and(|p99| all.is_some_and(|all| p99 <= all)));
    assert!(report.listening_ms >= report.stopped_ms);
    assert!(report.reconnects_per_sec > 0.0);
    assert_eq!(report.messages_sent, workload.total_messages());
    assert_eq!(
        report.messages_acked,
        workload.total_messages(),
        "{report:?}"
    );
    assert_eq!(report.messages_refused, 0);
    assert!(!report.timed_out, "{report:?}");
    assert!(
        report.acked_before_stop > 0,
        "sent before the stop: {report:?}"
    );
    assert!(
        report.acked_before_stop < report.messages_acked,
        "and after: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_of_the_floor_comes_back_after_a_restart() {
    let report = restart("floor", Kind::Floor, false).await;
    assert_all_back(&report);
    assert!(!report.replays);
    assert_eq!(
        report.caught_up_ms_all, report.back_ms_all,
        "no history: back is all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step05_loses_nothing_and_repeats_nothing_through_a_restart() {
    let data = tempfile::tempdir().expect("temp dir");
    let kind = Kind::Step05 {
        data,
        key: Key::generate(),
    };
    let report = restart("step05", kind, true).await;
    assert_all_back(&report);
    assert!(report.replays);
    assert_eq!(report.acked_not_delivered, 0, "{report:?}");
    assert_eq!(
        (report.duplicates, report.out_of_order),
        (0, 0),
        "{report:?}"
    );
    let (back, caught_up) = (report.back_ms_all, report.caught_up_ms_all);
    assert!(caught_up.is_some_and(|caught_up| back.is_some_and(|back| caught_up >= back)));
}

/// Two servers as the nodes of a cluster, for the node-kill scenario: `stop` stops the first
/// for good.
struct TwoNodes {
    first: InProcess,
    second: InProcess,
}

impl Restart for TwoNodes {
    async fn stop(&mut self, signal: StopSignal) -> Result<(), String> {
        self.first.stop(signal).await
    }

    async fn start(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn stays_down(&self) -> Option<SocketAddr> {
        Some(self.first.addr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_sockets_move_to_the_other_node_and_the_others_stay() {
    let mut nodes = TwoNodes {
        first: InProcess::launch(Kind::Floor).await,
        second: InProcess::launch(Kind::Floor).await,
    };
    let target = Target {
        name: "two floors".into(),
        nodes: vec![nodes.first.addr, nodes.second.addr],
        login: false,
        pids: Vec::new(),
    };
    let report = bench::run_restart(&workload(), &plan(), &target, &mut nodes)
        .await
        .expect("run");
    let sockets = workload().sockets();
    assert_eq!(report.sockets_back, sockets, "{report:?}");
    assert!(report.back_ms_all.is_some(), "{report:?}");
    // The first node's half, each dropped once, came back on the second on their first try.
    assert_eq!(report.disconnects, sockets / 2, "{report:?}");
    assert_eq!(report.failed_attempts, 0, "{report:?}");
}
