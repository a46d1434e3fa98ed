//! Step 5: the complete chat.
//!
//! Everything from the earlier steps (sessions, login, an authenticated socket)
//! comes together into a chat whose users, messages and sessions live in one
//! SQLite file, so a restart loses nobody's account, history or login.
//!
//! - `handlers`: the Socket.IO events; `handlers/messages.rs` holds the
//!   lesson, a `chat message` signed by the socket's user.
//! - `presence`: who is online in which room.
//! - `delivery`: sending to a socket that may be too slow, without losing
//!   anything.
//! - [`db`], [`users`], [`messages`]: the database, step 3's `UserStore` in
//!   SQLite, and the messages.
//! - [`validation`], [`limits`], [`config`]: checked input, limits, settings.
//!
//! The chapter "The chat under load" (crate `chat-under-load`) keeps the same
//! promises at 10,000 sockets, with the pieces of this library it does not
//! replace.

mod chat;
pub mod config;
pub mod db;
pub mod delivery;
mod handlers;
pub mod limits;
pub mod messages;
pub mod presence;
pub mod users;
pub mod validation;

use std::sync::Arc;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use socketioxide::handler::ConnectHandler;
use socketioxide::{SocketIo, SocketIoBuilder};
use step02_sessions::BackgroundTasks;
use step03_passport_like_auth::{Passport, auth_routes};
use step04_socket_middleware::{
    SessionWatch, authenticate_socket, check_origin, disconnect_on_logout,
    with_session_layers,
};
use tower_sessions_sqlx_store::SqliteStore;

pub use config::ChatConfig;

use crate::chat::Chat;
use crate::handlers::{admit_socket, on_connect, register_chat_handlers};
use crate::messages::MessageStore;
use crate::users::SqliteUserStore;

/// The built server: the router to serve, the Socket.IO handle, which `main`
/// uses to close every socket on shutdown, and the background jobs, which
/// `main` stops last.
#[derive(Debug)]
pub struct ChatServer {
    /// Everything, HTTP and Socket.IO, as one axum router.
    pub router: Router,
    /// The `io` object, as in Node.js.
    pub io: SocketIo,
    /// The session cleanup, the session watches and the chat's own jobs.
    pub tasks: BackgroundTasks,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The SQLite database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

// ANCHOR: build
/// Opens (or creates) the database and builds the whole chat server: step 3's
/// routes over users in SQLite, the sessions in the same file, the Socket.IO
/// layer and its namespace, the page.
pub async fn build(config: ChatConfig) -> Result<ChatServer, BuildError> {
    let pool = db::open_database(&config.database_url).await?;
    let sessions = db::session_store(&pool);
    let users = SqliteUserStore::new(pool.clone());
    let passport = Passport::with_hasher_params(users, config.hashing.clone())
        .with_limits(config.auth_limits.clone());
    let (rate, limits) = (config.rate_limit, config.limits.clone());
    let messages = MessageStore::new(pool);
    let chat = Chat::new(messages, rate, limits, config.presence_page);
    let tasks = chat.tasks.clone();
    step02_sessions::spawn_expired_session_cleanup(&tasks, sessions.clone());
    chat.spawn_housekeeping();

    let (socket_layer, io) = socket_io(&config, chat, &sessions).build_layer();
    // ANCHOR: chat_namespace
    // Chapter 4's chain (origin first, then the session's user), then at most
    // so many sockets per user, then the event handlers, then `on_connect`.
    let connect = on_connect
        .with(register_chat_handlers)
        .with(admit_socket)
        .with(authenticate_socket)
        .with(check_origin);
    io.ns("/", connect);
    // ANCHOR_END: chat_namespace
    let passport = passport.on_logout(disconnect_on_logout(io.clone()));
    let routes = Router::new()
        .route("/", get(page))
        .merge(auth_routes::<SqliteUserStore>())
        .with_state(passport.clone());
    let (session_config, sockets) = (&config.sessions, &config.sockets);
    let router = with_session_layers(
        routes,
        socket_layer,
        passport,
        session_config,
        sessions,
        sockets,
    );
    Ok(ChatServer { router, io, tasks })
}
// ANCHOR_END: build

/// The Socket.IO server's settings and shared state: step 4's size and time
/// limits, the queue of each socket, the allowed origins, the chat, and what
/// step 4's session watch needs.
fn socket_io(
    config: &ChatConfig,
    chat: Chat,
    sessions: &SqliteStore,
) -> SocketIoBuilder {
    let watch = SessionWatch {
        store: Arc::new(sessions.clone()),
        every: config.sockets.session_recheck,
    };
    let sockets = &config.sockets;
    sockets
        .limits
        .apply(SocketIo::builder())
        .max_buffer_size(config.socket_buffer)
        .with_state(sockets.allowed_origins.clone())
        .with_state(chat)
        .with_state(watch)
}

/// The chat's page, `GET /` (the chapter "The chat under load" serves it too).
pub async fn page() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}
