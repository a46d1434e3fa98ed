//! Who is online in which room.
//!
//! A user may have several sockets (three tabs, a phone and a laptop), and each
//! socket may be in several rooms. The presence list shows *users*, once each,
//! so we count sockets per user per room and only report a change when a count
//! goes from 0 to 1 or from 1 to 0.
//!
//! A socket entering a room gets the first page of the room's list (the first
//! [`PRESENCE_PAGE`] users by id, and how many are online in all); the page
//! asks for the next pages only if the reader wants them. After that the socket
//! hears only the changes ([`PresenceChange`]). Sending the whole list, on
//! every entry or on every change, is what a room of 500 users and 10,000
//! sockets cannot afford: see [`Presence::page`].
//!
//! On a node of a cluster (chapter "Scaling out with Redis"), the table also
//! holds who is online in each room through the *other* nodes
//! ([`Presence::set_elsewhere`]): the list a socket sees is both, each user
//! once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use serde::Serialize;
use socketioxide::socket::Sid;
use step03_passport_like_auth::User;

use crate::delivery::Encoded;

/// The users who came and went in a room since the last change was taken, each
/// named once, with what happened to them *last*: someone who came and went
/// again is in `left`. Applied to any list at least as new as the previous
/// change, it gives the room as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceChange {
    pub room: String,
    pub joined: Vec<User>,
    pub left: Vec<User>,
    /// How many users are online in the room now.
    pub online: usize,
}

/// How many users one presence page lists, unless `PRESENCE_PAGE` says
/// otherwise.
pub const PRESENCE_PAGE: usize = 50;

/// The online users of every room. Cheap to clone: clones share one table.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    inner: Arc<Mutex<Table>>,
    /// On a node of a cluster, wakes the task that copies this process's own
    /// users to the other nodes (see [`Presence::shared`]).
    own_changed: Option<Arc<Notify>>,
}

#[derive(Debug, Default)]
struct Table {
    /// room → user id → (user, how many of their sockets are in the room)
    rooms: HashMap<String, BTreeMap<i64, (User, usize)>>,
    /// socket → the rooms it is counted in, so a disconnect can undo all of
    /// them
    sockets: HashMap<Sid, (User, HashSet<String>)>,
    /// room → user id → (user, online?) for the changes not yet taken
    changes: HashMap<String, BTreeMap<i64, (User, bool)>>,
    /// room → its first page, serialised, until its users change
    first_pages: HashMap<String, Arc<Encoded>>,
    /// room → user id → user, online in the room through other nodes of a
    /// cluster (empty in a process on its own)
    elsewhere: HashMap<String, BTreeMap<i64, User>>,
    /// The rooms whose own users (in `rooms`) changed since
    /// [`Presence::take_own_changes`]; kept only by a shared table.
    own_changes: Option<BTreeSet<String>>,
}

// ANCHOR: presence
impl Presence {
    /// Counts `socket` (of `user`) in `room`, if `still_connected()` says the
    /// socket is still there, asked under the table's lock:
    /// [`Self::disconnect`] takes the same lock, so a socket is either counted
    /// and later uncounted, or never counted. Returns whether the room's set of
    /// users changed.
    pub fn join(
        &self,
        socket: Sid,
        user: &User,
        room: &str,
        still_connected: impl FnOnce() -> bool,
    ) -> bool {
        let mut table = self.lock();
        if !still_connected() {
            return false;
        }
        let (_, rooms) = table
            .sockets
            .entry(socket)
            .or_insert_with(|| (user.clone(), HashSet::new()));
        if !rooms.insert(room.to_owned()) {
            return false; // this socket is already counted in this room
        }
        let users = table.rooms.entry(room.to_owned()).or_default();
        let (_, count) = users.entry(user.id).or_insert_with(|| (user.clone(), 0));
        *count += 1;
        if *count > 1 {
            return false;
        }
        table.own_change(room);
        // Online through another node already: the list does not change.
        let came = !table.is_elsewhere(room, user.id);
        if came {
            table.note(room, user, true);
        }
        drop(table);
        self.wake_mirror();
        came
    }
}
// ANCHOR_END: presence

