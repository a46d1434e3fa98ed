//! A per-user limit on how fast messages may be sent.
//!
//! Logging in proves who is talking, not that they are talking at a human pace:
//! one `setInterval(() => socket.emit("chat message", "spam"), 1)` fills every
//! screen and the database. Each user gets a bucket of sends: it holds up to
//! `burst`, every message spends one, and they come back at `per_second`. A person typing never notices; a loop is cut down to
//! `per_second` messages a second.
//!
//! The limit is per user, not per socket, so opening ten tabs does not buy ten
//! times the rate.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// One user's bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Sends left, fractional because they trickle back continuously.
    allowance: f64,
    /// When `allowance` was last brought up to date.
    updated: Instant,
}

/// The buckets of every user (or other key: a room's name) that sent
/// something recently.
///
/// Cloning is cheap and every clone shares the same buckets, so one limiter can
/// be handed to every socket handler.
#[derive(Clone, Debug)]
pub struct RateLimiter<K = i64> {
    // A std (not tokio) mutex: it is held for a few arithmetic operations and
    // never across an `.await`, so no task can sit on it while others wait.
    buckets: Arc<Mutex<HashMap<K, Bucket>>>,
    burst: f64,
    per_second: f64,
}

impl Default for RateLimiter {
    /// 20 messages in a burst, then 5 a second: generous for a person, tight
    /// for a script.
    fn default() -> Self {
        Self::new(20, 5.0)
    }
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// A limiter that lets each user send `burst` messages at once, then
    /// `per_second` more every second. A `per_second` that is not positive (or
    /// NaN) means spent sends never come back.
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self {
            buckets: Arc::default(),
            burst: f64::from(burst),
            // `f64::max` ignores NaN, so NaN becomes 0 here too.
            per_second: per_second.max(0.0),
        }
    }

    /// How many messages may be sent at once.
    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// How many sends come back each second.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Whether `user_id` may send a message now; if so, the send is spent.
    pub fn check(&self, user_id: K) -> bool {
        self.check_at(user_id, Instant::now())
    }

    // ANCHOR: check
    /// [`Self::check`] with the clock passed in, so tests can move time forward
    /// without sleeping.
    fn check_at(&self, user_id: K, now: Instant) -> bool {
        let mut buckets = self.lock();
        // A user we have not seen (or have forgotten) starts with a full
        // bucket.
        let bucket = buckets.entry(user_id).or_insert(Bucket {
            allowance: self.burst,
            updated: now,
        });
        // Rather than a timer adding sends, work out how many would have been
        // added since we last looked. `saturating_` because a caller's `now`
        // may be slightly behind ours.
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.allowance = (bucket.allowance + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.allowance >= 1.0 {
            bucket.allowance -= 1.0;
            true
        } else {
            false
        }
    }
    // ANCHOR_END: check

    /// Forgets every user whose bucket has filled up again by `now`.
    ///
    /// Such a user is indistinguishable from one never seen (both get a full
    /// bucket), so nothing changes for them, and the map only holds users who
    /// sent something in the last few seconds instead of everyone since the
    /// server started. Call it now and then, e.g. from a
    /// `tokio::time::interval` task.
    pub fn forget_idle(&self, now: Instant) {
        let (burst, per_second) = (self.burst, self.per_second);
        self.lock().retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.allowance + elapsed * per_second < burst
        });
    }

    /// How many users currently have a bucket.
    pub fn tracked_users(&self) -> usize {
        self.lock().len()
    }

    // Only a panic while holding the lock poisons it, and nothing above can
    // panic half-way through updating a bucket, so the data is still sound:
    // keep using it.
    fn lock(&self) -> MutexGuard<'_, HashMap<K, Bucket>> {
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// How many of `attempts` checks at `now` were allowed.
    fn allowed(limiter: &RateLimiter, user_id: i64, attempts: usize, now: Instant) -> usize {
        (0..attempts)
            .filter(|_| limiter.check_at(user_id, now))
            .count()
    }

    #[test]
    fn a_burst_of_twenty_passes_and_the_twenty_first_is_refused() {
        let limiter = RateLimiter::default();
        let start = Instant::now();

        assert_eq!(allowed(&limiter, 1, 20, start), 20);
        assert!(!limiter.check_at(1, start));
    }

    #[test]
    fn after_one_second_five_more_pass() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        assert_eq!(allowed(&limiter, 1, 21, start), 20);

        let later = start + Duration::from_secs(1);

        assert_eq!(allowed(&limiter, 1, 6, later), 5);
    }

    #[test]
    fn sends_come_back_gradually_not_all_at_once() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        allowed(&limiter, 1, 20, start);

        // At 5 a second, one send takes 200 ms to come back.
        assert!(!limiter.check_at(1, start + Duration::from_millis(150)));
        assert!(limiter.check_at(1, start + Duration::from_millis(200)));
        assert!(!limiter.check_at(1, start + Duration::from_millis(250)));
    }

    #[test]
    fn a_long_pause_refills_only_up_to_the_burst() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        allowed(&limiter, 1, 20, start);

        let much_later = start + Duration::from_secs(3600);

        assert_eq!(allowed(&limiter, 1, 30, much_later), 20);
    }

    #[test]
    fn users_have_independent_buckets() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        assert_eq!(allowed(&limiter, 1, 25, now), 20);

        assert_eq!(allowed(&limiter, 2, 25, now), 20);
    }

    #[test]
    fn clones_share_the_same_buckets() {
        let limiter = RateLimiter::default();
        let clone = limiter.clone();
        let now = Instant::now();
        allowed(&limiter, 1, 20, now);

        assert!(!clone.check_at(1, now));
    }

    #[test]
    fn forget_idle_drops_only_buckets_that_are_full_again() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        allowed(&limiter, 1, 20, start); // empty: needs 4 s to refill
        allowed(&limiter, 2, 1, start); // one short: needs 200 ms

        limiter.forget_idle(start + Duration::from_secs(1));
        assert_eq!(limiter.tracked_users(), 1, "only user 2 is full again");

        limiter.forget_idle(start + Duration::from_secs(4));
        assert_eq!(limiter.tracked_users(), 0);
    }

    #[test]
    fn a_forgotten_user_starts_again_with_a_full_burst() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        allowed(&limiter, 1, 20, start);
        let later = start + Duration::from_secs(10);

        limiter.forget_idle(later);

        assert_eq!(allowed(&limiter, 1, 25, later), 20);
    }

    #[test]
    fn check_uses_the_real_clock() {
        let limiter = RateLimiter::new(2, 0.0);

        assert!(limiter.check(7));
        assert!(limiter.check(7));
        assert!(!limiter.check(7));
    }

    #[test]
    fn a_time_slightly_in_the_past_does_not_panic_or_refill() {
        let limiter = RateLimiter::new(1, 1.0);
        let now = Instant::now();
        assert!(limiter.check_at(1, now + Duration::from_secs(1)));

        assert!(!limiter.check_at(1, now));
    }

    #[test]
    fn a_nan_rate_never_refills() {
        let limiter = RateLimiter::new(1, f64::NAN);
        let start = Instant::now();
        assert!(limiter.check_at(1, start));

        assert!(!limiter.check_at(1, start + Duration::from_secs(60)));
    }
}
