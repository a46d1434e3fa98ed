//! Who is online in which room: each room's users by id, with how many of
//! their sockets are in it, counted under the lock every join, leave and
//! disconnect takes. A room hears of a user when the count goes from 0 to 1 or
//! back (two tabs that come together are announced once, never zero times).
//! A socket entering a room gets the first page of the list (`presence`),
//! asks for more (`presence page`) if the reader scrolls, then hears who came
//! and went (`presence change`), gathered for [`PRESENCE_EVERY`]: ten tabs
//! opening at once make one event, not ten.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use step03_passport_like_auth::User;
use step04_socket_middleware::delivery::{self, answer};
use step04_socket_middleware::{InOrder, lock};

use crate::chat::{Chat, ChatError};
use crate::handlers::has_joined;
use crate::validation::{InputError, parse_room};

/// How long the changes of a room are gathered before the room is told.
const PRESENCE_EVERY: Duration = Duration::from_millis(100);

/// Room → its users by id, with their number of sockets in it; and what each
/// room has not been told yet: user id → (user, online?).
#[derive(Debug, Clone, Default)]
pub(crate) struct Presence {
    online: Arc<Mutex<HashMap<String, Online>>>,
    untold: Arc<Mutex<HashMap<String, Changes>>>,
}

type Online = BTreeMap<i64, (User, usize)>;
type Changes = BTreeMap<i64, (User, bool)>;

/// In a socket's extensions: the rooms it is counted in. Read at disconnect,
/// when Socket.IO may have taken the socket out of its rooms already.
#[derive(Debug, Clone, Default)]
struct CountedIn(Vec<String>);

/// The rooms `socket` is counted in.
pub(crate) fn counted_rooms(socket: &SocketRef) -> Vec<String> {
    socket.extensions.get::<CountedIn>().unwrap_or_default().0
}

// ANCHOR: announce
/// Puts the socket in `room` (under `chat.deliveries`) and sends it the first
/// page of the room's list; if it is its user's first socket there, the room
/// will hear that they came. Counting a user is one map lookup, not a scan of
/// the room: 10,000 sockets joining must not cost 10,000 × 10,000.
pub(crate) fn announce_presence(
    io: &SocketIo,
    socket: &SocketRef,
    chat: &Chat,
    user: &User,
    room: &str,
) {
    // Gone already: `on_disconnect` (waiting for the lock, or done) will not
    // see this room, so neither may the count.
    if !socket.connected() {
        return;
    }
    socket.join(room.to_owned());
    let mut counted = counted_rooms(socket);
    let new = !counted.iter().any(|joined| joined == room); // not a 2nd join
    if new {
        counted.push(room.to_owned());
        socket.extensions.insert(CountedIn(counted));
    }
    let mut online = lock(&chat.presence.online);
    let users = online.entry(room.to_owned()).or_default();
    let sockets = &mut users.entry(user.id).or_insert((user.clone(), 0)).1;
    *sockets += usize::from(new);
    let came = new && *sockets == 1;
    let page = page(users, room, None, chat.presence_page);
    drop(online);
    delivery::send(socket, "presence", &page);
    if came {
        tell(io, chat, room, user, true);
    }
}
// ANCHOR_END: announce

// ANCHOR: announce_leaving
/// The socket is leaving `room` (or going away): if it was its user's last
/// socket there, the room will hear that they left.
pub(crate) fn announce_leaving(
    io: &SocketIo,
    socket: &SocketRef,
    chat: &Chat,
    user: &User,
    room: &str,
) {
    let mut counted = counted_rooms(socket);
    let Some(at) = counted.iter().position(|joined| joined == room) else {
        return;
    };
    counted.remove(at);
    socket.extensions.insert(CountedIn(counted));
    let mut online = lock(&chat.presence.online);
    let Some(users) = online.get_mut(room) else { return };
    let Some((_, sockets)) = users.get_mut(&user.id) else { return };
    *sockets -= 1;
    if *sockets > 0 {
        return;
    }
    users.remove(&user.id);
    if users.is_empty() {
        online.remove(room);
    }
    drop(online);
    tell(io, chat, room, user, false);
}
// ANCHOR_END: announce_leaving

// ANCHOR: tell
/// Notes that `user` came (`online`) or went. The first change a room has not
/// been told of schedules the `presence change`; later ones join it (a user
/// is named once, with what happened to them last).
fn tell(io: &SocketIo, chat: &Chat, room: &str, user: &User, online: bool) {
    let mut untold = lock(&chat.presence.untold);
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
        let changes = lock(&presence.untold).remove(&room).unwrap_or_default();
        let (joined, left): (Vec<_>, Vec<_>) =
            changes.into_values().partition(|c| c.1);
        let users = |them: Vec<(User, bool)>| {
            them.into_iter().map(|c| c.0).collect::<Vec<_>>()
        };
        let online = lock(&presence.online).get(&room).map_or(0, |u| u.len());
        let change = json!({
            "room": room, "joined": users(joined), "left": users(left),
            "online": online,
        });
        // `io.of("/")` is `None` once the server is shutting down.
        let members = io.of("/").map(|ns| ns.within(room).sockets());
        let members = members.unwrap_or_default();
        delivery::send_to_each(members, "presence change", &change);
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
    mut turn: InOrder, // after the join it follows
) {
    turn.wait().await;
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
    chat.rates.pages.check(&user.id)?;
    let online = lock(&chat.presence.online);
    let (users, none) = (online.get(&room), Online::new());
    Ok(page(users.unwrap_or(&none), &room, Some(after), chat.presence_page))
}

// ANCHOR_END: presence_page

// ANCHOR: page
/// At most `size` users of `online`, by id, after `after`: `{"room",
/// "users", "online", "more"}`. (A page: the list of a room of 500 users
/// would be 15 KB for every socket that enters it.)
fn page(online: &Online, room: &str, after: Option<i64>, size: usize) -> Value {
    let from = after.map_or(i64::MIN, |after| after.saturating_add(1));
    let mut next = online.range(from..).map(|(_, (user, _))| user);
    let users: Vec<&User> = next.by_ref().take(size).collect();
    let more = next.next().is_some();
    json!({
        "room": room, "users": users, "online": online.len(), "more": more
    })
}
// ANCHOR_END: page
