//! Fair use: how much one user, or one room, may ask of a socket server.
//! Logging in proves who someone is, not that they are harmless: a script with
//! a free account can open a thousand sockets, or send a thousand events a
//! second. Step 5 chooses the numbers; this module counts:
//! - [`RateLimit`]: `burst` at once, then so many a second, per key (a user
//!   id, a room's name), counted by the [`governor`] crate as step 3's
//!   throttles are (in Node.js: `rate-limiter-flexible`);
//! - [`FairRoom`]: a room's pace shared by everyone in it, fairly;
//! - [`Strikes`]: refused events, before a socket is cut off;
//! - [`SocketCount`]: how many sockets each user has connected.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota};
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;

/// Why an event was refused: too many, too fast. (Like every refusal, a
/// strike: see [`Strikes`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited")]
pub struct RateLimited;

/// "As fast as anyone can": a rate no client reaches, so no limit at all.
pub const UNLIMITED_RATE: f64 = 1e12;

// ANCHOR: rate_limit
/// `burst` at once, then `per_second`, for each key. Cheap to clone: clones
/// share their counts.
/// (`None`: no limit.)
#[derive(Clone)]
pub struct RateLimit<K: Hash + Eq + Clone>(Option<Arc<Counts<K>>>);

struct Counts<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    /// How many keys may be remembered before the idle ones are forgotten.
    tidy_at: AtomicUsize,
}

/// Keys remembered before the first tidying.
const FIRST_TIDY: usize = 1024;

impl<K: Hash + Eq + Clone> RateLimit<K> {
    /// Faster than one a nanosecond (such as [`UNLIMITED_RATE`]) is no limit;
    /// a rate that is not positive gives one back a day.
    pub fn new(burst: f64, per_second: f64) -> Self {
        let burst = burst.clamp(1.0, f64::from(u32::MAX)) as u32;
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let period = Duration::try_from_secs_f64(1.0 / per_second)
            .unwrap_or(Duration::from_secs(86_400));
        let quota = Quota::with_period(period).map(|q| q.allow_burst(burst));
        RateLimit(quota.map(|quota| {
            let limiter = DefaultKeyedRateLimiter::keyed(quota);
            Arc::new(Counts {
                limiter,
                tidy_at: FIRST_TIDY.into(),
            })
        }))
    }

    /// No limit at all.
    pub fn unlimited() -> Self {
        RateLimit(None)
    }

    // ANCHOR_END: rate_limit
    // ANCHOR: allows
    /// [`RateLimit::allows`], for `?`: `Err(RateLimited)` if not.
    pub fn check(&self, key: &K) -> Result<(), RateLimited> {
        self.allows(key).then_some(()).ok_or(RateLimited)
    }

    /// Whether `key` may go on now; if so, it is counted.
    pub fn allows(&self, key: &K) -> bool {
        let Some(counts) = &self.0 else { return true };
        let allowed = counts.limiter.check_key(key).is_ok();
        // Every key that ever sent something has an entry: forget the ones
        // whose budget is full again each time the table doubles, so it
        // tracks who is active now, at a cost spread over the calls.
        let remembered = counts.limiter.len();
        if remembered >= counts.tidy_at.load(Ordering::Relaxed) {
            counts.limiter.retain_recent();
            let next = (2 * counts.limiter.len()).max(FIRST_TIDY);
            counts.tidy_at.store(next, Ordering::Relaxed);
        }
        allowed
    }

    /// Whether it never refuses.
    pub fn is_unlimited(&self) -> bool {
        self.0.is_none()
    }

    /// How many keys it remembers.
    pub fn remembered(&self) -> usize {
        self.0.as_ref().map_or(0, |counts| counts.limiter.len())
    }
}
// ANCHOR_END: allows

impl<K: Hash + Eq + Clone> fmt::Debug for RateLimit<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limited = self.0.is_some();
        f.debug_struct("RateLimit")
            .field("limited", &limited)
            .finish()
    }
}

// ANCHOR: strikes
/// Refused events per user, before the socket that keeps trying is cut off: a
/// person refused now and then stays connected; a script sending far past its
/// limits, or bad events, costs more to answer than it is worth.
#[derive(Clone, Debug)]
pub struct Strikes(RateLimit<i64>);

/// In a socket's extensions: whose strikes its refusals are.
#[derive(Clone, Debug)]
struct StrikesOf(Strikes, i64);

