//! What every handler shares (`State<Chat>`): the messages, the lock that
//! orders deliveries, the limits; and the error the handlers answer with.

use std::sync::Arc;

use step02_sessions::BackgroundTasks;
use step04_socket_middleware::{Chores, FairRoom, RateLimit, SocketCount};
use step04_socket_middleware::{RateLimited, Strikes};
use tokio::sync::{Mutex, Semaphore};

use crate::ChatConfig;
use crate::limits::ChatLimits;
use crate::messages::MessageStore;
use crate::presence::Presence;
use crate::validation::InputError;

/// The room every socket is in, and cannot leave.
pub const GENERAL: &str = "general";
/// At most this many missed messages are replayed on reconnection, the newest
/// ones; a client that missed more is told (`"truncated": true`).
pub const CATCH_UP_LIMIT: i64 = 1000;

// ANCHOR: chat_error
/// Why an event was refused. The text goes back in the acknowledgement,
/// `{"error": "..."}`, and the connection stays up.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("you have not joined this room")]
    NotInRoom,
    #[error(transparent)]
    RateLimited(#[from] RateLimited), // a strike, as every refusal
    #[error("too many rooms: leave one first")]
    TooManyRooms,
    #[error("you cannot leave general")]
    CannotLeaveGeneral,
    /// A `connect_error`: the user has too many sockets already.
    #[error("too many connections: close another tab first")]
    TooManySockets,
    /// The database failed: logged in full, never sent to the client.
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
/// Everything the chat handlers share. Cheap to clone: every field is a
/// handle.
#[derive(Clone)]
pub(crate) struct Chat {
    pub(crate) messages: MessageStore,
    /// Held to store a message and hand it to each socket of its room, and to
    /// put a socket in a room or take it out: one at a time, so that every
    /// socket gets every message once, in order.
    pub(crate) deliveries: Arc<Mutex<()>>,
    pub(crate) presence: Presence,
    /// Users per page of a room's online list.
    pub(crate) presence_page: usize,
    pub(crate) limits: ChatLimits,
    pub(crate) sockets: SocketCount,
    pub(crate) rates: Rates,
    /// Catch-ups reading the database at once.
    pub(crate) catch_ups: Arc<Semaphore>,
    pub(crate) tasks: BackgroundTasks,
    pub(crate) retention: Chores, // rooms past `ROOM_HISTORY_CAP`, maybe
}
// ANCHOR_END: chat_state

/// How fast each user (and room) may do each thing.
#[derive(Clone)]
pub(crate) struct Rates {
    pub(crate) messages: RateLimit<i64>,
    pub(crate) room_messages: FairRoom,
    pub(crate) typing: RateLimit<i64>,
    pub(crate) pages: RateLimit<i64>,
    pub(crate) room_changes: RateLimit<i64>,
    pub(crate) strikes: Strikes,
}

impl Chat {
    /// A chat over `messages`, with the limits of `config`.
    pub(crate) fn new(messages: MessageStore, config: &ChatConfig) -> Self {
        let (rate, limits) = (config.rate_limit, config.limits.clone());
        let per_user = |burst, per_second| match limits.enabled {
            true => RateLimit::new(burst, per_second),
            false => RateLimit::unlimited(),
        };
        let (room, changes) =
            (limits.room_messages_per_second, limits.room_changes_per_second);
        let rates = Rates {
            messages: per_user(f64::from(rate.burst), rate.per_second),
            room_messages: FairRoom::new(room * 2.0, room),
            typing: per_user(5.0, 2.0),
            pages: per_user(20.0, 10.0),
            room_changes: RateLimit::new(changes * 5.0, changes),
            strikes: Strikes::new(limits.refusals_per_10s),
        };
        let (store, cap) = (messages.clone(), limits.room_history_cap);
        let tasks = BackgroundTasks::default();
        // Rooms noted as they grow are trimmed, off the senders' way.
        let retention =
            Chores::start(&tasks, move |r| store.clone().trim(r, cap));
        Chat {
            messages,
            deliveries: Arc::default(),
            presence: Presence::default(),
            presence_page: config.presence_page.max(1),
            limits,
            sockets: SocketCount::default(),
            rates,
            // Each catch-up reads up to 1,050 rows: a flood of reconnections
            // must not take every connection of the pool.
            catch_ups: Arc::new(Semaphore::new(2)),
            tasks,
            retention,
        }
    }
}
