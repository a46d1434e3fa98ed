//! The chat itself: what happens on each Socket.IO event.
//!
//! Every handler here can rely on one thing: step 4's `authenticate_socket` ran
//! first, so the socket carries the `User` of its session, the `socket.user` of
//! the Node.js walkthrough. No handler ever reads a user name from a client's
//! payload: a message is always signed by the session, which is the whole point
//! of authenticating the socket.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use socketioxide::operators::BroadcastOperators;
use socketioxide::{BroadcastError, SocketError, SocketIo};
use step02_sessions::BackgroundTasks;
use step03_passport_like_auth::User;
use step04_socket_middleware::InOrder;
use tokio::sync::Semaphore;

use crate::delivery::{self, Encoded};
use crate::log::Messages;
use crate::presence::Presence;
use crate::quotas::Quotas;
use crate::sequencer::{
    Catchup, Enter, EnterWith, Fanout, FromMemory, History, RoomContext, Sequencers,
};
use step04_socket_middleware::{Chores, FairRoom, RateLimit, Strikes, UNLIMITED_RATE, let_go};
use step05_chat::limits::ChatLimits;
use step05_chat::messages::{ChatMessage, HISTORY_LIMIT, NewMessage, Page};
use step05_chat::validation::{InputError, parse_chat_message, parse_room};

/// The room every socket is in, and cannot leave.
pub const GENERAL: &str = "general";
/// How long presence changes in a room are gathered before the room is told:
/// ten tabs opening at once, or a script joining and leaving, make one
/// `presence` event, not ten.
const PRESENCE_EVERY: Duration = Duration::from_millis(100);

/// The most `presence change` packets a room sends a second: a room of more
/// than 500 sockets hears of its changes less often than every
/// [`PRESENCE_EVERY`] (10,000 sockets: every 2 seconds).
const PRESENCE_PACKETS_PER_SECOND: f64 = 5_000.0;

/// At most this many missed messages are replayed on reconnection, the newest
/// ones; a client that missed more is told so (`"truncated": true` in its
/// `history`).
pub const CATCH_UP_LIMIT: i64 = 1000;
/// How many sockets may read their history and catch-up from the database at
/// once. Each read is up to 1,050 rows; a flood of reconnections must not take
/// every connection of the pool from the messages being stored.
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
    /// Too many messages too fast.
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

/// Everything the chat handlers share. Cheap to clone: every field is a handle.
#[derive(Debug, Clone)]
pub struct Chat {
    /// The messages: step 5's SQLite table, or a log shared by a cluster.
    pub messages: Messages,
    /// Who is online where.
    pub presence: Presence,
    /// How fast each user may send messages.
    pub limiter: RateLimit<i64>,
    /// How fast each user may send `typing` (cheap for them, a broadcast for
    /// us).
    typing_limiter: RateLimit<i64>,
    /// Each room's order: store, broadcast, acknowledge (see `sequencer`).
    sequencers: Sequencers,
    catch_ups: Arc<Semaphore>,
    /// Whether new messages go out as one broadcast through the adapter (see
    /// `fanout`).
    through_adapter: bool,
    limits: ChatLimits,
    /// Sockets per user, rooms per socket.
    quotas: Quotas,
    /// Messages per second in one room, from everyone together, shared
    /// fairly among the senders (step 4's `FairRoom`).
    room_limiter: FairRoom,
    /// Joins and leaves per user.
    room_changes: RateLimit<i64>,
    /// Refused events per user, before the socket that keeps trying is
    /// disconnected: every refusal `answer` sends counts.
    strikes: Strikes,
    /// Rooms whose presence change is about to be announced.
    presence_due: Arc<Mutex<HashSet<String>>>,
    /// Users per page of a room's online list.
    presence_page: usize,
    /// The jobs that run beside the handlers (the rooms' tasks, housekeeping).
    tasks: BackgroundTasks,
    /// How fast each user may ask for pages of online lists.
    page_limiter: RateLimit<i64>,
    /// Rooms that may have grown past `ROOM_HISTORY_CAP` (step 5's retention),
    /// and that cap (`i64::MAX`: none).
    retention: Chores,
    history_cap: Arc<AtomicI64>,
}

