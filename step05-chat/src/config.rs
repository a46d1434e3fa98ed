//! The chat's settings, from the environment (and a `.env` file, loaded by
//! `main`). README's table lists every variable and its default; those of
//! steps 2 to 4 are read by their own crates.

use std::net::SocketAddr;

use step02_sessions::{SessionConfig, SessionConfigError};
use step03_passport_like_auth::{AuthLimits, argon2};
use step03_passport_like_auth::{
    LimitsError as AuthLimitsError,
    rate_limits_enabled_from_env as rate_limits_on,
};
use step04_socket_middleware::positive_env as positive;
use step04_socket_middleware::{
    AllowedOrigins, LimitsError, SocketLimits, SocketSettings,
};

use crate::limits::{ChatLimits, MessageRate};

/// Packets that may wait in one socket's queue unless `SOCKET_BUFFER` says
/// otherwise (socketioxide's default is 128): room for a whole catch-up.
pub const DEFAULT_SOCKET_BUFFER: usize = 2048;
/// Users per page of an online list, unless `PRESENCE_PAGE` says otherwise.
pub const PRESENCE_PAGE: usize = 50;

/// Everything [`crate::build`] needs.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Where users, messages and sessions are stored.
    pub database_url: String,
    /// The session cookie: key, lifetime, attributes (step 2).
    pub sessions: SessionConfig,
    /// Allowed origins, session re-checks, Socket.IO limits (step 4).
    pub sockets: SocketSettings,
    /// How fast one user may send messages.
    pub rate_limit: MessageRate,
    /// The cost of password hashing (step 3). Keep the default outside tests.
    pub hashing: argon2::Params,
    /// Sockets per user, rooms per socket, messages per room.
    pub limits: ChatLimits,
    /// The throttles on `/login` and `/register` (step 3).
    pub auth_limits: AuthLimits,
    /// How many packets may wait in one socket's queue.
    pub socket_buffer: usize,
    /// How many users one page of a room's online list names.
    pub presence_page: usize,
}

/// A setting that could not be understood: startup stops.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    AuthLimits(#[from] AuthLimitsError),
    #[error(transparent)]
    Sessions(#[from] SessionConfigError),
    /// A number that is not above zero, here or in step 4's limits.
    #[error(transparent)]
    Number(#[from] LimitsError),
}

impl ChatConfig {
    /// Reads the environment, for a server that listens on `addr` (the port may
    /// be the one the OS picked).
    pub fn from_env(addr: SocketAddr) -> Result<Self, ConfigError> {
        let extra = std::env::var("ALLOWED_ORIGINS").ok();
        let origins = AllowedOrigins::for_listener(addr, extra.as_deref());
        Ok(ChatConfig {
            database_url: std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "sqlite://data/chat.db".to_owned()),
            sessions: SessionConfig::from_env()?,
            sockets: SocketSettings {
                allowed_origins: origins,
                session_recheck: step04_socket_middleware::SESSION_RECHECK,
                limits: SocketLimits::from_env()?,
            },
            rate_limit: MessageRate::default(),
            limits: limits_from_env()?,
            auth_limits: AuthLimits::from_env()?,
            hashing: argon2::Params::default(),
            socket_buffer: positive("SOCKET_BUFFER", DEFAULT_SOCKET_BUFFER)?,
            presence_page: positive("PRESENCE_PAGE", PRESENCE_PAGE)?,
        })
    }
}

/// `RATE_LIMITS`, `MAX_SOCKETS_PER_USER`, `MAX_ROOMS_PER_SOCKET`,
/// `ROOM_MESSAGES_PER_SECOND`, `ROOM_HISTORY_CAP` (step 3: `RATE_LIMITS`).
fn limits_from_env() -> Result<ChatLimits, ConfigError> {
    if !rate_limits_on() {
        tracing::warn!("RATE_LIMITS=off: every chat limit is OFF");
        return Ok(ChatLimits::off());
    }
    let d = ChatLimits::default();
    let per_room = "ROOM_MESSAGES_PER_SECOND";
    let per_room = positive(per_room, d.room_messages_per_second)?;
    Ok(ChatLimits {
        sockets_per_user: positive("MAX_SOCKETS_PER_USER", d.sockets_per_user)?,
        rooms_per_socket: positive("MAX_ROOMS_PER_SOCKET", d.rooms_per_socket)?,
        room_messages_per_second: per_room,
        room_history_cap: positive("ROOM_HISTORY_CAP", d.room_history_cap)?,
        ..d
    })
}
