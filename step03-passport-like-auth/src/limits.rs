//! Throttles on `/login` and `/register`: how many tries a client address and a
//! username get, and how long their bodies may take.
//!
//! Each setting, its default, and what it limits:
//! - `RATE_LIMITS` (`on`): `off` turns every throttle off (load tests), with a
//!   warning;
//! - `LOGIN_ATTEMPTS_PER_ADDRESS` (`60`): logins per minute from one address;
//! - `LOGIN_FAILURES_PER_USERNAME` (`5`): failed logins in a row for one
//!   username from one address before that pair slows down;
//! - `LOGIN_FAILURE_DELAY_SECS` (`60`): then one more try per this many
//!   seconds;
//! - `LOGIN_FAILURES_PER_USERNAME_ANY_ADDRESS` (`100`): failed logins an hour
//!   for one username from all addresses together;
//! - `REGISTRATIONS_PER_ADDRESS` (`50`): accounts per hour from one address;
//! - `TRUSTED_PROXY` (none): proxy addresses whose `X-Forwarded-For` names the
//!   client;
//! - `ARGON2_WORKERS` (CPU cores): password hashes at a time (not a throttle:
//!   always on);
//! - `ARGON2_QUEUE` (2 × workers): hashes that may wait; more get a `503`;
//! - `AUTH_BODY_TIMEOUT_SECS` (`10`): how long the body of an auth route may
//!   take to arrive; later gets a `408` (not a throttle: always on).
//!
//! The counting is done by the [`governor`] crate (GCRA, a token bucket without
//! a timer).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use dashmap::DashMap;
// The key an address is counted under (one /64 for IPv6) is step 1's, so
// that `serve`'s per-address connection limit and these throttles agree.
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use step01_http_vs_socket::address_key;

use crate::api::ApiError;
use crate::passport::Passport;
use crate::store::UserStore;

// ANCHOR: auth_limits
/// Every limit of the auth routes, from the environment or
/// [`AuthLimits::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthLimits {
    /// `false` (`RATE_LIMITS=off`): no throttle at all. The Argon2 bound stays.
    pub enabled: bool,
    /// Login attempts per minute from one client address, right or wrong.
    pub login_per_address_per_minute: u32,
    /// Failed logins in a row for one username from one address before
    /// that pair slows down...
    pub login_failures_per_username: u32,
    /// ...to one more try per this long. A successful login forgets the
    /// failures.
    pub login_failure_delay: Duration,
    /// Failed logins an hour for one username from all addresses together:
    /// what a botnet shares. An address that logged in as that user lately
    /// is not held back by it.
    pub login_failures_per_username_any_address: u32,
    /// New accounts per hour from one client address.
    pub registrations_per_address_per_hour: u32,
    /// Reverse proxies whose `X-Forwarded-For` header is believed. Empty: none
    /// is.
    pub trusted_proxies: Vec<IpAddr>,
    /// Password hashes that may run at the same time.
    pub hash_workers: usize,
    /// Password hashes that may wait for a worker; more are refused with a 503.
    pub hash_queue: usize,
    /// How long the body of an auth route may take to arrive: a `408` after.
    pub body_timeout: Duration,
}
// ANCHOR_END: auth_limits

// ANCHOR: auth_limits_default
impl Default for AuthLimits {
    /// Generous enough for a classroom behind one NAT address: 40 students
    /// register, log in (with typos) and chat within minutes without a single
    /// 429.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            enabled: true,
            login_per_address_per_minute: 60,
            login_failures_per_username: 5,
            login_failure_delay: Duration::from_secs(60),
            login_failures_per_username_any_address: 100,
            registrations_per_address_per_hour: 50,
            trusted_proxies: Vec::new(),
            hash_workers: cores,
            hash_queue: 2 * cores,
            body_timeout: Duration::from_secs(10),
        }
    }
}
// ANCHOR_END: auth_limits_default

