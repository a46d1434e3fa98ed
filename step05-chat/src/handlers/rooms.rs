//! Rooms: `join`, `leave`, and `general` on connect, with the history and
//! what the client missed. A socket joins a room while holding
//! `chat.deliveries`, the lock every message is stored and sent under: each
//! message is in what the socket read, or sent to it live, never both.

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use step03_passport_like_auth::User;
use step04_socket_middleware::InOrder;
use step04_socket_middleware::delivery::{self, answer, send_all};

use crate::chat::{CATCH_UP_LIMIT, Chat, ChatError, GENERAL};
use crate::messages::{HISTORY_LIMIT, Page};
use crate::presence::{announce_leaving, announce_presence, counted_rooms};
use crate::validation::parse_room;

// ANCHOR: read_entry
/// For a socket entering `room`: its history up to `offset` (the last message
/// the client saw there), and the newest [`CATCH_UP_LIMIT`] messages after
/// `offset` up to `upto` (`truncated` if there were more).
async fn read_entry(
    chat: &Chat,
    room: &str,
    offset: Option<i64>,
    upto: i64,
) -> Result<(Page, Page), sqlx::Error> {
    let store = &chat.messages;
    let shown = offset.map_or(upto, |offset| offset.min(upto));
    let history = store.newest(room, 0, shown, HISTORY_LIMIT).await?;
    let missed = match offset {
        Some(after) => store.newest(room, after, upto, CATCH_UP_LIMIT).await?,
        None => Page::default(),
    };
    Ok((history, missed))
}
// ANCHOR_END: read_entry

// ANCHOR: catch_up_read
/// Sends `history`, then each message after `offset`, in order, then puts
/// the socket in `general`.
pub(crate) async fn enter_general(
    io: &SocketIo,
    socket: &SocketRef,
    chat: &Chat,
    user: &User,
    offset: Option<i64>,
) -> Result<(), ChatError> {
    // The big reads (up to 1,050 rows) happen outside the lock, two sockets
    // at a time, so that a flood of reconnections holds up nobody.
    let turn = chat.catch_ups.acquire().await;
    let upto = chat.messages.last_id(GENERAL).await?;
    let (history, missed) = read_entry(chat, GENERAL, offset, upto).await?;
    drop(turn);
    // ANCHOR_END: catch_up_read
    // ANCHOR: catch_up_send
    let (messages, truncated) = (history.messages, missed.truncated);
    let history = json!({
        "room": GENERAL, "messages": messages, "truncated": truncated
    });
    if !delivery::send(socket, "history", &history)
        || !send_all(socket, "chat message", &missed.messages)
    {
        return Ok(()); // gone, or resynchronising
    }
    // What was stored since the reads comes in the same turn as the join.
    let _turn = chat.deliveries.lock().await;
    let after = upto.max(offset.unwrap_or(0));
    let since = chat.messages.newest(GENERAL, after, i64::MAX, CATCH_UP_LIMIT);
    let since = since.await?;
    if send_all(socket, "chat message", &since.messages) {
        announce_presence(io, socket, chat, user, GENERAL);
    }
    Ok(())
}
// ANCHOR_END: catch_up_send

// ANCHOR: join
/// `join`: `"rust"`, or `{"room": "rust", "serverOffset": 41}` from a client
/// coming back with the last message it saw there. The acknowledgement has the
/// room's history, up to that message; what came after it follows, in order.
pub(crate) async fn on_join(
    io: SocketIo,
    socket: SocketRef,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender,
    mut turn: InOrder, // a join, then a message to that room: in that order
) {
    turn.wait().await;
    let payload = payload.unwrap_or_default();
    let room = match parse_room(payload.get("room").unwrap_or(&payload)) {
        Ok(room) => room,
        Err(error) => return answer(&socket, ack, Err(ChatError::from(error))),
    };
    // Still entering `general` (`on_connect`), which sends it all, once.
    if room == GENERAL && !socket.rooms().iter().any(|joined| *joined == room) {
        let entering = json!({ "ok": true, "room": room, "history": [] });
        return answer(&socket, ack, Ok::<_, ChatError>(entering));
    }
    if let Err(error) = chat.rates.room_changes.check(&user.id) {
        return answer(&socket, ack, Err(ChatError::from(error)));
    }
    // Checked and done in one turn of the lock, as `leave` is: a `leave`
    // racing this `join` finds the socket either not in yet, or all in; and
    // no message is stored between what is read here and the join.
    let _turn = chat.deliveries.lock().await;
    if !may_enter(&socket, &chat, &room) {
        return answer(&socket, ack, Err(ChatError::TooManyRooms));
    }
    // ANCHOR_END: join
    // ANCHOR: join_entry
    let offset = payload["serverOffset"].as_i64();
    let (history, missed) = match read_entry(&chat, &room, offset, i64::MAX)
        .await
    {
        Ok(pages) => pages,
        Err(error) => return answer(&socket, ack, Err(ChatError::from(error))),
    };
    let reply = json!({
        "ok": true, "room": room, "history": history.messages,
        "truncated": missed.truncated,
    });
    if delivery::acknowledge(&socket, ack, &reply)
        && send_all(&socket, "chat message", &missed.messages)
    {
        announce_presence(&io, &socket, &chat, &user, &room);
    }
}
// ANCHOR_END: join_entry

// ANCHOR: may_enter
/// Whether the socket may be in `room`: it is in it already, or in fewer than
/// `MAX_ROOMS_PER_SOCKET` rooms besides `general`. (Asked under the lock every
/// join takes: 500 joins at once cannot all see "19 rooms, one more is fine".)
fn may_enter(socket: &SocketRef, chat: &Chat, room: &str) -> bool {
    let rooms = counted_rooms(socket);
    let others = rooms.iter().filter(|joined| *joined != GENERAL).count();
    room == GENERAL
        || rooms.iter().any(|joined| joined == room)
        || others < chat.limits.rooms_per_socket
}
// ANCHOR_END: may_enter

// ANCHOR: leave
/// `leave`: the opposite of `join`. Leaving a room one is not in is not an
/// error.
pub(crate) async fn on_leave(
    io: SocketIo,
    socket: SocketRef,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender,
    mut turn: InOrder,
) {
    turn.wait().await;
    let payload = payload.unwrap_or_default();
    let left = leave_room(&io, &socket, &chat, &user, &payload).await;
    answer(&socket, ack, left);
}

async fn leave_room(
    io: &SocketIo,
    socket: &SocketRef,
    chat: &Chat,
    user: &User,
    payload: &Value,
) -> Result<Value, ChatError> {
    let room = parse_room(payload)?;
    if room == GENERAL {
        return Err(ChatError::CannotLeaveGeneral);
    }
    chat.rates.room_changes.check(&user.id)?;
    let _turn = chat.deliveries.lock().await;
    if socket.rooms().iter().any(|joined| *joined == room) {
        socket.leave(room.clone());
        announce_leaving(io, socket, chat, user, &room);
    }
    Ok(json!({ "ok": true }))
}
// ANCHOR_END: leave
