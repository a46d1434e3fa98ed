//! The workload: users with several tabs each, all in `general`, some of them sending messages
//! at a steady pace; and what every socket saw of it.
//!
//! A run has four phases:
//!
//! 1. **Register** one account per user over HTTP (skipped for the floor, which has no login).
//! 2. **Connect** every tab's socket; connects/s and the server's memory per socket come from
//!    here.
//! 3. **Send**: each sender sends its messages from its first tab at `rate` per second, the
//!    senders' start times spread evenly over one period so the load is smooth.
//! 4. **Drain**: wait until every socket has every message, or `drain` has passed since the
//!    last send. The server's CPU time is counted over phases 3 and 4.
//!
//! Every message's text is `"<sender> <number> <µs since the run started>"`, so the receiving
//! socket knows which message it is (to spot duplicates and losses) and how long it took
//! (sender and receivers share this process's clock).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use crate::client::{ClientError, Connection, Packet, chat_message};
use crate::procfs;

/// The room everybody is in and every message goes to.
pub(crate) const ROOM: &str = "general";
/// Socket handshakes in flight at once: enough to keep the server busy, few enough that the
/// listen backlog never overflows (an overflow costs a 1 s SYN retry and ruins connects/s).
pub const CONNECTS_IN_FLIGHT: usize = 128;
/// How long one socket may take to connect before it counts as failed.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for the server to settle after the last connect, before its memory is read.
const SETTLE: Duration = Duration::from_secs(1);
/// The password of every load-test account.
const PASSWORD: &str = "bench-password";

/// What to run: `users × tabs` sockets; the first `senders` users send `messages` each.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// Accounts (each registered over HTTP, unless the target has no login).
    pub users: usize,
    /// Sockets per user, like open browser tabs.
    pub tabs: usize,
    /// How many users send (from their first tab); at most `users`.
    pub senders: usize,
    /// Messages each sender sends.
    pub messages: usize,
    /// Messages per second, per sender.
    pub rate: f64,
    /// How long to wait after the last send for stragglers.
    pub drain: Duration,
}

impl Default for Workload {
    /// 50 users × 20 tabs = 1,000 sockets; every user sends 20 messages at 4/s: 200 messages
    /// and 200,000 deliveries per second.
    fn default() -> Self {
        Workload {
            users: 50,
            tabs: 20,
            senders: 50,
            messages: 20,
            rate: 4.0,
            drain: Duration::from_secs(10),
        }
    }
}

impl Workload {
    /// Every socket of every user.
    pub fn sockets(&self) -> usize {
        self.users * self.tabs
    }

    /// Messages sent in all.
    pub fn total_messages(&self) -> usize {
        self.senders * self.messages
    }

    /// Every socket should receive every message, its own included.
    pub fn expected_deliveries(&self) -> usize {
        self.sockets() * self.total_messages()
    }

    /// Time between two messages of one sender.
    fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate)
    }

    /// When sender `sender` sends its message `number`, counted from the start of phase 3.
    pub(crate) fn send_offset(&self, sender: usize, number: usize) -> Duration {
        let stagger = sender as f64 / self.senders as f64;
        self.period().mul_f64(number as f64 + stagger)
    }

    /// Checks the numbers make a run.
    pub fn validate(&self) -> Result<(), String> {
        if self.users == 0 || self.tabs == 0 || self.senders == 0 || self.messages == 0 {
            return Err("users, tabs, senders and messages must be at least 1".into());
        }
        if self.senders > self.users {
            return Err(format!(
                "senders ({}) cannot be more than users ({})",
                self.senders, self.users
            ));
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(format!("rate must be a positive number, got {}", self.rate));
        }
        Ok(())
    }
}

/// A server to load: its nodes (one, or several behind Redis), whether sockets need an account,
/// and the processes whose memory and CPU to measure (none when it runs in this process).
#[derive(Debug, Clone)]
pub struct Target {
    /// A name for the report: `floor`, `step05`...
    pub name: String,
    /// Socket `i` of user `u` connects to node `(u + i) % nodes.len()`, so sockets and
    /// senders alternate between nodes.
    pub nodes: Vec<SocketAddr>,
    /// Register accounts and connect with their session cookies (step 5), or not (the floor).
    pub login: bool,
    /// The server's processes. Empty: no memory or CPU figures.
    pub pids: Vec<u32>,
}