/// A setting that could not be understood: startup stops with this message.
#[derive(Debug, thiserror::Error)]
#[error("{name} must be {expected}, got {value:?}")]
pub struct LimitsError {
    name: &'static str,
    expected: &'static str,
    value: String,
}

/// Whether `RATE_LIMITS` leaves the throttles on (anything but `off`, `false`
/// or `0`). Step04 and step05 ask the same question for their own limits.
pub fn rate_limits_enabled_from_env() -> bool {
    switch_is_on(&std::env::var("RATE_LIMITS").unwrap_or_default())
}

/// Anything but `off`, `false` or `0` (any case) leaves a switch on: a typo
/// must not turn the protection off.
fn switch_is_on(value: &str) -> bool {
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "off" | "false" | "0"
    )
}

impl AuthLimits {
    /// No throttle at all, the same as `RATE_LIMITS=off`.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Reads the settings of the table in this module's documentation. Warns
    /// loudly when `RATE_LIMITS=off`: a public server must never run like that.
    pub fn from_env() -> Result<Self, LimitsError> {
        let default = Self::default();
        let enabled = rate_limits_enabled_from_env();
        if !enabled {
            tracing::warn!(
                "RATE_LIMITS=off: login and registration are NOT throttled. \
                 For load tests only; never on a public server."
            );
        }
        let hash_workers =
            number("ARGON2_WORKERS", default.hash_workers)?.max(1);
        Ok(Self {
            enabled,
            login_per_address_per_minute: number(
                "LOGIN_ATTEMPTS_PER_ADDRESS",
                default.login_per_address_per_minute,
            )?,
            login_failures_per_username: number(
                "LOGIN_FAILURES_PER_USERNAME",
                default.login_failures_per_username,
            )?,
            login_failure_delay: Duration::from_secs(number(
                "LOGIN_FAILURE_DELAY_SECS",
                60,
            )?),
            login_failures_per_username_any_address: number(
                "LOGIN_FAILURES_PER_USERNAME_ANY_ADDRESS",
                default.login_failures_per_username_any_address,
            )?,
            registrations_per_address_per_hour: number(
                "REGISTRATIONS_PER_ADDRESS",
                default.registrations_per_address_per_hour,
            )?,
            trusted_proxies: trusted_proxies_from_env()?,
            hash_workers,
            hash_queue: number("ARGON2_QUEUE", 2 * hash_workers)?,
            body_timeout: Duration::from_secs(number(
                "AUTH_BODY_TIMEOUT_SECS",
                10,
            )?),
        })
    }
}

fn number<T: std::str::FromStr>(
    name: &'static str,
    default: T,
) -> Result<T, LimitsError> {
    match std::env::var(name) {
        Ok(value) => value.trim().parse().map_err(|_| LimitsError {
            name,
            expected: "a whole number",
            value,
        }),
        Err(_) => Ok(default),
    }
}

fn trusted_proxies_from_env() -> Result<Vec<IpAddr>, LimitsError> {
    let value = std::env::var("TRUSTED_PROXY").unwrap_or_default();
    value
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse().map_err(|_| LimitsError {
                name: "TRUSTED_PROXY",
                expected: "IP addresses separated by commas",
                value: value.clone(),
            })
        })
        .collect()
}

// ANCHOR: client_address
/// Who is asking, as far as the throttles are concerned: the TCP peer, or, if
/// that peer is one of `trusted_proxies`, the last address in the
/// `X-Forwarded-For` it added.
///
/// Only the *last* entry: everything before it was written by the client and
/// may be a lie. Without `ConnectInfo` (a test calling the router directly)
/// every request is "unknown", and shares one budget.
pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted_proxies: &[IpAddr],
) -> IpAddr {
    let peer = peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .next_back();
    forwarded
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}
// ANCHOR_END: client_address

/// The client's address as an extractor, for handlers whose state is a
/// [`Passport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl<U: UserStore> FromRequestParts<Passport<U>> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        passport: &Passport<U>,
    ) -> Result<Self, Self::Rejection> {
        // Put there by `into_make_service_with_connect_info` (step01's
        // `serve`).
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        let trusted = &passport.limits().trusted_proxies;
        Ok(Self(client_address(peer, &parts.headers, trusted)))
    }
}