impl Chat {
    /// A chat over `messages`, with `limiter` for `chat message`.
    pub fn new(messages: impl Into<Messages>, limiter: RateLimit<i64>) -> Self {
        let tasks = BackgroundTasks::default();
        // Rooms noted as they grow are trimmed, off the rooms' tasks (step 5's
        // `MessageStore::trim`), to the cap `with_limits` sets.
        let history_cap = Arc::new(AtomicI64::new(i64::MAX));
        let messages: Messages = messages.into();
        let (store, cap) = (messages.clone(), history_cap.clone());
        let retention = Chores::start(&tasks, move |room| {
            store.clone().trim(room, cap.load(Ordering::Relaxed))
        });
        Chat {
            messages,
            presence: Presence::default(),
            limiter,
            typing_limiter: RateLimit::new(5.0, 2.0),
            sequencers: Sequencers::new(tasks.clone()),
            catch_ups: Arc::new(Semaphore::new(CONCURRENT_CATCH_UPS)),
            through_adapter: false,
            limits: ChatLimits::default(),
            quotas: Quotas::default(),
            // Set from the limits by `with_limits`, just below.
            room_limiter: FairRoom::new(UNLIMITED_RATE, UNLIMITED_RATE),
            room_changes: RateLimit::unlimited(),
            strikes: Strikes::new(u32::MAX),
            presence_due: Arc::default(),
            presence_page: crate::presence::PRESENCE_PAGE,
            page_limiter: RateLimit::new(20.0, 10.0),
            tasks,
            retention,
            history_cap,
        }
        .with_limits(ChatLimits::default())
    }

    // ANCHOR: with_limits
    /// The same chat with `limits` (see [`step05_chat::limits`]).
    pub fn with_limits(mut self, limits: ChatLimits) -> Self {
        let (room, changes) = (
            limits.room_messages_per_second,
            limits.room_changes_per_second,
        );
        self.room_limiter = FairRoom::new(room * 2.0, room);
        self.room_changes = RateLimit::new(changes * 5.0, changes);
        self.strikes = Strikes::new(limits.refusals_per_10s);
        (self.history_cap).store(limits.room_history_cap, Ordering::Relaxed);
        if !limits.enabled {
            self.limiter = RateLimit::unlimited();
            self.typing_limiter = RateLimit::unlimited();
            self.page_limiter = RateLimit::unlimited();
        }
        self.limits = limits;
        self
    }
    // ANCHOR_END: with_limits

    // ANCHOR: limited
    /// `Ok` if `allowed`; otherwise `RateLimited`. Like every refusal, it is a
    /// strike against the user when `answer` sends it: a person who is refused
    /// now and then stays connected; a socket that keeps sending far past its
    /// limits (more than `refusals_per_10s` refusals) is disconnected.
    fn limited(allowed: bool) -> Result<(), ChatError> {
        allowed.then_some(()).ok_or(ChatError::RateLimited)
    }
    // ANCHOR_END: limited

    /// The same chat, with `users` per page of a room's online list.
    pub fn with_presence_page(mut self, users: usize) -> Self {
        self.presence_page = users.max(1);
        self
    }

    /// The same chat, broadcasting each new message once through the Socket.IO
    /// adapter rather than sending it to each local socket, and taking the
    /// database's newest id as a room's watermark. For an adapter that reaches
    /// sockets this process does not hold (chapter "Scaling out with Redis").
    pub fn broadcast_through_adapter(mut self) -> Self {
        self.through_adapter = true;
        self
    }

    /// The chat's background jobs: the rooms' tasks and the housekeeping. The
    /// server's owner stops them once it has stopped serving (see `main`).
    pub fn tasks(&self) -> &BackgroundTasks {
        &self.tasks
    }

    /// The id up to which `room`'s messages have been broadcast (see
    /// `Sequencers::watermark`).
    ///
    /// Through the adapter, other processes may store and broadcast too, and
    /// this one's sequencer does not see their messages: the database's newest
    /// id is the best answer there, and "exactly once on entering" holds per
    /// process only (chapter "Scaling out with Redis").
    async fn watermark(&self, room: &str, context: &RoomContext) -> Result<i64, ChatError> {
        if self.through_adapter {
            return Ok(self.messages.last_id(room).await?);
        }
        self.sequencers.watermark(room, context).await
    }

    /// Tells `room`'s sequencer that stored messages changed some other way
    /// than through [`send_message`] (an edit, a delete), so that it reads them
    /// again: it keeps the newest in memory for the sockets that enter. Call it
    /// after the change, before telling the room.
    pub async fn reload_room<A: Adapter>(
        &self,
        socket: &SocketRef<A>,
        room: &str,
    ) -> Result<(), ChatError> {
        let context = self.room_context(socket);
        self.sequencers.reload(room, &context).await
    }