/// Why a run could not even start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The workload's numbers do not make a run.
    #[error("{0}")]
    Workload(String),
    /// A server could not be stopped or started again (the restart scenario).
    #[error("the server: {0}")]
    Server(String),
    /// Registering an account failed.
    #[error("registering {username}: {reason}")]
    Register {
        /// The account.
        username: String,
        /// What went wrong.
        reason: String,
    },
}

/// What one run measured, per target: one row of the table, one JSON line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The target's name.
    pub target: String,
    /// Sockets opened (`users × tabs`).
    pub sockets: usize,
    /// Sockets that never connected.
    pub connect_failures: usize,
    /// Successful connects per second, in phase 2.
    pub connects_per_sec: f64,
    /// Server CPU time (user + system) over phase 2, per connect, in ms: what a connect costs
    /// the server, much less sensitive to a busy machine than the rate.
    pub connect_cpu_ms: Option<f64>,
    /// Messages sent, and how many the server acknowledged with `ok` or refused.
    pub messages_sent: usize,
    /// Acknowledged with `{"ok":true}`.
    pub messages_acked: usize,
    /// Acknowledged with `{"error":...}`.
    pub messages_refused: usize,
    /// `sockets × messages_sent`.
    pub expected_deliveries: usize,
    /// Received on a socket's first connection.
    pub delivered_live: usize,
    /// Received in all, after reconnecting and catching up (each message counted once).
    pub delivered_total: usize,
    /// `delivered_live / expected_deliveries`, in %.
    pub delivered_live_pct: f64,
    /// `delivered_total / expected_deliveries`, in %.
    pub delivered_total_pct: f64,
    /// Messages a socket got more than once.
    pub duplicates: usize,
    /// Messages whose id was lower than one the socket had already seen.
    pub out_of_order: usize,
    /// Latency from send to receipt over every delivery, in ms.
    pub latency_ms_p50: f64,
    /// 90th percentile.
    pub latency_ms_p90: f64,
    /// 99th percentile.
    pub latency_ms_p99: f64,
    /// The slowest.
    pub latency_ms_max: f64,
    /// Times the server closed a socket during the run (each was reopened).
    pub disconnects: usize,
    /// Growth of the server's resident memory while the sockets connected, per socket, KiB.
    pub rss_kib_per_socket: Option<f64>,
    /// Server CPU time (user + system) over sending and draining, per million deliveries.
    pub cpu_secs_per_million: Option<f64>,
    /// The same for this process, the load generator (with an in-process server, both): if it
    /// nears the number of cores × the run's seconds per million, the client is the bottleneck.
    pub loadgen_cpu_secs_per_million: Option<f64>,
    /// Seconds from the first send to the end of the drain.
    pub messaging_secs: f64,
    /// Milliseconds from starting the server process to its first accepted socket (with a
    /// login, one account registered first); set by the caller, which started the process.
    pub cold_start_ms: Option<f64>,
    /// The server's resident memory after that first socket closed, before the workload,
    /// in MiB; set by the caller.
    pub idle_rss_mib: Option<f64>,
}

/// The phase of the run, as the socket tasks see it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Connecting,
    /// Sending, counted from this instant.
    Sending(Instant),
    Stop,
}

/// What every socket task shares. (Not the phase: each task has its own channel for that, so
/// that 10,000 tasks waiting for it do not queue on one lock.)
#[derive(Debug)]
struct Shared {
    workload: Workload,
    /// The clock of the message texts' time stamps.
    epoch: Instant,
    /// Sockets that have received every message.
    complete: AtomicUsize,
    all_complete: Notify,
    connects: Semaphore,
}