// ANCHOR: throttle
/// The live counters behind [`AuthLimits`].
#[derive(Debug)]
pub struct AuthThrottle {
    limits: AuthLimits,
    logins_by_address: DefaultKeyedRateLimiter<IpAddr>,
    registrations_by_address: DefaultKeyedRateLimiter<IpAddr>,
    /// Failures per (username, address). Not governor's keyed limiter: a
    /// successful login must forget one pair's failures, and that limiter
    /// cannot forget a single key.
    failures_by_pair: DashMap<Pair, DefaultDirectRateLimiter>,
    failure_quota: Quota,
    /// Failures per username, from every address: never forgotten early.
    failures_by_username: DefaultKeyedRateLimiter<String>,
    /// The pairs that logged in lately, and when.
    known_pairs: DashMap<Pair, Instant>,
    /// How many keys there may be before [`AuthThrottle::tidy`] walks them.
    tidy_above: AtomicUsize,
}

/// A username (canonical, cut short) and the address it is tried from.
type Pair = (String, IpAddr);

impl AuthThrottle {
    /// Counters for `limits`, all empty.
    pub fn new(limits: AuthLimits) -> Self {
        let hour = Duration::from_secs(3600);
        Self {
            logins_by_address: DefaultKeyedRateLimiter::dashmap(per(
                limits.login_per_address_per_minute,
                Duration::from_secs(60),
            )),
            registrations_by_address: DefaultKeyedRateLimiter::dashmap(per(
                limits.registrations_per_address_per_hour,
                hour,
            )),
            failures_by_pair: DashMap::new(),
            failure_quota: per(
                limits.login_failures_per_username,
                limits.login_failure_delay
                    * limits.login_failures_per_username.max(1),
            ),
            failures_by_username: DefaultKeyedRateLimiter::dashmap(per(
                limits.login_failures_per_username_any_address,
                hour,
            )),
            known_pairs: DashMap::new(),
            tidy_above: AtomicUsize::new(TIDY_AT_LEAST),
            limits,
        }
    }

    /// The settings these counters were built from.
    pub fn limits(&self) -> &AuthLimits {
        &self.limits
    }
}
// ANCHOR_END: throttle

/// How long a pair that logged in stays "known": a month, the time a
/// returning user's address usually stays the same.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

// ANCHOR: login_throttle
impl AuthThrottle {
    /// Before checking a password: may `address` try to log in as `username`
    /// now? Counts the attempt against the pair (username, address), which
    /// [`AuthThrottle::login_succeeded`] forgets: only failures in a row add
    /// up, and only for the address that makes them.
    pub fn login_attempt(
        &self,
        address: IpAddr,
        username: &str,
    ) -> Result<(), ApiError> {
        if !self.limits.enabled {
            return Ok(());
        }
        let address = address_key(address);
        let clock = self.logins_by_address.clock();
        self.logins_by_address
            .check_key(&address)
            .map_err(|wait| too_many(wait.wait_time_from(clock.now())))?;
        self.tidy();
        let pair = (username_key(username), address);
        let failures = self
            .failures_by_pair
            .entry(pair.clone())
            .or_insert_with(|| {
                DefaultDirectRateLimiter::direct(self.failure_quota)
            });
        failures.check().map_err(|wait| {
            too_many(wait.wait_time_from(failures.clock().now()))
        })?;
        if self.is_known(&pair) {
            return Ok(());
        }
        // A newcomer also spends the username's allowance, which every
        // address shares: a botnet, one guess per address, slows down too.
        let clock = self.failures_by_username.clock();
        self.failures_by_username
            .check_key(&pair.0)
            .map_err(|wait| too_many(wait.wait_time_from(clock.now())))
    }
}
// ANCHOR_END: login_throttle