    // ANCHOR: deliver_from_elsewhere
    /// Messages of `room` that another process stored (the first follows the
    /// message `after`), for this process's sockets in the room: its
    /// sequencer delivers them in order, after anything it lacks before
    /// them, and skips any it has delivered already (chapter "Scaling out
    /// with Redis"). With no sockets here in the room, nothing to do.
    pub fn deliver_from_elsewhere<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        room: &str,
        after: i64,
        messages: Vec<ChatMessage>,
    ) -> Result<(), ChatError> {
        let namespace = io.within(Vec::<String>::new());
        let here = namespace.clone().within(room.to_owned());
        let context = RoomContext {
            store: self.messages.clone(),
            fanout: fanout_to(namespace, false),
            history_cap: self.history_cap.load(Ordering::Relaxed),
        };
        let sequencers = &self.sequencers;
        if messages.is_empty() && here.clone().sockets().is_empty() {
            // A sweep's "the room is at `after`", for a room with no socket
            // here: nothing to deliver, and no reason to keep its task alive.
            return Ok(());
        }
        let start = move || !here.sockets().is_empty();
        sequencers.deliver(room, &context, after, messages, start)
    }
    // ANCHOR_END: deliver_from_elsewhere

    /// The rooms whose sequencers run, or ran, in this process: the rooms
    /// where it may have sockets.
    pub fn known_rooms(&self) -> Vec<String> {
        self.sequencers.known()
    }

    /// What a room's sequencer needs, reaching the room through `socket`'s
    /// namespace.
    fn room_context<A: Adapter>(&self, socket: &SocketRef<A>) -> RoomContext {
        RoomContext {
            store: self.messages.clone(),
            fanout: fanout(socket, self.through_adapter),
            history_cap: self.history_cap.load(Ordering::Relaxed),
        }
    }
}

// ANCHOR: fanout
/// How a room's new messages reach its sockets: each socket gets each message
/// through [`delivery::send`], so a socket that cannot keep up is
/// resynchronised, never skipped.
///
/// Each message is serialised once for the whole room ([`Encoded`]), as a
/// broadcast would. (A broadcast, `io.within(room).emit(..)`, skips a full
/// socket in silence. It is the only way to reach the sockets of other
/// processes, so `broadcast_through_adapter` uses it, with that limit: chapter
/// "Scaling out with Redis".)
fn fanout<A: Adapter>(socket: &SocketRef<A>, through_adapter: bool) -> Fanout {
    // The namespace, not the socket: a room's task outlives the socket whose
    // event started it, and must not keep that socket (and its queue) alive.
    fanout_to(socket.within(Vec::<String>::new()), through_adapter)
}

/// [`fanout`], given the namespace.
fn fanout_to<A: Adapter>(namespace: BroadcastOperators<A>, through_adapter: bool) -> Fanout {
    Arc::new(move |room: String, batch: Arc<[ChatMessage]>| {
        let within = namespace.clone().within(room);
        Box::pin(async move {
            if through_adapter {
                // The sequencer gives the whole batch one deadline.
                for message in batch.iter() {
                    let emit = within.clone().emit("chat message", message);
                    broadcast("a message", emit).await;
                }
                return;
            }
            let encoded: Vec<Encoded> = batch.iter().filter_map(encode).collect();
            for member in within.sockets() {
                for message in &encoded {
                    if !delivery::send(&member, "chat message", message) {
                        // Gone, or resynchronising: it catches up on
                        // reconnection.
                        break;
                    }
                }
            }
        })
    })
}
// ANCHOR_END: fanout

/// A message as JSON, once for the whole room. (Serialising a `ChatMessage`
/// cannot fail: no maps with non-string keys, no floats that JSON cannot hold.)
fn encode(message: &ChatMessage) -> Option<Encoded> {
    Encoded::new(message)
        .inspect_err(|error| tracing::error!(%error, id = message.id, "cannot encode"))
        .ok()
}

// ANCHOR: register
/// The last connect middleware: registers every chat event handler before
/// the client is told it is connected, so no event sent the instant it
/// connects is lost (see chapter 4).
///
/// Why `<A: Adapter>`, here and on every handler: `A` is the Socket.IO
/// *adapter*, the part that knows which sockets are in which room. This
/// crate only uses the default one, `LocalAdapter` (`SocketRef` without
/// `<A>` means `SocketRef<LocalAdapter>`). The handlers are generic only so
/// that the chapter "Scaling out with Redis" can reuse them unchanged with
/// its Redis adapter. Read `SocketRef<A>` as "a socket".
pub async fn register_chat_handlers<A: Adapter>(socket: SocketRef<A>) -> Result<(), Infallible> {
    socket.on("chat message", on_chat_message::<A>);
    socket.on("join", on_join::<A>);
    socket.on("leave", on_leave::<A>);
    socket.on("typing", on_typing::<A>);
    socket.on("presence page", on_presence_page::<A>);
    socket.on_disconnect(on_disconnect::<A>);
    Ok(())
}
// ANCHOR_END: register