/// Runs `workload` against `target` and measures it.
pub async fn run(workload: &Workload, target: &Target) -> Result<Report, RunError> {
    workload.validate().map_err(RunError::Workload)?;
    if target.nodes.is_empty() {
        return Err(RunError::Workload("the target has no node".into()));
    }
    let cookies = if target.login {
        register_users(target.nodes[0], workload.users).await?
    } else {
        vec![None; workload.users]
    };
    let pids = &target.pids;
    let measured = |figure: Option<f64>| figure.filter(|_| !pids.is_empty());
    let rss_before = procfs::rss_kib(pids);
    let connect_cpu_before = procfs::cpu_seconds(pids);

    let shared = Arc::new(Shared {
        workload: workload.clone(),
        epoch: Instant::now(),
        complete: AtomicUsize::new(0),
        all_complete: Notify::new(),
        connects: Semaphore::new(CONNECTS_IN_FLIGHT),
    });

    // Phase 2: connect.
    let (connected, mut connect_results) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(workload.sockets());
    let mut phases = Vec::with_capacity(workload.sockets());
    for (user, cookie) in cookies.iter().enumerate() {
        for tab in 0..workload.tabs {
            let (set_phase, phase) = watch::channel(Phase::Connecting);
            phases.push(set_phase);
            let plan = SocketPlan {
                node: target.nodes[(user + tab) % target.nodes.len()],
                cookie: cookie.clone(),
                sender: (tab == 0 && user < workload.senders).then_some(user),
                phase,
            };
            tasks.push(tokio::spawn(run_socket(
                plan,
                shared.clone(),
                connected.clone(),
            )));
        }
    }
    let mut connect_failures = 0;
    for _ in 0..workload.sockets() {
        if let Some(Err(error)) = connect_results.recv().await {
            if connect_failures == 0 {
                eprintln!("{}: a socket could not connect: {error}", target.name);
            }
            connect_failures += 1;
        }
    }
    let connect_secs = shared.epoch.elapsed().as_secs_f64();
    let connect_cpu = connect_cpu_before
        .zip(procfs::cpu_seconds(pids))
        .map(|(before, after)| (after - before) * 1000.0 / workload.sockets().max(1) as f64);
    tokio::time::sleep(SETTLE).await;
    let rss_connected = procfs::rss_kib(pids);

    // Phases 3 and 4: send, then drain.
    let cpu_before = procfs::cpu_seconds(pids);
    let own_cpu_before = procfs::cpu_seconds(&[std::process::id()]);
    let start = Instant::now() + Duration::from_millis(100);
    set_phase(&phases, Phase::Sending(start));
    let last_send = start + workload.send_offset(workload.senders, workload.messages - 1);
    let deadline = last_send + workload.drain;
    let live_sockets = workload.sockets() - connect_failures;
    while shared.complete.load(Ordering::Acquire) < live_sockets {
        let wake = shared.all_complete.notified();
        if tokio::time::timeout_at(deadline.into(), wake)
            .await
            .is_err()
        {
            break;
        }
    }
    let messaging_secs = start.elapsed().as_secs_f64();
    let cpu_after = procfs::cpu_seconds(pids);
    let own_cpu_after = procfs::cpu_seconds(&[std::process::id()]);
    // A server may acknowledge a message just after delivering it (step05 broadcasts, then
    // acknowledges): give the last acknowledgements a moment before counting them.
    tokio::time::sleep(Duration::from_millis(250)).await;
    set_phase(&phases, Phase::Stop);

    let mut totals = SocketStats::default();
    for task in tasks {
        if let Ok(stats) = task.await {
            totals.add(stats);
        }
    }
    let messages_sent = totals.sent;
    let expected = workload.sockets() * messages_sent;
    let pct = |count: usize| 100.0 * count as f64 / expected.max(1) as f64;
    let delivered = totals.live + totals.caught_up;
    totals.latencies_us.sort_unstable();
    let latency_ms = |fraction: f64| percentile(&totals.latencies_us, fraction) / 1000.0;
    Ok(Report {
        target: target.name.clone(),
        sockets: workload.sockets(),
        connect_failures,
        connects_per_sec: (workload.sockets() - connect_failures) as f64 / connect_secs,
        connect_cpu_ms: measured(connect_cpu),
        messages_sent,
        messages_acked: totals.acked,
        messages_refused: totals.refused,
        expected_deliveries: expected,
        delivered_live: totals.live,
        delivered_total: delivered,
        delivered_live_pct: pct(totals.live),
        delivered_total_pct: pct(delivered),
        duplicates: totals.duplicates,
        out_of_order: totals.out_of_order,
        latency_ms_p50: latency_ms(0.50),
        latency_ms_p90: latency_ms(0.90),
        latency_ms_p99: latency_ms(0.99),
        latency_ms_max: latency_ms(1.0),
        disconnects: totals.disconnects,
        rss_kib_per_socket: measured(rss_before.zip(rss_connected).map(|(before, after)| {
            after.saturating_sub(before) as f64 / workload.sockets().max(1) as f64
        })),
        cpu_secs_per_million: measured(
            cpu_before
                .zip(cpu_after)
                .map(|(before, after)| (after - before) / (delivered.max(1) as f64 / 1e6)),
        ),
        loadgen_cpu_secs_per_million: own_cpu_before
            .zip(own_cpu_after)
            .map(|(before, after)| (after - before) / (delivered.max(1) as f64 / 1e6)),
        messaging_secs,
        cold_start_ms: None,
        idle_rss_mib: None,
    })
}

