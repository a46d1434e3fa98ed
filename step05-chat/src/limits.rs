//! How much one user, one socket and one room may ask of the server. Logging
//! in proves who someone is, not that they are harmless: a script with a free
//! account can open a thousand sockets. Each limit is a setting with a default
//! a class of 40 never reaches; `RATE_LIMITS=off` lifts them all (load tests).
//! Rates are counted by the [`governor`] crate, as step 3's throttles are (in
//! Node.js: `rate-limiter-flexible`).

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};

// ANCHOR: settings
/// The chat's limits. `Default` is what `cargo run` uses without settings.
#[derive(Debug, Clone)]
pub struct ChatLimits {
    /// `RATE_LIMITS`: `off` lifts every limit, the message rate included.
    pub enabled: bool,
    /// `MAX_SOCKETS_PER_USER`: tabs and devices connected at once.
    pub sockets_per_user: usize,
    /// `MAX_ROOMS_PER_SOCKET`: rooms one socket may be in, besides `general`.
    pub rooms_per_socket: usize,
    /// `ROOM_MESSAGES_PER_SECOND`: from everyone together (twice that at once).
    pub room_messages_per_second: f64,
    /// Joins and leaves per second per user (five times that at once).
    pub room_changes_per_second: f64,
    /// Refused events in ten seconds before a socket is disconnected: a person
    /// is refused a few times and stays; a script is cut off.
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

/// "As fast as anyone can": a rate no client reaches.
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

// ANCHOR: message_rate
/// How fast one user may send messages: `burst` at once, then `per_second`.
/// Per user, not per socket: ten tabs do not buy ten times the rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MessageRate {
    pub burst: u32,
    pub per_second: f64,
}

impl Default for MessageRate {
    /// 20 at once, then 5 a second: generous for a person, tight for a script.
    fn default() -> Self {
        MessageRate { burst: 20, per_second: 5.0 }
    }
}

/// A rate per key (a user id, a room); `None` is no limit.
pub(crate) type Limiter<K> = Option<Arc<DefaultKeyedRateLimiter<K>>>;

/// `burst` at once, then `per_second`, for each key. Faster than one a
/// nanosecond (such as [`UNLIMITED_RATE`]) is no limit; a rate that is not
/// positive gives one back a day.
pub(crate) fn limiter<K: Hash + Eq + Clone>(
    burst: f64,
    per_second: f64,
) -> Limiter<K> {
    let burst = burst.clamp(1.0, f64::from(u32::MAX)) as u32;
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let period = Duration::try_from_secs_f64(1.0 / per_second)
        .unwrap_or(Duration::from_secs(86_400));
    let quota = Quota::with_period(period)?.allow_burst(burst);
    Some(Arc::new(DefaultKeyedRateLimiter::keyed(quota)))
}

/// Whether `key` may go on: always, if there is no limit.
pub(crate) fn allows<K: Hash + Eq + Clone>(
    limiter: &Limiter<K>,
    key: &K,
) -> bool {
    limiter.as_ref().is_none_or(|limiter| limiter.check_key(key).is_ok())
}
// ANCHOR_END: message_rate

// ANCHOR: sockets_per_user
/// How many sockets each user has connected, checked and counted under one
/// lock: 30 tabs connecting at once cannot all see "19, one more is fine".
#[derive(Debug, Clone, Default)]
pub(crate) struct SocketCount(Arc<Mutex<HashMap<i64, usize>>>);

impl SocketCount {
    /// Counts one more socket of `user_id`, if fewer than `max` are counted.
    pub(crate) fn admit(&self, user_id: i64, max: usize) -> bool {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.get(&user_id).copied().unwrap_or(0);
        let admitted = count < max;
        if admitted {
            counts.insert(user_id, count + 1);
        }
        admitted
    }

    /// One socket of `user_id` fewer: it disconnected.
    pub(crate) fn release(&self, user_id: i64) {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&user_id) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&user_id);
            }
        }
    }
}
// ANCHOR_END: sockets_per_user

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_max_sockets_and_a_place_comes_back_on_release() {
        let count = SocketCount::default();
        assert!(count.admit(1, 2));
        assert!(count.admit(1, 2));
        assert!(!count.admit(1, 2), "the third of two");
        assert!(count.admit(2, 2), "another user is not affected");
        count.release(1);
        assert!(count.admit(1, 2));
        assert!(!count.admit(3, 0), "none allowed");
        assert!(count.0.lock().map(|c| !c.contains_key(&3)).unwrap_or(false));
    }

    #[test]
    fn governor_counts_a_burst_then_refuses() {
        let slow = limiter::<i64>(3.0, 0.01);
        assert_eq!((0..5).filter(|_| allows(&slow, &1)).count(), 3);
        assert!(allows(&slow, &2), "another user has their own budget");
        assert!(limiter::<i64>(5.0, UNLIMITED_RATE).is_none(), "no limit");
    }
}