// ANCHOR: admit_socket
/// A connect middleware: at most `MAX_SOCKETS_PER_USER` sockets per user. The
/// refused client gets a `connect_error` whose message says why.
pub async fn admit_socket<A: Adapter>(
    socket: SocketRef<A>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
) -> Result<(), ChatError> {
    let max = chat.limits.sockets_per_user;
    let Some(holding) = chat.quotas.admit(user.id, socket.id, max) else {
        tracing::info!(user = %user.username, "refused a socket: too many");
        return Err(ChatError::TooManySockets);
    };
    // Given back by `on_disconnect`, or dropped with a socket that never
    // connected.
    socket.extensions.insert(Arc::new(holding));
    chat.strikes.count_on(&socket, user.id); // every refusal counts
    Ok(())
}
// ANCHOR_END: admit_socket

/// What a client may send in the handshake's `auth`: `io({ auth: {
/// serverOffset: 41 } })`, the id of the last message it saw, so the server can
/// replay what it missed.
#[derive(Debug, Deserialize)]
pub struct HandshakeAuth {
    #[serde(rename = "serverOffset")]
    server_offset: Option<i64>,
}

// ANCHOR: on_connect
/// Runs once the socket is admitted: put it in `general`, send the history,
/// replay what it missed while disconnected, and tell the room who is online.
pub async fn on_connect<A: Adapter>(
    io: SocketIo<A>,
    socket: SocketRef<A>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(auth): TryData<HandshakeAuth>,
) {
    let server_offset = auth.ok().and_then(|auth| auth.server_offset);
    let entered = enter_room(&socket, &chat, GENERAL, server_offset, Greeting::History);
    let replayed = match entered.await {
        Ok(replayed) => replayed,
        Err(error) => {
            // Not left connected outside `general`, shown online, hearing
            // nothing: the client reconnects (and tries again) or says so.
            tracing::error!(%error, "could not enter general: disconnecting");
            socket.disconnect().ok();
            return;
        }
    };
    tracing::info!(
        user = %user.username,
        sid = %socket.id,
        replayed,
        "joined general"
    );
    announce_presence(&io, &socket, &chat, &user, GENERAL).await;
}
// ANCHOR_END: on_connect

// ANCHOR: enter_room
/// Puts the socket in `room`, `general` on connect or any room on `join`:
/// greets it with the room's history, sends each message after `offset` (the
/// last one the client saw in `room`) as a `chat message` event, in order,
/// then joins it to the room. Returns how many were replayed.
///
/// Usually all of it comes from the memory of the room's sequencer, in one
/// step: a new socket gets the newest messages, serialised once for every
/// socket that enters before the next message. A socket that was away longer
/// than the sequencer remembers reads the database instead, outside the
/// sequencer, so the room does not wait for it; the sequencer then adds the
/// gap (what was broadcast during the reads) and puts the socket in the room.
async fn enter_room<A: Adapter>(
    socket: &SocketRef<A>,
    chat: &Chat,
    room: &str,
    offset: Option<i64>,
    greeting: Greeting<A>,
) -> Result<usize, ChatError> {
    let context = chat.room_context(socket);
    let mut enter = enter_with(socket.clone(), room.to_owned(), greeting);
    // Through an adapter, other processes store messages this one's sequencer
    // never sees: only the database knows them all.
    if !chat.through_adapter {
        let sequencers = &chat.sequencers;
        let entered = sequencers.enter_from_memory(room, &context, offset, enter);
        match entered.await? {
            FromMemory::Entered(replayed) => return Ok(replayed),
            FromMemory::TooOld(not_run) => enter = not_run,
        }
    }
    enter_from_database(socket, chat, room, &context, offset, enter).await
}
// ANCHOR_END: enter_room

