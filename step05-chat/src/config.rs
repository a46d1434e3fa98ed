//! The chat's settings, from the environment (and a `.env` file, loaded by
//! `main`).
//!
//! Each variable, its default, and what it means:
//! - `PORT` (`3000`): the port to listen on;
//! - `HOST` (`127.0.0.1`): the address to listen on; `0.0.0.0` serves a
//!   classroom network;
//! - `DATABASE_URL` (`sqlite://data/chat.db`): users, messages and sessions;
//! - `SESSION_SECRET` (generated, with a warning): ≥ 64 bytes that sign the
//!   session cookie;
//! - `ALLOWED_ORIGINS` (none): extra origins whose pages may connect,
//!   comma-separated;
//! - `COOKIE_SECURE` (`false`): `true` behind HTTPS;
//! - `SOCKET_BUFFER` (`2048`): packets that may wait for one slow socket before
//!   it is resynchronised;
//! - `PRESENCE_PAGE` (`50`): users per page of a room's online list;
//! - `RATE_LIMITS` (`on`): `off` lifts every limit below and the message rate
//!   limit (load tests);
//! - `MAX_SOCKETS_PER_USER` (`20`): tabs and devices one user may have
//!   connected at once;
//! - `MAX_ROOMS_PER_SOCKET` (`20`): rooms one socket may be in, besides
//!   `general`;
//! - `ROOM_MESSAGES_PER_SECOND` (`30`): messages one room accepts per second
//!   from everyone together;
//! - `SOCKET_MAX_MESSAGE_BYTES` (`16384`): the largest Socket.IO message a
//!   client may send (step 4);
//! - `SOCKET_CONNECT_TIMEOUT_SECS` (`10`): how long a new connection may take
//!   to `CONNECT` (step 4).

use std::net::SocketAddr;

use step02_sessions::{SessionConfig, SessionConfigError};
use step03_passport_like_auth::argon2;
use step04_socket_middleware::{
    AllowedOrigins, LimitsError, SocketLimits, SocketSettings,
};

use crate::limits::{ChatLimits, UNLIMITED_RATE};
use crate::rate_limit::RateLimiter;
use step03_passport_like_auth::{AuthLimits, rate_limits_enabled_from_env};

/// The database the chat uses when `DATABASE_URL` is not set: a file, created
/// on first run.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/chat.db";

/// Everything [`crate::build`] needs.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Where users, messages and sessions are stored.
    pub database_url: String,
    /// The session cookie: key, lifetime, attributes (step 2).
    pub sessions: SessionConfig,
    /// Allowed origins and how often live sockets re-check their session (step
    /// 4).
    pub sockets: SocketSettings,
    /// How fast one user may send messages.
    pub rate_limit: RateLimiter,
    /// The cost of password hashing (step 3). Keep the default outside tests.
    pub hashing: argon2::Params,
    /// Sockets per user, rooms per socket, messages per room (see
    /// [`crate::limits`]).
    pub limits: ChatLimits,
    /// The throttles on `/login` and `/register`, and the Argon2 bound (step
    /// 3).
    pub auth_limits: AuthLimits,
    /// How many packets may wait in one socket's queue (see
    /// [`crate::delivery`]).
    pub socket_buffer: usize,
    /// How many users one page of a room's online list names (see
    /// [`crate::presence`]).
    pub presence_page: usize,
}

