//! The event handlers, by concern: [`messages`] (the lesson), [`rooms`], and
//! `crate::presence`. Step 4's `authenticate_socket` ran first, so every socket
//! carries its session's `User` (`Extension<User>`, Node's `socket.user`): no
//! handler ever reads a user from a payload.

pub(crate) mod messages;
pub(crate) mod rooms;

use std::convert::Infallible;
use std::sync::Arc;

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use step03_passport_like_auth::User;
use step04_socket_middleware::{SessionWatch, let_go, watch_session};

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
    socket: SocketRef,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
) -> Result<(), ChatError> {
    let max = chat.limits.sockets_per_user;
    let Some(slot) = chat.sockets.admit(user.id, max) else {
        tracing::info!(user = %user.username, "refused a socket: too many");
        return Err(ChatError::TooManySockets);
    };
    // Given back by `on_disconnect`, or dropped with a never-connected socket.
    socket.extensions.insert(Arc::new(slot));
    chat.rates.strikes.count_on(&socket, user.id); // every refusal counts
    Ok(())
}
// ANCHOR_END: admit_socket

// ANCHOR: on_connect
/// Once the socket is admitted: step 4's session watch, then `general`, with
/// its history, what the client missed since the last message it saw (`io({
/// auth: { serverOffset: 41 } })`), and who is online.
pub(crate) async fn on_connect(
    io: SocketIo,
    socket: SocketRef,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(auth): TryData<Value>,
    State(watch): State<SessionWatch>,
) {
    let watching = watch_session(socket.clone(), watch);
    chat.tasks.spawn(watching);
    let offset = auth.ok().and_then(|auth| auth["serverOffset"].as_i64());
    let entered = rooms::enter_general(&io, &socket, &chat, &user, offset);
    if let Err(error) = entered.await {
        tracing::error!(%error, "could not enter general: disconnecting");
        socket.disconnect().ok(); // not left connected, outside `general`
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
    let_go(&socket); // its place, and its session's watch
    let _turn = chat.deliveries.lock().await;
    for room in counted_rooms(&socket) {
        announce_leaving(&io, &socket, &chat, &user, &room);
    }
}

/// Whether the socket may speak in `room`. `general` always counts: a fast
/// client may send before `on_connect` has put it there.
pub(crate) fn has_joined(socket: &SocketRef, room: &str) -> bool {
    room == GENERAL || socket.rooms().iter().any(|joined| joined == room)
}
