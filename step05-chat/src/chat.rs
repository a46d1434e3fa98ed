//! The chat itself: what happens on each Socket.IO event.
//!
//! Every handler here can rely on one thing: step 4's `authenticate_socket` ran first, so the
//! socket carries the `User` of its session, the `socket.user` of the Node.js walkthrough. No
//! handler ever reads a user name from a client's payload: a message is always signed by the
//! session, which is the whole point of authenticating the socket.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use step03_passport_like_auth::User;
use tokio::sync::{Mutex, MutexGuard};

use crate::messages::{ChatMessage, HISTORY_LIMIT, MessageStore};
use crate::presence::Presence;
use crate::rate_limit::RateLimiter;
use crate::validation::{InputError, parse_chat_message, parse_room};

/// The room every socket is in, and cannot leave.
pub const GENERAL: &str = "general";
/// How many rooms (besides `general`) one socket may join: each costs the server memory.
pub const MAX_ROOMS_PER_SOCKET: usize = 20;
/// At most this many missed messages are replayed on reconnection; `history` covers the rest.
pub const CATCH_UP_LIMIT: i64 = 1000;

// ANCHOR: chat_error
/// Why an event was refused. The text goes back to the client in the acknowledgement,
/// `{"error": "..."}`, and the connection stays up.
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
    /// A socket asked to join more than [`MAX_ROOMS_PER_SOCKET`] rooms.
    #[error("too many rooms: leave one first")]
    TooManyRooms,
    /// `general` is home: everybody is always there.
    #[error("you cannot leave general")]
    CannotLeaveGeneral,
    /// The database failed. Logged in full on the server, never sent to the client.
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
    /// The messages, in SQLite.
    pub messages: MessageStore,
    /// Who is online where.
    pub presence: Presence,
    /// How fast each user may send messages.
    pub limiter: RateLimiter,
    /// How fast each user may send `typing` (cheap for them, a broadcast for us).
    typing_limiter: RateLimiter,
    locks: RoomLocks,
}

impl Chat {
    /// A chat over `messages`, with `limiter` for `chat message`.
    pub fn new(messages: MessageStore, limiter: RateLimiter) -> Self {
        Chat {
            messages,
            presence: Presence::default(),
            limiter,
            typing_limiter: RateLimiter::new(5, 2.0),
            locks: RoomLocks::default(),
        }
    }

    /// Drops the rate-limit buckets of users who have gone quiet, now and then, so the
    /// limiters' tables do not grow with every user who ever sent a message.
    pub fn spawn_housekeeping(&self) -> tokio::task::JoinHandle<()> {
        let chat = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                let now = std::time::Instant::now();
                chat.limiter.forget_idle(now);
                chat.typing_limiter.forget_idle(now);
            }
        })
    }
}

// ANCHOR: room_locks
/// One lock per room (well, per one of 64 stripes of rooms), held while a message is stored
/// and broadcast, and while a socket joins a room and reads its history.
///
/// Why: "store, then broadcast" and "join, then read what was stored" must not interleave.
/// Otherwise a message stored just before a socket joins, but broadcast just after, would reach
/// that socket twice (history and broadcast), and one stored just after the history was read
/// but broadcast before the join would never reach it. Under the lock, every message is either
/// in what the joining socket reads, or broadcast to it, never both and never neither.
#[derive(Debug, Clone)]
struct RoomLocks(Arc<[Mutex<()>; 64]>);

impl Default for RoomLocks {
    fn default() -> Self {
        RoomLocks(Arc::new(std::array::from_fn(|_| Mutex::new(()))))
    }
}

impl RoomLocks {
    async fn lock(&self, room: &str) -> MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        room.hash(&mut hasher);
        let stripe = (hasher.finish() % self.0.len() as u64) as usize;
        self.0[stripe].lock().await
    }
}
// ANCHOR_END: room_locks

// ANCHOR: register
/// The last connect middleware: registers every chat event handler before the client is told
/// it is connected, so no event sent the instant it connects is lost (see chapter 4).
pub async fn register_chat_handlers<A: Adapter>(socket: SocketRef<A>) -> Result<(), Infallible> {
    socket.on("chat message", on_chat_message::<A>);
    socket.on("join", on_join::<A>);
    socket.on("leave", on_leave::<A>);
    socket.on("typing", on_typing::<A>);
    socket.on_disconnect(on_disconnect::<A>);
    Ok(())
}
// ANCHOR_END: register

/// What a client may send in the handshake's `auth`: `io({ auth: { serverOffset: 41 } })`,
/// the id of the last message it saw, so the server can replay what it missed.
#[derive(Debug, Deserialize)]
pub struct HandshakeAuth {
    #[serde(rename = "serverOffset")]
    server_offset: Option<i64>,
}

