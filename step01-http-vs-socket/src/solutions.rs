//! Reference solutions of the chapter's exercises. Compiled only with
//! `--features solutions`; CI uses them to prove each exercise check passes
//! once the task is done.
//!
//! All three exercises are done here at once, the way a student does them one
//! after the other in `lib.rs`. Everything the exercises do not change (the
//! page, `/api/time`, the `ping` handler, `serve`) is the crate's own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::{SendError, SocketError, SocketIo};

use crate::{RequestCounter, Tick, answer_ping, now_ms, page, time_now};

// ANCHOR: faster_ticks
/// How often the server pushes a `tick` to every connected socket: twice a
/// second.
pub const TICK_INTERVAL: Duration = Duration::from_millis(500);
// ANCHOR_END: faster_ticks

// ANCHOR: stop_ticks
/// Runs once per connected socket. New: the `stop-ticks` handler.
async fn on_connect(socket: SocketRef) {
    tracing::info!(
        sid = %socket.id,
        transport = ?socket.transport_type(),
        "socket connected"
    );

    socket.on("ping", answer_ping);

    // One flag per socket, shared by the handler that raises it and the task
    // that reads it. A flag in a `static` would stop everybody's ticks, not
    // only this socket's.
    let stopped = Arc::new(AtomicBool::new(false));
    let stop = stopped.clone();
    socket.on("stop-ticks", async move |ack: AckSender| {
        stop.store(true, Ordering::Relaxed);
        ack.send(&serde_json::json!({ "stopped": true })).ok();
    });

    tokio::spawn(push_ticks(socket, stopped));
}
// ANCHOR_END: stop_ticks

// ANCHOR: stop_ticks_task
async fn push_ticks(socket: SocketRef, stopped: Arc<AtomicBool>) {
    let mut interval = tokio::time::interval(TICK_INTERVAL);
    let mut seq = 0;
    loop {
        interval.tick().await;
        if stopped.load(Ordering::Relaxed) {
            // The client asked for silence: the task ends, the socket stays
            // open.
            break;
        }
        seq += 1;
        let tick = Tick {
            seq,
            server_time_ms: now_ms(),
        };
        match socket.emit("tick", &tick) {
            Ok(()) => {}
            // The tab is gone.
            Err(SendError::Socket(SocketError::Closed)) => break,
            // A full queue: this tick is lost, the next one is tried.
            Err(_) => {}
        }
    }
}
// ANCHOR_END: stop_ticks_task

// ANCHOR: second_pushed_event
/// How often the server broadcasts `server-stats`.
pub const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// The payload of the `server-stats` event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerStats {
    /// How many sockets are connected to this server right now.
    pub sockets: usize,
}

/// One task for the whole server, not one per socket: everybody gets the same
/// number at the same moment, and the count is taken once per period, not once
/// per socket. It ends with the server: once `io.close()` has run, the
/// namespace is gone.
async fn push_server_stats(io: SocketIo) {
    let mut interval = tokio::time::interval(STATS_INTERVAL);
    loop {
        interval.tick().await;
        if io.of("/").is_none() {
            return; // the server has closed
        }
        let stats = ServerStats {
            sockets: io.sockets().len(),
        };
        // A broadcast to every socket of the namespace "/". Unlike
        // `socket.emit`, it is async (with an adapter such as Redis it goes
        // over the network). An error means some socket could not be reached,
        // typically one that was closing: the next round will do.
        io.emit("server-stats", &stats).await.ok();
    }
}
// ANCHOR_END: second_pushed_event

// ANCHOR: second_pushed_event_app

/// The crate's `app()`, plus one line: the task that broadcasts `server-stats`.
pub fn app() -> Router {
    let (socket_layer, io) = SocketIo::new_layer();
    io.ns("/", on_connect);
    // `app()` is called inside the Tokio runtime (by `main` and by the tests),
    // so it may spawn.
    tokio::spawn(push_server_stats(io));

    Router::new()
        .route("/", get(page))
        .route("/api/time", get(time_now))
        .with_state(RequestCounter::default())
        .layer(socket_layer)
}
// ANCHOR_END: second_pushed_event_app