/// Opens one socket to `node`, registering an account first if the target has logins, and
/// closes it: the end of a cold start (see [`Report::cold_start_ms`]).
pub async fn first_socket(node: SocketAddr, login: bool) -> Result<(), RunError> {
    let cookie = if login {
        let http = reqwest::Client::new();
        let url = format!("http://{node}/register");
        Some(register(&http, &url, "coldstart".to_owned()).await?)
    } else {
        None
    };
    let connection = Connection::connect(node, cookie.as_deref(), None)
        .await
        .map_err(|error| RunError::Register {
            username: "coldstart".to_owned(),
            reason: format!("its socket: {error}"),
        })?;
    connection.close().await;
    Ok(())
}

/// Tells every socket task the run's new phase.
fn set_phase(phases: &[watch::Sender<Phase>], phase: Phase) {
    for socket in phases {
        socket.send(phase).ok();
    }
}

/// The value below which `fraction` of the sorted `values` lie (0 if there are none).
pub(crate) fn percentile(sorted: &[u32], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * fraction) as usize).min(sorted.len() - 1);
    f64::from(sorted[index])
}

/// Registers `bench0`, `bench1`... and returns each one's session cookie, a few at a time
/// (the server hashes every password, which is slow on purpose).
pub(crate) async fn register_users(
    node: SocketAddr,
    users: usize,
) -> Result<Vec<Option<String>>, RunError> {
    let http = reqwest::Client::new();
    let url = format!("http://{node}/register");
    futures_util::stream::iter(0..users)
        .map(|user| register(&http, &url, format!("bench{user}")))
        .buffered(2) // the server hashes one password per core at a time (step 3)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|cookie| cookie.map(Some))
        .collect()
}

async fn register(http: &reqwest::Client, url: &str, username: String) -> Result<String, RunError> {
    let failed = |reason: String| RunError::Register {
        username: username.clone(),
        reason,
    };
    let body = serde_json::json!({ "username": username, "password": PASSWORD });
    let response = http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|error| failed(error.to_string()))?;
    if response.status() != reqwest::StatusCode::CREATED {
        return Err(failed(format!("status {}", response.status())));
    }
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .ok_or_else(|| failed("no session cookie".into()))?;
    Ok(cookie.to_owned())
}

/// Which node a socket connects to, as whom, whether it sends (as sender number `n`), and
/// where it hears of the run's phases.
#[derive(Debug)]
struct SocketPlan {
    node: SocketAddr,
    cookie: Option<String>,
    sender: Option<usize>,
    phase: watch::Receiver<Phase>,
}

/// What one socket counted; added up over all sockets for the report.
#[derive(Debug, Default)]
struct SocketStats {
    sent: usize,
    acked: usize,
    refused: usize,
    live: usize,
    caught_up: usize,
    duplicates: usize,
    out_of_order: usize,
    disconnects: usize,
    latencies_us: Vec<u32>,
}

impl SocketStats {
    fn add(&mut self, other: SocketStats) {
        self.sent += other.sent;
        self.acked += other.acked;
        self.refused += other.refused;
        self.live += other.live;
        self.caught_up += other.caught_up;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.disconnects += other.disconnects;
        self.latencies_us.extend(other.latencies_us);
    }
}

/// One socket's view of the messages: which it has, the highest id, whether it reconnected.
#[derive(Debug)]
struct Inbox {
    /// One bit per message, indexed `sender × messages + number`.
    seen: Vec<u64>,
    last_id: Option<i64>,
    reconnected: bool,
    stats: SocketStats,
}