// ANCHOR: presence_leave
impl Presence {
    /// Stops counting `socket` in `room`. Returns whether the room's set of
    /// users changed.
    pub fn leave(&self, socket: Sid, room: &str) -> bool {
        let mut table = self.lock();
        let Some((user, rooms)) = table.sockets.get_mut(&socket) else {
            return false;
        };
        if !rooms.remove(room) {
            return false;
        }
        let user_id = user.id;
        let changed = table.uncount(room, user_id);
        drop(table);
        self.wake_mirror();
        changed
    }

    /// Forgets `socket` everywhere. Returns the rooms whose set of users
    /// changed.
    pub fn disconnect(&self, socket: Sid) -> Vec<String> {
        let mut table = self.lock();
        let Some((user, rooms)) = table.sockets.remove(&socket) else {
            return Vec::new();
        };
        let mut changed: Vec<String> = rooms
            .into_iter()
            .filter(|room| table.uncount(room, user.id))
            .collect();
        changed.sort();
        drop(table);
        self.wake_mirror();
        changed
    }
}
// ANCHOR_END: presence_leave

// ANCHOR: presence_change
impl Presence {
    /// Takes the changes of `room` since the last call, if there are any.
    pub fn take_change(&self, room: &str) -> Option<PresenceChange> {
        let mut table = self.lock();
        let changes = table.changes.remove(room)?;
        let (joined, left) = changes.into_values().partition::<Vec<_>, _>(|(_, on)| *on);
        Some(PresenceChange {
            room: room.to_owned(),
            joined: joined.into_iter().map(|(user, _)| user).collect(),
            left: left.into_iter().map(|(user, _)| user).collect(),
            online: table.online(room),
        })
    }
}
// ANCHOR_END: presence_change

// ANCHOR: presence_page
impl Presence {
    /// The page of `room`'s users that comes `after` a user id (`None`: the
    /// first page), at most `size` of them, serialised.
    ///
    /// Why pages: a socket's WebSocket keeps a write buffer as large as the
    /// largest burst it was ever sent, for as long as it lives. The whole list
    /// of a 500-user room is about 15 KB, sent to every socket as it enters, so
    /// every socket would keep 15 KB for that alone (chapter 5, "Measured"). A
    /// page is under 2 KB, and a reader who wants more asks for it, one page at
    /// a time.
    ///
    /// The first page is serialised once per change of the room's users, not
    /// once per socket that enters (10,000 sockets entering a room would
    /// otherwise serialise it 10,000 times).
    pub fn page(
        &self,
        room: &str,
        after: Option<i64>,
        size: usize,
    ) -> serde_json::Result<Arc<Encoded>> {
        let mut table = self.lock();
        if after.is_none()
            && let Some(page) = table.first_pages.get(room)
        {
            return Ok(page.clone());
        }
        let page = table.page_after(room, after, size);
        let page = Arc::new(Encoded::new(&page)?);
        // Only for a room with someone in it: the cache must not keep every
        // name ever asked.
        let listed = table.rooms.contains_key(room) || table.elsewhere.contains_key(room);
        if after.is_none() && listed {
            table.first_pages.insert(room.to_owned(), page.clone());
        }
        Ok(page)
    }
}
// ANCHOR_END: presence_page

// ANCHOR: presence_page_users
/// A `presence` event, or the answer to `presence page`: `{"room": "general",
/// "users": [...], "online": 500, "more": true}`. `users` are the next users by
/// id, `online` counts everyone in the room, and `more` says whether users with
/// a higher id than the last one listed are online too.
#[derive(Serialize)]
struct PresencePage<'a> {
    room: &'a str,
    users: Vec<&'a User>,
    online: usize,
    more: bool,
}

