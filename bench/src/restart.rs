//! The restart scenario: a reconnect storm.
//!
//! Every socket is connected and in `general`, the senders are sending, and the server is
//! stopped (`SIGTERM`, or `SIGKILL`) and started again on the same port, over the same database
//! with the same session secret, so every session survives. Every socket then does what the
//! page does:
//!
//! - it reconnects with socket.io-client's back-off ([`Backoff::SOCKET_IO_CLIENT`]), its
//!   session cookie, and `auth: {serverOffset}`, the newest id it saw; the server answers with
//!   `history`, then replays what came after that id as `chat message`s;
//! - a sender sends one message at a time with a `clientOffset`, and sends it again, with the
//!   same `clientOffset`, when its acknowledgement does not come within the ack timeout or the
//!   connection drops, until it is acknowledged (the page's `retries`, without the limit).
//!
//! Measured from the instant of the stop, for every socket: when it is *back* (its new
//! connection has had its `history`, so it is in `general` again) and when it is *caught up*
//! (back, and holding every message acknowledged before the stop). At the end: every message
//! acknowledged, at any time, that some socket never got (must be 0), and every message a
//! socket got twice (must be 0). The floor keeps no history: its sockets are only timed back,
//! the baseline of a plain reconnection.
//!
//! As in the normal run, at most [`CONNECTS_IN_FLIGHT`] handshakes are in flight at once: the
//! back-off spreads the storm, this bound keeps the listen backlog from overflowing.
//!
//! A cluster's run is the node-kill scenario: the sockets are spread over the nodes, and one
//! node is stopped and *not* started again ([`Restart::stays_down`]). Its sockets reconnect to
//! the next node, as a load balancer that checks its nodes' health would send them; the
//! others never left, and count as back at the instant of the stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use crate::client::{ClientError, Connection, Packet, chat_message, history};
use crate::servers::StopSignal;
use crate::workload::{
    CONNECT_TIMEOUT, CONNECTS_IN_FLIGHT, ROOM, RunError, Target, Workload, parse_text,
    register_users,
};

/// A server the scenario can stop and start again on the same address.
pub trait Restart {
    /// Stops the server with `signal`; done when it has ended.
    fn stop(&mut self, signal: StopSignal) -> impl Future<Output = Result<(), String>> + Send;
    /// Starts it again, same address, same database, same secret; done when it accepts.
    fn start(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    /// The node that `stop` stops for good (a cluster's), if any: `start` leaves it down.
    fn stays_down(&self) -> Option<SocketAddr> {
        None
    }
}

/// A reconnection back-off: the first wait, doubled at each failed attempt up to `max`, each
/// moved at random by up to `jitter` of itself.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Backoff {
    /// The wait before the first attempt.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
    /// 0.5: each wait is between half and one and a half times its value.
    pub jitter: f64,
}

impl Backoff {
    /// socket.io-client's defaults (`reconnectionDelay`, `reconnectionDelayMax`,
    /// `randomizationFactor`), which the page keeps.
    pub const SOCKET_IO_CLIENT: Backoff = Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(5),
        jitter: 0.5,
    };

    /// The wait before attempt `attempt` (0 for the first), given a `random` number in
    /// [0, 1): socket.io-client's formula, which adds or takes away the deviation depending on
    /// the random number's first decimal.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let base = self.first.as_secs_f64() * 2f64.powi(attempt.min(30) as i32);
        let deviation = random * self.jitter * base;
        let wait = if ((random * 10.0) as u64).is_multiple_of(2) {
            base - deviation
        } else {
            base + deviation
        };
        Duration::from_secs_f64(wait.clamp(0.0, self.max.as_secs_f64()))
    }
}