// ANCHOR: login_succeeded
impl AuthThrottle {
    /// The password was right: this pair starts again with a full budget, and
    /// is known from now on, so that others' guesses cannot shut it out. The
    /// username's shared allowance is not handed back: that would give a
    /// botnet a fresh one at each of the victim's logins.
    pub fn login_succeeded(&self, address: IpAddr, username: &str) {
        if !self.limits.enabled {
            return;
        }
        let pair = (username_key(username), address_key(address));
        self.failures_by_pair.remove(&pair);
        self.known_pairs.insert(pair, Instant::now());
    }

    fn is_known(&self, pair: &Pair) -> bool {
        self.known_pairs
            .get(pair)
            .is_some_and(|since| since.elapsed() < KNOWN_FOR)
    }
}
// ANCHOR_END: login_succeeded

// ANCHOR: registration_throttle
impl AuthThrottle {
    /// Before creating an account: may `address` register one more?
    pub fn registration_attempt(
        &self,
        address: IpAddr,
    ) -> Result<(), ApiError> {
        if !self.limits.enabled {
            return Ok(());
        }
        self.tidy();
        let clock = self.registrations_by_address.clock();
        self.registrations_by_address
            .check_key(&address_key(address))
            .map_err(|wait| too_many(wait.wait_time_from(clock.now())))
    }
}
// ANCHOR_END: registration_throttle

impl AuthThrottle {
    /// Keeps memory bounded against a flood of made-up usernames or addresses:
    /// past a size, forgets the keys with nothing counted against them any
    /// more. The size to tidy at doubles with what is left, so a map full of
    /// live keys is not walked on every login.
    fn tidy(&self) {
        if self.keys() <= self.tidy_above.load(Ordering::Relaxed) {
            return;
        }
        let burst = self.failure_quota.burst_size();
        self.failures_by_pair.retain(|_, failures| {
            // Only a full budget lets the whole burst through, and then the key
            // is dropped anyway: nothing was remembered about it.
            !matches!(failures.check_n(burst), Ok(Ok(())))
        });
        self.failures_by_username.retain_recent();
        self.known_pairs
            .retain(|_, since| since.elapsed() < KNOWN_FOR);
        self.logins_by_address.retain_recent();
        self.registrations_by_address.retain_recent();
        let left = self.keys();
        self.tidy_above
            .store(TIDY_AT_LEAST.max(2 * left), Ordering::Relaxed);
    }
}

impl AuthThrottle {
    fn keys(&self) -> usize {
        self.failures_by_pair.len()
            + self.failures_by_username.len()
            + self.known_pairs.len()
            + self.logins_by_address.len()
            + self.registrations_by_address.len()
    }
}

/// Below this many keys, the throttles never tidy up (a few hundred kilobytes).
const TIDY_AT_LEAST: usize = 10_000;

/// Usernames are counted by their canonical form, cut short: `Alice` and
/// `alice` share a budget, and a megabyte-long made-up name costs no more
/// memory than a real one.
fn username_key(username: &str) -> String {
    crate::passport::canonical_username(username)
        .chars()
        .take(64)
        .collect()
}

/// A budget of `count` tries that refills completely in `period`, one try at a
/// time (`Quota::per_minute(60)` is `per(60, 1 minute)`).
fn per(count: u32, period: Duration) -> Quota {
    let count = NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period / count.get())
        .unwrap_or_else(|| Quota::per_second(count))
        .allow_burst(count)
}

