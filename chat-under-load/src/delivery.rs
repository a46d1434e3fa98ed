//! Sending to one socket without ever losing a packet in silence.
//!
//! Every socket has an outgoing queue of `SOCKET_BUFFER` packets
//! ([`DEFAULT_SOCKET_BUFFER`]). A client that reads slower than the room talks
//! (a phone on a bad network, a frozen tab) fills it, and then socketioxide
//! refuses the next packet: `emit` returns `InternalChannelFull`, and a
//! broadcast skips that socket without a word. For a chat that is a lie: the
//! user would see the conversation go on with holes in it.
//!
//! So the chat never drops such an error. The first packet a socket cannot take
//! marks it as *lagging*: nothing more is queued for it (a later message after
//! a hole would move the client's `serverOffset` past the hole), and as soon as
//! its queue has room again it gets a `resync` event and is disconnected. The
//! page answers by connecting again with the id of the last message it saw, and
//! the catch-up (see `chat::enter_general`) sends it the rest, once, in order.
//! Node's Socket.IO has no such limit: its queue simply grows with the backlog.

use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};

/// How many packets may wait in one socket's queue unless `SOCKET_BUFFER` says
/// otherwise (socketioxide's `max_buffer_size`, 128 by default). Big enough for
/// a full catch-up (up to 1,000 messages, plus history and presence) and for a
/// burst in a busy room; the queue's memory is taken only as packets wait, so
/// an idle socket costs no more than with 128.
pub const DEFAULT_SOCKET_BUFFER: usize = 2048;

/// How long a lagging socket may take to make room for its `resync` before we
/// stop trying (by then Engine.IO's heartbeat has closed a client that reads
/// nothing at all).
const RESYNC_PATIENCE: Duration = Duration::from_secs(60);

/// Marks a socket whose queue overflowed (kept in the socket's extensions).
#[derive(Clone, Copy, Debug)]
struct Lagging;

/// Whether a packet reached the socket's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Queued: it will reach the client (unless the connection drops, and then
    /// the client reconnects and catches up).
    Queued,
    /// Not queued: the socket is gone, or lagging and about to be
    /// resynchronised.
    Dropped,
}

// ANCHOR: send
/// Queues `event` for `socket`, or, if its queue is full, starts a resync (see
/// the module documentation). A packet is never dropped without the client
/// being told.
pub fn send<A: Adapter, T: Serialize + ?Sized>(
    socket: &SocketRef<A>,
    event: &'static str,
    data: &T,
) -> Sent {
    if is_lagging(socket) {
        // A resync is on its way: queuing more would hide the hole.
        return Sent::Dropped;
    }
    match socket.emit(event, data) {
        Ok(()) => Sent::Queued,
        Err(SendError::Socket(SocketError::InternalChannelFull)) => {
            resync(socket.clone());
            Sent::Dropped
        }
        // Closed: the client reconnects with its `serverOffset` and catches up.
        Err(_) => Sent::Dropped,
    }
}
// ANCHOR_END: send

// ANCHOR: encoded
/// A payload turned into JSON once, to be sent to many sockets. [`send`]
/// serialises what it is given for each socket; a room of 10,000 sockets would
/// serialise each message 10,000 times (the floor's broadcast does it once).
/// Sending an `Encoded` copies the JSON instead.
#[derive(Debug, Clone)]
pub struct Encoded(Box<RawValue>);

impl Encoded {
    pub fn new<T: Serialize + ?Sized>(data: &T) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(data).map(Encoded)
    }
}

impl Serialize for Encoded {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // As a one-element tuple: Socket.IO spreads a tuple into the event's
        // arguments, so this is the event's single argument, written out as the
        // JSON it already is.
        (&*self.0,).serialize(serializer)
    }
}
// ANCHOR_END: encoded

/// Whether `socket` is waiting for its resync.
pub fn is_lagging<A: Adapter>(socket: &SocketRef<A>) -> bool {
    socket.extensions.get::<Lagging>().is_some()
}

// ANCHOR: resync
/// Marks `socket` as lagging and, in the background, tells it `resync` and
/// disconnects it as soon as its queue has room for those two packets.
fn resync<A: Adapter>(socket: SocketRef<A>) {
    if socket.extensions.insert(Lagging).is_some() {
        return; // already on its way
    }
    tracing::warn!(
        sid = %socket.id,
        "socket too slow for the room: resynchronising it"
    );
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + RESYNC_PATIENCE;
        let mut told = false;
        while socket.connected() && tokio::time::Instant::now() < deadline {
            told = told || socket.emit("resync", &()).is_ok();
            // A full queue refuses the disconnect packet too: try again once it
            // drains.
            if told && socket.clone().disconnect().is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}
// ANCHOR_END: resync
