//! Sending to one socket without ever losing a packet in silence.
//!
//! Every socket has an outgoing queue of `SOCKET_BUFFER` packets
//! ([`DEFAULT_SOCKET_BUFFER`]). A client that reads slower than the room talks
//! (a phone on a bad network, a frozen tab) fills it, and then socketioxide
//! refuses the next packet: `emit` returns `InternalChannelFull`, and a
//! broadcast (`io.to(room).emit(..)`) skips that socket without a word. For a
//! chat that is a lie: the user would see the conversation go on with holes in
//! it.
//!
//! So the chat sends to each socket itself, and never drops that error. The
//! first packet a socket cannot take marks it as *lagging*: nothing more is
//! queued for it (a later message after a hole would move the client's
//! `serverOffset` past the hole), and as soon as its queue has room again it
//! gets a `resync` event and is disconnected. The page answers by connecting
//! again with the id of the last message it saw, and the catch-up sends it the
//! rest, once, in order. Node's Socket.IO has no such limit: its queue simply
//! grows with the backlog.

use std::time::Duration;

use serde::Serialize;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::{SendError, SocketError};

/// How many packets may wait in one socket's queue unless `SOCKET_BUFFER` says
/// otherwise (socketioxide's `max_buffer_size`, 128 by default). Big enough for
/// a full catch-up (up to 1,000 messages, plus history and presence) and for a
/// burst in a busy room; the queue's memory is taken only as packets wait.
pub const DEFAULT_SOCKET_BUFFER: usize = 2048;

/// How long a lagging socket may take to make room for its `resync` before we
/// stop trying (by then Engine.IO's heartbeat has closed a client that reads
/// nothing at all).
const RESYNC_PATIENCE: Duration = Duration::from_secs(60);

/// Marks a socket whose queue overflowed (kept in the socket's extensions).
#[derive(Clone, Copy, Debug)]
struct Lagging;

// ANCHOR: send
/// Queues `event` for `socket`, or, if its queue is full, starts a resync.
/// Returns whether the packet was queued; if not, the socket is gone or about
/// to be resynchronised, and catches up when it reconnects.
pub(crate) fn send<T: Serialize + ?Sized>(
    socket: &SocketRef,
    event: &'static str,
    data: &T,
) -> bool {
    if socket.extensions.get::<Lagging>().is_some() {
        return false; // a resync is on its way: more would hide the hole
    }
    let sent = socket.emit(event, data);
    queued_or_resync(socket, sent)
}

/// [`send`] for an acknowledgement, which goes through the same queue.
pub(crate) fn acknowledge<T: Serialize + ?Sized>(
    socket: &SocketRef,
    ack: AckSender,
    data: &T,
) -> bool {
    queued_or_resync(socket, ack.send(data))
}

fn queued_or_resync(socket: &SocketRef, sent: Result<(), SendError>) -> bool {
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

// ANCHOR: resync
/// Marks `socket` as lagging and, in the background, tells it `resync` and
/// disconnects it as soon as its queue has room for those two packets.
/// (socketioxide's `disconnect` goes through the same queue, so it too must
/// wait for room.)
fn resync(socket: SocketRef) {
    if socket.extensions.insert(Lagging).is_some() {
        return; // already on its way
    }
    tracing::warn!(sid = %socket.id, "socket too slow: resynchronising it");
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + RESYNC_PATIENCE;
        let mut told = false;
        while socket.connected() && tokio::time::Instant::now() < deadline {
            told = told || socket.emit("resync", &()).is_ok();
            if told && socket.clone().disconnect().is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}
// ANCHOR_END: resync
