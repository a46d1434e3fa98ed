//! What the benchmark's tests share.

use std::net::SocketAddr;

use step02_sessions::SessionConfig;
use step03_passport_like_auth::argon2;
use step04_socket_middleware::SocketSettings;
use step05_chat::ChatConfig;
use step05_chat::limits::MessageRate;
use tower_sessions::cookie::Key;

/// Step 5's chat for the benchmark's tests: cheap hashing, no limit, its
/// database in `data`, its cookies signed with `key`.
pub fn step05_config(addr: SocketAddr, data: &tempfile::TempDir, key: Key) -> ChatConfig {
    ChatConfig {
        database_url: format!("sqlite://{}", data.path().join("chat.db").display()),
        sessions: SessionConfig::with_key(key),
        sockets: SocketSettings {
            allowed_origins: step04_socket_middleware::AllowedOrigins::for_listener(addr, None),
            session_recheck: step04_socket_middleware::SESSION_RECHECK,
            limits: step04_socket_middleware::SocketLimits::default(),
        },
        rate_limit: MessageRate {
            burst: u32::MAX,
            per_second: 1e9,
        },
        hashing: argon2::Params::new(8, 1, 1, None).expect("valid argon2 params"),
        socket_buffer: step05_chat::config::DEFAULT_SOCKET_BUFFER,
        presence_page: step05_chat::config::PRESENCE_PAGE,
        limits: step05_chat::limits::ChatLimits::off(),
        auth_limits: step03_passport_like_auth::AuthLimits::disabled(),
    }
}
