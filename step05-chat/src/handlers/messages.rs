//! `chat message`, the lesson of this step: the author comes from the socket,
//! never from the payload. And `typing`, its fire-and-forget cousin.

use serde_json::{Value, json};
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use step03_passport_like_auth::User;
use step04_socket_middleware::InOrder;
use step04_socket_middleware::delivery::{self, answer};

use super::has_joined;
use crate::chat::{Chat, ChatError};
use crate::messages::{ChatMessage, NewMessage, Stored};
use crate::validation::{parse_chat_message, parse_room};

// ANCHOR: chat_message
/// `chat message`: check it, store it, send it to everybody in the room
/// (sender included), and acknowledge with its id.
pub(crate) async fn on_chat_message(
    socket: SocketRef,
    Extension(user): Extension<User>, // `socket.user`, from the session
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender,
    mut turn: InOrder, // this socket's messages, in the order they came
) {
    turn.wait().await;
    let payload = payload.unwrap_or_default();
    let sent = send_message(&socket, &chat, &user, &payload).await;
    let reply = sent.map(|message| json!({ "ok": true, "id": message.id }));
    answer(&socket, ack, reply);
}
// ANCHOR_END: chat_message

// ANCHOR: send_message
async fn send_message(
    socket: &SocketRef,
    chat: &Chat,
    user: &User,
    payload: &Value,
) -> Result<ChatMessage, ChatError> {
    let outgoing = parse_chat_message(payload)?;
    if !has_joined(socket, &outgoing.room) {
        return Err(ChatError::NotInRoom);
    }
    chat.rates.messages.check(&user.id)?;
    // The room's pace, shared fairly among the people talking in it.
    chat.rates.room_messages.check(&outgoing.room, user.id)?;
    // The author is the socket's user: a "user" in the payload is not read.
    let message = NewMessage {
        user: user.clone(),
        text: outgoing.text,
        client_offset: outgoing.client_offset,
    };
    let _turn = chat.deliveries.lock().await;
    match chat.messages.store(&outgoing.room, &message).await? {
        Stored::New(message) => {
            // To each socket of the room, the sender's too (step 4's
            // `delivery`: a socket too slow to take it is resynchronised).
            let members = socket.within(message.room.clone()).sockets();
            delivery::send_to_each(members, "chat message", &message);
            chat.retention.note(&message.room); // trimmed later, if need be
            Ok(message)
        }
        // A retry of a stored message: acknowledged again, not sent again.
        Stored::Again(message) => Ok(message),
    }
}
// ANCHOR_END: send_message

// ANCHOR: typing
/// `typing`: tell the *others* in the room. Rate-limited, because one cheap
/// event from a client costs a packet to everyone in the room.
pub(crate) async fn on_typing(
    socket: SocketRef,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender,
    mut turn: InOrder,
) {
    turn.wait().await;
    let payload = payload.unwrap_or_default();
    let told = tell_typing(&socket, &chat, &user, &payload);
    answer(&socket, ack, told);
}

fn tell_typing(
    socket: &SocketRef,
    chat: &Chat,
    user: &User,
    payload: &Value,
) -> Result<Value, ChatError> {
    let room = parse_room(&payload["room"])?;
    if !has_joined(socket, &room) {
        return Err(ChatError::NotInRoom);
    }
    chat.rates.typing.check(&user.id)?;
    let event = json!({ "room": room, "user": user });
    // `to` (unlike `within`) leaves the sender out: you know you are typing.
    delivery::send_to_each(socket.to(room).sockets(), "typing", &event);
    Ok(json!({ "ok": true }))
}
// ANCHOR_END: typing
