//! Sockets per user and rooms per socket, checked and taken in one step under
//! one lock (step 5 checks rooms under its delivery lock instead; the rooms'
//! tasks here have no such lock).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use socketioxide::socket::Sid;

/// What each socket holds: a place among its user's sockets, and its rooms.
/// Checked and taken in one step under one lock, so that 500 `join`s arriving
/// at once cannot all see "19 rooms, one more is fine" before any of them is
/// counted.
#[derive(Debug, Clone, Default)]
pub struct Quotas {
    inner: Arc<Mutex<Holdings>>,
}

#[derive(Debug, Default)]
struct Holdings {
    /// user id → their connected sockets
    users: HashMap<i64, HashSet<Sid>>,
    /// socket → (its user, the rooms it holds a place in)
    sockets: HashMap<Sid, (i64, HashSet<String>)>,
}

// ANCHOR: quotas
impl Quotas {
    /// Takes a place for `room` among the rooms of `socket`, if it holds fewer
    /// than `max` (or holds `room` already). Returns whether it may be in the
    /// room.
    pub fn take_room(&self, socket: Sid, room: &str, max: usize) -> bool {
        let mut held = self.lock();
        let Some((_, rooms)) = held.sockets.get_mut(&socket) else {
            return false; // not admitted, or already gone
        };
        if rooms.contains(room) {
            return true;
        }
        if rooms.len() >= max {
            return false;
        }
        rooms.insert(room.to_owned());
        true
    }

    /// Gives back the place of `room` (after a `leave`, or a join that failed).
    pub fn give_back_room(&self, socket: Sid, room: &str) {
        if let Some((_, rooms)) = self.lock().sockets.get_mut(&socket) {
            rooms.remove(room);
        }
    }
}
// ANCHOR_END: quotas

// ANCHOR: quotas_sockets
impl Quotas {
    /// Takes a place for `socket` among the sockets of `user_id`, if fewer than
    /// `max` are taken. Returns whether it got one.
    pub fn admit(&self, user_id: i64, socket: Sid, max: usize) -> bool {
        let mut held = self.lock();
        let sockets = held.users.entry(user_id).or_default();
        if sockets.len() >= max && !sockets.contains(&socket) {
            return false;
        }
        sockets.insert(socket);
        held.sockets
            .entry(socket)
            .or_insert((user_id, HashSet::new()));
        true
    }

    /// Gives back everything `socket` held: it disconnected.
    pub fn release(&self, socket: Sid) {
        let mut held = self.lock();
        let Some((user_id, _)) = held.sockets.remove(&socket) else {
            return;
        };
        if let Some(sockets) = held.users.get_mut(&user_id) {
            sockets.remove(&socket);
            if sockets.is_empty() {
                held.users.remove(&user_id);
            }
        }
    }
}
// ANCHOR_END: quotas_sockets

impl Quotas {
    fn lock(&self) -> std::sync::MutexGuard<'_, Holdings> {
        // Nothing panics while holding it, so a poisoned table is still sound.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_max_sockets_and_a_place_comes_back_on_release() {
        let quotas = Quotas::default();
        let tabs: Vec<Sid> = (0..3).map(|_| Sid::new()).collect();
        assert!(quotas.admit(1, tabs[0], 2));
        assert!(quotas.admit(1, tabs[1], 2));
        assert!(!quotas.admit(1, tabs[2], 2), "the third of two");
        assert!(quotas.admit(2, tabs[2], 2), "another user is not affected");
        quotas.release(tabs[0]);
        assert!(quotas.admit(1, Sid::new(), 2));
    }

    #[test]
    fn rooms_are_counted_once_and_given_back() {
        let quotas = Quotas::default();
        let socket = Sid::new();
        assert!(!quotas.take_room(socket, "rust", 2), "not admitted yet");
        quotas.admit(1, socket, 20);
        assert!(quotas.take_room(socket, "rust", 2));
        assert!(quotas.take_room(socket, "rust", 2), "the same room again");
        assert!(quotas.take_room(socket, "go", 2));
        assert!(!quotas.take_room(socket, "zig", 2));
        quotas.give_back_room(socket, "go");
        assert!(quotas.take_room(socket, "zig", 2));
    }
}
