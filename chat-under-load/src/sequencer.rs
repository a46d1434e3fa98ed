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

use crate::chat::{BROADCAST_DEADLINE, CATCH_UP_LIMIT, ChatError};
use crate::log::Messages;
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
/// The most messages a room reads from the log to fill one gap (a gap is what
/// other processes stored since their last notice reached this one: normally
/// a few, or a second's worth).
const GAP_LIMIT: i64 = 100_000;
/// A room quiet for this long stops its task (the next command starts a new
/// one).
const IDLE: Duration = Duration::from_secs(30);

/// The sequencers of every room, started on first use. Cheap to clone.
#[derive(Clone, Default)]
pub struct Sequencers {
    rooms: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Command>>>>,
    /// Where each retired room's task had broadcast up to. Sockets stay in a
    /// room whose task retired; when another process stores a message there
    /// meanwhile, the next task delivers from here (see `Room::load`).
    retired_at: Arc<Mutex<HashMap<String, i64>>>,
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
    /// Messages another process stored, the first following `after`.
    Deliver {
        after: i64,
        messages: Vec<ChatMessage>,
    },
}

/// Everything a room's task needs to start.
#[derive(Clone)]
pub struct RoomContext {
    /// Where messages are stored.
    pub store: Messages,
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
            retired_at: Arc::default(),
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

    // ANCHOR: deliver
    /// Hands `room`'s task messages that another process stored (`after` is
    /// the id of the room's message before the first; `messages` may be
    /// empty, to say only "the room has reached `after`"). The task delivers,
    /// in id order, those it has not delivered yet, reading from the log any
    /// it has not heard of. A room whose task is not running is started only
    /// if `start()` says so (this process has sockets in it): otherwise
    /// whoever enters later reads the log anyway.
    pub fn deliver(
        &self,
        room: &str,
        context: &RoomContext,
        after: i64,
        messages: Vec<ChatMessage>,
        start: impl FnOnce() -> bool,
    ) -> Result<(), ChatError> {
        if !self.lock().contains_key(room) && !start() {
            return Ok(());
        }
        let deliver = Control::Deliver { after, messages };
        self.command(room, context, Command::Control(deliver))
    }
    // ANCHOR_END: deliver