// ANCHOR: catch_up_read
/// [`enter_room`] for a socket that was away longer than the sequencer
/// remembers (and for every socket, through an adapter): reads the history and
/// the missed messages from the database, outside the sequencer, then lets the
/// sequencer run `enter` with them and with what was broadcast meanwhile.
async fn enter_from_database<A: Adapter>(
    socket: &SocketRef<A>,
    chat: &Chat,
    room: &str,
    context: &RoomContext,
    offset: Option<i64>,
    enter: EnterWith,
) -> Result<usize, ChatError> {
    let upto = chat.watermark(room, context).await?;
    let (history, missed) = {
        let _turn = chat.catch_ups.acquire().await;
        if !socket.connected() {
            return Ok(0); // gone while waiting: nothing to read for
        }
        let store = &chat.messages;
        // The window the client shows ends where it left off; the rest is
        // replayed.
        let shown = offset.unwrap_or(upto).min(upto);
        let history = store.newest(room, 0, shown, HISTORY_LIMIT).await?;
        let missed = match offset {
            Some(offset) => store.newest(room, offset, upto, CATCH_UP_LIMIT).await?,
            None => Page::default(),
        };
        (history.messages, missed)
    };
    // ANCHOR_END: catch_up_read
    // ANCHOR: catch_up_send
    let enter: Enter = Box::new(move |since_read: &[ChatMessage]| {
        let mut owed = missed.messages;
        owed.extend_from_slice(since_read);
        // Still the newest `CATCH_UP_LIMIT`, however many came during the
        // reads.
        let over = owed.len().saturating_sub(CATCH_UP_LIMIT as usize);
        enter(Catchup {
            history: History::Messages(&history),
            missed: &owed[over..],
            truncated: missed.truncated || over > 0,
        })
    });
    chat.sequencers.enter(room, context, upto, enter).await
}
// ANCHOR_END: catch_up_send

// ANCHOR: send_catchup
/// What a socket entering `room` runs inside the room's sequencer, once it
/// knows what the socket is owed: the greeting with the history, then each
/// missed message, then the join. Returns how many missed messages it sent.
fn enter_with<A: Adapter>(socket: SocketRef<A>, room: String, greeting: Greeting<A>) -> EnterWith {
    Box::new(move |catchup: Catchup<'_>| {
        if !greeting.send(&socket, &room, catchup.history, catchup.truncated) {
            return 0;
        }
        for message in catchup.missed {
            if !delivery::send(&socket, "chat message", message) {
                return 0; // resynchronising: it catches up on reconnection
            }
        }
        // A socket that closed meanwhile must not be left in the room.
        if socket.connected() {
            socket.join(room);
        }
        catchup.missed.len()
    })
}
// ANCHOR_END: send_catchup

// ANCHOR: chat_message
/// `chat message`: store the message, then send it to everybody in the room,
/// sender included.
async fn on_chat_message<A: Adapter>(
    socket: SocketRef<A>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
    mut turn: InOrder,
) {
    // This socket's messages reach the sequencer in the order they came
    // (step 4's `InOrder`); the next one goes as soon as this one is queued.
    turn.wait().await;
    let payload = payload.unwrap_or(Value::Null);
    let sent = send_message(&socket, &chat, &user, payload, turn).await;
    answer(
        &socket,
        ack,
        sent.map(|message| json!({ "ok": true, "id": message.id })),
    );
}

/// Acknowledges with `ok` as it is, or with `{"error": "..."}`: a refusal,
/// and a strike against the socket's user (see `Strikes::count_on`).
pub fn answer<A: Adapter>(
    socket: &SocketRef<A>,
    ack: AckSender<A>,
    result: Result<Value, ChatError>,
) {
    let reply = result.unwrap_or_else(|error| {
        step04_socket_middleware::fair_use::strike(socket);
        json!({ "error": error.to_string() })
    });
    // The acknowledgement is optional for the client; without one, `send` fails
    // harmlessly. If the socket's queue is full the client times out and sends
    // again, and the retry is answered from the database (see `Stored::Again`).
    ack.send(&reply).ok();
}
// ANCHOR_END: chat_message

// ANCHOR: send_message
/// `chat message` without its acknowledgement: checks, limits, stores and
/// broadcasts one message from `user`. `turn` ends once the message is queued
/// in its room's sequencer.
pub async fn send_message<A: Adapter>(
    socket: &SocketRef<A>,
    chat: &Chat,
    user: &User,
    payload: Value,
    turn: InOrder,
) -> Result<ChatMessage, ChatError> {
    let outgoing = parse_chat_message(&payload)?;
    if !has_joined(socket, &outgoing.room) {
        return Err(ChatError::NotInRoom);
    }
    let allowed =
        chat.limiter.allows(&user.id) && chat.room_limiter.allows(&outgoing.room, user.id);
    Chat::limited(allowed)?;
    // The author is the socket's user, from the session. Whatever "user" the
    // payload claimed was never even parsed.
    let message = NewMessage {
        user: user.clone(),
        text: outgoing.text,
        client_offset: outgoing.client_offset,
    };
    let room = chat.room_context(socket);
    let sent = chat
        .sequencers
        .send(&outgoing.room, &room, message, turn)
        .await;
    chat.retention.note(&outgoing.room); // trimmed later, if need be
    sent
}
// ANCHOR_END: send_message