impl Strikes {
    /// At most `per_10s` refusals in ten seconds (as many at once).
    pub fn new(per_10s: u32) -> Self {
        let per_10s = f64::from(per_10s);
        Strikes(RateLimit::new(per_10s, per_10s / 10.0))
    }

    /// From now on, every refusal [`answer`](crate::delivery::answer) sends
    /// on `socket` is a strike of `user_id`: no handler can forget to count.
    pub fn count_on<A: Adapter>(&self, socket: &SocketRef<A>, user_id: i64) {
        socket.extensions.insert(StrikesOf(self.clone(), user_id));
    }

    /// One refusal of `user_id`; past the allowance, `socket` is
    /// disconnected.
    pub fn strike<A: Adapter>(&self, socket: &SocketRef<A>, user_id: i64) {
        if !self.0.allows(&user_id) {
            let sid = socket.id;
            tracing::warn!(user_id, %sid, "too many refusals: disconnecting");
            socket.clone().disconnect().ok();
        }
    }
}

/// A strike for the user of `socket`, if [`Strikes::count_on`] names one.
pub fn strike<A: Adapter>(socket: &SocketRef<A>) {
    if let Some(StrikesOf(strikes, user_id)) = socket.extensions.get() {
        strikes.strike(socket, user_id);
    }
}
// ANCHOR_END: strikes

// ANCHOR: fair_room
/// How far back a room remembers who sent what.
pub const FAIR_SHARE_WINDOW: Duration = Duration::from_secs(10);

/// A room's pace (`burst` at once, then `per_second`, from everyone together),
/// shared fairly: a sender who sent at most a fair share of the room's rate
/// in the last [`FAIR_SHARE_WINDOW`] (the rate divided by the number of
/// senders then) gets in even when the pace is spent, and the senders above
/// their share pay for it: they are refused until the pace has caught up.
/// Twenty accounts flooding a room then crowd out nobody, and the room still
/// carries its rate, no more.
#[derive(Clone)]
pub struct FairRoom {
    burst: f64,
    per_second: f64,
    rooms: Arc<Mutex<Rooms>>,
}

/// Each room's senders, and at what size the quiet rooms are next forgotten.
#[derive(Default)]
struct Rooms {
    senders: HashMap<String, Senders>,
    tidy_at: usize,
}

/// Who a room accepted messages from in the window: each message (oldest
/// first), and how many each sender has there; and how many it let in past
/// its pace, which senders above their share pay back.
#[derive(Default)]
struct Senders {
    accepted: VecDeque<(Instant, i64)>,
    per_user: HashMap<i64, u32>,
    owed: u32,
    /// The pace, a token bucket on the same clock as the window.
    tokens: f64,
    updated: Option<Instant>,
}
// ANCHOR_END: fair_room

impl FairRoom {
    pub fn new(burst: f64, per_second: f64) -> Self {
        let (burst, rooms) = (burst.max(1.0), Arc::default());
        FairRoom {
            burst,
            per_second,
            rooms,
        }
    }

    /// Whether `user_id` may send to `room` now; if so, it is counted.
    pub fn allows(&self, room: &str, user_id: i64) -> bool {
        self.allows_at(room, user_id, Instant::now())
    }

    /// [`FairRoom::allows`], for `?`.
    pub fn check(&self, room: &str, user_id: i64) -> Result<(), RateLimited> {
        self.allows(room, user_id).then_some(()).ok_or(RateLimited)
    }

    // ANCHOR: fair_allows
    /// [`FairRoom::allows`] at `now` (the window's clock; tests move it).
    pub fn allows_at(&self, room: &str, user_id: i64, now: Instant) -> bool {
        if self.per_second >= UNLIMITED_RATE {
            return true;
        }
        let mut rooms =
            self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = now.checked_sub(FAIR_SHARE_WINDOW);
        let senders = rooms.senders.entry(room.to_owned()).or_default();
        senders.forget_before(oldest);
        let fair = senders.within_fair_share(user_id, self.per_second);
        let paced = senders.take_token(now, self.burst, self.per_second);
        let allowed = match (fair, paced) {
            (true, paced) => {
                // Past the pace, on credit: the room owes it to its pace.
                senders.owed += u32::from(!paced);
                true
            }
            // Above its share: the pace's next messages pay the debt first.
            (false, true) if senders.owed > 0 => {
                senders.owed -= 1;
                false
            }
            (false, paced) => paced,
        };
        if allowed {
            senders.accepted.push_back((now, user_id));
            *senders.per_user.entry(user_id).or_insert(0) += 1;
        }
        // As for `RateLimit`: the quiet rooms go each time the table doubles.
        if rooms.senders.len() >= rooms.tidy_at.max(FIRST_TIDY) {
            rooms
                .senders
                .retain(|_, senders| senders.forget_before(oldest));
            rooms.tidy_at = 2 * rooms.senders.len();
        }
        allowed
    }
    // ANCHOR_END: fair_allows
}