impl Inbox {
    fn new(total_messages: usize) -> Self {
        Inbox {
            seen: vec![0; total_messages.div_ceil(64)],
            last_id: None,
            reconnected: false,
            stats: SocketStats {
                latencies_us: Vec::with_capacity(total_messages),
                ..SocketStats::default()
            },
        }
    }

    /// Counts a `chat message` with `id` and `text`, received `now_us` after the epoch.
    /// Returns whether it was new. Texts not sent by this run are ignored.
    fn receive(&mut self, workload: &Workload, id: i64, text: &str, now_us: u64) -> bool {
        let Some((index, sent_us)) = parse_text(workload, text) else {
            return false;
        };
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        if self.seen[word] & bit != 0 {
            self.stats.duplicates += 1;
            return false;
        }
        self.seen[word] |= bit;
        match self.last_id {
            Some(last) if id < last => self.stats.out_of_order += 1,
            _ => self.last_id = Some(id),
        }
        if self.reconnected {
            self.stats.caught_up += 1;
        } else {
            self.stats.live += 1;
        }
        let latency = now_us.saturating_sub(sent_us);
        self.stats
            .latencies_us
            .push(u32::try_from(latency).unwrap_or(u32::MAX));
        true
    }

    fn has_everything(&self, workload: &Workload) -> bool {
        self.stats.live + self.stats.caught_up == workload.total_messages()
    }
}

/// `"<sender> <number> <sent µs>"` into (the message's index, sent µs), if it is one of ours.
pub(crate) fn parse_text(workload: &Workload, text: &str) -> Option<(usize, u64)> {
    let mut parts = text.split(' ');
    let sender: usize = parts.next()?.parse().ok()?;
    let number: usize = parts.next()?.parse().ok()?;
    let sent_us = parts.next()?.parse().ok()?;
    (sender < workload.senders && number < workload.messages)
        .then_some((sender * workload.messages + number, sent_us))
}

/// One socket, from connect to the end of the run: receives, sends if it is a sender's first
/// tab, and reconnects (asking to catch up) if the server drops it.
async fn run_socket(
    plan: SocketPlan,
    shared: Arc<Shared>,
    connected: mpsc::UnboundedSender<Result<(), ClientError>>,
) -> SocketStats {
    let workload = &shared.workload;
    let mut inbox = Inbox::new(workload.total_messages());
    let first = {
        let _permit = shared.connects.acquire().await;
        tokio::time::timeout(CONNECT_TIMEOUT, connect(&plan, None))
            .await
            .unwrap_or(Err(ClientError::Closed))
    };
    let mut connection = match first {
        Ok(connection) => {
            connected.send(Ok(())).ok();
            connection
        }
        Err(error) => {
            connected.send(Err(error)).ok();
            return inbox.stats;
        }
    };
    drop(connected);

    let mut phase = plan.phase.clone();
    // The next message to send and when: nothing until the sending starts, and only for the
    // first tab of a sender. One timer, moved along, rather than a new one per frame.
    let mut next_number = 0;
    let mut next_send: Option<Instant> = None;
    let send_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(send_timer);
    let mut complete = false;
    loop {
        // `biased`: poll in this order, so a socket busy receiving never polls the phase.
        let outcome = tokio::select! {
            biased;
            () = &mut send_timer, if next_send.is_some() => {
                let sender = plan.sender.unwrap_or_default();
                let text = format!("{sender} {next_number} {}", shared.epoch.elapsed().as_micros());
                next_number += 1;
                inbox.stats.sent += 1;
                next_send = schedule(workload, &phase, plan.sender, next_number);
                if let Some(at) = next_send {
                    send_timer.as_mut().reset(at.into());
                }
                // The ack id only has to be unique on this socket.
                connection.send_chat_message(next_number as u64, ROOM, &text).await
            }
            packet = connection.next() => match packet {
                Ok(packet) => {
                    handle(&mut inbox, workload, &shared.epoch, packet);
                    Ok(())
                }
                Err(error) => Err(error),
            },
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow_and_update() == Phase::Stop {
                    break;
                }
                next_send = schedule(workload, &phase, plan.sender, next_number);
                if let Some(at) = next_send {
                    send_timer.as_mut().reset(at.into());
                }
                Ok(())
            }
        };
        if outcome.is_err() {
            inbox.stats.disconnects += 1;
            inbox.reconnected = true;
            match reconnect(&plan, &mut phase, inbox.last_id).await {
                Some(again) => connection = again,
                None => break,
            }
        }
        if !complete && inbox.has_everything(workload) {
            complete = true;
            shared.complete.fetch_add(1, Ordering::AcqRel);
            shared.all_complete.notify_one();
        }
    }
    connection.close().await;
    inbox.stats
}