/// How the restart goes.
#[derive(Debug, Clone, Serialize)]
pub struct RestartPlan {
    /// How the server is stopped.
    pub signal: StopSignal,
    /// How long after the first send the server is stopped.
    pub stop_after: Duration,
    /// How the sockets wait between two reconnection attempts.
    pub backoff: Backoff,
    /// A message whose acknowledgement has not come after this long is sent again (the page's
    /// `ackTimeout`).
    pub ack_timeout: Duration,
    /// What a socket that has had its `history` but no message yet sends: `true`,
    /// `serverOffset: 0` ("I have everything up to nothing"), as the page does; `false`, no
    /// `serverOffset`, as the page did before (the server then replays nothing, only the
    /// newest 50 in `history`: at 10,000 sockets, messages acknowledged but not yet received
    /// were lost).
    pub zero_offset: bool,
    /// How long, once the server listens again (or after the last scheduled send, if later),
    /// every message may take to be acknowledged and every socket to be back and caught up.
    pub patience: Duration,
}

impl RestartPlan {
    /// The page's back-off and ack timeout; stopped 3 s into the sending; 60 s of patience.
    pub fn new(signal: StopSignal) -> Self {
        RestartPlan {
            signal,
            stop_after: Duration::from_secs(3),
            backoff: Backoff::SOCKET_IO_CLIENT,
            ack_timeout: Duration::from_secs(5),
            zero_offset: true,
            patience: Duration::from_secs(60),
        }
    }
}

/// What one restart measured: one row of the restart table, one JSON line. Times are counted
/// from the instant the stop began, in ms.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestartReport {
    /// The target's name.
    pub target: String,
    /// `term` or `kill`.
    pub signal: String,
    /// Sockets opened (`users × tabs`).
    pub sockets: usize,
    /// Sockets that never connected in the first place.
    pub connect_failures: usize,
    /// Connects per second before the restart, as in the normal run.
    pub connects_per_sec: f64,
    /// Whether the target replays what a socket missed (false for the floor: its figures on
    /// messages are not reported, and "caught up" is "back").
    pub replays: bool,
    /// Until the stopped server had ended.
    pub stopped_ms: f64,
    /// Until the new server accepted connections.
    pub listening_ms: f64,
    /// Sockets back after the stop.
    pub sockets_back: usize,
    /// Until 99 % of the sockets were back; `None` if they never were.
    pub back_ms_p99: Option<f64>,
    /// Until every socket was back.
    pub back_ms_all: Option<f64>,
    /// Until 99 % were back and caught up.
    pub caught_up_ms_p99: Option<f64>,
    /// Until every socket was back and caught up.
    pub caught_up_ms_all: Option<f64>,
    /// Reconnections per second, from the first to the last after the stop.
    pub reconnects_per_sec: f64,
    /// Messages sent (each once, however many times it was sent again).
    pub messages_sent: usize,
    /// Sends of a message already sent (its acknowledgement did not come).
    pub resends: usize,
    /// Messages acknowledged with `{"ok":true}`.
    pub messages_acked: usize,
    /// Of those, acknowledged before the stop: what every socket must hold to be caught up.
    pub acked_before_stop: usize,
    /// Messages refused (`{"error":...}`).
    pub messages_refused: usize,
    /// (socket, message) pairs: acknowledged, not delivered to that socket by the end of the
    /// run. Must be 0. (A run cut short by the patience counts what was late as well.)
    pub acked_not_delivered: usize,
    /// Sockets missing at least one of those: a few sockets missing much (left out of the
    /// room), or many missing little (a hole in the catch-up)?
    pub sockets_missing: usize,
    /// Messages a socket got more than once (also: stored twice under two ids). Must be 0.
    pub duplicates: usize,
    /// `chat message`s with an id lower than one the socket had already seen.
    pub out_of_order: usize,
    /// Times a socket lost its connection (once each at the restart, at least).
    pub disconnects: usize,
    /// Reconnection attempts that failed (refused while the server was down, timed out, or
    /// turned away), each followed by a longer back-off.
    pub failed_attempts: usize,
    /// Seconds from the first send to the end of the run.
    pub run_secs: f64,
    /// Whether the run ended on the patience rather than on everything being in.
    pub timed_out: bool,
}