// ANCHOR: broadcast
/// How long a broadcast may take. In one process it is instant; through a
/// remote adapter (chapter "Scaling out with Redis") it may wait, and hold the
/// room's sequencer, for as long as the adapter's server is unreachable. A
/// batch of messages gets one such deadline in all, not one per message.
pub const BROADCAST_DEADLINE: Duration = Duration::from_secs(2);

/// Awaits a broadcast, but not for longer than [`BROADCAST_DEADLINE`]; a
/// failure is logged, never sent to the client whose event caused it.
async fn broadcast(what: &str, emit: impl Future<Output = Result<(), BroadcastError>>) {
    match tokio::time::timeout(BROADCAST_DEADLINE, emit).await {
        Ok(Ok(())) => {}
        // A tab closing while the broadcast went out: nothing is wrong.
        Ok(Err(error)) if only_closed_sockets(&error) => {
            tracing::debug!(%error, "{what}: some sockets were already closed");
        }
        Ok(Err(error)) => tracing::warn!(%error, "could not broadcast {what}"),
        Err(_) => tracing::warn!("gave up broadcasting {what} after {BROADCAST_DEADLINE:?}"),
    }
}

/// Whether every socket a broadcast missed was already closed.
fn only_closed_sockets(error: &BroadcastError) -> bool {
    matches!(error, BroadcastError::Socket(errors)
        if errors.iter().all(|error| matches!(error, SocketError::Closed)))
}
// ANCHOR_END: broadcast

/// Whether the socket may speak in `room`. `general` always counts as joined:
/// the socket is put there by `on_connect`, which may still be running when a
/// fast client sends its first message (and that message then reaches it
/// through `history`).
fn has_joined<A: Adapter>(socket: &SocketRef<A>, room: &str) -> bool {
    room == GENERAL || socket.rooms().iter().any(|joined| joined == room)
}

// ANCHOR: join
/// `join`: `"rust"`, or `{"room": "rust", "serverOffset": 41}` from a client
/// coming back with the last message it saw there. The acknowledgement has the
/// room's history up to that message; what came after it follows, in order.
async fn on_join<A: Adapter>(
    io: SocketIo<A>,
    socket: SocketRef<A>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
    mut turn: InOrder, // a join, then a message to that room: in that order
) {
    turn.wait().await;
    let payload = payload.unwrap_or(Value::Null);
    let room = match room_to_join(&socket, &chat, &user, &payload) {
        Ok(room) => room,
        Err(error) => return answer(&socket, ack, Err(error)),
    };
    // Still entering `general` (the connect's entry, queued in the room's task),
    // which sends the history and what was missed, once: a second entry would
    // send them again.
    if room == GENERAL && !socket.rooms().iter().any(|joined| *joined == room) {
        let entering = json!({ "ok": true, "room": room, "history": [] });
        return answer(&socket, ack, Ok(entering));
    }
    let offset = payload["serverOffset"].as_i64(); // not an integer: none
    let greeting = Greeting::Join(ack);
    if let Err(error) = enter_room(&socket, &chat, &room, offset, greeting).await {
        tracing::error!(%error, %room, "could not join");
        chat.quotas.give_back_room(socket.id, &room);
        return;
    }
    announce_presence(&io, &socket, &chat, &user, &room).await;
}

/// The room a `join` payload names, if this socket may join it; its place among
/// the socket's rooms is taken at once, in the same step as the check.
fn room_to_join<A: Adapter>(
    socket: &SocketRef<A>,
    chat: &Chat,
    user: &User,
    payload: &Value,
) -> Result<String, ChatError> {
    let room = parse_room(payload.get("room").unwrap_or(payload))?;
    Chat::limited(chat.room_changes.allows(&user.id))?;
    let rooms = chat.limits.rooms_per_socket;
    if room != GENERAL && !chat.quotas.take_room(socket.id, &room, rooms) {
        return Err(ChatError::TooManyRooms);
    }
    Ok(room)
}
// ANCHOR_END: join

// ANCHOR: join_reply
/// How a socket entering a room is told what the room's window shows.
enum Greeting<A: Adapter> {
    /// On connect, in `general`: a `history` event.
    History,
    /// On `join`: the acknowledgement.
    Join(AckSender<A>),
}

impl<A: Adapter> Greeting<A> {
    /// Sends `history`; whether it was queued.
    fn send(
        self,
        socket: &SocketRef<A>,
        room: &str,
        history: History<'_>,
        truncated: bool,
    ) -> bool {
        match self {
            Greeting::History => {
                let messages = history;
                let event = HistoryEvent {
                    room,
                    messages,
                    truncated,
                };
                delivery::send(socket, "history", &event)
            }
            Greeting::Join(ack) => {
                let ok = true;
                let reply = JoinReply {
                    ok,
                    room,
                    history,
                    truncated,
                };
                delivery::acknowledge(socket, ack, &reply)
            }
        }
    }
}