impl Table {
    /// The page of `room`'s users that comes `after` a user id, at most `size`
    /// of them.
    fn page_after<'a>(
        &'a self,
        room: &'a str,
        after: Option<i64>,
        size: usize,
    ) -> PresencePage<'a> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let here = self.rooms.get(room).into_iter().flat_map(|users| {
            let next = users.range((from, Bound::Unbounded));
            next.map(|(id, (user, _))| (*id, user))
        });
        let elsewhere = self.elsewhere.get(room).into_iter().flat_map(|users| {
            let next = users.range((from, Bound::Unbounded));
            next.map(|(id, user)| (*id, user))
        });
        let mut next = by_id_once(here, elsewhere);
        PresencePage {
            room,
            users: next.by_ref().take(size).collect(),
            online: self.online(room),
            more: next.next().is_some(),
        }
    }
}

/// The users of two lists ordered by id, in order of id, each once.
fn by_id_once<'a>(
    a: impl Iterator<Item = (i64, &'a User)>,
    b: impl Iterator<Item = (i64, &'a User)>,
) -> impl Iterator<Item = &'a User> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || {
        let next = match (a.peek(), b.peek()) {
            (Some((x, _)), Some((y, _))) if x == y => {
                b.next();
                a.next()
            }
            (Some((x, _)), Some((y, _))) if x > y => b.next(),
            (Some(_), _) => a.next(),
            (None, _) => b.next(),
        };
        next.map(|(_, user)| user)
    })
}
// ANCHOR_END: presence_page_users

// ANCHOR: presence_elsewhere
impl Presence {
    /// A table for one node of a cluster: [`Self::own_changed`] wakes whoever
    /// copies this node's own users to the other nodes, and
    /// [`Self::take_own_changes`] says what to copy.
    pub fn shared() -> Self {
        let table = Table {
            own_changes: Some(BTreeSet::new()),
            ..Table::default()
        };
        Presence {
            inner: Arc::new(Mutex::new(table)),
            own_changed: Some(Arc::default()),
        }
    }

    /// Sets who is online in `room` through the other nodes. Returns whether
    /// the room's list changed; the change (who came, who went) is taken with
    /// the others by [`Self::take_change`].
    pub fn set_elsewhere(&self, room: &str, users: BTreeMap<i64, User>) -> bool {
        let mut table = self.lock();
        if !table.rooms.contains_key(room) {
            return false; // nobody here is shown the room's list
        }
        let before = match users.is_empty() {
            true => table.elsewhere.remove(room),
            false => table.elsewhere.insert(room.to_owned(), users),
        };
        let before = before.unwrap_or_default();
        let now = table.elsewhere.get(room);
        let here = table.rooms.get(room);
        let listed_here = |id: &i64| here.is_some_and(|users| users.contains_key(id));
        let went = before
            .iter()
            .filter(|(id, _)| !now.is_some_and(|now| now.contains_key(id)));
        let came = now
            .into_iter()
            .flatten()
            .filter(|(id, _)| !before.contains_key(id));
        let changes: Vec<(User, bool)> = (went.map(|(_, user)| (user.clone(), false)))
            .chain(came.map(|(_, user)| (user.clone(), true)))
            .filter(|(user, _)| !listed_here(&user.id))
            .collect();
        for (user, online) in &changes {
            table.note(room, user, *online);
        }
        !changes.is_empty()
    }

    /// Waits until this process's own users of some room change (for ever on
    /// a table that is not [`Self::shared`]).
    pub async fn own_changed(&self) {
        match &self.own_changed {
            Some(notify) => notify.notified().await,
            None => std::future::pending().await,
        }
    }

    /// The rooms whose own users changed since the last call, each with its
    /// own users now.
    pub fn take_own_changes(&self) -> Vec<(String, Vec<User>)> {
        let mut table = self.lock();
        let rooms = table.own_changes.as_mut().map(std::mem::take);
        let rooms = rooms.unwrap_or_default();
        rooms
            .into_iter()
            .map(|room| {
                let users = table.own_users(&room);
                (room, users)
            })
            .collect()
    }