/// The phase of the run, as the socket tasks see it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Connecting,
    /// Sending, counted from this instant; through the restart.
    Sending(Instant),
    /// Every message is acknowledged or refused: a socket that is back and holds every
    /// acknowledged message says so.
    Checking,
    Stop,
}

/// What every socket task shares.
#[derive(Debug)]
struct Shared {
    workload: Workload,
    plan: RestartPlan,
    /// Whether the target replays (see [`RestartReport::replays`]).
    replays: bool,
    /// The clock of every time below.
    epoch: Instant,
    /// Per message: when its acknowledgement came, µs since `epoch`, plus 1 (0: not yet).
    acked_at: Vec<AtomicU64>,
    /// When the stop began, µs since `epoch` (`u64::MAX` before).
    stopped_at: AtomicU64,
    /// The node stopped for good ([`Restart::stays_down`]).
    gone: Option<SocketAddr>,
    /// Senders with nothing left to send.
    senders_done: AtomicUsize,
    /// Sockets back and holding every acknowledged message (in [`Phase::Checking`]).
    complete: AtomicUsize,
    progress: Notify,
    connects: Semaphore,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn acked_before(&self, index: usize, instant_us: u64) -> bool {
        match self.acked_at[index].load(Ordering::Acquire) {
            0 => false,
            at => at - 1 < instant_us,
        }
    }

    fn is_acked(&self, index: usize) -> bool {
        self.acked_at[index].load(Ordering::Acquire) != 0
    }

    fn signal(&self, counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::AcqRel);
        self.progress.notify_one();
    }
}