/// When to send message `number`, if this socket sends, the sending has started and there is
/// one left to send.
fn schedule(
    workload: &Workload,
    phase: &watch::Receiver<Phase>,
    sender: Option<usize>,
    number: usize,
) -> Option<Instant> {
    match (*phase.borrow(), sender) {
        (Phase::Sending(start), Some(sender)) if number < workload.messages => {
            Some(start + workload.send_offset(sender, number))
        }
        _ => None,
    }
}

async fn connect(plan: &SocketPlan, server_offset: Option<i64>) -> Result<Connection, ClientError> {
    Connection::connect(plan.node, plan.cookie.as_deref(), server_offset).await
}

/// Reconnects, asking for everything after `last_id`, until it works or the run stops.
async fn reconnect(
    plan: &SocketPlan,
    phase: &mut watch::Receiver<Phase>,
    last_id: Option<i64>,
) -> Option<Connection> {
    let mut backoff = Duration::from_millis(50);
    loop {
        if *phase.borrow() == Phase::Stop {
            return None;
        }
        if let Ok(Ok(connection)) =
            tokio::time::timeout(CONNECT_TIMEOUT, connect(plan, Some(last_id.unwrap_or(0)))).await
        {
            return Some(connection);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Counts a packet: a `chat message` in the inbox, an ack as accepted or refused.
fn handle(inbox: &mut Inbox, workload: &Workload, epoch: &Instant, packet: Packet) {
    match packet {
        Packet::Event(frame) => {
            if let Some(message) = chat_message(&frame) {
                let now_us = epoch.elapsed().as_micros() as u64;
                inbox.receive(workload, message.id, message.text, now_us);
            }
        }
        Packet::Ack { ok: true, .. } => inbox.stats.acked += 1,
        Packet::Ack { ok: false, .. } => inbox.stats.refused += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Workload {
        Workload {
            users: 3,
            tabs: 2,
            senders: 2,
            messages: 4,
            rate: 10.0,
            drain: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_default_workload_is_the_issues() {
        let workload = Workload::default();
        assert_eq!(workload.sockets(), 1000);
        assert_eq!(workload.total_messages(), 1000);
        // 200 messages/s to 1000 sockets.
        let per_second = workload.senders as f64 * workload.rate;
        assert_eq!(per_second * workload.sockets() as f64, 200_000.0);
    }

    #[test]
    fn senders_start_staggered_over_one_period() {
        let workload = small();
        assert_eq!(workload.send_offset(0, 0), Duration::ZERO);
        assert_eq!(workload.send_offset(1, 0), Duration::from_millis(50));
        assert_eq!(workload.send_offset(1, 2), Duration::from_millis(250));
    }

    #[test]
    fn the_inbox_counts_duplicates_gaps_and_catch_up() {
        let workload = small();
        let mut inbox = Inbox::new(workload.total_messages());
        assert!(inbox.receive(&workload, 1, "0 0 100", 1100));
        assert!(!inbox.receive(&workload, 1, "0 0 100", 1200), "a duplicate");
        assert!(inbox.receive(&workload, 3, "1 1 100", 2100));
        assert!(inbox.receive(&workload, 2, "0 1 100", 2100), "late but new");
        inbox.reconnected = true;
        assert!(inbox.receive(&workload, 4, "1 0 100", 5100));
        assert!(!inbox.receive(&workload, 5, "hello", 5100), "not ours");
        assert!(!inbox.receive(&workload, 5, "2 0 100", 5100), "no sender 2");
        let stats = &inbox.stats;
        assert_eq!((stats.live, stats.caught_up), (3, 1));
        assert_eq!((stats.duplicates, stats.out_of_order), (1, 1));
        assert_eq!(stats.latencies_us, [1000, 2000, 2000, 5000]);
        assert!(!inbox.has_everything(&workload));
    }

    #[test]
    fn percentiles_pick_from_the_sorted_values() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.5), 51.0);
        assert_eq!(percentile(&values, 0.99), 100.0);
        assert_eq!(percentile(&values, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
