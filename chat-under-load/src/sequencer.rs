//! One task per room puts its messages in order: store, then broadcast, then
//! acknowledge.
//!
//! The chat promises three things about a room:
//! 1. every message a client saw acknowledged is in the database (durable);
//! 2. every socket in the room gets every message once, in id order;
//! 3. a socket that enters the room (connects, reconnects, joins) gets every
//!    message exactly once: either in what it reads from the database, or live,
//!    never both, never neither.
//!
//! A lock per room held while a message is inserted and broadcast keeps those
//! promises, but it makes every message wait for its own database round trip,
//! one after the other, and every joining socket wait behind them (measured:
//! p99 3.4 s at 200,000 deliveries/s; chapter 5). Instead, each room has a
//! *sequencer*: a task that owns the room's order. Handlers send it commands
//! through a channel:
//! - [`Sequencers::send`]: a message to store. The task takes every message
//!   waiting in its channel, stores them in ONE transaction, broadcasts them in
//!   id order, then acknowledges each sender. Under load, batches grow and the
//!   cost of a commit is shared (group commit).
//! - [`Sequencers::enter_from_memory`]: a socket enters the room with its
//!   history and what it missed taken from the task's memory of the room's
//!   newest messages. Ten thousand sockets connecting at once read nothing from
//!   the database, and each new history is serialised once for all of them.
//! - [`Sequencers::watermark`] and [`Sequencers::enter`]: how a socket that was
//!   away longer than the task remembers enters the room without the room
//!   waiting for its database reads.
//!
//! It is the Rust version of a pattern Node servers get from their single
//! thread: one place where a room's events happen one at a time. Here that
//! place is a task, and nothing else has to wait for it.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use step02_sessions::BackgroundTasks;
use tokio::sync::{mpsc, oneshot};

use crate::chat::{CATCH_UP_LIMIT, ChatError};
use step04_socket_middleware::InOrder;
use step05_chat::messages::{
    ChatMessage, HISTORY_LIMIT, MessageStore, NewMessage, Stored, insert_one,
};

/// How a sequencer hands a batch of newly stored messages to the room's
/// sockets. The chat builds it from its `io` (see `chat::fanout`); tests can
/// pass anything.
pub type Fanout = Arc<dyn Fn(String, Arc<[ChatMessage]>) -> Delivering + Send + Sync>;

/// A fanout's work in progress: awaited before the senders are acknowledged.
pub type Delivering = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a socket entering a room runs inside the sequencer, between two
/// batches: given the messages stored since its database read, it sends them,
/// joins the Socket.IO room, and says how many messages it replayed.
pub type Enter = Box<dyn FnOnce(&[ChatMessage]) -> usize + Send>;

/// What a socket entering a room runs inside the sequencer with what it is
/// owed: it sends the [`Catchup`], joins the Socket.IO room, and says how many
/// missed messages it replayed.
pub type EnterWith = Box<dyn FnOnce(Catchup<'_>) -> usize + Send>;

/// What [`Sequencers::enter_from_memory`] did.
pub enum FromMemory {
    /// The socket is in the room, after this many missed messages.
    Entered(usize),
    /// The socket was away longer than the task remembers: here is its
    /// `enter`, not run. Read the database, then [`Sequencers::enter`].
    TooOld(EnterWith),
}

impl std::fmt::Debug for FromMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FromMemory::Entered(replayed) => write!(f, "Entered({replayed})"),
            FromMemory::TooOld(_) => f.write_str("TooOld"),
        }
    }
}

/// What a socket entering a room is owed, from the room's memory.
#[derive(Debug)]
pub struct Catchup<'a> {
    /// What the client's window shows: the newest messages (at most
    /// [`HISTORY_LIMIT`]) up to where it left off, or up to now for a new
    /// client. Oldest first.
    pub history: History<'a>,
    /// The messages after where it left off, oldest first: at most
    /// [`CATCH_UP_LIMIT`].
    pub missed: &'a [ChatMessage],
    /// Whether it missed more than `missed` holds (older ones were left out).
    pub truncated: bool,
}

