//! How much one user, one socket and one room may ask of the chat: each limit
//! is a setting with a default a class of 40 never reaches; `RATE_LIMITS=off`
//! lifts them all (load tests). The counting is step 4's
//! ([`step04_socket_middleware::fair_use`]); the numbers are here.

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
    /// `ROOM_HISTORY_CAP`: messages a room keeps; older ones are deleted.
    pub room_history_cap: i64,
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
            room_history_cap: 10_000,
        }
    }
}
// ANCHOR_END: settings

impl ChatLimits {
    /// No limits at all (`RATE_LIMITS=off`).
    pub fn off() -> Self {
        ChatLimits {
            enabled: false,
            sockets_per_user: usize::MAX,
            rooms_per_socket: usize::MAX,
            room_messages_per_second: f64::INFINITY,
            room_changes_per_second: f64::INFINITY,
            refusals_per_10s: u32::MAX,
            room_history_cap: i64::MAX,
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
// ANCHOR_END: message_rate