/// The `history` event: `{"room": "general", "messages": [...], "truncated":
/// false}`.
#[derive(Serialize)]
struct HistoryEvent<'a> {
    room: &'a str,
    messages: History<'a>,
    truncated: bool,
}

/// A `join`'s acknowledgement: `{"ok": true, "room": "rust", "history":
/// [...], "truncated": false}`.
#[derive(Serialize)]
struct JoinReply<'a> {
    ok: bool,
    room: &'a str,
    history: History<'a>,
    truncated: bool,
}
// ANCHOR_END: join_reply

/// `leave`: the opposite of `join`. Leaving a room one is not in is not an
/// error.
async fn on_leave<A: Adapter>(
    io: SocketIo<A>,
    socket: SocketRef<A>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
    mut turn: InOrder,
) {
    turn.wait().await;
    let payload = payload.unwrap_or(Value::Null);
    answer(
        &socket,
        ack,
        leave_room(&io, &socket, &chat, &user, payload).await,
    );
}

async fn leave_room<A: Adapter>(
    io: &SocketIo<A>,
    socket: &SocketRef<A>,
    chat: &Chat,
    user: &User,
    payload: Value,
) -> Result<Value, ChatError> {
    let room = parse_room(&payload)?;
    if room == GENERAL {
        return Err(ChatError::CannotLeaveGeneral);
    }
    Chat::limited(chat.room_changes.allows(&user.id))?;
    socket.leave(room.clone());
    chat.quotas.give_back_room(socket.id, &room);
    if chat.presence.leave(socket.id, &room) {
        broadcast_presence(io, chat, &room).await;
    }
    Ok(json!({ "ok": true }))
}

// ANCHOR: typing
/// `typing`: tell the *others* in the room. Fire-and-forget, but rate-limited,
/// because one cheap event from a client costs a broadcast to everyone in the
/// room.
async fn on_typing<A: Adapter>(
    socket: SocketRef<A>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
    mut turn: InOrder,
) {
    turn.wait().await;
    answer(
        &socket,
        ack,
        tell_typing(&socket, &chat, &user, payload.unwrap_or(Value::Null)).await,
    );
}

async fn tell_typing<A: Adapter>(
    socket: &SocketRef<A>,
    chat: &Chat,
    user: &User,
    payload: Value,
) -> Result<Value, ChatError> {
    let room = parse_room(&payload["room"])?;
    if !has_joined(socket, &room) {
        return Err(ChatError::NotInRoom);
    }
    Chat::limited(chat.typing_limiter.allows(&user.id))?;
    let event = json!({ "room": room, "user": user });
    // `to` (unlike `within`) leaves the sender out: you know you are typing.
    broadcast("typing", socket.to(room).emit("typing", &event)).await;
    Ok(json!({ "ok": true }))
}
// ANCHOR_END: typing

/// A socket went away: if it was its user's last socket in a room, the room is
/// told.
async fn on_disconnect<A: Adapter>(
    io: SocketIo<A>,
    socket: SocketRef<A>,
    State(chat): State<Chat>,
) {
    chat.quotas.release(socket.id);
    let_go(&socket); // the watch on its session ends now
    for room in chat.presence.disconnect(socket.id) {
        broadcast_presence(&io, &chat, &room).await;
    }
}

// ANCHOR: presence
/// Counts the socket in `room` and sends it the room's list. The others hear of
/// a change of users (a user's first socket in, or last socket out) as a
/// `presence change`.
///
/// A socket that closed while it was being set up has already run
/// `on_disconnect`; counting it now would leave a ghost online for ever.
/// `Presence::join` checks `connected()` under the same lock `on_disconnect`
/// takes, so one of the two always sees the other.
async fn announce_presence<A: Adapter>(
    io: &SocketIo<A>,
    socket: &SocketRef<A>,
    chat: &Chat,
    user: &User,
    room: &str,
) {
    let came = chat
        .presence
        .join(socket.id, user, room, || socket.connected());
    if socket.connected() {
        match chat.presence.page(room, None, chat.presence_page) {
            Ok(page) => {
                delivery::send(socket, "presence", &*page);
            }
            Err(error) => {
                tracing::error!(%error, "cannot encode the presence list")
            }
        }
    }
    if came {
        broadcast_presence(io, chat, room).await;
    }
}
// ANCHOR_END: presence