/// A history: as messages, or, for the room's newest (which every new socket
/// gets), as the JSON array serialised once for all of them. Both serialise to
/// the same JSON.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum History<'a> {
    Messages(&'a [ChatMessage]),
    Encoded(&'a RawValue),
}

/// The most messages stored in one transaction.
const MAX_BATCH: usize = 512;
/// How many of the newest messages a sequencer keeps in memory (it reads them
/// when it starts): enough for every new socket's history and for the catch-up
/// of one that was away for up to this many messages, without reading the
/// database.
const RECENT: usize = 1024;
/// A room quiet for this long stops its task (the next command starts a new
/// one).
const IDLE: Duration = Duration::from_secs(30);

/// The sequencers of every room, started on first use. Cheap to clone.
#[derive(Clone, Default)]
pub struct Sequencers {
    rooms: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Command>>>>,
    /// Where the rooms' tasks are spawned: they stop with the server.
    tasks: BackgroundTasks,
}

impl std::fmt::Debug for Sequencers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequencers")
            .field("rooms", &self.lock().len())
            .finish()
    }
}

enum Command {
    /// Store and broadcast a message; the reply is the stored message.
    Send(Pending),
    /// Anything else, handled between two batches.
    Control(Control),
}

type Pending = (NewMessage, oneshot::Sender<Result<ChatMessage, ChatError>>);

enum Control {
    Watermark {
        reply: oneshot::Sender<i64>,
    },
    Enter {
        seen: i64,
        enter: Enter,
        reply: oneshot::Sender<usize>,
    },
    EnterFromMemory {
        offset: Option<i64>,
        enter: EnterWith,
        reply: oneshot::Sender<FromMemory>,
    },
    Reload {
        reply: oneshot::Sender<Result<(), ChatError>>,
    },
}

/// Everything a room's task needs to start.
#[derive(Clone)]
pub struct RoomContext {
    /// Where messages are stored.
    pub store: MessageStore,
    /// How they reach the room's sockets.
    pub fanout: Fanout,
    /// The most messages the room keeps (`ROOM_HISTORY_CAP`): memory holds no
    /// more than the database does.
    pub history_cap: i64,
}

impl std::fmt::Debug for RoomContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomContext").finish_non_exhaustive()
    }
}

impl Sequencers {
    /// The rooms' sequencers, whose tasks are `tasks` of the server.
    pub fn new(tasks: BackgroundTasks) -> Self {
        Sequencers {
            rooms: Arc::default(),
            tasks,
        }
    }
}

impl Sequencers {
    // ANCHOR: send
    /// Stores `message` in `room`, broadcasts it, and returns it once it is
    /// durable.
    pub async fn send(
        &self,
        room: &str,
        context: &RoomContext,
        message: NewMessage,
        turn: InOrder,
    ) -> Result<ChatMessage, ChatError> {
        let (reply, stored) = oneshot::channel();
        self.command(room, context, Command::Send((message, reply)))?;
        drop(turn); // queued: the sender's next message may follow
        // A dropped reply means the task ended before it saw the message:
        // nothing was stored.
        stored.await.map_err(|_| ChatError::Internal)?
    }
    // ANCHOR_END: send

    // ANCHOR: enter_from_memory
    /// Runs `enter` inside the room's task with what a socket that last saw
    /// message `offset` in the room (`None`: it saw nothing there yet) is
    /// owed, if the task's memory holds all of it. If the socket was away
    /// longer than the task remembers, `enter` comes back unrun
    /// ([`FromMemory::TooOld`]): read the database, then [`Self::enter`].
    ///
    /// A socket without an offset is always served from memory: the task
    /// keeps at least the room's newest [`HISTORY_LIMIT`] messages.
    pub async fn enter_from_memory(
        &self,
        room: &str,
        context: &RoomContext,
        offset: Option<i64>,
        enter: EnterWith,
    ) -> Result<FromMemory, ChatError> {
        let (reply, entered) = oneshot::channel();
        let control = Control::EnterFromMemory {
            offset,
            enter,
            reply,
        };
        self.command(room, context, Command::Control(control))?;
        entered.await.map_err(|_| ChatError::Internal)
    }
    // ANCHOR_END: enter_from_memory

    // ANCHOR: enter
    /// The id up to which every message of `room` has been broadcast. A socket
    /// that reads the room's messages up to this id from the database, then
    /// calls [`Self::enter`] with it, misses nothing and gets nothing twice.
    pub async fn watermark(&self, room: &str, context: &RoomContext) -> Result<i64, ChatError> {
        let (reply, watermark) = oneshot::channel();
        self.command(
            room,
            context,
            Command::Control(Control::Watermark { reply }),
        )?;
        watermark.await.map_err(|_| ChatError::Internal)
    }

