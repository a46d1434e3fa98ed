//! Where the rooms' sequencers keep their messages: step 5's SQLite table on
//! one machine, or a database that several processes write to (chapter
//! "Scaling out with Redis" puts PostgreSQL behind this trait).
//!
//! A sequencer asks its log four things: store a batch, read a window, the
//! room's newest id, and (a notice, no answer) "these were delivered to this
//! process's sockets". With one process writing, the sequencer sees every
//! message of its room; with several, a message stored by another process can
//! be *between* two of this one's, and the log says so ([`Logged::after`]), so
//! that the sequencer reads what it has not seen before it delivers.

use std::pin::Pin;
use std::sync::Arc;

use step05_chat::messages::{ChatMessage, MessageStore, NewMessage, Page, Stored};

/// A future a log returns (a trait object cannot have `async fn`s).
pub type LogFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One message of a batch, as storing it went.
#[derive(Clone, Debug, PartialEq)]
pub struct Logged {
    /// The stored message (or the one stored earlier with its client offset).
    pub stored: Stored,
    /// For a new message in a log that other processes write to: the id of
    /// the room's message just before it. `None` where this process is the
    /// only writer, so its sequencer has seen that message already.
    pub after: Option<i64>,
}

// ANCHOR: message_log
/// What a room's sequencer needs from the place messages are kept.
pub trait MessageLog: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `batch` (all for `room`, in order), one result per message.
    fn insert_batch<'a>(
        &'a self,
        room: &'a str,
        batch: &'a [NewMessage],
    ) -> LogFuture<'a, Vec<Result<Logged, sqlx::Error>>>;

    /// The `limit` newest messages of `room` with an id in `after+1 ..= upto`,
    /// oldest first (as step 5's `MessageStore::newest`).
    fn newest<'a>(
        &'a self,
        room: &'a str,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> LogFuture<'a, Result<Page, sqlx::Error>>;

    /// The id of the newest message of `room`, or 0.
    fn last_id<'a>(&'a self, room: &'a str) -> LogFuture<'a, Result<i64, sqlx::Error>>;

    /// `messages` (of `room`, following the message `after`, in order) were
    /// delivered to this process's sockets. A shared log tells the other
    /// processes here; step 5's table has no one to tell.
    fn delivered(&self, _room: &str, _after: i64, _messages: &Arc<[ChatMessage]>) {}

    /// Deletes `room`'s oldest messages beyond the newest `cap` (retention,
    /// `ROOM_HISTORY_CAP`). A log without retention keeps everything.
    fn trim<'a>(&'a self, _room: &'a str, _cap: i64) -> LogFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Whether other processes write to this log, and this process's room
    /// sequencers deliver their messages too (step 5's table: no).
    fn shared(&self) -> bool {
        false
    }
}
// ANCHOR_END: message_log

/// A chat's message log: cheap to clone, one for every room.
#[derive(Clone, Debug)]
pub struct Messages(Arc<dyn MessageLog>);

impl Messages {
    /// Wraps any log.
    pub fn new(log: impl MessageLog) -> Self {
        Messages(Arc::new(log))
    }

    /// See [`MessageLog::insert_batch`].
    pub async fn insert_batch(
        &self,
        room: &str,
        batch: &[NewMessage],
    ) -> Vec<Result<Logged, sqlx::Error>> {
        self.0.insert_batch(room, batch).await
    }

    /// See [`MessageLog::newest`].
    pub async fn newest(
        &self,
        room: &str,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Page, sqlx::Error> {
        self.0.newest(room, after, upto, limit).await
    }

    /// See [`MessageLog::last_id`].
    pub async fn last_id(&self, room: &str) -> Result<i64, sqlx::Error> {
        self.0.last_id(room).await
    }

    /// See [`MessageLog::shared`].
    pub fn shared(&self) -> bool {
        self.0.shared()
    }

    /// See [`MessageLog::delivered`].
    pub fn delivered(&self, room: &str, after: i64, messages: &Arc<[ChatMessage]>) {
        self.0.delivered(room, after, messages);
    }

    /// See [`MessageLog::trim`].
    pub async fn trim(self, room: String, cap: i64) {
        self.0.trim(&room, cap).await;
    }
}

impl From<MessageStore> for Messages {
    fn from(store: MessageStore) -> Self {
        Messages::new(store)
    }
}

/// Step 5's table: this process is its only writer.
impl MessageLog for MessageStore {
    fn trim<'a>(&'a self, room: &'a str, cap: i64) -> LogFuture<'a, ()> {
        Box::pin(self.clone().trim(room.to_owned(), cap))
    }

    fn insert_batch<'a>(
        &'a self,
        room: &'a str,
        batch: &'a [NewMessage],
    ) -> LogFuture<'a, Vec<Result<Logged, sqlx::Error>>> {
        Box::pin(async move {
            let stored = crate::sequencer::insert_batch(self, room, batch).await;
            let logged = |stored| Logged {
                stored,
                after: None,
            };
            stored
                .into_iter()
                .map(|result| result.map(logged))
                .collect()
        })
    }

    fn newest<'a>(
        &'a self,
        room: &'a str,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> LogFuture<'a, Result<Page, sqlx::Error>> {
        Box::pin(MessageStore::newest(self, room, after, upto, limit))
    }

    fn last_id<'a>(&'a self, room: &'a str) -> LogFuture<'a, Result<i64, sqlx::Error>> {
        Box::pin(MessageStore::last_id(self, room))
    }
}
