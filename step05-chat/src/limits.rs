//! How much one user, one socket and one room may ask of the server.
//!
//! Logging in proves who someone is, not that they are harmless: an account is
//! free, and a script with one can open a thousand sockets, join and leave
//! rooms ten thousand times a second, or keep sending after it has been told
//! "rate limited". Each limit here is a named setting with a default that a
//! class of 40 never reaches; `RATE_LIMITS=off` lifts them all (for load
//! tests), and says so loudly at startup.
//!
//! In Node.js the same jobs fall to `rate-limiter-flexible` (per key, in memory
//! or in a shared store) and to counting sockets yourself in `io.use()`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use socketioxide::socket::Sid;

// ANCHOR: settings
/// The chat's limits. `Default` is what `cargo run` uses without settings.
#[derive(Debug, Clone)]
pub struct ChatLimits {
    /// `RATE_LIMITS`: `off` lifts every limit below and the per-user message
    /// limit.
    pub enabled: bool,
    /// `MAX_SOCKETS_PER_USER`: tabs and devices one user may have connected at
    /// once.
    pub sockets_per_user: usize,
    /// `MAX_ROOMS_PER_SOCKET`: rooms one socket may be in, besides `general`.
    pub rooms_per_socket: usize,
    /// `ROOM_MESSAGES_PER_SECOND`: messages per second one room accepts from
    /// everyone together (twice that in a burst), whatever the number of
    /// accounts sending.
    pub room_messages_per_second: f64,
    /// Joins and leaves per second one user may make (five times that in a
    /// burst): each one tells the whole room who is there.
    pub room_changes_per_second: f64,
    /// Refused events (rate-limited sends, joins, typing) one user may rack up
    /// in ten seconds before the socket that keeps trying is disconnected. A
    /// person who pastes twenty lines is refused a few times and stays; a
    /// script is cut off.
    pub refusals_per_10s: u32,
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            enabled: true,
            sockets_per_user: 20,
            rooms_per_socket: 20,
            room_messages_per_second: 30.0,
            room_changes_per_second: 2.0,
            refusals_per_10s: 200,
        }
    }
}
// ANCHOR_END: settings

/// "As fast as anyone can": a rate no client reaches (kept finite so the
/// bucket arithmetic stays ordinary numbers).
pub const UNLIMITED_RATE: f64 = 1e12;

impl ChatLimits {
    /// No limits at all (`RATE_LIMITS=off`).
    pub fn off() -> Self {
        ChatLimits {
            enabled: false,
            sockets_per_user: usize::MAX,
            rooms_per_socket: usize::MAX,
            room_messages_per_second: UNLIMITED_RATE,
            room_changes_per_second: UNLIMITED_RATE,
            refusals_per_10s: u32::MAX,
        }
    }
}

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