// ANCHOR: presence_change
/// Tells `room` that its users changed. The changes of the next
/// [`PRESENCE_EVERY`] are gathered into one `presence change` (who came, who
/// went), sent to each socket.
async fn broadcast_presence<A: Adapter>(io: &SocketIo<A>, chat: &Chat, room: &str) {
    // Gathered: the first change schedules the announcement, later ones join
    // it.
    let newly_due = lock(&chat.presence_due).insert(room.to_owned());
    if newly_due {
        let announce = send_presence_change(io.clone(), chat.clone(), room.into());
        chat.tasks.spawn(announce);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding these locks, so a poisoned one is still
    // sound.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
// ANCHOR_END: presence_change

// ANCHOR: send_presence_change
/// Once [`PRESENCE_EVERY`] has passed, sends `room`'s gathered change to each
/// of its sockets.
async fn send_presence_change<A: Adapter>(io: SocketIo<A>, chat: Chat, room: String) {
    tokio::time::sleep(PRESENCE_EVERY).await;
    // Shutting down, the namespace is gone: nobody is left to tell.
    // (`io.within(..)` would panic here.)
    let Some(namespace) = io.of("/") else {
        return;
    };
    // A big room gathers longer: every change goes to every socket, and 10,000
    // sockets connecting at once (a restart) would otherwise each get a packet
    // every 100 ms, the storm's main cost (measured with perf).
    let members = namespace.clone().within(room.clone()).sockets().len() as f64;
    let wait = Duration::from_secs_f64(members / PRESENCE_PACKETS_PER_SECOND);
    tokio::time::sleep(wait.saturating_sub(PRESENCE_EVERY)).await;
    lock(&chat.presence_due).remove(&room);
    let Some(change) = chat.presence.take_change(&room) else {
        return;
    };
    // The list is state the page shows: a socket too slow for a change is
    // resynchronised (and gets a fresh list when it reconnects), never left
    // showing a stale one.
    let Ok(change) = Encoded::new(&change) else {
        return; // users and room names always serialise
    };
    for member in namespace.within(room).sockets() {
        delivery::send(&member, "presence change", &change);
    }
}
// ANCHOR_END: send_presence_change

// ANCHOR: presence_elsewhere
impl Chat {
    /// The same chat as one node of a cluster: its presence table also lists
    /// the users online through the other nodes, which the node tells it with
    /// [`Chat::presence_elsewhere`] (chapter "Scaling out with Redis").
    pub fn with_shared_presence(mut self) -> Self {
        self.presence = Presence::shared();
        self
    }

    /// Who is online in `room` through the other nodes of a cluster: this
    /// node's sockets in the room hear who came and went, as a `presence
    /// change`, like any other.
    pub async fn presence_elsewhere<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        room: &str,
        users: BTreeMap<i64, User>,
    ) {
        if self.presence.set_elsewhere(room, users) {
            broadcast_presence(io, self, room).await;
        }
    }
}
// ANCHOR_END: presence_elsewhere

// ANCHOR: presence_page
/// `presence page`: the next page of a room's online list, for a reader who
/// scrolls past the first one. `{"room": "general", "after": 42}` asks for the
/// users whose id comes after 42.
async fn on_presence_page<A: Adapter>(
    socket: SocketRef<A>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
    mut turn: InOrder, // after the join it follows
) {
    turn.wait().await;
    let payload = payload.unwrap_or(Value::Null);
    match next_presence_page(&socket, &chat, &user, &payload) {
        Ok(page) => drop(ack.send(&*page)),
        Err(error) => answer(&socket, ack, Err(error)),
    }
}

fn next_presence_page<A: Adapter>(
    socket: &SocketRef<A>,
    chat: &Chat,
    user: &User,
    payload: &Value,
) -> Result<Arc<Encoded>, ChatError> {
    let room = parse_room(&payload["room"])?;
    let after = payload["after"].as_i64().ok_or(InputError::InvalidAfter)?;
    if !has_joined(socket, &room) {
        return Err(ChatError::NotInRoom);
    }
    Chat::limited(chat.page_limiter.allows(&user.id))?;
    let page = chat.presence.page(&room, Some(after), chat.presence_page);
    page.map_err(|_| ChatError::Internal)
}
// ANCHOR_END: presence_page

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broadcast_that_missed_only_closed_sockets_is_not_worth_a_warning() {
        let closed = || SocketError::Closed;
        assert!(only_closed_sockets(&BroadcastError::Socket(vec![
            closed(),
            closed()
        ])));
        assert!(!only_closed_sockets(&BroadcastError::Socket(vec![
            closed(),
            SocketError::InternalChannelFull,
        ])));
    }
}