/// Runs `workload` against `target`, restarting `server` with `plan` in the middle of the
/// sending, and measures the storm.
pub async fn run_restart<S: Restart>(
    workload: &Workload,
    plan: &RestartPlan,
    target: &Target,
    server: &mut S,
) -> Result<RestartReport, RunError> {
    workload.validate().map_err(RunError::Workload)?;
    let Some(first_node) = target.nodes.first() else {
        return Err(RunError::Workload("no server to restart".into()));
    };
    let cookies = if target.login {
        register_users(*first_node, workload.users).await?
    } else {
        vec![None; workload.users]
    };
    let shared = Arc::new(Shared {
        workload: workload.clone(),
        plan: plan.clone(),
        replays: target.login,
        epoch: Instant::now(),
        acked_at: (0..workload.total_messages())
            .map(|_| AtomicU64::new(0))
            .collect(),
        stopped_at: AtomicU64::new(u64::MAX),
        gone: server.stays_down(),
        senders_done: AtomicUsize::new(0),
        complete: AtomicUsize::new(0),
        progress: Notify::new(),
        connects: Semaphore::new(CONNECTS_IN_FLIGHT),
    });

    // Connect, as the normal run does.
    let (connected, mut connect_results) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(workload.sockets());
    let mut phases = Vec::with_capacity(workload.sockets());
    for (user, cookie) in cookies.iter().enumerate() {
        for tab in 0..workload.tabs {
            let (set_phase, phase) = watch::channel(Phase::Connecting);
            phases.push(set_phase);
            // Spread over the nodes; on reconnection, the next one that is up.
            let mut nodes = target.nodes.clone();
            let home = tasks.len() % nodes.len();
            nodes.rotate_left(home);
            let plan = SocketPlan {
                nodes,
                cookie: cookie.clone(),
                sender: (tab == 0 && user < workload.senders).then_some(user),
                phase,
            };
            let task = run_socket(plan, shared.clone(), connected.clone());
            tasks.push(tokio::spawn(task));
        }
    }
    drop(connected);
    let mut connect_failures = 0;
    while let Some(result) = connect_results.recv().await {
        if let Err(error) = result {
            if connect_failures == 0 {
                eprintln!("{}: a socket could not connect: {error}", target.name);
            }
            connect_failures += 1;
        }
    }
    let connect_secs = shared.epoch.elapsed().as_secs_f64();
    let live_sockets = workload.sockets() - connect_failures;

    // Send; stop the server in the middle; start it again.
    let start = Instant::now() + Duration::from_millis(100);
    set_phase(&phases, Phase::Sending(start));
    tokio::time::sleep_until((start + plan.stop_after).into()).await;
    let stop = Instant::now();
    let stopped_us = (stop - shared.epoch).as_micros() as u64;
    shared.stopped_at.store(stopped_us, Ordering::Release);
    server.stop(plan.signal).await.map_err(RunError::Server)?;
    let stopped_ms = stop.elapsed().as_secs_f64() * 1000.0;
    server.start().await.map_err(RunError::Server)?;
    let listening = Instant::now();

    // Wait for every acknowledgement, then for every socket to be back and caught up.
    let last_send = start + workload.send_offset(workload.senders, workload.messages - 1);
    let deadline = listening.max(last_send) + plan.patience;
    let timed_out = !wait_for(&shared, &shared.senders_done, workload.senders, deadline).await;
    set_phase(&phases, Phase::Checking);
    let timed_out = timed_out | !wait_for(&shared, &shared.complete, live_sockets, deadline).await;
    if timed_out {
        eprintln!(
            "{}: not everything was acknowledged, back and caught up within {:?}",
            target.name, plan.patience
        );
    }
    // A duplicate can only come after what it duplicates: a moment to let it arrive.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let run_secs = start.elapsed().as_secs_f64();
    set_phase(&phases, Phase::Stop);

    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(outcome) = task.await {
            outcomes.push(outcome);
        }
    }
    let stopped_ms_at = stopped_us / 1000;
    let since_stop = |at: Option<u64>| at.map(|at| at.saturating_sub(stopped_ms_at));
    let back: Vec<_> = outcomes.iter().map(|o| since_stop(o.back_ms)).collect();
    let caught_up: Vec<_> = outcomes
        .iter()
        .map(|o| since_stop(o.caught_up_ms))
        .collect();
    let reconnects: Vec<u64> = outcomes.iter().filter_map(|o| o.connected_ms).collect();
    let sum = |field: fn(&Outcome) -> usize| outcomes.iter().map(field).sum::<usize>();
    Ok(RestartReport {
        target: target.name.clone(),
        signal: plan.signal.name().to_owned(),
        sockets: workload.sockets(),
        connect_failures,
        connects_per_sec: live_sockets as f64 / connect_secs,
        replays: shared.replays,
        stopped_ms,
        listening_ms: (listening - stop).as_secs_f64() * 1000.0,
        sockets_back: back.iter().flatten().count(),
        back_ms_p99: time_to(0.99, &back, live_sockets),
        back_ms_all: time_to(1.0, &back, live_sockets),
        caught_up_ms_p99: time_to(0.99, &caught_up, live_sockets),
        caught_up_ms_all: time_to(1.0, &caught_up, live_sockets),
        reconnects_per_sec: rate(&reconnects),
        messages_sent: sum(|o| o.sent),
        resends: sum(|o| o.resends),
        messages_acked: sum(|o| o.acked),
        acked_before_stop: (0..workload.total_messages())
            .filter(|index| shared.acked_before(*index, stopped_us))
            .count(),
        messages_refused: sum(|o| o.refused),
        acked_not_delivered: sum(|o| o.lost),
        sockets_missing: outcomes.iter().filter(|o| o.lost > 0).count(),
        duplicates: sum(|o| o.duplicates),
        out_of_order: sum(|o| o.out_of_order),
        disconnects: sum(|o| o.disconnects),
        failed_attempts: sum(|o| o.failed_attempts),
        run_secs,
        timed_out,
    })
}

