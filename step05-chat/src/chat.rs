//! What every handler shares: the messages, the order of deliveries, who is
//! online, and the limits; and the one error type the handlers answer with.

use std::sync::Arc;
use std::time::Duration;

use socketioxide::extract::SocketRef;
use step02_sessions::BackgroundTasks;
use tokio::sync::{Mutex, Semaphore};

use crate::limits::{
    ChatLimits, Limiter, MessageRate, SocketCount, allows, limiter,
};
use crate::messages::MessageStore;
use crate::presence::Presence;
use crate::validation::InputError;

/// The room every socket is in, and cannot leave.
pub const GENERAL: &str = "general";
/// At most this many missed messages are replayed on reconnection, the newest
/// ones; a client that missed more is told so (`"truncated": true` in its
/// `history`).
pub const CATCH_UP_LIMIT: i64 = 1000;
/// How many sockets may read their history and catch-up from the database at
/// once. Each read is up to 1,050 rows; a flood of reconnections must not take
/// every connection of the pool from everybody else.
const CONCURRENT_CATCH_UPS: usize = 2;

// ANCHOR: chat_error
/// Why an event was refused. The text goes back to the client in the
/// acknowledgement, `{"error": "..."}`, and the connection stays up.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The payload did not have the expected shape.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Sending to, or typing in, a room the socket has not joined.
    #[error("you have not joined this room")]
    NotInRoom,
    /// Too many messages (or joins, or typing notices) too fast.
    #[error("rate limited")]
    RateLimited,
    /// A socket asked to join more rooms than `MAX_ROOMS_PER_SOCKET`.
    #[error("too many rooms: leave one first")]
    TooManyRooms,
    /// `general` is home: everybody is always there.
    #[error("you cannot leave general")]
    CannotLeaveGeneral,
    /// The user has `MAX_SOCKETS_PER_USER` sockets connected already (a
    /// `connect_error`).
    #[error("too many connections: close another tab first")]
    TooManySockets,
    /// The database failed. Logged in full on the server, never sent to the
    /// client.
    #[error("internal error")]
    Internal,
}

impl From<sqlx::Error> for ChatError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "chat database error");
        ChatError::Internal
    }
}
// ANCHOR_END: chat_error

// ANCHOR: chat_state
/// Everything the chat handlers share (`State<Chat>` in a handler). Cheap to
/// clone: every field is a handle.
#[derive(Clone)]
pub(crate) struct Chat {
    /// The messages, in SQLite.
    pub(crate) messages: MessageStore,
    /// Taken to store a message and hand it to each socket of its room, and
    /// to put a socket in a room: one delivery at a time, so every socket
    /// sees every message once, in the order of their ids.
    pub(crate) deliveries: Arc<Mutex<()>>,
    /// Who is online in which room.
    pub(crate) presence: Presence,
    /// Users per page of a room's online list.
    pub(crate) presence_page: usize,
    pub(crate) limits: ChatLimits,
    pub(crate) sockets: SocketCount,
    pub(crate) rates: Rates,
    pub(crate) catch_ups: Arc<Semaphore>,
    /// The jobs beside the handlers (presence announcements, housekeeping).
    pub(crate) tasks: BackgroundTasks,
}
// ANCHOR_END: chat_state

/// How fast each user (or room) may do each thing; `None` is no limit.
#[derive(Clone)]
pub(crate) struct Rates {
    pub(crate) messages: Limiter<i64>,
    /// Messages per room, from everyone together.
    pub(crate) room_messages: Limiter<String>,
    /// `typing` is cheap to send and costs a broadcast to the whole room.
    pub(crate) typing: Limiter<i64>,
    pub(crate) pages: Limiter<i64>,
    /// Joins and leaves: each one tells the whole room who is there.
    pub(crate) room_changes: Limiter<i64>,
    /// Refused events, before the socket that keeps trying is disconnected.
    refusals: Limiter<i64>,
}

impl Chat {
    /// A chat over `messages`, with `rate` for `chat message`, `limits`, and
    /// `presence_page` users per page of an online list.
    pub(crate) fn new(
        messages: MessageStore,
        rate: MessageRate,
        limits: ChatLimits,
        presence_page: usize,
    ) -> Self {
        let on = limits.enabled;
        let per_user = |burst, per_second| {
            if on { limiter(burst, per_second) } else { None }
        };
        let room = limits.room_messages_per_second;
        let changes = limits.room_changes_per_second;
        let refusals = f64::from(limits.refusals_per_10s);
        let rates = Rates {
            messages: per_user(f64::from(rate.burst), rate.per_second),
            room_messages: limiter(room * 2.0, room),
            typing: per_user(5.0, 2.0),
            pages: per_user(20.0, 10.0),
            room_changes: limiter(changes * 5.0, changes),
            refusals: limiter(refusals, refusals / 10.0),
        };
        Chat {
            messages,
            deliveries: Arc::default(),
            presence: Presence::default(),
            presence_page: presence_page.max(1),
            limits,
            sockets: SocketCount::default(),
            rates,
            catch_ups: Arc::new(Semaphore::new(CONCURRENT_CATCH_UPS)),
            tasks: BackgroundTasks::default(),
        }
    }

    // ANCHOR: limited
    /// `Ok` if `rate` lets `user_id` go on; otherwise `RateLimited`, counted
    /// against the user. A person refused now and then stays connected; a
    /// socket that keeps sending far past its limit (`refusals_per_10s`) is
    /// disconnected: answering it costs more than it is worth.
    pub(crate) fn check(
        &self,
        rate: &Limiter<i64>,
        socket: &SocketRef,
        user_id: i64,
    ) -> Result<(), ChatError> {
        self.limited(allows(rate, &user_id), socket, user_id)
    }

    /// [`Self::check`], for a check already made.
    pub(crate) fn limited(
        &self,
        allowed: bool,
        socket: &SocketRef,
        user_id: i64,
    ) -> Result<(), ChatError> {
        if allowed {
            return Ok(());
        }
        if !allows(&self.rates.refusals, &user_id) {
            tracing::warn!(user_id, "too many refused events: disconnecting");
            socket.clone().disconnect().ok();
        }
        Err(ChatError::RateLimited)
    }
    // ANCHOR_END: limited

    /// Now and then, forgets the users and rooms whose rate is back to full,
    /// so the limiters do not grow with everyone who ever sent a message.
    pub(crate) fn spawn_housekeeping(&self) {
        let rates = self.rates.clone();
        self.tasks.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                let Rates {
                    messages,
                    room_messages,
                    typing,
                    pages,
                    room_changes,
                    refusals,
                } = &rates;
                for per_user in
                    [messages, typing, pages, room_changes, refusals]
                {
                    per_user.iter().for_each(|l| l.retain_recent());
                }
                room_messages.iter().for_each(|l| l.retain_recent());
            }
        });
    }
}
