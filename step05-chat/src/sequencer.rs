//! One task per room puts its messages in order: store, then broadcast, then acknowledge.
//!
//! The chat promises three things about a room:
//! 1. every message a client saw acknowledged is in the database (durable);
//! 2. every socket in the room gets every message once, in id order;
//! 3. a socket that enters the room (connects, reconnects, joins) gets every message exactly
//!    once: either in what it reads from the database, or live, never both, never neither.
//!
//! A lock per room held while a message is inserted and broadcast keeps those promises, but it
//! makes every message wait for its own database round trip, one after the other, and every
//! joining socket wait behind them (measured: p99 3.4 s at 200,000 deliveries/s; chapter 5).
//! Instead, each room has a *sequencer*: a task that owns the room's order. Handlers send it
//! commands through a channel:
//! - [`Sequencers::send`]: a message to store. The task takes every message waiting in its
//!   channel, stores them in ONE transaction, broadcasts them in id order, then acknowledges
//!   each sender. Under load, batches grow and the cost of a commit is shared (group commit).
//! - [`Sequencers::watermark`] and [`Sequencers::enter`]: how a socket enters the room without
//!   the room waiting for its database reads (see [`Sequencers::enter`]).
//!
//! It is the Rust version of a pattern Node servers get from their single thread: one place
//! where a room's events happen one at a time. Here that place is a task, and nothing else
//! has to wait for it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::chat::ChatError;
use crate::messages::{ChatMessage, MessageStore, NewMessage, Stored};

/// How a sequencer hands a batch of newly stored messages to the room's sockets. The chat
/// builds it from its `io` (see `chat::fanout`); tests can pass anything.
pub type Fanout = Arc<dyn Fn(String, Arc<[ChatMessage]>) -> Delivering + Send + Sync>;

/// A fanout's work in progress: awaited before the senders are acknowledged.
pub type Delivering = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a socket entering a room runs inside the sequencer, between two batches: given the
/// messages stored since its database read, it sends them and joins the Socket.IO room.
pub type Enter = Box<dyn FnOnce(&[ChatMessage]) + Send>;

/// The most messages stored in one transaction.
const MAX_BATCH: usize = 512;
/// How many recently stored messages a sequencer keeps, to fill the gap between a joining
/// socket's database read and its entry into the room.
const RECENT: usize = 1024;
/// A room quiet for this long stops its task (the next command starts a new one).
const IDLE: Duration = Duration::from_secs(30);

/// The sequencers of every room, started on first use. Cheap to clone.
#[derive(Clone, Default)]
pub struct Sequencers {
    rooms: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Command>>>>,
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
        reply: oneshot::Sender<()>,
    },
}

/// Everything a room's task needs to start.
#[derive(Clone)]
pub struct RoomContext {
    /// Where messages are stored.
    pub store: MessageStore,
    /// How they reach the room's sockets.
    pub fanout: Fanout,
}

impl std::fmt::Debug for RoomContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomContext").finish_non_exhaustive()
    }
}

impl Sequencers {
    // ANCHOR: send
    /// Stores `message` in `room`, broadcasts it, and returns it once it is durable.
    pub async fn send(
        &self,
        room: &str,
        context: &RoomContext,
        message: NewMessage,
    ) -> Result<ChatMessage, ChatError> {
        let (reply, stored) = oneshot::channel();
        self.command(room, context, Command::Send((message, reply)))?;
        // A dropped reply means the task ended before it saw the message: nothing was stored.
        stored.await.map_err(|_| ChatError::Internal)?
    }
    // ANCHOR_END: send

    // ANCHOR: enter
    /// The id up to which every message of `room` has been broadcast. A socket that reads the
    /// room's messages up to this id from the database, then calls [`Self::enter`] with it,
    /// misses nothing and gets nothing twice.
    pub async fn watermark(&self, room: &str, context: &RoomContext) -> Result<i64, ChatError> {
        let (reply, watermark) = oneshot::channel();
        self.command(
            room,
            context,
            Command::Control(Control::Watermark { reply }),
        )?;
        watermark.await.map_err(|_| ChatError::Internal)
    }