/// Waits until `counter` reaches `target` or `deadline` passes; whether it did.
async fn wait_for(
    shared: &Shared,
    counter: &AtomicUsize,
    target: usize,
    deadline: Instant,
) -> bool {
    while counter.load(Ordering::Acquire) < target {
        let wake = shared.progress.notified();
        if tokio::time::timeout_at(deadline.into(), wake)
            .await
            .is_err()
        {
            return counter.load(Ordering::Acquire) >= target;
        }
    }
    true
}

fn set_phase(phases: &[watch::Sender<Phase>], phase: Phase) {
    for socket in phases {
        socket.send(phase).ok();
    }
}

/// The time by which `fraction` of `total` sockets had their time (ms), `None` for a socket
/// that never did: `None` if fewer than that many ever did.
fn time_to(fraction: f64, times: &[Option<u64>], total: usize) -> Option<f64> {
    let needed = ((total as f64 * fraction).ceil() as usize).max(1);
    let mut reached: Vec<u64> = times.iter().flatten().copied().collect();
    reached.sort_unstable();
    reached.get(needed - 1).map(|ms| *ms as f64)
}

/// Events per second from the first to the last of `times_ms`.
fn rate(times_ms: &[u64]) -> f64 {
    let (Some(first), Some(last)) = (times_ms.iter().min(), times_ms.iter().max()) else {
        return 0.0;
    };
    let span_secs = ((last - first) as f64 / 1000.0).max(0.001);
    times_ms.len() as f64 / span_secs
}

/// Which node a socket connects to, as whom, whether it sends, and where it hears of the
/// run's phases.
#[derive(Debug)]
struct SocketPlan {
    /// Its node first, then the others, in the order it would try them.
    nodes: Vec<SocketAddr>,
    cookie: Option<String>,
    sender: Option<usize>,
    phase: watch::Receiver<Phase>,
}

/// What one socket counted; added up over all sockets for the report. Times in ms since the
/// epoch.
#[derive(Debug, Default)]
struct Outcome {
    /// The last time a connection opened after the stop had its `history`.
    back_ms: Option<u64>,
    /// The last time a connection opened after the stop.
    connected_ms: Option<u64>,
    /// Back, and holding every message acknowledged before the stop; `None`: never.
    caught_up_ms: Option<u64>,
    lost: usize,
    duplicates: usize,
    out_of_order: usize,
    disconnects: usize,
    failed_attempts: usize,
    sent: usize,
    resends: usize,
    acked: usize,
    refused: usize,
}

/// One message as a socket holds it: its id, and when it came (ms since the epoch, plus 1;
/// 0: not held). Ids of a fresh database fit in 32 bits; 8 bytes a message keeps 10,000
/// sockets × 1,000 messages at 80 MB.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    id: u32,
    at_ms: u32,
}

/// One socket's view of the messages.
#[derive(Debug)]
struct Inbox {
    held: Vec<Held>,
    last_id: Option<i64>,
    /// When the current connection was opened, µs since the epoch.
    opened_us: u64,
    /// Whether its node is one that stays up (in a cluster's run): if it never lost its
    /// connection, it is back at the instant of the stop.
    survives: bool,
    outcome: Outcome,
}

impl Inbox {
    fn new(total_messages: usize) -> Self {
        Inbox {
            held: vec![Held::default(); total_messages],
            last_id: None,
            opened_us: 0,
            survives: false,
            outcome: Outcome::default(),
        }
    }

    /// Counts an event: a `chat message`, or a `history` (which, on a connection opened after
    /// the stop, means the socket is back).
    fn event(&mut self, shared: &Shared, frame: &str) {
        let now_ms = shared.epoch.elapsed().as_millis() as u64;
        if let Some(message) = chat_message(frame) {
            self.receive(shared, message.id, message.text, now_ms, false);
        } else if let Some(history) = history(frame) {
            for message in &history.messages {
                self.receive(shared, message.id, message.text, now_ms, true);
            }
            if self.opened_us >= shared.stopped_at.load(Ordering::Acquire) {
                self.outcome.back_ms = Some(now_ms);
            }
        }
    }

