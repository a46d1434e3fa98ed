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

/// What a socket holds in [`Quotas`], given back when this is dropped: kept in
/// the socket's extensions, it is dropped with a socket whose connection
/// closed while it was being admitted (no disconnect handler ever runs for
/// such a socket; `on_disconnect` gives back the others at once).
#[derive(Debug)]
pub struct Holding {
    quotas: Quotas,
    socket: Sid,
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.quotas.release(self.socket);
    }
}

// ANCHOR: quotas_sockets
impl Quotas {
    /// Takes a place for `socket` among the sockets of `user_id`, if fewer than
    /// `max` are taken; what it holds is given back when the [`Holding`] is
    /// dropped, or by [`Quotas::release`].
    pub fn admit(&self, user_id: i64, socket: Sid, max: usize) -> Option<Holding> {
        let mut held = self.lock();
        let sockets = held.users.entry(user_id).or_default();
        if sockets.len() >= max && !sockets.contains(&socket) {
            return None;
        }
        sockets.insert(socket);
        held.sockets
            .entry(socket)
            .or_insert((user_id, HashSet::new()));
        Some(Holding {
            quotas: self.clone(),
            socket,
        })
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
        let first = quotas.admit(1, tabs[0], 2).expect("a first place");
        let _second = quotas.admit(1, tabs[1], 2).expect("a second place");
        assert!(quotas.admit(1, tabs[2], 2).is_none(), "the third of two");
        let other = quotas.admit(2, tabs[2], 2);
        assert!(other.is_some(), "another user is not affected");
        quotas.release(tabs[0]);
        let third = quotas.admit(1, Sid::new(), 2).expect("released");
        drop(first); // already released: gives back nothing more
        assert!(quotas.admit(1, Sid::new(), 2).is_none());
        drop(third); // dropped unreleased: its place comes back
        assert!(quotas.admit(1, Sid::new(), 2).is_some());
    }

    #[test]
    fn rooms_are_counted_once_and_given_back() {
        let quotas = Quotas::default();
        let socket = Sid::new();
        assert!(!quotas.take_room(socket, "rust", 2), "not admitted yet");
        let _holding = quotas.admit(1, socket, 20);
        assert!(quotas.take_room(socket, "rust", 2));
        assert!(quotas.take_room(socket, "rust", 2), "the same room again");
        assert!(quotas.take_room(socket, "go", 2));
        assert!(!quotas.take_room(socket, "zig", 2));
        quotas.give_back_room(socket, "go");
        assert!(quotas.take_room(socket, "zig", 2));
    }
}
