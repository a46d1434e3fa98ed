//! Reference solutions of the chapter's exercises. Compiled only with
//! `--features solutions`; CI uses them to prove each exercise check passes
//! once the task is done.
//!
//! A student edits the crate itself: a constant in `validation.rs`, new
//! handlers in `chat.rs`, new variants of `ChatError`, new methods in
//! `messages.rs`. This module leaves the crate as it is, so it brings its own
//! versions of what changes (an error type, the handlers, the registration,
//! [`build`]) and reuses everything else.

use std::convert::Infallible;
use std::fmt::Display;

use serde_json::{Value, json};
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use step03_passport_like_auth::{User, UserStore};
use step04_socket_middleware::user_room;

use crate::chat::{self, Chat, ChatError, send_message};
use crate::messages::{ChatMessage, MessageStore};
use crate::users::SqliteUserStore;
use crate::validation::{InputError, parse_chat_message, parse_text};
use crate::{BuildError, ChatConfig, ChatServer, admit_socket, on_connect};
use socketioxide::handler::ConnectHandler;
use step04_socket_middleware::{authenticate_socket, check_origin};

/// The chat with every exercise done: the crate's `build`, with
/// [`register_chat_handlers`].
pub async fn build(config: ChatConfig) -> Result<ChatServer, BuildError> {
    let server = crate::build_base(config).await?;
    server.io.ns(
        "/",
        on_connect
            .with(register_chat_handlers) // the exercises' handlers
            .with(admit_socket)
            .with(authenticate_socket)
            .with(check_origin),
    );
    Ok(server)
}

/// The crate's handlers, then the exercises' events.
pub async fn register_chat_handlers(
    socket: SocketRef,
) -> Result<(), Infallible> {
    chat::register_chat_handlers(socket.clone()).await?;
    // Registering an event again replaces its handler: this is exercise 1's
    // `chat message`.
    socket.on("chat message", on_short_chat_message);
    socket.on("private message", on_private_message::<LocalAdapter>);
    socket.on("edit message", on_edit_message);
    socket.on("delete message", on_delete_message);
    Ok(())
}