    /// A message with `id` and `text`. The history repeats messages the socket has (up to its
    /// `serverOffset`), as the page expects: the same id again there is no duplicate.
    fn receive(&mut self, shared: &Shared, id: i64, text: &str, now_ms: u64, in_history: bool) {
        let Some((index, _)) = parse_text(&shared.workload, text) else {
            return;
        };
        let id32 = u32::try_from(id).unwrap_or(u32::MAX);
        let slot = &mut self.held[index];
        if slot.at_ms != 0 {
            if !in_history || slot.id != id32 {
                self.outcome.duplicates += 1;
            }
            return;
        }
        *slot = Held {
            id: id32,
            at_ms: u32::try_from(now_ms + 1).unwrap_or(u32::MAX),
        };
        match self.last_id {
            Some(last) if id < last && !in_history => self.outcome.out_of_order += 1,
            Some(last) if id < last => {}
            _ => self.last_id = Some(id),
        }
    }

    /// Back after the stop, and (if the target replays) holding every acknowledged message.
    fn is_complete(&self, shared: &Shared) -> bool {
        self.back_ms(shared).is_some()
            && (!shared.replays
                || (0..self.held.len())
                    .all(|index| self.held[index].at_ms != 0 || !shared.is_acked(index)))
    }

    /// When the socket was back: its first `history` after the stop, or, on a node that
    /// stayed up, the stop itself if it never lost its connection.
    fn back_ms(&self, shared: &Shared) -> Option<u64> {
        let stopped_ms = shared.stopped_at.load(Ordering::Acquire) / 1000;
        let never_left = self.survives && self.outcome.disconnects == 0;
        self.outcome.back_ms.or(never_left.then_some(stopped_ms))
    }

    /// The socket's outcome, once every acknowledgement is in.
    fn finish(mut self, shared: &Shared) -> Outcome {
        let stopped_us = shared.stopped_at.load(Ordering::Acquire);
        self.outcome.back_ms = self.back_ms(shared);
        let mut caught_up = self.outcome.back_ms;
        for (index, held) in self.held.iter().enumerate() {
            if !shared.is_acked(index) {
                continue;
            }
            let required = shared.replays && shared.acked_before(index, stopped_us);
            if held.at_ms == 0 {
                self.outcome.lost += 1;
                if required {
                    caught_up = None;
                }
            } else if required {
                caught_up = caught_up.map(|at| at.max(u64::from(held.at_ms) - 1));
            }
        }
        self.outcome.caught_up_ms = caught_up;
        self.outcome
    }
}

/// A sender's messages: one in flight at a time, sent again until acknowledged.
#[derive(Debug)]
struct Outbox {
    sender: usize,
    /// When the sending started.
    start: Option<Instant>,
    /// The next message never sent yet.
    next: usize,
    in_flight: Option<InFlight>,
    next_ack_id: u64,
    done: bool,
}

#[derive(Debug)]
struct InFlight {
    number: usize,
    /// The ack id of its first send: the acks of its later sends have higher ones, and any of
    /// them acknowledges it.
    first_ack_id: u64,
    text: String,
    /// When to send it again if no acknowledgement came.
    resend_at: Instant,
}

impl Outbox {
    fn new(sender: usize) -> Self {
        Outbox {
            sender,
            start: None,
            next: 0,
            in_flight: None,
            next_ack_id: 1,
            done: false,
        }
    }

    /// When there is something to send: a message due, or one to send again.
    fn wake(&self, workload: &Workload) -> Option<Instant> {
        if let Some(in_flight) = &self.in_flight {
            return Some(in_flight.resend_at);
        }
        let start = self.start?;
        (self.next < workload.messages)
            .then(|| start + workload.send_offset(self.sender, self.next))
    }