    /// Runs `enter` inside the room's task with the messages broadcast after `seen` (the
    /// socket has everything up to `seen` already): it sends them, then joins the room, and
    /// from then on every broadcast reaches it. Runs between two batches, so no message can
    /// slip between "sent the missing ones" and "joined".
    pub async fn enter(
        &self,
        room: &str,
        context: &RoomContext,
        seen: i64,
        enter: Enter,
    ) -> Result<(), ChatError> {
        let (reply, entered) = oneshot::channel();
        let control = Control::Enter { seen, enter, reply };
        self.command(room, context, Command::Control(control))?;
        entered.await.map_err(|_| ChatError::Internal)
    }
    // ANCHOR_END: enter

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
        tokio::spawn(run(
            self.clone(),
            room.to_owned(),
            context.clone(),
            commands,
        ));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Command>>> {
        // Nothing panics while holding it, so a poisoned map is still sound.
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the task of `room` may stop: nothing is waiting in its channel. Removes it from
    /// the map under the lock, so no new command can reach a task that is stopping.
    fn retire(&self, room: &str, commands: &mpsc::UnboundedReceiver<Command>) -> bool {
        let mut rooms = self.lock();
        if !commands.is_empty() {
            return false;
        }
        rooms.remove(room);
        true
    }
}

/// What a room's task remembers.
struct Room {
    name: String,
    context: RoomContext,
    /// Every message of the room up to this id has been broadcast.
    broadcast_upto: i64,
    /// The latest broadcast messages, oldest first; together with `recent_from`, what lets a
    /// joining socket catch up from memory.
    recent: VecDeque<ChatMessage>,
    /// Every message of the room with an id above this one is in `recent`.
    recent_from: i64,
}

// ANCHOR: run
/// The room's task: takes the commands waiting, in order; messages next to each other are
/// stored together.
async fn run(
    sequencers: Sequencers,
    name: String,
    context: RoomContext,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let broadcast_upto = match context.store.last_id(&name).await {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(%error, room = %name, "cannot read the room's last message");
            sequencers.lock().remove(&name);
            return; // dropping the commands tells their senders "internal error"
        }
    };
    let mut room = Room {
        name,
        context,
        broadcast_upto,
        recent: VecDeque::new(),
        recent_from: broadcast_upto,
    };
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
    /// Stores the batch in one transaction, broadcasts what is new in id order, then
    /// acknowledges every sender: an acknowledgement means "stored", never "maybe".
    async fn store_and_broadcast(&mut self, batch: &mut Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        let (messages, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let stored = self.context.store.insert_batch(&self.name, &messages).await;
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
        for (stored, reply) in stored.into_iter().zip(replies) {
            let answer = match stored {
                Ok(stored) => Ok(stored.message().clone()),
                Err(error) => Err(ChatError::from(error)),
            };
            reply.send(answer).ok(); // the sender may have gone: it is stored all the same
        }
    }
    // ANCHOR_END: store_and_broadcast

    fn remember(&mut self, messages: &[ChatMessage]) {
        self.recent.extend(messages.iter().cloned());
        while self.recent.len() > RECENT {
            if let Some(forgotten) = self.recent.pop_front() {
                self.recent_from = forgotten.id;
            }
        }
    }

    async fn handle(&mut self, control: Control) {
        match control {
            Control::Watermark { reply } => {
                reply.send(self.broadcast_upto).ok();
            }
            Control::Enter { seen, enter, reply } => {
                let missed = self.broadcast_since(seen).await;
                enter(&missed);
                reply.send(()).ok();
            }
        }
    }

    /// The room's messages broadcast after `seen`, oldest first: from memory, or, if more
    /// were broadcast meanwhile than it keeps (rare: that many during one socket's reads),
    /// from the database, while the room waits.
    async fn broadcast_since(&self, seen: i64) -> Vec<ChatMessage> {
        if seen >= self.recent_from {
            let start = self.recent.partition_point(|message| message.id <= seen);
            return self.recent.range(start..).cloned().collect();
        }
        let store = &self.context.store;
        match store
            .newest(&self.name, seen, self.broadcast_upto, i64::MAX)
            .await
        {
            Ok(page) => page.messages,
            Err(error) => {
                // The socket enters without them; the page's next reconnection catches up.
                tracing::error!(%error, room = %self.name, "cannot read the gap of a joiner");
                Vec::new()
            }
        }
    }
}
