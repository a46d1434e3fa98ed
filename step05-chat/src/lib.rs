//! Step 5: the complete chat. Sessions, login and an authenticated socket
//! (steps 2 to 4) come together into a chat whose users, messages and
//! sessions live in one SQLite file: a restart loses nobody's account,
//! history or login.
//!
//! The lesson is in `handlers/messages.rs`: a `chat message` signed by the
//! socket's user. Around it: `handlers/rooms.rs` (rooms, history, catch-up),
//! `presence` (who is online), [`messages`], [`users`] and [`db`] (SQLite),
//! [`validation`], [`limits`], [`config`]. Every packet goes out through step
//! 4's `delivery`: a socket too slow to take one is resynchronised, never
//! skipped in silence.
//! The chapter "The chat under load" (crate `chat-under-load`) keeps the same
//! promises at 10,000 sockets, on this library.

mod chat;
pub mod config;
pub mod db;
mod handlers;
pub mod limits;
pub mod messages;
mod presence;
pub mod users;
pub mod validation;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use socketioxide::SocketIo;
use socketioxide::handler::ConnectHandler;
use step02_sessions::BackgroundTasks;
use step03_passport_like_auth::{Passport, auth_routes};
use step04_socket_middleware::{authenticate_socket, check_origin};
use step04_socket_middleware::{disconnect_on_logout, with_session_layers};

pub use config::ChatConfig;

use crate::chat::Chat;
use crate::handlers::{admit_socket, on_connect, register_chat_handlers};
use crate::messages::MessageStore;
use crate::users::SqliteUserStore;

/// The built server: the router, the `io` handle (`main` closes every socket
/// with it on shutdown), the background jobs (`main` stops them last).
#[derive(Debug)]
pub struct ChatServer {
    pub router: Router,
    pub io: SocketIo,
    pub tasks: BackgroundTasks,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

// ANCHOR: build
/// Opens (or creates) the database and builds the whole server: step 3's
/// routes over users in SQLite, the sessions in the same file, Socket.IO with
/// step 4's limits and the chat's handlers, the page.
pub async fn build(config: ChatConfig) -> Result<ChatServer, BuildError> {
    let pool = db::open_database(&config.database_url).await?;
    let sessions = db::session_store(&pool);
    let users = SqliteUserStore::new(pool.clone());
    let passport = Passport::with_hasher_params(users, config.hashing.clone())
        .with_limits(config.auth_limits.clone())
        .with_absolute_lifetime(config.sessions.absolute_lifetime);
    let chat = Chat::new(MessageStore::new(pool), &config);
    let tasks = chat.tasks.clone();
    step02_sessions::spawn_expired_session_cleanup(&tasks, sessions.clone());
    // ANCHOR_END: build
    // ANCHOR: build_socket_io
    let (socket_layer, io) =
        (config.sockets.io_builder(&sessions, &config.sessions))
            .max_buffer_size(config.socket_buffer)
            .with_state(chat)
            .build_layer();
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
    let router = with_session_layers(
        routes,
        socket_layer,
        passport,
        &config.sessions,
        sessions,
        &config.sockets,
    );
    Ok(ChatServer { router, io, tasks })
}
// ANCHOR_END: build_socket_io

/// The chat's page, `GET /` (the chapter "The chat under load" serves it too).
pub async fn page() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}