/// `429` with `Retry-After` in whole seconds, rounded up.
fn too_many(wait: Duration) -> ApiError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        format!("Too many attempts: try again in {} seconds", seconds.max(1)),
    )
    .with_retry_after(seconds.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(forwarded: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            forwarded.parse().expect("a header value"),
        );
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy_and_only_its_last_hop()
     {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let peer = Some(proxy);
        let spoofed = headers("6.6.6.6, 203.0.113.7");
        assert_eq!(client_address(peer, &spoofed, &[]), proxy);
        assert_eq!(
            client_address(peer, &spoofed, &[proxy]),
            "203.0.113.7".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(client_address(peer, &headers("junk"), &[proxy]), proxy);
        assert_eq!(
            client_address(None, &HeaderMap::new(), &[]),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn an_ipv6_network_is_one_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(
            address_key(mapped),
            "192.0.2.1".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn failures_slow_a_username_down_and_a_success_forgets_them() {
        let throttle = AuthThrottle::new(AuthLimits::default());
        let address = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for _ in 0..5 {
            assert!(throttle.login_attempt(address, "Alice").is_ok());
        }
        let refused =
            throttle.login_attempt(address, "alice").expect_err("6th");
        assert_eq!(refused.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(
            throttle.login_attempt(address, "bob").is_ok(),
            "per username"
        );
        throttle.login_succeeded(address, "bob");
        for _ in 0..20 {
            assert!(throttle.login_attempt(address, "bob").is_ok());
            throttle.login_succeeded(address, "BOB");
        }
    }

    #[test]
    fn failures_from_one_address_do_not_slow_down_another() {
        let throttle = AuthThrottle::new(AuthLimits::default());
        let guesser = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 6));
        let victim = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        for _ in 0..5 {
            assert!(throttle.login_attempt(guesser, "alice").is_ok());
        }
        assert!(throttle.login_attempt(guesser, "alice").is_err());
        assert!(throttle.login_attempt(victim, "alice").is_ok());
    }

    #[test]
    fn a_botnet_spends_the_username_allowance_but_not_a_known_address() {
        let limits = AuthLimits {
            login_failures_per_username_any_address: 10,
            ..AuthLimits::default()
        };
        let throttle = AuthThrottle::new(limits);
        let victim = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        assert!(throttle.login_attempt(victim, "alice").is_ok());
        throttle.login_succeeded(victim, "alice");
        let bot = |n: u8| IpAddr::V4(Ipv4Addr::new(203, 0, 113, n));
        // The victim's own success took one of the ten.
        for n in 1..=9 {
            assert!(throttle.login_attempt(bot(n), "alice").is_ok(), "{n}");
        }
        let refused = throttle.login_attempt(bot(10), "alice");
        assert!(refused.is_err(), "the 11th address is refused");
        let newcomer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert!(throttle.login_attempt(newcomer, "alice").is_err());
        assert!(throttle.login_attempt(victim, "alice").is_ok(), "known");
    }

    #[test]
    fn only_an_explicit_off_turns_the_limits_off() {
        for off in ["off", "OFF", " false ", "0"] {
            assert!(!switch_is_on(off), "{off:?}");
        }
        for on in ["", "on", "true", "of", "yes"] {
            assert!(switch_is_on(on), "{on:?}");
        }
    }

    #[test]
    fn a_flood_of_made_up_usernames_is_forgotten_once_their_budget_is_back() {
        let limits = AuthLimits {
            login_per_address_per_minute: 1_000_000,
            login_failure_delay: Duration::from_millis(1),
            // The shared budget back after 4 ms too, not 36 s.
            login_failures_per_username_any_address: 1_000_000,
            ..AuthLimits::default()
        };
        let throttle = AuthThrottle::new(limits);
        let address = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // Each made-up name is two keys, its pair and its name: just not
        // enough to tidy up before "one-more".
        for n in 0..TIDY_AT_LEAST / 2 {
            assert!(
                throttle
                    .login_attempt(address, &format!("made-up{n}"))
                    .is_ok()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(throttle.login_attempt(address, "one-more").is_ok());
        assert!(throttle.failures_by_pair.len() < 10, "tidied");
        assert!(throttle.failures_by_username.len() < 10, "tidied");
    }

    #[test]
    fn disabled_limits_never_refuse() {
        let throttle = AuthThrottle::new(AuthLimits::disabled());
        let address = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for _ in 0..500 {
            assert!(throttle.login_attempt(address, "alice").is_ok());
            assert!(throttle.registration_attempt(address).is_ok());
        }
    }
}