// ANCHOR: fair_share
impl Senders {
    /// Whether `user_id` sent at most its fair share of the window: the
    /// room's messages in it, `per_second` × 10 s, divided among everyone who
    /// sent (`user_id` included).
    fn within_fair_share(&self, user_id: i64, per_second: f64) -> bool {
        let mine = self.per_user.get(&user_id).copied().unwrap_or(0);
        let senders = self.per_user.len() + usize::from(mine == 0);
        let window = per_second * FAIR_SHARE_WINDOW.as_secs_f64();
        f64::from(mine) <= window / senders as f64
    }

    /// Takes one of the room's tokens, if it has one: `burst` at most, and
    /// `per_second` more each second.
    fn take_token(
        &mut self,
        now: Instant,
        burst: f64,
        per_second: f64,
    ) -> bool {
        let since = |then| now.saturating_duration_since(then).as_secs_f64();
        let elapsed = self.updated.map_or(f64::INFINITY, since);
        self.tokens = (self.tokens + elapsed * per_second).min(burst);
        self.updated = Some(now);
        let taken = self.tokens >= 1.0;
        self.tokens -= f64::from(u8::from(taken));
        taken
    }

    // ANCHOR_END: fair_share
    /// Forgets what was accepted before `oldest`; whether anything is left.
    fn forget_before(&mut self, oldest: Option<Instant>) -> bool {
        while let Some(&(at, user_id)) = self.accepted.front() {
            if oldest.is_none_or(|oldest| at >= oldest) {
                break;
            }
            self.accepted.pop_front();
            if let Some(count) = self.per_user.get_mut(&user_id) {
                *count -= 1;
                if *count == 0 {
                    self.per_user.remove(&user_id);
                }
            }
        }
        !self.accepted.is_empty()
    }
}

impl fmt::Debug for FairRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_second = self.per_second;
        f.debug_struct("FairRoom")
            .field("per_second", &per_second)
            .finish()
    }
}

// ANCHOR: socket_count
/// How many sockets each user has connected, checked and counted under one
/// lock: 30 tabs connecting at once cannot all see "19, one more is fine".
#[derive(Debug, Clone, Default)]
pub struct SocketCount(Arc<Mutex<HashMap<i64, usize>>>);

impl SocketCount {
    /// A place for one more socket of `user_id`, if fewer than `max` are
    /// taken.
    pub fn admit(&self, user_id: i64, max: usize) -> Option<SocketSlot> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(user_id).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        let (count, held) = (self.clone(), AtomicBool::new(true));
        Some(SocketSlot {
            count,
            user_id,
            held,
        })
    }

    fn give_back(&self, user_id: i64) {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&user_id);
            }
        }
    }
}

// ANCHOR_END: socket_count

// ANCHOR: socket_slot
/// One socket's place among its user's sockets: given back by
/// [`SocketSlot::release`] when the socket disconnects, or else when the slot
/// is dropped. (A socket whose transport closes while its connect middlewares
/// run never gets a disconnect handler call; kept in its extensions, the slot
/// is dropped with it.)
#[derive(Debug)]
pub struct SocketSlot {
    count: SocketCount,
    user_id: i64,
    held: AtomicBool,
}