    /// Every room this process has users in, with those users.
    pub fn own_rooms(&self) -> Vec<(String, Vec<User>)> {
        let table = self.lock();
        let rooms = table.rooms.keys();
        rooms
            .map(|room| (room.clone(), table.own_users(room)))
            .collect()
    }

    /// Whether this process has a user in `room`.
    pub fn has_own(&self, room: &str) -> bool {
        self.lock().rooms.contains_key(room)
    }

    fn wake_mirror(&self) {
        if let Some(notify) = &self.own_changed {
            notify.notify_one();
        }
    }
}
// ANCHOR_END: presence_elsewhere

impl Table {
    fn own_users(&self, room: &str) -> Vec<User> {
        let users = self.rooms.get(room).into_iter().flat_map(BTreeMap::values);
        users.map(|(user, _)| user.clone()).collect()
    }
}

#[cfg(test)]
impl Presence {
    /// The users online in `room`, each once, ordered by id (what the tests
    /// compare pages and changes with).
    pub fn users_in(&self, room: &str) -> Vec<User> {
        let table = self.lock();
        table
            .page_after(room, None, usize::MAX)
            .users
            .into_iter()
            .cloned()
            .collect()
    }
}

impl Presence {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Nothing in here panics half-way through a change, so a poisoned table
        // is still sound.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    /// One socket of `user_id` fewer in `room`; true if the room's list
    /// changed (that was their last socket here, and they are not online
    /// through another node).
    fn uncount(&mut self, room: &str, user_id: i64) -> bool {
        let Some(users) = self.rooms.get_mut(room) else {
            return false;
        };
        let gone = match users.get_mut(&user_id) {
            Some((_, count)) => {
                *count -= 1;
                *count == 0
            }
            None => false,
        };
        if !gone {
            return false;
        }
        let user = users.remove(&user_id);
        if self.rooms.get(room).is_some_and(BTreeMap::is_empty) {
            self.rooms.remove(room); // empty rooms must not pile up
            // Nobody here is shown the room's list any more.
            self.elsewhere.remove(room);
        }
        self.own_change(room);
        // Still online through another node: the list does not change.
        match user {
            Some((user, _)) if !self.is_elsewhere(room, user_id) => {
                self.note(room, &user, false);
                true
            }
            _ => false,
        }
    }

    /// How many users `room` lists: this process's and the other nodes', each
    /// once.
    fn online(&self, room: &str) -> usize {
        let here = self.rooms.get(room);
        let elsewhere = self.elsewhere.get(room).into_iter().flatten();
        let only_elsewhere = elsewhere
            .filter(|(id, _)| !here.is_some_and(|users| users.contains_key(id)))
            .count();
        here.map_or(0, BTreeMap::len) + only_elsewhere
    }

    fn is_elsewhere(&self, room: &str, user_id: i64) -> bool {
        self.elsewhere
            .get(room)
            .is_some_and(|users| users.contains_key(&user_id))
    }

    /// Remembers, in a shared table, that this process's own users of `room`
    /// changed.
    fn own_change(&mut self, room: &str) {
        if let Some(rooms) = &mut self.own_changes {
            rooms.insert(room.to_owned());
        }
    }