    /// Runs `enter` inside the room's task with the messages broadcast after
    /// `seen` (the socket was given everything up to `seen` from the
    /// database): it sends them, then joins the room, and from then on every
    /// broadcast reaches it. Runs between two batches, so no message can slip
    /// between "sent the missing ones" and "joined". Returns what `enter`
    /// returned.
    pub async fn enter(
        &self,
        room: &str,
        context: &RoomContext,
        seen: i64,
        enter: Enter,
    ) -> Result<usize, ChatError> {
        let (reply, entered) = oneshot::channel();
        let control = Control::Enter { seen, enter, reply };
        self.command(room, context, Command::Control(control))?;
        entered.await.map_err(|_| ChatError::Internal)
    }
    // ANCHOR_END: enter

    /// Reads the room's newest messages from the database again, between two
    /// batches. Call it after changing stored messages some other way than
    /// [`Self::send`] (an edit, a delete), before telling the room: a socket
    /// entering afterwards gets the new text from memory.
    pub async fn reload(&self, room: &str, context: &RoomContext) -> Result<(), ChatError> {
        let (reply, reloaded) = oneshot::channel();
        let control = Control::Reload { reply };
        self.command(room, context, Command::Control(control))?;
        reloaded.await.map_err(|_| ChatError::Internal)?
    }

    /// Hands `command` to the task of `room`, starting it if it is not running.
    fn command(
        &self,
        room: &str,
        context: &RoomContext,
        command: Command,
    ) -> Result<(), ChatError> {
        let mut rooms = self.lock();
        let command = match rooms.get(room) {
            Some(task) => match task.send(command) {
                Ok(()) => return Ok(()),
                // That task has just stopped: start another.
                Err(mpsc::error::SendError(command)) => command,
            },
            None => command,
        };
        let (task, commands) = mpsc::unbounded_channel();
        task.send(command).map_err(|_| ChatError::Internal)?;
        rooms.insert(room.to_owned(), task);
        let task = run(self.clone(), room.to_owned(), context.clone(), commands);
        match rooms_thread() {
            Some(rooms_thread) => self.tasks.spawn_on(task, rooms_thread),
            None => self.tasks.spawn(task),
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Command>>> {
        // Nothing panics while holding it, so a poisoned map is still sound.
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the task of `room` may stop: nothing is waiting in its channel.
    /// Removes it from the map under the lock, so no new command can reach a
    /// task that is stopping.
    fn retire(&self, room: &str, commands: &mpsc::UnboundedReceiver<Command>) -> bool {
        let mut rooms = self.lock();
        if !commands.is_empty() {
            return false;
        }
        rooms.remove(room);
        true
    }
}

/// How many rooms' tasks are running on the rooms' thread, for a test that
/// checks a stopped server leaves none behind.
pub fn rooms_tasks_alive() -> usize {
    rooms_thread().map_or(0, |rooms| rooms.metrics().num_alive_tasks())
}

// ANCHOR: rooms_thread
/// The runtime, on a thread of its own, where the rooms' tasks run; `None` (the
/// tasks then run with the rest) only if the thread could not be started.
///
/// Why not with the rest: a message to 10,000 sockets wakes 10,000 WebSocket
/// writers, and every task woken after them waits its turn behind them, about
/// 100 ms here. A room's task is woken again and again for each message: when
/// the message arrives, when SQLite has stored it. Measured at 10,000 sockets
/// with the task in the main runtime: 100 to 240 ms between "stored" and
/// "sending it out", though the insert itself took 1 ms. On this thread the
/// task is never behind the writers: only the rooms' work runs here.
fn rooms_thread() -> Option<&'static tokio::runtime::Handle> {
    static ROOMS: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    ROOMS
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .inspect_err(|error| tracing::error!(%error, "cannot build the rooms' runtime"))
                .ok()?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name("rooms".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .inspect_err(|error| tracing::error!(%error, "cannot start the rooms' thread"))
                .ok()?;
            Some(handle)
        })
        .as_ref()
}
// ANCHOR_END: rooms_thread

/// What a room's task remembers.
struct Room {
    name: String,
    context: RoomContext,
    /// Every message of the room up to this id has been broadcast.
    broadcast_upto: i64,
    /// The newest messages, oldest first: at least the newest [`RECENT`] (or
    /// all of them).
    recent: Vec<ChatMessage>,
    /// Every message of the room with an id above this one is in `recent` (0:
    /// all of them).
    recent_from: i64,
    /// The newest [`HISTORY_LIMIT`] messages as JSON, serialised on the first
    /// entry that needs them, forgotten when a message comes.
    newest_history: Option<Box<RawValue>>,
}

// ANCHOR: run
/// The room's task: takes the commands waiting, in order; messages next to each
/// other are stored together.
async fn run(
    sequencers: Sequencers,
    name: String,
    context: RoomContext,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut room = Room {
        name,
        context,
        broadcast_upto: 0,
        recent: Vec::new(),
        recent_from: 0,
        newest_history: None,
    };
    if let Err(error) = room.load().await {
        tracing::error!(
            %error,
            room = %room.name,
            "cannot read the room's newest messages"
        );
        sequencers.lock().remove(&room.name);
        return; // dropping the commands tells their senders "internal error"
    }
    let mut batch = Vec::new();
    loop {
        let first = match tokio::time::timeout(IDLE, commands.recv()).await {
            Ok(Some(command)) => command,
            Ok(None) => return,
            Err(_idle) if sequencers.retire(&room.name, &commands) => return,
            Err(_idle) => continue,
        };
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Send(pending) => batch.push(pending),
                Command::Control(control) => {
                    room.store_and_broadcast(&mut batch).await;
                    room.handle(control).await;
                }
            }
            if batch.len() < MAX_BATCH {
                next = commands.try_recv().ok();
            }
        }
        room.store_and_broadcast(&mut batch).await;
    }
}
// ANCHOR_END: run