impl SocketSlot {
    /// Gives the place back (once, however often it is called).
    pub fn release(&self) {
        if self.held.swap(false, Ordering::Relaxed) {
            self.count.give_back(self.user_id);
        }
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.release();
    }
}
// ANCHOR_END: socket_slot

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_allows_its_burst_then_refuses_and_each_key_has_its_own() {
        let limit = RateLimit::new(3.0, 0.001);
        assert!((0..3).all(|_| limit.allows(&1)));
        assert!(!limit.allows(&1));
        assert!(limit.allows(&2), "another key has a budget of its own");
    }

    #[test]
    fn an_unlimited_rate_never_refuses_and_remembers_nobody() {
        for limit in
            [RateLimit::new(1.0, UNLIMITED_RATE), RateLimit::unlimited()]
        {
            assert!((0..10_000).all(|_| limit.allows(&1)));
            assert_eq!(limit.remembered(), 0);
        }
    }

    #[test]
    fn keys_whose_budget_is_full_again_are_forgotten_as_the_table_grows() {
        // Full again 10 ns after each use: sooner than the next call.
        let limit = RateLimit::new(1.0, 1e8);
        for user in 0..FIRST_TIDY as i64 - 1 {
            assert!(limit.allows(&user));
        }
        assert!(limit.allows(&-1), "the key that reaches the threshold");
        assert!(limit.remembered() < 10, "{} kept", limit.remembered());
        let busy = RateLimit::new(1.0, 0.001); // stays spent for 1,000 s
        for user in 0..2 * FIRST_TIDY as i64 {
            assert!(busy.allows(&user));
        }
        assert_eq!(busy.remembered(), 2 * FIRST_TIDY, "spent keys are kept");
        assert!(!busy.allows(&0), "and still refused");
    }

    #[test]
    fn a_rate_that_is_not_positive_still_allows_one() {
        let limit = RateLimit::new(0.0, 0.0);
        assert!(limit.allows(&"room"));
        assert!(!limit.allows(&"room"));
    }

    #[test]
    fn sockets_are_counted_up_to_the_limit_and_given_back() {
        let count = SocketCount::default();
        let first = count.admit(7, 2).expect("a first place");
        let second = count.admit(7, 2).expect("a second place");
        assert!(count.admit(7, 2).is_none(), "a third is one too many");
        first.release();
        first.release(); // twice gives back one place, not two
        let third = count.admit(7, 2).expect("a released place comes back");
        assert!(count.admit(7, 2).is_none());
        drop(second); // a slot dropped unreleased gives its place back too
        assert!(count.admit(7, 2).is_some());
        drop(third);
        assert!(count.admit(8, 0).is_none(), "a limit of zero admits nobody");
    }

    #[test]
    fn a_flooded_room_still_takes_a_quiet_sender_and_refuses_the_flooders() {
        // The chat's default room: 60 at once, then 30 a second, so 300
        // messages in a 10-second window.
        let room = FairRoom::new(60.0, 30.0);
        let start = Instant::now();
        let (mut flooded, mut refused, mut quiet) = (0, 0, Vec::new());
        // 10 s: 20 accounts each at 5 a second, a person every 3 s.
        for tick in 0..50 {
            let at = start + Duration::from_millis(200 * tick);
            for flooder in 1..=20 {
                match room.allows_at("general", flooder, at) {
                    true => flooded += 1,
                    false => refused += 1,
                }
            }
            if tick % 15 == 0 {
                quiet.push(room.allows_at("general", 99, at));
            }
        }
        assert_eq!(quiet, [true; 4], "the person is never refused");
        // The burst, then at most a fair share each (300 / 21 senders); and
        // what the person sent was paid for by the flood, not added to it.
        assert!(
            flooded <= 60 + 20 * 15,
            "{flooded} flooded messages went in"
        );
        let carried = flooded + 4;
        assert!(carried <= 60 + 300, "{carried} in 10 s: more than its pace");
        assert!(refused >= 600, "only {refused} of 1,000 refused");
        // Ten seconds later the window has forgotten them.
        let later = start + Duration::from_secs(21);
        assert!(room.allows_at("general", 1, later));
    }

    #[test]
    fn each_room_has_its_own_share_and_quiet_rooms_are_forgotten() {
        let room = FairRoom::new(1.0, 0.001); // one, then nothing for ages
        let start = Instant::now();
        assert!(room.allows_at("a", 1, start));
        assert!(!room.allows_at("a", 1, start), "past its share of 0.01");
        assert!(room.allows_at("b", 1, start), "another room, another pace");
        // "a", "b", these: one short of the first tidying.
        for n in 0..FIRST_TIDY - 3 {
            room.allows_at(&format!("room{n}"), 1, start);
        }
        let later = start + FAIR_SHARE_WINDOW + Duration::from_secs(1);
        room.allows_at("new", 2, later);
        let rooms = room.rooms.lock().map(|r| r.senders.len());
        let kept = rooms.unwrap_or(0);
        assert_eq!(kept, 1, "only the room that spoke in the window");
    }

    #[test]
    fn an_unlimited_room_counts_nobody() {
        let room = FairRoom::new(UNLIMITED_RATE, UNLIMITED_RATE);
        assert!((0..1000).all(|n| room.allows("general", n)));
        let rooms = room.rooms.lock().map(|r| r.senders.is_empty());
        assert!(rooms.unwrap_or(false));
    }
}
