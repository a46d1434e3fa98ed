//! The Socket.IO event handlers, by concern: [`messages`] (the lesson), and
//! [`rooms`]; who is online is in `crate::presence`. Step 4's
//! `authenticate_socket` ran first, so every socket carries the `User` of its
//! session (`Extension<User>`, Node's `socket.user`): no handler ever reads a
//! user from a payload.

pub(crate) mod messages;
pub(crate) mod rooms;

use std::convert::Infallible;

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use step03_passport_like_auth::User;
use step04_socket_middleware::{SessionWatch, delivery, watch_session};

use crate::chat::{Chat, ChatError, GENERAL};
use crate::presence::{announce_leaving, counted_rooms, on_presence_page};

// ANCHOR: register
/// The last connect middleware: registers every event handler before the
/// client is told it is connected, so no event sent the instant it connects
/// is lost (see chapter 4).
pub(crate) async fn register_chat_handlers(
    socket: SocketRef,
) -> Result<(), Infallible> {
    socket.on("chat message", messages::on_chat_message);
    socket.on("typing", messages::on_typing);
    socket.on("join", rooms::on_join);
    socket.on("leave", rooms::on_leave);
    socket.on("presence page", on_presence_page);
    socket.on_disconnect(on_disconnect);
    Ok(())
}
// ANCHOR_END: register

// ANCHOR: admit_socket
/// A connect middleware: at most `MAX_SOCKETS_PER_USER` sockets per user. The
/// refused client gets a `connect_error` whose message says why.
pub(crate) async fn admit_socket(
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
) -> Result<(), ChatError> {
    if chat.sockets.admit(user.id, chat.limits.sockets_per_user) {
        Ok(())
    } else {
        tracing::info!(user = %user.username, "refused a socket: too many");
        Err(ChatError::TooManySockets)
    }
}
// ANCHOR_END: admit_socket

// ANCHOR: on_connect
/// Runs once the socket is admitted: step 4's session watch, then `general`,
/// with its history, what the client missed, and who is online. The client
/// says what it saw last in the handshake: `io({ auth: { serverOffset: 41 }
/// })`.
pub(crate) async fn on_connect(
    io: SocketIo,
    socket: SocketRef,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(auth): TryData<Value>,
    State(watch): State<SessionWatch>,
) {
    let watching = watch_session(socket.clone(), watch.store, watch.every);
    chat.tasks.spawn(watching);
    let offset = auth.ok().and_then(|auth| auth["serverOffset"].as_i64());
    let entered = rooms::enter_general(&io, &socket, &chat, &user, offset);
    match entered.await {
        Ok(replayed) => tracing::info!(user = %user.username, replayed, "in"),
        Err(error) => tracing::error!(%error, "could not send the history"),
    }
}
// ANCHOR_END: on_connect

/// A socket went away: its place is given back, and its rooms are told.
async fn on_disconnect(
    io: SocketIo,
    socket: SocketRef,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
) {
    chat.sockets.release(user.id);
    let _turn = chat.deliveries.lock().await;
    for room in counted_rooms(&socket) {
        announce_leaving(&io, &socket, &chat, &user, &room);
    }
}

// ANCHOR: answer
/// Acknowledges with `reply`, or with `{"error": "..."}`. (The client may not
/// have asked for an acknowledgement; then this does nothing.)
pub(crate) fn answer(
    socket: &SocketRef,
    ack: AckSender,
    reply: Result<Value, ChatError>,
) {
    let reply =
        reply.unwrap_or_else(|error| json!({ "error": error.to_string() }));
    delivery::acknowledge(socket, ack, &reply);
}
// ANCHOR_END: answer

/// Whether the socket may speak in `room`. `general` always counts: a fast
/// client may send before `on_connect` has put it there.
pub(crate) fn has_joined(socket: &SocketRef, room: &str) -> bool {
    room == GENERAL || socket.rooms().iter().any(|joined| joined == room)
}