// ANCHOR: on_connect
/// Runs once the socket is admitted: put it in `general`, send the history, replay what it
/// missed while disconnected, and tell the room who is online.
pub async fn on_connect<A: Adapter>(
    io: SocketIo<A>,
    socket: SocketRef<A>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(auth): TryData<HandshakeAuth>,
) {
    let server_offset = auth.ok().and_then(|auth| auth.server_offset);
    let replayed = {
        let _room = chat.locks.lock(GENERAL).await;
        socket.join(GENERAL);
        match enter_general(&socket, &chat, server_offset).await {
            Ok(replayed) => replayed,
            Err(error) => {
                tracing::error!(%error, "could not send history");
                0
            }
        }
    };
    tracing::info!(user = %user.username, sid = %socket.id, replayed, "joined general");
    announce_presence(&io, &socket, &chat, &user, GENERAL).await;
}

/// Sends `history`, then each message after `server_offset` as a `chat message` event, in
/// order. Returns how many were replayed.
async fn enter_general<A: Adapter>(
    socket: &SocketRef<A>,
    chat: &Chat,
    server_offset: Option<i64>,
) -> Result<usize, ChatError> {
    let history = chat.messages.recent(GENERAL, HISTORY_LIMIT).await?;
    socket
        .emit("history", &json!({ "room": GENERAL, "messages": history }))
        .ok();
    let Some(offset) = server_offset else {
        return Ok(0);
    };
    let missed = chat.messages.since(GENERAL, offset, CATCH_UP_LIMIT).await?;
    for message in &missed {
        socket.emit("chat message", message).ok();
    }
    Ok(missed.len())
}
// ANCHOR_END: on_connect

// ANCHOR: chat_message
/// `chat message`: store the message, then send it to everybody in the room, sender included.
async fn on_chat_message<A: Adapter>(
    socket: SocketRef<A>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
) {
    let sent = send_message(&socket, &chat, &user, payload.unwrap_or(Value::Null)).await;
    answer(
        ack,
        sent.map(|message| json!({ "ok": true, "id": message.id })),
    );
}

/// Acknowledges with `ok` as it is, or with `{"error": "..."}`.
fn answer<A: Adapter>(ack: AckSender<A>, result: Result<Value, ChatError>) {
    let reply = result.unwrap_or_else(|error| json!({ "error": error.to_string() }));
    // The acknowledgement is optional for the client; without one, `send` fails harmlessly.
    ack.send(&reply).ok();
}

pub(crate) async fn send_message<A: Adapter>(
    socket: &SocketRef<A>,
    chat: &Chat,
    user: &User,
    payload: Value,
) -> Result<ChatMessage, ChatError> {
    let outgoing = parse_chat_message(&payload)?;
    if !has_joined(socket, &outgoing.room) {
        return Err(ChatError::NotInRoom);
    }
    if !chat.limiter.check(user.id) {
        return Err(ChatError::RateLimited);
    }
    let _room = chat.locks.lock(&outgoing.room).await;
    // The author is the socket's user, from the session. Whatever "user" the payload claimed
    // was never even parsed.
    let message = chat
        .messages
        .insert(&outgoing.room, user, &outgoing.text)
        .await?;
    // If this fails, the message is stored but not delivered live: clients still get it from
    // `history` and by catch-up when they reconnect.
    let emit = socket
        .within(outgoing.room.clone())
        .emit("chat message", &message);
    broadcast("a message", emit).await;
    Ok(message)
}
// ANCHOR_END: chat_message

// ANCHOR: broadcast
/// How long a broadcast may take. In one process it is instant; in a cluster it goes through
/// Redis, and while Redis is unreachable it would wait (and hold the room's lock) for ever.
pub const BROADCAST_DEADLINE: Duration = Duration::from_secs(2);

/// Awaits a broadcast, but not for longer than [`BROADCAST_DEADLINE`]; a failure is logged,
/// never sent to the client whose event caused it.
async fn broadcast<E: std::fmt::Display>(what: &str, emit: impl Future<Output = Result<(), E>>) {
    match tokio::time::timeout(BROADCAST_DEADLINE, emit).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "could not broadcast {what}"),
        Err(_) => tracing::warn!("gave up broadcasting {what} after {BROADCAST_DEADLINE:?}"),
    }
}
// ANCHOR_END: broadcast

/// Whether the socket may speak in `room`. `general` always counts as joined: the socket is
/// put there by `on_connect`, which may still be running when a fast client sends its first
/// message (and that message then reaches it through `history`).
fn has_joined<A: Adapter>(socket: &SocketRef<A>, room: &str) -> bool {
    room == GENERAL || socket.rooms().iter().any(|joined| joined == room)
}

