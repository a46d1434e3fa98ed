//! Who is online in which room.
//!
//! A user may have several sockets (three tabs, a phone and a laptop), and each socket may be
//! in several rooms. The presence list shows *users*, once each, so we count sockets per user
//! per room and only report a change when a count goes from 0 to 1 or from 1 to 0.
//!
//! A socket entering a room gets the room's whole list once; after that it hears only the
//! changes ([`PresenceChange`]). In a room of 500 users and 10,000 sockets, sending the whole
//! list on every change would be 10,000 copies of a 20 KB list each time someone comes or goes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use socketioxide::socket::Sid;
use step03_passport_like_auth::User;

use crate::delivery::Encoded;

/// The users who came and went in a room since the last change was taken, each named once,
/// with what happened to them *last*: someone who came and went again is in `left`. Applied
/// to any list at least as new as the previous change, it gives the room as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceChange {
    pub room: String,
    pub joined: Vec<User>,
    pub left: Vec<User>,
}

/// The online users of every room. Cheap to clone: clones share one table.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    inner: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    /// room → user id → (user, how many of their sockets are in the room)
    rooms: HashMap<String, BTreeMap<i64, (User, usize)>>,
    /// socket → the rooms it is counted in, so a disconnect can undo all of them
    sockets: HashMap<Sid, (User, HashSet<String>)>,
    /// room → user id → (user, online?) for the changes not yet taken
    changes: HashMap<String, BTreeMap<i64, (User, bool)>>,
    /// room → its `presence` event, serialised, until its users change
    lists: HashMap<String, Arc<Encoded>>,
}

/// The `presence` event: `{"room": "general", "users": [...]}`.
#[derive(Serialize)]
struct PresenceList<'a> {
    room: &'a str,
    users: Vec<&'a User>,
}

// ANCHOR: presence
impl Presence {
    /// Counts `socket` (of `user`) in `room`, if `still_connected()` says the socket is still
    /// there, asked under the table's lock: [`Self::disconnect`] takes the same lock, so a
    /// socket is either counted and later uncounted, or never counted. Returns whether the
    /// room's set of users changed.
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
        let came = *count == 1;
        if came {
            table.note(room, user, true);
        }
        came
    }

    /// Stops counting `socket` in `room`. Returns whether the room's set of users changed.
    pub fn leave(&self, socket: Sid, room: &str) -> bool {
        let mut table = self.lock();
        let Some((user, rooms)) = table.sockets.get_mut(&socket) else {
            return false;
        };
        if !rooms.remove(room) {
            return false;
        }
        let user_id = user.id;
        table.uncount(room, user_id)
    }

    /// Forgets `socket` everywhere. Returns the rooms whose set of users changed.
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
        changed
    }

    /// Takes the changes of `room` since the last call, if there are any.
    pub fn take_change(&self, room: &str) -> Option<PresenceChange> {
        let changes = self.lock().changes.remove(room)?;
        let (joined, left) = changes.into_values().partition::<Vec<_>, _>(|(_, on)| *on);
        Some(PresenceChange {
            room: room.to_owned(),
            joined: joined.into_iter().map(|(user, _)| user).collect(),
            left: left.into_iter().map(|(user, _)| user).collect(),
        })
    }

    /// The `presence` event of `room`, every user online there, each once, ordered by id:
    /// serialised once per change of the room's users, not once per socket that enters it
    /// (10,000 sockets entering a room of 500 users would otherwise serialise 5 million).
    pub fn list(&self, room: &str) -> serde_json::Result<Arc<Encoded>> {
        let mut guard = self.lock();
        let table = &mut *guard;
        if let Some(list) = table.lists.get(room) {
            return Ok(list.clone());
        }
        let users = table
            .rooms
            .get(room)
            .map(|users| users.values().map(|(user, _)| user).collect())
            .unwrap_or_default();
        let list = Arc::new(Encoded::new(&PresenceList { room, users })?);
        // Only for a room with someone in it: the cache must not keep every name ever asked.
        if table.rooms.contains_key(room) {
            table.lists.insert(room.to_owned(), list.clone());
        }
        Ok(list)
    }

    /// The users online in `room`, each once, ordered by id.
    pub fn users_in(&self, room: &str) -> Vec<User> {
        self.lock()
            .rooms
            .get(room)
            .map(|users| users.values().map(|(user, _)| user.clone()).collect())
            .unwrap_or_default()
    }
}
// ANCHOR_END: presence

impl Presence {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Nothing in here panics half-way through a change, so a poisoned table is still sound.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    /// One socket of `user_id` fewer in `room`; true if that was the last one.
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
        if gone {
            if let Some((user, _)) = users.remove(&user_id) {
                self.note(room, &user, false);
            }
            if self.rooms.get(room).is_some_and(BTreeMap::is_empty) {
                self.rooms.remove(room); // empty rooms must not pile up
            }
        }
        gone
    }

    /// Remembers that `user` came (`online`) or went in `room`, until the change is taken.
    fn note(&mut self, room: &str, user: &User, online: bool) {
        self.lists.remove(room);
        let changes = self.changes.entry(room.to_owned()).or_default();
        changes.insert(user.id, (user.clone(), online));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // `on_disconnect` ran first (it found nothing to undo), then the connect path got here.
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
                left: vec![]
            })
        );
        assert_eq!(presence.take_change("general"), None, "taken once");

        // Bob comes and goes again; Amy's second tab changes nothing; Amy then leaves.
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
        // A socket enters between two changes: its list shows Bob, who then goes.
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

    /// The `presence` event as the client would parse it.
    fn parsed_list(presence: &Presence, room: &str) -> serde_json::Value {
        let list = presence.list(room).expect("serialises");
        // `Encoded` is an event's one argument: `[{...}]`.
        let arguments = serde_json::to_value(&*list).expect("serialises");
        arguments[0].clone()
    }

    #[test]
    fn the_list_is_serialised_once_per_change_and_always_current() {
        let presence = Presence::default();
        let (amy, bob) = (user(1, "amy"), user(2, "bob"));
        let (amys, bobs, bobs_tab) = (Sid::new(), Sid::new(), Sid::new());
        presence.join(amys, &amy, "general", || true);
        presence.join(bobs, &bob, "general", || true);
        let first = presence.list("general").expect("serialises");
        // A second tab of Bob changes nobody: the same serialised list.
        presence.join(bobs_tab, &bob, "general", || true);
        assert!(Arc::ptr_eq(
            &first,
            &presence.list("general").expect("serialises")
        ));
        assert_eq!(
            parsed_list(&presence, "general"),
            serde_json::json!({ "room": "general", "users": [amy, bob] })
        );
        // Amy goes: a new list.
        presence.disconnect(amys);
        assert_eq!(
            parsed_list(&presence, "general"),
            serde_json::json!({ "room": "general", "users": [bob] })
        );
        // An empty room is not kept.
        presence.disconnect(bobs);
        presence.disconnect(bobs_tab);
        assert_eq!(
            parsed_list(&presence, "general")["users"],
            serde_json::json!([])
        );
        assert!(presence.lock().lists.is_empty());
    }

    #[test]
    fn unknown_sockets_change_nothing() {
        let presence = Presence::default();
        assert!(!presence.leave(Sid::new(), "general"));
        assert!(presence.disconnect(Sid::new()).is_empty());
    }
}