    /// Remembers that `user` came (`online`) or went in `room`, until the
    /// change is taken.
    fn note(&mut self, room: &str, user: &User, online: bool) {
        self.first_pages.remove(room);
        let changes = self.changes.entry(room.to_owned()).or_default();
        changes.insert(user.id, (user.clone(), online));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(id: i64, name: &str) -> User {
        User {
            id,
            username: name.to_owned(),
        }
    }

    #[test]
    fn a_user_with_three_tabs_counts_once() {
        let presence = Presence::default();
        let alice = user(1, "alice");
        let tabs = [Sid::new(), Sid::new(), Sid::new()];
        assert!(presence.join(tabs[0], &alice, "general", || true));
        assert!(!presence.join(tabs[1], &alice, "general", || true));
        assert!(!presence.join(tabs[2], &alice, "general", || true));
        assert_eq!(presence.users_in("general"), vec![alice.clone()]);

        assert!(presence.disconnect(tabs[0]).is_empty());
        assert!(presence.disconnect(tabs[1]).is_empty());
        assert_eq!(presence.disconnect(tabs[2]), vec!["general".to_owned()]);
        assert!(presence.users_in("general").is_empty());
    }

    #[test]
    fn leaving_one_room_keeps_the_others() {
        let presence = Presence::default();
        let bob = user(2, "bob");
        let socket = Sid::new();
        presence.join(socket, &bob, "general", || true);
        presence.join(socket, &bob, "rust", || true);
        assert!(presence.leave(socket, "rust"));
        assert!(
            !presence.leave(socket, "rust"),
            "leaving twice changes nothing"
        );
        assert_eq!(presence.users_in("general"), vec![bob]);
        assert!(presence.users_in("rust").is_empty());
    }

    #[test]
    fn joining_the_same_room_twice_counts_once() {
        let presence = Presence::default();
        let carol = user(3, "carol");
        let socket = Sid::new();
        assert!(presence.join(socket, &carol, "general", || true));
        assert!(!presence.join(socket, &carol, "general", || true));
        assert_eq!(presence.disconnect(socket), vec!["general".to_owned()]);
    }

    #[test]
    fn users_are_listed_by_id() {
        let presence = Presence::default();
        presence.join(Sid::new(), &user(9, "zed"), "general", || true);
        presence.join(Sid::new(), &user(4, "amy"), "general", || true);
        let names: Vec<_> = presence
            .users_in("general")
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, ["amy", "zed"]);
    }

    #[test]
    fn a_socket_that_is_already_gone_is_never_counted() {
        let presence = Presence::default();
        let socket = Sid::new();
        // `on_disconnect` ran first (it found nothing to undo), then the
        // connect path got here.
        assert!(presence.disconnect(socket).is_empty());
        assert!(!presence.join(socket, &user(5, "ghost"), "general", || false));
        assert!(presence.users_in("general").is_empty());
    }

    #[test]
    fn a_change_names_each_user_once_with_what_happened_last() {
        let presence = Presence::default();
        let (amy, bob) = (user(1, "amy"), user(2, "bob"));
        let (tab, other_tab, bobs) = (Sid::new(), Sid::new(), Sid::new());
        presence.join(tab, &amy, "general", || true);
        assert_eq!(
            presence.take_change("general"),
            Some(PresenceChange {
                room: "general".into(),
                joined: vec![amy.clone()],
                left: vec![],
                online: 1,
            })
        );
        assert_eq!(presence.take_change("general"), None, "taken once");

        // Bob comes and goes again; Amy's second tab changes nothing; Amy then
        // leaves.
        presence.join(bobs, &bob, "general", || true);
        presence.join(other_tab, &amy, "general", || true);
        presence.disconnect(bobs);
        presence.disconnect(tab);
        presence.disconnect(other_tab);
        let change = presence.take_change("general").expect("a change");
        assert!(change.joined.is_empty());
        assert_eq!(change.left, vec![amy, bob]);
    }

    #[test]
    fn a_change_applied_to_a_newer_list_gives_the_room_as_it_is() {
        let presence = Presence::default();
        let (amy, bob) = (user(1, "amy"), user(2, "bob"));
        let bobs = Sid::new();
        presence.join(Sid::new(), &amy, "general", || true);
        presence.take_change("general");
        // A socket enters between two changes: its list shows Bob, who then
        // goes.
        presence.join(bobs, &bob, "general", || true);
        let mut seen: Vec<User> = presence.users_in("general");
        presence.disconnect(bobs);
        let change = presence.take_change("general").expect("a change");
        seen.retain(|u| !change.left.contains(u));
        let newcomers: Vec<User> = change
            .joined
            .into_iter()
            .filter(|u| !seen.contains(u))
            .collect();
        seen.extend(newcomers);
        assert_eq!(seen, presence.users_in("general"));
    }

