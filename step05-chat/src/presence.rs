//! Who is online in which room. Socket.IO knows which sockets are in a room,
//! and each socket carries its user: the list is read from there, each user
//! once, by id. A room hears of a user when their first socket comes in or
//! their last one goes ("another socket of theirs here?" is asked under the
//! lock every join, leave and disconnect takes: two tabs that come together
//! are announced once, never zero times).
//!
//! A socket entering a room gets the first page of the list (`presence`),
//! asks for more (`presence page`) if the reader scrolls, then hears who came
//! and went (`presence change`), gathered for [`PRESENCE_EVERY`]: ten tabs
//! opening at once make one event, not ten.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use step03_passport_like_auth::User;

use crate::chat::{Chat, ChatError};
use crate::delivery;
use crate::handlers::{answer, has_joined};
use crate::validation::{InputError, parse_room};

/// How long the changes of a room are gathered before the room is told.
const PRESENCE_EVERY: Duration = Duration::from_millis(100);

/// What each room has not been told yet: user id → (user, online?).
#[derive(Debug, Clone, Default)]
pub(crate) struct Presence(Arc<Mutex<HashMap<String, Changes>>>);

type Changes = BTreeMap<i64, (User, bool)>;

// ANCHOR: announce
/// Sends the socket, just put in `room`, the first page of the room's list;
/// if no other socket of its user is there, the room will hear that they came.
pub(crate) fn announce_presence(
    io: &SocketIo,
    socket: &SocketRef,
    chat: &Chat,
    user: &User,
    room: &str,
) {
    let members = socket.within(room.to_owned()).sockets();
    let page = page(&members, room, None, chat.presence_page);
    delivery::send(socket, "presence", &page);
    if socket.connected() && !elsewhere_in(&members, socket, user) {
        tell(io, chat, room, user, true);
    }
}

// ANCHOR_END: announce

// ANCHOR: announce_leaving
/// The socket is leaving `room` (or going away): if no other socket of its
/// user is there, the room will hear that they left.
pub(crate) fn announce_leaving(
    io: &SocketIo,
    socket: &SocketRef,
    chat: &Chat,
    user: &User,
    room: &str,
) {
    let members = socket.within(room.to_owned()).sockets();
    if !elsewhere_in(&members, socket, user) {
        tell(io, chat, room, user, false);
    }
}

/// Whether a connected socket of `user` other than `socket` is in `members`.
fn elsewhere_in(
    members: &[SocketRef],
    socket: &SocketRef,
    user: &User,
) -> bool {
    members.iter().any(|other| {
        other.id != socket.id
            && other.connected()
            && other.extensions.get::<User>().is_some_and(|u| u.id == user.id)
    })
}
// ANCHOR_END: announce_leaving

// ANCHOR: tell
/// Notes that `user` came (`online`) or went. The first change a room has not
/// been told of schedules the `presence change`; later ones join it (a user
/// is named once, with what happened to them last).
fn tell(io: &SocketIo, chat: &Chat, room: &str, user: &User, online: bool) {
    let mut untold =
        chat.presence.0.lock().unwrap_or_else(PoisonError::into_inner);
    let changes = untold.entry(room.to_owned()).or_default();
    let first = changes.is_empty();
    changes.insert(user.id, (user.clone(), online));
    if !first {
        return;
    }
    let (presence, room, io) =
        (chat.presence.clone(), room.to_owned(), io.clone());
    chat.tasks.spawn(async move {
        tokio::time::sleep(PRESENCE_EVERY).await;
        let mut untold =
            presence.0.lock().unwrap_or_else(PoisonError::into_inner);
        let changes = untold.remove(&room).unwrap_or_default();
        drop(untold);
        let (joined, left): (Vec<_>, Vec<_>) =
            changes.into_values().partition(|c| c.1);
        let users = |them: Vec<(User, bool)>| {
            them.into_iter().map(|c| c.0).collect::<Vec<_>>()
        };
        // `io.of("/")` is `None` once the server is shutting down.
        let members = io
            .of("/")
            .map(|ns| ns.within(room.clone()).sockets())
            .unwrap_or_default();
        let change = json!({
            "room": room, "joined": users(joined), "left": users(left),
            "online": users_in(&members).len(),
        });
        for member in &members {
            delivery::send(member, "presence change", &change);
        }
    });
}
// ANCHOR_END: tell

// ANCHOR: presence_page
/// `presence page`: `{"room": "general", "after": 42}` asks for the next
/// page of a room's online list, the users whose id comes after 42.
pub(crate) async fn on_presence_page(
    socket: SocketRef,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    TryData(payload): TryData<Value>,
    ack: AckSender,
) {
    let payload = payload.unwrap_or_default();
    let page = next_page(&socket, &chat, &user, &payload);
    answer(&socket, ack, page);
}

fn next_page(
    socket: &SocketRef,
    chat: &Chat,
    user: &User,
    payload: &Value,
) -> Result<Value, ChatError> {
    let room = parse_room(&payload["room"])?;
    let after = payload["after"].as_i64().ok_or(InputError::InvalidAfter)?;
    if !has_joined(socket, &room) {
        return Err(ChatError::NotInRoom);
    }
    chat.check(&chat.rates.pages, socket, user.id)?;
    let members = socket.within(room.clone()).sockets();
    Ok(page(&members, &room, Some(after), chat.presence_page))
}

// ANCHOR_END: presence_page

// ANCHOR: page
/// At most `size` users of `members`, by id, after `after`: `{"room",
/// "users", "online", "more"}`. (A page: the list of a room of 500 users
/// would be 15 KB for every socket that enters it.)
fn page(
    members: &[SocketRef],
    room: &str,
    after: Option<i64>,
    size: usize,
) -> Value {
    let online = users_in(members);
    let mut next =
        online.values().filter(|user| after.is_none_or(|a| user.id > a));
    let users: Vec<&User> = next.by_ref().take(size).collect();
    let more = next.next().is_some();
    json!({
        "room": room, "users": users, "online": online.len(), "more": more
    })
}

/// The users of the connected sockets among `members`, each once, by id.
fn users_in(members: &[SocketRef]) -> BTreeMap<i64, User> {
    let connected = members.iter().filter(|member| member.connected());
    let users = connected.filter_map(|member| member.extensions.get::<User>());
    users.map(|user| (user.id, user)).collect()
}
// ANCHOR_END: page