    /// Sends what [`Outbox::wake`] said.
    async fn send(
        &mut self,
        connection: &mut Connection,
        shared: &Shared,
        outcome: &mut Outcome,
    ) -> Result<(), ClientError> {
        let ack_id = self.next_ack_id;
        self.next_ack_id += 1;
        let resend_at = Instant::now() + shared.plan.ack_timeout;
        let in_flight = match &mut self.in_flight {
            Some(in_flight) => {
                outcome.resends += 1;
                in_flight.resend_at = resend_at;
                in_flight
            }
            None => {
                outcome.sent += 1;
                let number = self.next;
                self.next += 1;
                let text = format!("{} {number} {}", self.sender, shared.now_us());
                self.in_flight.insert(InFlight {
                    number,
                    first_ack_id: ack_id,
                    text,
                    resend_at,
                })
            }
        };
        let client_offset = format!("{}-{}", self.sender, in_flight.number);
        connection
            .send_chat_message_with_offset(ack_id, ROOM, &in_flight.text, &client_offset)
            .await
    }

    /// The acknowledgement of our event `ack_id`.
    fn acknowledged(&mut self, ack_id: u64, ok: bool, shared: &Shared, outcome: &mut Outcome) {
        let Some(in_flight) = &self.in_flight else {
            return;
        };
        if ack_id < in_flight.first_ack_id {
            return; // a late answer to a message acknowledged already
        }
        let index = self.sender * shared.workload.messages + in_flight.number;
        if ok {
            outcome.acked += 1;
            let at = shared.now_us() + 1;
            shared.acked_at[index].store(at, Ordering::Release);
        } else {
            outcome.refused += 1; // the page gives up on it too
        }
        self.in_flight = None;
        self.finish_if_done(shared);
    }

    fn finish_if_done(&mut self, shared: &Shared) {
        let all_sent = self.next == shared.workload.messages && self.in_flight.is_none();
        if all_sent && !self.done {
            self.done = true;
            shared.signal(&shared.senders_done);
        }
    }

    /// On a new connection: what was in flight goes again at once.
    fn reconnected(&mut self) {
        if let Some(in_flight) = &mut self.in_flight {
            in_flight.resend_at = Instant::now();
        }
    }
}

/// One socket, from its first connect to the end of the run.
async fn run_socket(
    plan: SocketPlan,
    shared: Arc<Shared>,
    connected: mpsc::UnboundedSender<Result<(), ClientError>>,
) -> Outcome {
    let workload = &shared.workload;
    let mut inbox = Inbox::new(workload.total_messages());
    inbox.survives = Some(plan.nodes[0]) != shared.gone && shared.gone.is_some();
    let mut outbox = plan.sender.map(Outbox::new);
    let first = {
        let _permit = shared.connects.acquire().await;
        let connect = Connection::connect(plan.nodes[0], plan.cookie.as_deref(), None);
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
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
            if let Some(outbox) = &mut outbox {
                // It will send nothing: not waited for.
                outbox.next = workload.messages;
                outbox.finish_if_done(&shared);
            }
            return inbox.finish(&shared);
        }
    };
    drop(connected);

    let mut phase = plan.phase.clone();
    let send_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(send_timer);
    let mut complete = false;
    loop {
        let wake = outbox.as_ref().and_then(|outbox| outbox.wake(workload));
        if let Some(at) = wake {
            send_timer.as_mut().reset(at.into());
        }
        let outcome = tokio::select! {
            biased;
            () = &mut send_timer, if wake.is_some() => match &mut outbox {
                Some(outbox) => outbox.send(&mut connection, &shared, &mut inbox.outcome).await,
                None => Ok(()),
            },
            packet = connection.next() => match packet {
                Ok(Packet::Event(frame)) => {
                    inbox.event(&shared, &frame);
                    Ok(())
                }
                Ok(Packet::Ack { id, ok }) => {
                    if let Some(outbox) = &mut outbox {
                        outbox.acknowledged(id, ok, &shared, &mut inbox.outcome);
                    }
                    Ok(())
                }
                Err(error) => Err(error),
            },
            changed = phase.changed() => match changed {
                Ok(()) => Ok(()),
                Err(_) => break,
            },
        };
        if outcome.is_err() {
            inbox.outcome.disconnects += 1;
            let attempts = &mut inbox.outcome.failed_attempts;
            match reconnect(&plan, &mut phase, &shared, inbox.last_id, attempts).await {
                Some(again) => connection = again,
                None => break,
            }
            inbox.opened_us = shared.now_us();
            if inbox.opened_us >= shared.stopped_at.load(Ordering::Acquire) {
                inbox.outcome.connected_ms = Some(inbox.opened_us / 1000);
            }
            if let Some(outbox) = &mut outbox {
                outbox.reconnected();
            }
        }
        match *phase.borrow_and_update() {
            Phase::Stop => break,
            Phase::Sending(start) => {
                if let Some(outbox) = &mut outbox {
                    outbox.start = Some(start);
                }
            }
            Phase::Checking if !complete && inbox.is_complete(&shared) => {
                complete = true;
                shared.signal(&shared.complete);
            }
            Phase::Connecting | Phase::Checking => {}
        }
    }
    connection.close().await;
    inbox.finish(&shared)
}