    #[test]
    fn a_user_online_here_and_elsewhere_is_listed_once_and_leaves_once() {
        let presence = Presence::shared();
        let (amy, bob, cy) = (user(1, "amy"), user(2, "bob"), user(3, "cy"));
        let tab = Sid::new();
        assert!(presence.join(tab, &amy, "general", || true));
        assert!(presence.join(Sid::new(), &cy, "general", || true));
        presence.take_change("general");
        // Another node has Amy (a second tab) and Bob.
        let elsewhere = BTreeMap::from([(1, amy.clone()), (2, bob.clone())]);
        assert!(presence.set_elsewhere("general", elsewhere));
        let change = presence.take_change("general").expect("Bob came");
        assert_eq!((change.joined, change.online), (vec![bob.clone()], 3));
        let everyone = vec![amy.clone(), bob.clone(), cy.clone()];
        assert_eq!(presence.users_in("general"), everyone);

        // Amy's tab here closes: she is still online on the other node.
        assert!(presence.disconnect(tab).is_empty());
        assert_eq!(presence.take_change("general"), None);
        // The other node dies: Amy and Bob are gone.
        assert!(presence.set_elsewhere("general", BTreeMap::new()));
        let change = presence.take_change("general").expect("both went");
        assert_eq!((change.left, change.online), (vec![amy, bob], 1));
        assert_eq!(presence.users_in("general"), vec![cy]);
    }

    #[test]
    fn a_room_nobody_here_is_in_keeps_no_list_from_elsewhere() {
        let presence = Presence::shared();
        let elsewhere = BTreeMap::from([(2, user(2, "bob"))]);
        assert!(!presence.set_elsewhere("rust", elsewhere.clone()));
        let tab = Sid::new();
        presence.join(tab, &user(1, "amy"), "rust", || true);
        assert!(presence.set_elsewhere("rust", elsewhere));
        presence.disconnect(tab);
        assert_eq!(
            presence.users_in("rust"),
            vec![],
            "forgotten with the last one here"
        );
    }

    #[test]
    fn a_shared_table_reports_its_own_rooms_changes_once() {
        let presence = Presence::shared();
        let (amy, tab) = (user(1, "amy"), Sid::new());
        presence.join(tab, &amy, "general", || true);
        presence.join(Sid::new(), &amy, "general", || true); // a second tab
        let changes = presence.take_own_changes();
        assert_eq!(changes, vec![("general".to_owned(), vec![amy.clone()])]);
        assert!(presence.take_own_changes().is_empty(), "taken once");
        presence.disconnect(tab);
        assert!(
            presence.take_own_changes().is_empty(),
            "her other tab is here"
        );
        assert!(Presence::default().take_own_changes().is_empty());
    }

    #[test]
    fn pages_merge_this_node_s_users_and_the_others_by_id() {
        let presence = Presence::shared();
        presence.join(Sid::new(), &user(2, "bob"), "general", || true);
        presence.join(Sid::new(), &user(4, "dan"), "general", || true);
        let elsewhere = [user(1, "amy"), user(2, "bob"), user(3, "cy")];
        let elsewhere = elsewhere.into_iter().map(|user| (user.id, user)).collect();
        presence.set_elsewhere("general", elsewhere);
        let page = parsed_page(&presence, None, 3);
        let names: Vec<_> = page["users"]
            .as_array()
            .expect("users")
            .iter()
            .map(|user| user["username"].as_str().expect("a name"))
            .collect();
        assert_eq!(names, ["amy", "bob", "cy"]);
        assert_eq!(
            (page["online"].as_u64(), page["more"].as_bool()),
            (Some(4), Some(true))
        );
        let page = parsed_page(&presence, Some(3), 3);
        assert_eq!(page["users"][0]["username"], "dan");
        assert_eq!(page["more"], false);
    }