// ANCHOR: join
/// `join`: enter a room, and get its history in the acknowledgement.
async fn on_join<A: Adapter>(
    io: SocketIo<A>,
    socket: SocketRef<A>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
) {
    let joined = join_room(&io, &socket, &chat, &user, payload.unwrap_or(Value::Null)).await;
    answer(
        ack,
        joined.map(|(room, history)| json!({ "ok": true, "room": room, "history": history })),
    );
}

async fn join_room<A: Adapter>(
    io: &SocketIo<A>,
    socket: &SocketRef<A>,
    chat: &Chat,
    user: &User,
    payload: Value,
) -> Result<(String, Vec<ChatMessage>), ChatError> {
    let room = parse_room(&payload)?;
    let joined = chat_rooms(socket);
    if !joined.contains(&room) && joined.len() > MAX_ROOMS_PER_SOCKET {
        return Err(ChatError::TooManyRooms);
    }
    let history = {
        let _room = chat.locks.lock(&room).await;
        socket.join(room.clone());
        chat.messages.recent(&room, HISTORY_LIMIT).await?
    };
    announce_presence(io, socket, chat, user, &room).await;
    Ok((room, history))
}
// ANCHOR_END: join

/// The chat rooms a socket is in: its rooms minus the `session:` and `user:` rooms of step 4,
/// which a client can never name (room names have no `:`).
fn chat_rooms<A: Adapter>(socket: &SocketRef<A>) -> Vec<String> {
    socket
        .rooms()
        .into_iter()
        .map(|room| room.to_string())
        .filter(|room| !room.contains(':'))
        .collect()
}

/// `leave`: the opposite of `join`. Leaving a room one is not in is not an error.
async fn on_leave<A: Adapter>(
    io: SocketIo<A>,
    socket: SocketRef<A>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
) {
    answer(
        ack,
        leave_room(&io, &socket, &chat, payload.unwrap_or(Value::Null)).await,
    );
}

async fn leave_room<A: Adapter>(
    io: &SocketIo<A>,
    socket: &SocketRef<A>,
    chat: &Chat,
    payload: Value,
) -> Result<Value, ChatError> {
    let room = parse_room(&payload)?;
    if room == GENERAL {
        return Err(ChatError::CannotLeaveGeneral);
    }
    socket.leave(room.clone());
    if chat.presence.leave(socket.id, &room) {
        broadcast_presence(io, chat, &room).await;
    }
    Ok(json!({ "ok": true }))
}

// ANCHOR: typing
/// `typing`: tell the *others* in the room. Fire-and-forget, but rate-limited, because one
/// cheap event from a client costs a broadcast to everyone in the room.
async fn on_typing<A: Adapter>(
    socket: SocketRef<A>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
) {
    answer(
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
    if !chat.typing_limiter.check(user.id) {
        return Err(ChatError::RateLimited);
    }
    let event = json!({ "room": room, "user": user });
    // `to` (unlike `within`) leaves the sender out: you know you are typing.
    broadcast("typing", socket.to(room).emit("typing", &event)).await;
    Ok(json!({ "ok": true }))
}
// ANCHOR_END: typing

/// A socket went away: if it was its user's last socket in a room, the room is told.
async fn on_disconnect<A: Adapter>(
    io: SocketIo<A>,
    socket: SocketRef<A>,
    State(chat): State<Chat>,
) {
    for room in chat.presence.disconnect(socket.id) {
        broadcast_presence(&io, &chat, &room).await;
    }
}

// ANCHOR: presence
/// Counts the socket in `room`. Everybody in the room hears about a change of users; the
/// socket itself always gets the list, even when its user was already there in another tab.
async fn announce_presence<A: Adapter>(
    io: &SocketIo<A>,
    socket: &SocketRef<A>,
    chat: &Chat,
    user: &User,
    room: &str,
) {
    if chat.presence.join(socket.id, user, room) {
        broadcast_presence(io, chat, room).await;
    } else {
        socket.emit("presence", &presence_event(chat, room)).ok();
    }
}

async fn broadcast_presence<A: Adapter>(io: &SocketIo<A>, chat: &Chat, room: &str) {
    let event = presence_event(chat, room);
    broadcast(
        "presence",
        io.within(room.to_owned()).emit("presence", &event),
    )
    .await;
}

fn presence_event(chat: &Chat, room: &str) -> Value {
    json!({ "room": room, "users": chat.presence.users_in(room) })
}
// ANCHOR_END: presence
