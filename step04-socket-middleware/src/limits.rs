//! How big and how slow a Socket.IO client may be.
//!
//! socketioxide's defaults are generous: a WebSocket message may be 64 MiB, a
//! connection that never joins a namespace lives 45 s, and a packet may
//! announce thousands of binary attachments and keep the server waiting for
//! them. A chat needs none of that: its largest message is a line of text.
//! [`SocketLimits::apply`] sets every limit to what the chat needs, in one
//! place, so that step 5 gets the same limits by calling the same function.

use std::str::FromStr;
use std::time::Duration;

use socketioxide::adapter::Adapter;
use socketioxide::{ParserConfig, SocketIoBuilder};

// ANCHOR: limit_defaults
/// The largest Socket.IO message a client may send, unless
/// `SOCKET_MAX_MESSAGE_BYTES` says otherwise. A chat message is at most 1,000
/// characters: 4,000 bytes of UTF-8 in the worst case, 6,000 if every character
/// arrives JSON-escaped (`\u00e9`), plus the event name and the room. 16 KiB
/// leaves room for that and nothing like the 64 MiB socketioxide allows.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// How long a new connection may take to send its Socket.IO `CONNECT`, unless
/// `SOCKET_CONNECT_TIMEOUT_SECS` says otherwise. The official client sends it
/// at once; a connection that has not done so after 10 s is either broken or an
/// attacker's.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
// ANCHOR_END: limit_defaults

/// The size and time limits of the Socket.IO server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketLimits {
    /// The largest message a client may send, in bytes: one WebSocket message
    /// (and frame), or one long-polling `POST`. Bigger, and the connection is
    /// closed.
    pub max_message_bytes: usize,
    /// How long a connection may stay without joining a namespace.
    pub connect_timeout: Duration,
}

impl Default for SocketLimits {
    fn default() -> Self {
        SocketLimits {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

// ANCHOR: apply_limits
impl SocketLimits {
    /// Applies the limits to a Socket.IO server under construction.
    pub fn apply<A>(&self, builder: SocketIoBuilder<A>) -> SocketIoBuilder<A>
    where
        A: Adapter,
    {
        let bytes = self.max_message_bytes;
        // The chat sends text only. A binary attachment is refused the moment a
        // packet announces one, so no half-received packet is ever kept waiting
        // for the rest.
        let no_binary = ParserConfig::common()
            .max_incoming_binaries(0)
            .max_incoming_binary_buf_size(0);
        builder
            .max_payload(bytes as u64) // one long-polling POST
            .ws_max_message_size(bytes)
            .ws_max_frame_size(bytes)
            .connect_timeout(self.connect_timeout)
            .with_parser(no_binary)
    }
}
// ANCHOR_END: apply_limits

impl SocketLimits {
    /// Reads `SOCKET_MAX_MESSAGE_BYTES` and `SOCKET_CONNECT_TIMEOUT_SECS`;
    /// unset means the default. A value that is not a positive whole number is
    /// an error, not a silent default.
    pub fn from_env() -> Result<Self, LimitsError> {
        let defaults = SocketLimits::default();
        let connect_secs = defaults.connect_timeout.as_secs() as usize;
        Ok(SocketLimits {
            max_message_bytes: positive_env(
                "SOCKET_MAX_MESSAGE_BYTES",
                defaults.max_message_bytes,
            )?,
            connect_timeout: Duration::from_secs(positive_env(
                "SOCKET_CONNECT_TIMEOUT_SECS",
                connect_secs,
            )? as u64),
        })
    }
}

/// The number in the environment variable `name`, if it is set and above
/// zero; `default` if it is unset or blank. Step 5 reads its settings with it.
pub fn positive_env<T>(name: &'static str, default: T) -> Result<T, LimitsError>
where
    T: FromStr + PartialOrd + Default,
{
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(value) if value.trim().is_empty() => Ok(default),
        Ok(value) => match value.trim().parse::<T>() {
            Ok(number) if number > T::default() => Ok(number),
            _ => Err(LimitsError { name, value }),
        },
    }
}

/// A setting in the environment that is not a number above zero.
#[derive(Debug, thiserror::Error)]
#[error("{name} must be a number above 0, not {value:?}")]
pub struct LimitsError {
    /// The variable's name.
    pub name: &'static str,
    /// What it was set to.
    pub value: String,
}