    /// A page as the client would parse it.
    fn parsed_page(presence: &Presence, after: Option<i64>, size: usize) -> serde_json::Value {
        let page = presence.page("general", after, size).expect("serialises");
        // `Encoded` is an event's one argument: `[{...}]`.
        let arguments = serde_json::to_value(&*page).expect("serialises");
        arguments[0].clone()
    }

    #[test]
    fn the_first_page_is_serialised_once_per_change_and_always_current() {
        let presence = Presence::default();
        let (amy, bob) = (user(1, "amy"), user(2, "bob"));
        let (amys, bobs, bobs_tab) = (Sid::new(), Sid::new(), Sid::new());
        presence.join(amys, &amy, "general", || true);
        presence.join(bobs, &bob, "general", || true);
        let first = presence.page("general", None, 50).expect("serialises");
        // A second tab of Bob changes nobody: the same serialised page.
        presence.join(bobs_tab, &bob, "general", || true);
        let again = presence.page("general", None, 50).expect("serialises");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(
            parsed_page(&presence, None, 50),
            serde_json::json!({
                "room": "general",
                "users": [amy, bob],
                "online": 2,
                "more": false
            })
        );
        // Amy goes: a new page.
        presence.disconnect(amys);
        assert_eq!(
            parsed_page(&presence, None, 50),
            serde_json::json!({
                "room": "general", "users": [bob], "online": 1, "more": false
            })
        );
        // An empty room is not kept.
        presence.disconnect(bobs);
        presence.disconnect(bobs_tab);
        assert_eq!(
            parsed_page(&presence, None, 50),
            serde_json::json!({
                "room": "general", "users": [], "online": 0, "more": false
            })
        );
        assert!(presence.lock().first_pages.is_empty());
    }

    #[test]
    fn pages_list_every_user_once_in_id_order() {
        let presence = Presence::default();
        // Ids with gaps, joined out of order: pages follow ids, not arrival.
        let users: Vec<User> = [7, 3, 12, 5, 9]
            .into_iter()
            .map(|id| user(id, &format!("user{id}")))
            .collect();
        for u in &users {
            presence.join(Sid::new(), u, "general", || true);
        }
        let ids = |page: &serde_json::Value| -> Vec<i64> {
            page["users"]
                .as_array()
                .expect("users")
                .iter()
                .map(|u| u["id"].as_i64().expect("an id"))
                .collect()
        };
        let first = parsed_page(&presence, None, 2);
        assert_eq!((ids(&first), &first["more"]), (vec![3, 5], &json!(true)));
        assert_eq!(first["online"], 5);
        let second = parsed_page(&presence, Some(5), 2);
        assert_eq!((ids(&second), &second["more"]), (vec![7, 9], &json!(true)));
        let last = parsed_page(&presence, Some(9), 2);
        assert_eq!((ids(&last), &last["more"]), (vec![12], &json!(false)));
        // Past the end, or after an id that is not online: still well-formed.
        assert_eq!(ids(&parsed_page(&presence, Some(12), 2)), Vec::<i64>::new());
        assert_eq!(ids(&parsed_page(&presence, Some(4), 2)), vec![5, 7]);
        // A page of exactly the rest says there is no more.
        let exact = parsed_page(&presence, Some(7), 2);
        assert_eq!((ids(&exact), &exact["more"]), (vec![9, 12], &json!(false)));
    }

    #[test]
    fn unknown_sockets_change_nothing() {
        let presence = Presence::default();
        assert!(!presence.leave(Sid::new(), "general"));
        assert!(presence.disconnect(Sid::new()).is_empty());
    }
}