/// Reconnects as the page does: after the back-off's wait, with the newest id seen as
/// `serverOffset` (see [`RestartPlan::zero_offset`] for a socket that saw none), until it
/// works or the run stops.
async fn reconnect(
    plan: &SocketPlan,
    phase: &mut watch::Receiver<Phase>,
    shared: &Shared,
    last_id: Option<i64>,
    failed_attempts: &mut usize,
) -> Option<Connection> {
    for attempt in 0.. {
        let wait = tokio::time::sleep(shared.plan.backoff.delay(attempt, rand::random()));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                changed = phase.changed() => {
                    if changed.is_err() || *phase.borrow() == Phase::Stop {
                        return None;
                    }
                }
            }
        }
        let _permit = shared.connects.acquire().await.ok()?;
        let offset = match shared.plan.zero_offset {
            true => Some(last_id.unwrap_or(0)),
            false => last_id,
        };
        let node = plan.nodes.iter().find(|node| Some(**node) != shared.gone);
        let connect = Connection::connect(*node?, plan.cookie.as_deref(), offset);
        if let Ok(Ok(connection)) = tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            return Some(connection);
        }
        *failed_attempts += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_is_socket_io_clients() {
        let delay_ms = |attempt, random| {
            let delay = Backoff::SOCKET_IO_CLIENT.delay(attempt, random);
            (delay.as_secs_f64() * 1000.0).round()
        };
        // A random number with an even first decimal takes the deviation away.
        assert_eq!(delay_ms(0, 0.0), 1000.0);
        assert_eq!(delay_ms(0, 0.45), 775.0);
        assert_eq!(delay_ms(0, 0.55), 1275.0);
        assert_eq!(delay_ms(1, 0.0), 2000.0);
        assert_eq!(delay_ms(3, 0.0), 5000.0, "at most 5 s");
        assert_eq!(delay_ms(40, 0.99), 5000.0);
    }

    #[test]
    fn times_to_a_fraction_count_the_sockets_that_never_made_it() {
        let times = [Some(30), Some(10), None, Some(20)];
        assert_eq!(time_to(0.5, &times, 4), Some(20.0));
        assert_eq!(time_to(0.75, &times, 4), Some(30.0));
        assert_eq!(time_to(1.0, &times, 4), None);
        assert_eq!(time_to(1.0, &times[..2], 2), Some(30.0));
    }

    #[test]
    fn a_rate_is_counted_from_the_first_to_the_last() {
        assert_eq!(rate(&[1000, 1500, 2000]), 3.0);
        assert_eq!(rate(&[]), 0.0);
    }
}