/// The refusals the exercises add. In your code they are new variants of
/// `ChatError`; here they sit beside it, since this module does not edit the
/// crate.
#[derive(Debug, thiserror::Error)]
enum ExerciseError {
    #[error(transparent)]
    Chat(#[from] ChatError),
    #[error("text must be 1 to {} characters", MAX_TEXT_CHARS)]
    TextLength,
    #[error("to must be a user id")]
    NotAUserId,
    #[error("no such user")]
    NoSuchUser,
    #[error("id must be a message id")]
    NotAMessageId,
    #[error("not your message")]
    NotYourMessage,
}

impl From<InputError> for ExerciseError {
    fn from(error: InputError) -> Self {
        ExerciseError::Chat(error.into())
    }
}

impl From<sqlx::Error> for ExerciseError {
    fn from(error: sqlx::Error) -> Self {
        // Logged there, `internal error` for the client.
        ExerciseError::Chat(error.into())
    }
}

/// Acknowledges with `ok`, or with `{"error": "..."}`: the crate's `answer`,
/// for any error.
fn reply<A: Adapter>(ack: AckSender<A>, result: Result<Value, impl Display>) {
    let reply =
        result.unwrap_or_else(|error| json!({ "error": error.to_string() }));
    ack.send(&reply).ok();
}

// ---------------------------------------------------------------- exercise 1

// ANCHOR: shorter_messages
// src/validation.rs: the whole exercise is this one line.
/// The longest message, in characters (not bytes: "héllo" is 5).
pub const MAX_TEXT_CHARS: usize = 280;
// ANCHOR_END: shorter_messages

/// How CI applies exercise 1 without editing the starter: the crate's `chat
/// message`, behind the shorter limit. (With the line changed, `parse_text`
/// refuses with the same words.)
async fn on_short_chat_message(
    socket: SocketRef,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender,
) {
    let payload = payload.unwrap_or(Value::Null);
    let sent = match parse_chat_message(&payload) {
        Ok(message) if message.text.chars().count() > MAX_TEXT_CHARS => {
            Err(ExerciseError::TextLength)
        }
        _ => send_message(&socket, &chat, &user, payload)
            .await
            .map_err(ExerciseError::from),
    };
    reply(
        ack,
        sent.map(|message| json!({ "ok": true, "id": message.id })),
    );
}

// ---------------------------------------------------------------- exercise 2

// ANCHOR: private_messages
/// `private message {"to": 7, "text": "..."}`: to every socket of user 7 and of
/// the sender, and to nobody else.
///
/// Generic over the Socket.IO adapter, like every handler of `chat.rs`, so that
/// it can be pasted there as it is (registered as `on_private_message::<A>`).
async fn on_private_message<A: Adapter>(
    socket: SocketRef<A>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
) {
    let sent = send_private_message(
        &socket,
        &chat,
        &user,
        &payload.unwrap_or(Value::Null),
    )
    .await;
    reply(ack, sent.map(|id| json!({ "ok": true, "id": id })));
}

/// Whether user `id` exists: a question for step 3's `UserStore`, over the
/// chat's database.
async fn user_exists(chat: &Chat, id: i64) -> Result<bool, ChatError> {
    let users = SqliteUserStore::new(chat.messages.pool.clone());
    let user = users.find_by_id(id).await.map_err(|error| {
        tracing::error!(%error, "could not look the recipient up");
        ChatError::Internal
    })?;
    Ok(user.is_some())
}
// ANCHOR_END: private_messages

// ANCHOR: send_private_message
async fn send_private_message<A: Adapter>(
    socket: &SocketRef<A>,
    chat: &Chat,
    user: &User,
    payload: &Value,
) -> Result<i64, ExerciseError> {
    let to = payload["to"].as_i64().ok_or(ExerciseError::NotAUserId)?;
    let text = parse_text(
        payload["text"].as_str().ok_or(InputError::TextNotAString)?,
    )?;
    if !chat.limiter.check(user.id) {
        return Err(ChatError::RateLimited.into());
    }
    if !user_exists(chat, to).await? {
        return Err(ExerciseError::NoSuchUser);
    }
    // Stored like any message, in a room no client can `join` (room names have
    // no `:`), and the same room whoever writes first: smaller id first.
    let room = format!("dm:{}:{}", user.id.min(to), user.id.max(to));
    let message = chat.messages.insert(&room, user, &text).await?;
    let event = json!({
        "id": message.id,
        // The socket's user, from the session: never from the payload.
        "from": user,
        "to": to,
        "text": message.text,
        "ts": message.ts,
    });
    // Step 4 put every socket of a user in `user:<id>`. `within` a list of
    // rooms reaches each socket in any of them once: all of the recipient's
    // tabs, and all of the sender's. `broadcast` (chat.rs) logs a failure, and
    // not a tab that closed meanwhile.
    let emit = socket
        .within([user_room(to), user_room(user.id)])
        .emit("private message", &event);
    chat::broadcast("a private message", emit).await;
    Ok(message.id)
}
// ANCHOR_END: send_private_message

// ---------------------------------------------------------------- exercise 3

// ANCHOR: edit_delete
// In src/messages.rs. The ownership check is in the WHERE clause: one
// statement, so nothing can happen between "is it yours?" and the change.
impl MessageStore {
    /// Changes the text of message `id`, if `author` wrote it; `None` if they
    /// did not.
    pub(crate) async fn edit(
        &self,
        id: i64,
        author: &User,
        text: &str,
    ) -> Result<Option<ChatMessage>, sqlx::Error> {
        let edited: Option<(String, i64)> = sqlx::query_as(
            "UPDATE messages SET text = ? WHERE id = ? AND user_id = ? \
             RETURNING room, ts",
        )
        .bind(text)
        .bind(id)
        .bind(author.id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(edited.map(|(room, ts)| ChatMessage {
            id,
            room,
            user: author.clone(),
            text: text.to_owned(),
            ts,
        }))
    }
}
// ANCHOR_END: edit_delete

// ANCHOR: delete_stored
impl MessageStore {
    /// Deletes message `id`, if `author` wrote it, and returns its room; `None`
    /// if they did not.
    pub(crate) async fn delete(
        &self,
        id: i64,
        author: &User,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "DELETE FROM messages WHERE id = ? AND user_id = ? RETURNING room",
        )
        .bind(id)
        .bind(author.id)
        .fetch_optional(&self.pool)
        .await
    }
}
// ANCHOR_END: delete_stored

// ANCHOR: edit_delete_handlers
// In src/chat.rs, registered with `socket.on("edit message", on_edit_message)`
// and `socket.on("delete message", on_delete_message)`.
/// `edit message {"id", "text"}`: the author's new text, to everyone in the
/// message's room.
async fn on_edit_message(
    socket: SocketRef,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender,
) {
    let edited =
        edit_message(&socket, &chat, &user, &payload.unwrap_or(Value::Null))
            .await;
    reply(ack, edited.map(|()| json!({ "ok": true })));
}

/// `delete message {"id"}`: gone from the database, and from everyone's window.
async fn on_delete_message(
    socket: SocketRef,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender,
) {
    let deleted =
        delete_message(&socket, &chat, &user, &payload.unwrap_or(Value::Null))
            .await;
    reply(ack, deleted.map(|()| json!({ "ok": true })));
}
// ANCHOR_END: edit_delete_handlers

// ANCHOR: edit_message
async fn edit_message(
    socket: &SocketRef,
    chat: &Chat,
    user: &User,
    payload: &Value,
) -> Result<(), ExerciseError> {
    let id = payload["id"].as_i64().ok_or(ExerciseError::NotAMessageId)?;
    let text = parse_text(
        payload["text"].as_str().ok_or(InputError::TextNotAString)?,
    )?;
    if !chat.limiter.check(user.id) {
        return Err(ChatError::RateLimited.into());
    }
    // The author is the socket's user: an id in the payload would let anyone
    // edit anything.
    let message = chat
        .messages
        .edit(id, user, &text)
        .await?
        .ok_or(ExerciseError::NotYourMessage)?;
    // The room's task keeps its newest messages in memory for the sockets that
    // enter: make it read them again before telling the room. A socket entering
    // meanwhile gets either the new text, or the old one and then this event.
    chat.reload_room(socket, &message.room).await?;
    socket
        .within(message.room.clone())
        .emit("message edited", &message)
        .await
        .ok();
    Ok(())
}
// ANCHOR_END: edit_message

// ANCHOR: delete_message
async fn delete_message(
    socket: &SocketRef,
    chat: &Chat,
    user: &User,
    payload: &Value,
) -> Result<(), ExerciseError> {
    let id = payload["id"].as_i64().ok_or(ExerciseError::NotAMessageId)?;
    if !chat.limiter.check(user.id) {
        return Err(ChatError::RateLimited.into());
    }
    let room = chat
        .messages
        .delete(id, user)
        .await?
        .ok_or(ExerciseError::NotYourMessage)?;
    chat.reload_room(socket, &room).await?;
    socket
        .within(room.clone())
        .emit("message deleted", &json!({ "id": id, "room": room }))
        .await
        .ok();
    Ok(())
}
// ANCHOR_END: delete_message