impl Room {
    // ANCHOR: store_and_broadcast
    /// Stores the batch in one transaction, broadcasts what is new in id order,
    /// then acknowledges every sender: an acknowledgement means "stored", never
    /// "maybe".
    async fn store_and_broadcast(&mut self, batch: &mut Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        let (messages, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let started = std::time::Instant::now();
        let stored = insert_batch(&self.context.store, &self.name, &messages).await;
        let inserted = started.elapsed();
        let fresh: Arc<[ChatMessage]> = stored
            .iter()
            .filter_map(|stored| match stored {
                Ok(Stored::New(message)) => Some(message.clone()),
                _ => None,
            })
            .collect();
        if let Some(last) = fresh.last() {
            (self.context.fanout)(self.name.clone(), fresh.clone()).await;
            self.broadcast_upto = last.id;
            self.remember(&fresh);
        }
        // `RUST_LOG=chat_under_load::sequencer=debug`: where a room's time goes.
        tracing::debug!(
            room = %self.name,
            messages = messages.len(),
            ?inserted,
            broadcast = ?(started.elapsed() - inserted),
            "batch"
        );
        for (stored, reply) in stored.into_iter().zip(replies) {
            let answer = stored
                .map(|(Stored::New(message) | Stored::Again(message))| message)
                .map_err(ChatError::from);
            // The sender may have gone: it is stored all the same.
            reply.send(answer).ok();
        }
    }
    // ANCHOR_END: store_and_broadcast

    /// Reads the room's newest [`RECENT`] messages from the database into
    /// memory.
    async fn load(&mut self) -> Result<(), sqlx::Error> {
        let store = &self.context.store;
        let keep = (RECENT as i64).min(self.context.history_cap);
        let newest = store.newest(&self.name, 0, i64::MAX, keep).await?;
        let oldest_kept = newest.messages.first().map_or(0, |message| message.id);
        self.broadcast_upto = newest.messages.last().map_or(0, |message| message.id);
        self.recent_from = if newest.truncated { oldest_kept - 1 } else { 0 };
        self.recent = newest.messages;
        self.newest_history = None;
        Ok(())
    }

    fn remember(&mut self, messages: &[ChatMessage]) {
        self.newest_history = None;
        self.recent.extend(messages.iter().cloned());
        // Forget in chunks, so that most messages cost no move of the others;
        // beyond the room's cap at once (the database no longer has them).
        let cap = usize::try_from(self.context.history_cap).unwrap_or(usize::MAX);
        let (most, keep) = if cap < RECENT {
            (cap, cap)
        } else {
            (2 * RECENT - 1, RECENT)
        };
        if self.recent.len() > most {
            let forget = self.recent.len() - keep;
            self.recent_from = self.recent[forget - 1].id;
            self.recent.drain(..forget);
        }
    }

    async fn handle(&mut self, control: Control) {
        match control {
            Control::Watermark { reply } => {
                reply.send(self.broadcast_upto).ok();
            }
            Control::Enter { seen, enter, reply } => {
                let missed = self.broadcast_since(seen).await;
                reply.send(enter(&missed)).ok();
            }
            Control::EnterFromMemory {
                offset,
                enter,
                reply,
            } => {
                let entered = match self.catchup(offset) {
                    Some(catchup) => FromMemory::Entered(enter(catchup)),
                    None => FromMemory::TooOld(enter),
                };
                reply.send(entered).ok();
            }
            Control::Reload { reply } => {
                reply.send(self.load().await.map_err(ChatError::from)).ok();
            }
        }
    }

    /// What a socket that last saw `offset` is owed, if memory holds it all.
    fn catchup(&mut self, offset: Option<i64>) -> Option<Catchup<'_>> {
        let window = window(&self.recent, self.recent_from, self.broadcast_upto, offset)?;
        let history = if window.history.end == self.recent.len() {
            if self.newest_history.is_none() {
                let newest = &self.recent[window.history.clone()];
                self.newest_history = serde_json::value::to_raw_value(newest).ok();
            }
            match &self.newest_history {
                Some(encoded) => History::Encoded(encoded),
                None => History::Messages(&self.recent[window.history]),
            }
        } else {
            History::Messages(&self.recent[window.history])
        };
        Some(Catchup {
            history,
            missed: &self.recent[window.missed],
            truncated: window.truncated,
        })
    }

