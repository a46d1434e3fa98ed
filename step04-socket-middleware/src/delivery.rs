//! Sending to one socket without ever losing a packet in silence.
//!
//! Each socket has a queue of so many packets (socketioxide's
//! `max_buffer_size`). A client that reads slower than the room talks (a
//! frozen tab, a phone on a bad network) fills it, and then `emit` returns
//! `InternalChannelFull`; a broadcast, `io.to(room).emit(..)`, would skip that
//! socket without a word, and its user would see the conversation go on with
//! holes in it. (Node's Socket.IO has no such limit: its queue just grows.)
//!
//! So a chat sends to each socket itself, and never drops that error: the
//! socket is marked *lagging* (nothing more is queued for it, or a message
//! after the hole would move the client's `serverOffset` past it), and as soon
//! as its queue has room it gets `resync` and is disconnected. The page
//! reconnects with the id of the last message it saw, and catches up. Step 5
//! and the chapters after it send everything through here.

use std::fmt::Display;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::{SendError, SocketError};

/// In a socket's extensions: its queue overflowed.
#[derive(Clone, Copy, Debug)]
struct Lagging;

/// How long a lagging socket should need to take its `resync` and disconnect.
/// It is not a deadline: a socket whose queue stays full is closed by
/// Engine.IO itself (its ping cannot be queued), and one whose peer stops
/// reading by step 1's write-stall clock; past this, the resync is logged.
const RESYNC_PATIENCE: Duration = Duration::from_secs(60);

/// In a socket's extensions: the runtime that accepted it, where its chores
/// (a resync) run, rather than wherever the code that found its queue full
/// happens to run (`chat-under-load` sends from its rooms' own thread, which
/// must only ever sequence rooms). Set by `authenticate_socket`.
#[derive(Clone, Debug)]
pub struct Home(tokio::runtime::Handle);

impl Home {
    /// The runtime this is called on.
    pub fn here() -> Self {
        Home(tokio::runtime::Handle::current())
    }
}

// ANCHOR: send
/// Queues `event` for `socket`, or, if its queue is full, starts a resync.
/// Whether it was queued (if not, the socket catches up when it reconnects).
pub fn send<A, T>(socket: &SocketRef<A>, event: &'static str, data: &T) -> bool
where
    A: Adapter,
    T: Serialize + ?Sized,
{
    if is_lagging(socket) {
        return false; // a resync is on its way: more would hide the hole
    }
    queued_or_resync(socket, socket.emit(event, data))
}

fn queued_or_resync<A: Adapter>(
    socket: &SocketRef<A>,
    sent: Result<(), SendError>,
) -> bool {
    match sent {
        Ok(()) => true,
        Err(SendError::Socket(SocketError::InternalChannelFull)) => {
            resync(socket.clone());
            false
        }
        Err(_) => false, // closed: the client reconnects and catches up
    }
}
// ANCHOR_END: send

// ANCHOR: send_to_each
/// [`send`] to each of `sockets`, one by one, such as a room's
/// (`socket.within(room).sockets()`): where a broadcast would skip a socket
/// too slow to take it, this resynchronises it.
pub fn send_to_each<A, T>(
    sockets: Vec<SocketRef<A>>,
    event: &'static str,
    data: &T,
) where
    A: Adapter,
    T: Serialize + ?Sized,
{
    for socket in sockets {
        send(&socket, event, data);
    }
}

/// [`send`] of each of `items`, in order; whether all of them were queued
/// (a catch-up: the messages a client missed).
pub fn send_all<A, T>(
    socket: &SocketRef<A>,
    event: &'static str,
    items: &[T],
) -> bool
where
    A: Adapter,
    T: Serialize,
{
    items.iter().all(|item| send(socket, event, item))
}
// ANCHOR_END: send_to_each

// ANCHOR: answer
/// [`send`] for an acknowledgement, which goes through the same queue.
pub fn acknowledge<A, T>(
    socket: &SocketRef<A>,
    ack: AckSender<A>,
    data: &T,
) -> bool
where
    A: Adapter,
    T: Serialize + ?Sized,
{
    queued_or_resync(socket, ack.send(data))
}

/// Acknowledges with `reply`, or with `{"error": "..."}` saying why the event
/// was refused; the connection stays up, but every refusal is a strike (see
/// [`Strikes::count_on`](crate::Strikes::count_on)). (A client that asked for
/// no acknowledgement gets nothing, and is struck all the same.)
pub fn answer<A, E>(
    socket: &SocketRef<A>,
    ack: AckSender<A>,
    reply: Result<Value, E>,
) where
    A: Adapter,
    E: Display,
{
    let reply = reply.unwrap_or_else(|error| {
        crate::fair_use::strike(socket);
        json!({ "error": error.to_string() })
    });
    acknowledge(socket, ack, &reply);
}
// ANCHOR_END: answer

/// Whether `socket` overflowed and waits for its resync.
pub fn is_lagging<A: Adapter>(socket: &SocketRef<A>) -> bool {
    socket.extensions.get::<Lagging>().is_some()
}

// ANCHOR: resync
/// Marks `socket` as lagging and, in the background, sends it `resync` and
/// disconnects it once its queue has room for those two packets (the
/// disconnect goes through the same queue). The task ends when the socket is
/// closed, whoever closes it; it looks again at growing intervals, up to a
/// second, so that a thousand lagging sockets cost little.
fn resync<A: Adapter>(socket: SocketRef<A>) {
    if socket.extensions.insert(Lagging).is_some() {
        return; // already on its way
    }
    tracing::warn!(sid = %socket.id, "socket too slow: resynchronising it");
    let home = socket.extensions.get::<Home>().unwrap_or_else(Home::here);
    home.0.spawn(async move {
        let mut patience = Some(tokio::time::Instant::now() + RESYNC_PATIENCE);
        let (mut pause, mut told) = (Duration::from_millis(20), false);
        while socket.connected() {
            told = told || socket.emit("resync", &()).is_ok();
            if told && socket.clone().disconnect().is_ok() {
                return;
            }
            if patience.is_some_and(|at| tokio::time::Instant::now() > at) {
                patience = None; // said once
                tracing::warn!(sid = %socket.id, "resync still waiting");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    });
}
// ANCHOR_END: resync