/// A setting that could not be understood. Startup stops with this message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `SOCKET_BUFFER` is not a positive number.
    #[error("SOCKET_BUFFER must be a number of packets from 1 up, got {0:?}")]
    SocketBuffer(String),
    /// `PRESENCE_PAGE` is not a positive number.
    #[error("PRESENCE_PAGE must be a number of users from 1 up, got {0:?}")]
    PresencePage(String),
    /// A step 3 throttle setting that could not be read.
    #[error(transparent)]
    AuthLimits(#[from] step03_passport_like_auth::LimitsError),
    /// A limit that is not a positive number.
    #[error("{0} must be {1}, got {2:?}")]
    Limit(&'static str, &'static str, String),
    /// A session setting (step 2's checks).
    #[error(transparent)]
    Sessions(#[from] SessionConfigError),
    /// A Socket.IO size or time limit (step 4's checks).
    #[error(transparent)]
    SocketLimits(#[from] LimitsError),
}

impl ChatConfig {
    /// Reads the environment, for a server that listens on `addr` (the port may
    /// be the one the OS picked).
    pub fn from_env(addr: SocketAddr) -> Result<Self, ConfigError> {
        Ok(ChatConfig {
            database_url: std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned()),
            sessions: SessionConfig::from_env()?,
            sockets: SocketSettings {
                allowed_origins: allowed_origins(
                    addr,
                    std::env::var("ALLOWED_ORIGINS").ok(),
                ),
                session_recheck: step04_socket_middleware::SESSION_RECHECK,
                limits: SocketLimits::from_env()?,
            },
            rate_limit: RateLimiter::default(),
            limits: limits_from_env()?,
            auth_limits: AuthLimits::from_env()?,
            hashing: argon2::Params::default(),
            socket_buffer: match std::env::var("SOCKET_BUFFER") {
                Ok(value) => match value.parse() {
                    Ok(packets) if packets > 0 => packets,
                    _ => return Err(ConfigError::SocketBuffer(value)),
                },
                Err(_) => crate::delivery::DEFAULT_SOCKET_BUFFER,
            },
            presence_page: match std::env::var("PRESENCE_PAGE") {
                Ok(value) => match value.parse() {
                    Ok(users) if users > 0 => users,
                    _ => return Err(ConfigError::PresencePage(value)),
                },
                Err(_) => crate::presence::PRESENCE_PAGE,
            },
        })
    }
}

/// The limits from `RATE_LIMITS`, `MAX_SOCKETS_PER_USER`,
/// `MAX_ROOMS_PER_SOCKET` and `ROOM_MESSAGES_PER_SECOND`.
pub fn limits_from_env() -> Result<ChatLimits, ConfigError> {
    // Step 3 reads the same switch for its throttles.
    if !rate_limits_enabled_from_env() {
        tracing::warn!(
            "RATE_LIMITS=off: every chat limit and per-user cap is OFF"
        );
        return Ok(ChatLimits::off());
    }
    let defaults = ChatLimits::default();
    let number = |name: &'static str, default: f64| match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(value) => match value.parse::<f64>() {
            Ok(n) if n > 0.0 && n < UNLIMITED_RATE => Ok(n),
            _ => Err(ConfigError::Limit(name, "a positive number", value)),
        },
    };
    Ok(ChatLimits {
        sockets_per_user: number(
            "MAX_SOCKETS_PER_USER",
            defaults.sockets_per_user as f64,
        )? as usize,
        rooms_per_socket: number(
            "MAX_ROOMS_PER_SOCKET",
            defaults.rooms_per_socket as f64,
        )? as usize,
        room_messages_per_second: number(
            "ROOM_MESSAGES_PER_SECOND",
            defaults.room_messages_per_second,
        )?,
        ..defaults
    })
}

// ANCHOR: allowed_origins
/// The server's own origins, plus `extra`, plus whatever the listening address
/// adds: a specific LAN address is an origin of its own; `0.0.0.0` (every
/// address) means we cannot list the names students will type, so pages are
/// allowed whose origin is the host they asked for.
pub fn allowed_origins(
    addr: SocketAddr,
    extra: Option<String>,
) -> AllowedOrigins {
    let origins = AllowedOrigins::for_port(addr.port(), extra.as_deref());
    match addr.ip() {
        ip if ip.is_unspecified() => origins.also_same_host(),
        ip if ip.is_loopback() => origins,
        ip => {
            let own = format!("http://{}", SocketAddr::new(ip, addr.port()));
            let extra = [extra.unwrap_or_default(), own].join(",");
            AllowedOrigins::for_port(addr.port(), Some(&extra))
        }
    }
}
// ANCHOR_END: allowed_origins

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lan_address_is_an_allowed_origin_of_its_own() {
        let origins =
            allowed_origins("192.168.1.20:3000".parse().expect("addr"), None);
        assert!(origins.allows("http://192.168.1.20:3000", None));
        assert!(origins.allows("http://localhost:3000", None));
        assert!(!origins.allows("http://192.168.1.21:3000", None));
    }

    #[test]
    fn every_address_allows_the_host_the_browser_asked_for() {
        let origins =
            allowed_origins("0.0.0.0:3000".parse().expect("addr"), None);
        let host = Some("10.0.0.5:3000");
        assert!(origins.allows("http://10.0.0.5:3000", host));
        assert!(!origins.allows("http://evil.example", host));
    }

    #[test]
    fn loopback_allows_only_its_own_origins_and_the_extra_ones() {
        let addr = "127.0.0.1:3000".parse().expect("addr");
        let origins =
            allowed_origins(addr, Some("http://localhost:5173".into()));
        assert!(origins.allows("http://localhost:5173", None));
        assert!(!origins.allows("http://10.0.0.5:3000", Some("10.0.0.5:3000")));
    }
}