    /// The room's messages broadcast after `seen`, oldest first: from memory,
    /// or, if more were broadcast meanwhile than it keeps (rare: that many
    /// during one socket's reads), from the database, while the room waits.
    async fn broadcast_since(&self, seen: i64) -> Vec<ChatMessage> {
        if seen >= self.recent_from {
            let start = self.recent.partition_point(|message| message.id <= seen);
            return self.recent[start..].to_vec();
        }
        let store = &self.context.store;
        match store
            .newest(&self.name, seen, self.broadcast_upto, i64::MAX)
            .await
        {
            Ok(page) => page.messages,
            Err(error) => {
                // The socket enters without them; the page's next reconnection
                // catches up.
                tracing::error!(
                    %error,
                    room = %self.name,
                    "cannot read the gap of a joiner"
                );
                Vec::new()
            }
        }
    }
}

/// Where, in `recent` (the room's newest messages, oldest first, holding every
/// message above `recent_from`; `upto` is the newest), the history and the
/// missed messages of a socket that last saw `offset` lie; `None` if part of
/// them is older than `recent` holds.
struct Window {
    history: Range<usize>,
    missed: Range<usize>,
    truncated: bool,
}

fn window(
    recent: &[ChatMessage],
    recent_from: i64,
    upto: i64,
    offset: Option<i64>,
) -> Option<Window> {
    // The client's window ends where it left off (ids from the future count as
    // "now").
    let shown = offset.unwrap_or(upto).min(upto);
    if shown < recent_from {
        return None; // it missed messages that memory no longer holds
    }
    let split = recent.partition_point(|message| message.id <= shown);
    let history = split.saturating_sub(HISTORY_LIMIT as usize)..split;
    if history.len() < HISTORY_LIMIT as usize && recent_from != 0 {
        return None; // its window reaches back before memory
    }
    let limit = CATCH_UP_LIMIT as usize;
    let missed_count = recent.len() - split;
    let missed = (split + missed_count.saturating_sub(limit))..recent.len();
    Some(Window {
        history,
        missed,
        truncated: missed_count > limit,
    })
}

// ANCHOR: insert_batch
/// Stores `batch` (all for `room`, in order) in ONE transaction: one commit,
/// one wait for the disk, however many messages. Returns, for each, the stored
/// message, or the one stored earlier with the same `(user, client_offset)`.
///
/// If the transaction fails (say one sender was deleted meanwhile), each
/// message is stored on its own instead, so one bad message does not sink the
/// others.
pub async fn insert_batch(
    store: &MessageStore,
    room: &str,
    batch: &[NewMessage],
) -> Vec<Result<Stored, sqlx::Error>> {
    match insert_all(store, room, batch).await {
        Ok(stored) => stored.into_iter().map(Ok).collect(),
        Err(_) if batch.len() > 1 => {
            let mut one_by_one = Vec::with_capacity(batch.len());
            for new in batch {
                one_by_one.push(store.store(room, new).await);
            }
            one_by_one
        }
        Err(error) => vec![Err(error)],
    }
}