    /// The rooms whose tasks are running or ran: this process may have
    /// sockets in them.
    pub fn known(&self) -> Vec<String> {
        let mut rooms: Vec<String> = self.lock().keys().cloned().collect();
        rooms.extend(lock(&self.retired_at).keys().cloned());
        rooms.sort_unstable();
        rooms.dedup();
        rooms
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
    fn retire(
        &self,
        room: &str,
        broadcast_upto: i64,
        commands: &mpsc::UnboundedReceiver<Command>,
    ) -> bool {
        let mut rooms = self.lock();
        if !commands.is_empty() {
            return false;
        }
        // Noted before the room is free for a new task, which reads it.
        lock(&self.retired_at).insert(room.to_owned(), broadcast_upto);
        rooms.remove(room);
        true
    }

    fn retired_at(&self, room: &str) -> Option<i64> {
        lock(&self.retired_at).get(room).copied()
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
    /// Where the room's previous task had broadcast up to, if it had one.
    retired_at: Option<i64>,
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
        retired_at: sequencers.retired_at(&name),
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
            Err(_idle) if sequencers.retire(&room.name, room.broadcast_upto, &commands) => {
                return;
            }
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
        let stored = self.context.store.insert_batch(&self.name, &messages).await;
        let inserted = started.elapsed();
        let mut fresh = Vec::new();
        for logged in stored.iter().flatten() {
            if let Stored::New(message) = &logged.stored {
                // Another process stored messages in between: those first.
                if let Some(after) = logged.after {
                    self.read_gap(&mut fresh, after).await;
                }
                fresh.push(message.clone());
            }
        }
        let after = self.broadcast_upto;
        if let Some(fresh) = self.broadcast(fresh).await {
            self.context.store.delivered(&self.name, after, &fresh);
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
                .map(|logged| match logged.stored {
                    Stored::New(message) | Stored::Again(message) => message,
                })
                .map_err(ChatError::from);
            // The sender may have gone: it is stored all the same.
            reply.send(answer).ok();
        }
    }

    /// Hands `fresh` (the messages after `broadcast_upto`, in id order) to
    /// the room's sockets, and remembers them. Returns them, if any.
    async fn broadcast(&mut self, fresh: Vec<ChatMessage>) -> Option<Arc<[ChatMessage]>> {
        let fresh: Arc<[ChatMessage]> = fresh.into();
        let last = fresh.last()?.id;
        self.fan_out(fresh.clone()).await;
        self.broadcast_upto = last;
        self.remember(&fresh);
        Some(fresh)
    }

    /// Gives `messages` to the room's sockets, with one deadline for the
    /// whole batch, not one per message: through a remote adapter whose
    /// server is down, 512 messages waiting their own deadline each would hold
    /// the room for 17 minutes.
    async fn fan_out(&self, messages: Arc<[ChatMessage]>) {
        let count = messages.len();
        let delivering = (self.context.fanout)(self.name.clone(), messages);
        if tokio::time::timeout(BROADCAST_DEADLINE, delivering)
            .await
            .is_err()
        {
            tracing::warn!(
                room = %self.name,
                messages = count,
                "gave up broadcasting a batch after {BROADCAST_DEADLINE:?}: \
                 it is stored, and sockets that missed it catch up when \
                 they reconnect"
            );
        }
    }

    // ANCHOR_END: store_and_broadcast

    // ANCHOR: read_gap
    /// Adds to `fresh` (messages to broadcast after `broadcast_upto`, in id
    /// order) the room's messages up to `after` that it lacks: messages other
    /// processes stored, of which this one has not heard (yet, or ever: a
    /// notice lost on the way). Read from the log, which holds them all.
    async fn read_gap(&self, fresh: &mut Vec<ChatMessage>, after: i64) {
        let upto = fresh
            .last()
            .map_or(self.broadcast_upto, |message| message.id);
        if after <= upto {
            return;
        }
        let store = &self.context.store;
        match store.newest(&self.name, upto, after, GAP_LIMIT).await {
            Ok(page) => fresh.extend(page.messages),
            // Delivered without them: the room's sockets catch up when they
            // reconnect.
            Err(error) => tracing::error!(%error, room = %self.name, "cannot read a gap"),
        }
    }
    // ANCHOR_END: read_gap

    /// Delivers what another process stored: `messages`, the first following
    /// `after`, and before them whatever this room lacks up to `after`.
    async fn deliver(&mut self, after: i64, messages: Vec<ChatMessage>) {
        let mut fresh = Vec::new();
        self.read_gap(&mut fresh, after).await;
        let upto = fresh
            .last()
            .map_or(self.broadcast_upto, |message| message.id);
        fresh.extend(messages.into_iter().filter(|message| message.id > upto));
        self.broadcast(fresh).await;
    }

    /// Delivers every message the log holds that this room has not
    /// broadcast: before a socket whose offset is beyond `broadcast_upto`
    /// (it saw them through another process) enters, so that it does not
    /// get them again after entering.
    async fn catch_up_with_log(&mut self) {
        match self.context.store.last_id(&self.name).await {
            Ok(last) => self.deliver(last, Vec::new()).await,
            Err(error) => tracing::error!(%error, room = %self.name, "cannot read the newest id"),
        }
    }

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
        // Sockets stayed in the room while it had no task; messages other
        // processes stored meanwhile are theirs, if this process delivers them
        // (a shared log: through an adapter, their own process broadcast them).
        let retired_at = self.retired_at.take();
        if let Some(retired_at) = retired_at.filter(|_| self.context.store.shared()) {
            let missed: Vec<ChatMessage> = if retired_at >= self.recent_from {
                let start = self
                    .recent
                    .partition_point(|message| message.id <= retired_at);
                self.recent[start..].to_vec()
            } else {
                let store = &self.context.store;
                let page = store.newest(&self.name, retired_at, self.broadcast_upto, GAP_LIMIT);
                page.await?.messages
            };
            if !missed.is_empty() {
                self.fan_out(missed.into()).await;
            }
        }
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
                if offset.is_some_and(|offset| offset > self.broadcast_upto) {
                    self.catch_up_with_log().await;
                }
                let entered = match self.catchup(offset) {
                    Some(catchup) => FromMemory::Entered(enter(catchup)),
                    None => FromMemory::TooOld(enter),
                };
                reply.send(entered).ok();
            }
            Control::Reload { reply } => {
                reply.send(self.load().await.map_err(ChatError::from)).ok();
            }
            Control::Deliver { after, messages } => self.deliver(after, messages).await,
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding these locks, so a poisoned one is sound.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// A fanout that never finishes, as a broadcast through a remote adapter
    /// does while the adapter's server is down: the room gives each batch one
    /// deadline, acknowledges its senders (their messages are stored), and
    /// goes on with the next batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fanout_that_hangs_costs_each_batch_one_deadline_and_the_room_goes_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("chat.db").display());
        let pool = step05_chat::db::open_database(&url)
            .await
            .expect("database");
        sqlx::query(
            "INSERT INTO users (username, password_hash, created_at) VALUES ('alice', 'x', 0)",
        )
        .execute(&pool)
        .await
        .expect("a user");
        let context = RoomContext {
            store: MessageStore::new(pool).into(),
            fanout: Arc::new(|_, _| Box::pin(std::future::pending())),
            history_cap: i64::MAX,
        };
        let sequencers = Sequencers::new(BackgroundTasks::default());
        let user = User {
            id: 1,
            username: "alice".into(),
        };
        let sends = (0..600).map(|n| {
            let message = NewMessage {
                user: user.clone(),
                text: format!("message {n}"),
                client_offset: None,
            };
            sequencers.send("general", &context, message, InOrder::first())
        });
        // One deadline per message would take 600 × 2 s = 20 minutes; one per
        // batch takes a few deadlines (the batches hold up to 512 messages).
        let limit = BROADCAST_DEADLINE * 10;
        let stored = tokio::time::timeout(limit, futures_util::future::join_all(sends))
            .await
            .expect("every sender is answered within a few deadlines");
        let ids: Vec<i64> = stored
            .into_iter()
            .map(|stored| stored.expect("stored").id)
            .collect();
        assert_eq!(
            ids,
            (1..=600).collect::<Vec<_>>(),
            "stored once each, in order"
        );
    }
}