async fn insert_all(
    store: &MessageStore,
    room: &str,
    batch: &[NewMessage],
) -> Result<Vec<Stored>, sqlx::Error> {
    let mut tx = store.writer().begin().await?;
    let mut stored = Vec::with_capacity(batch.len());
    for new in batch {
        stored.push(insert_one(&mut tx, room, new).await?);
    }
    tx.commit().await?;
    Ok(stored)
}
// ANCHOR_END: insert_batch

#[cfg(test)]
mod tests {
    use super::*;
    use step03_passport_like_auth::User;

    /// Messages with the given ids, oldest first.
    fn messages(ids: impl IntoIterator<Item = i64>) -> Vec<ChatMessage> {
        let user = User {
            id: 1,
            username: "alice".into(),
        };
        ids.into_iter()
            .map(|id| ChatMessage {
                id,
                room: "general".into(),
                user: user.clone(),
                text: format!("message {id}"),
                ts: id,
            })
            .collect()
    }

    fn ids(recent: &[ChatMessage], range: Range<usize>) -> Vec<i64> {
        recent[range].iter().map(|message| message.id).collect()
    }

    #[test]
    fn a_new_socket_gets_the_newest_as_history_and_nothing_missed() {
        let recent = messages(1..=80);
        let window = window(&recent, 0, 80, None).expect("all in memory");
        assert_eq!(ids(&recent, window.history), (31..=80).collect::<Vec<_>>());
        assert!(window.missed.is_empty());
        assert!(!window.truncated);
    }

    #[test]
    fn a_room_with_few_messages_gives_them_all() {
        let recent = messages(1..=3);
        let window = window(&recent, 0, 3, None).expect("all in memory");
        assert_eq!(ids(&recent, window.history), vec![1, 2, 3]);
    }

    #[test]
    fn a_returning_socket_gets_its_window_and_then_what_it_missed() {
        // Ids of other rooms leave gaps: 10, 20, ..., 1000.
        let recent = messages((1..=100).map(|n| n * 10));
        let window = window(&recent, 0, 1000, Some(605)).expect("all in memory");
        assert_eq!(
            ids(&recent, window.history),
            (11..=60).map(|n| n * 10).collect::<Vec<_>>()
        );
        assert_eq!(
            ids(&recent, window.missed),
            (61..=100).map(|n| n * 10).collect::<Vec<_>>()
        );
        assert!(!window.truncated);
    }

    #[test]
    fn more_missed_than_the_catch_up_limit_is_cut_and_says_so() {
        let recent = messages(1..=1200);
        let window = window(&recent, 0, 1200, Some(100)).expect("all in memory");
        assert_eq!(
            ids(&recent, window.missed),
            (201..=1200).collect::<Vec<_>>()
        );
        assert!(window.truncated);
    }

    #[test]
    fn an_offset_older_than_memory_needs_the_database() {
        // Memory holds 501..=1500; the messages up to 500 are only in the
        // database.
        let recent = messages(501..=1500);
        assert!(window(&recent, 500, 1500, Some(499)).is_none());
        // Its window (50 before the offset) would reach back before 501.
        assert!(window(&recent, 500, 1500, Some(520)).is_none());
        let window = window(&recent, 500, 1500, Some(600)).expect("in memory");
        assert_eq!(
            ids(&recent, window.history),
            (551..=600).collect::<Vec<_>>()
        );
        assert_eq!(window.missed.len(), 900);
    }

    #[test]
    fn an_offset_from_the_future_counts_as_now() {
        let recent = messages(1..=10);
        let window = window(&recent, 0, 10, Some(99)).expect("all in memory");
        assert_eq!(ids(&recent, window.history), (1..=10).collect::<Vec<_>>());
        assert!(window.missed.is_empty());
    }

    #[test]
    fn the_newest_history_serialises_as_the_messages_do() {
        let recent = messages(1..=3);
        let encoded = serde_json::value::to_raw_value(&recent[..]).expect("serialises");
        assert_eq!(
            serde_json::to_string(&History::Encoded(&encoded)).expect("serialises"),
            serde_json::to_string(&History::Messages(&recent)).expect("serialises"),
        );
    }
}
