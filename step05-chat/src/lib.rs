//! Step 5: the complete chat.
//!
//! Everything from the earlier steps (sessions, login, an authenticated socket) comes together
//! into a chat whose users, messages and sessions live in one SQLite file, so a restart loses
//! nobody's account, history or login.
//!
//! - [`db`]: opening the database and creating its tables.
//! - [`users`]: step03's `UserStore`, answered from SQLite.
//! - [`messages`]: the chat message as clients see it, and its history.
//! - [`validation`]: turning a client's JSON into checked values.
//! - [`rate_limit`]: a per-user limit on how fast messages may be sent.
//! - [`presence`]: who is online in which room.
//! - [`chat`]: the Socket.IO event handlers.
//! - [`config`]: settings from the environment.

pub mod chat;
pub mod config;
pub mod db;
pub mod messages;
pub mod presence;
pub mod rate_limit;
pub mod users;
pub mod validation;

#[cfg(feature = "solutions")]
pub mod solutions;

use std::sync::Arc;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use socketioxide::SocketIo;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{Extension, SocketRef, State};
use socketioxide::handler::{ConnectHandler, ConnectMiddleware};
use step02_sessions::SessionConfig;
use step03_passport_like_auth::{Passport, User, auth_routes};
use step04_socket_middleware::{
    SocketSettings, authenticate_socket, check_origin, disconnect_on_logout, watch_session,
    with_session_layers,
};
use tower_sessions::SessionStore;

pub use chat::Chat;
pub use config::ChatConfig;

use crate::messages::MessageStore;
use crate::users::SqliteUserStore;

/// The built server: the router to serve, and the Socket.IO handle, which `main` uses to
/// close every socket on shutdown.
#[derive(Debug)]
pub struct ChatServer {
    /// Everything, HTTP and Socket.IO, as one axum router.
    pub router: Router,
    /// The `io` object, as in Node.js.
    pub io: SocketIo,
}

/// What the connect handler needs to keep an eye on a socket's session (see step 4).
#[derive(Debug, Clone)]
struct SessionWatch {
    store: Arc<dyn SessionStore>,
    every: std::time::Duration,
}

// ANCHOR: build
/// Opens (or creates) the database and builds the whole chat server.
pub async fn build(config: ChatConfig) -> Result<ChatServer, sqlx::Error> {
    build_with_handlers(config, chat::register_chat_handlers).await
}

/// [`build`], with `register_handlers` as the connect middleware that registers the event
/// handlers. The chat passes its own; the exercises' reference solutions pass theirs.
pub(crate) async fn build_with_handlers<H, T>(
    config: ChatConfig,
    register_handlers: H,
) -> Result<ChatServer, sqlx::Error>
where
    H: ConnectMiddleware<LocalAdapter, T>,
    T: Send + Sync + 'static,
{
    let pool = db::open_database(&config.database_url).await?;
    let session_store = db::session_store(&pool);
    step02_sessions::spawn_expired_session_cleanup(session_store.clone());

    // Step 3's passport module, unchanged, over users in SQLite instead of in memory.
    let passport = Passport::with_hasher_params(SqliteUserStore::new(pool.clone()), config.hashing);
    let chat = Chat::new(MessageStore::new(pool), config.rate_limit);
    chat.spawn_housekeeping();

    Ok(assemble(
        passport,
        &config.sessions,
        session_store,
        config.sockets,
        chat,
        register_handlers,
    ))
}

/// Puts the pieces together: step 4's middlewares and layers around the chat's handlers.
fn assemble<S, H, T>(
    passport: Passport<SqliteUserStore>,
    sessions: &SessionConfig,
    session_store: S,
    sockets: SocketSettings,
    chat: Chat,
    register_handlers: H,
) -> ChatServer
where
    S: SessionStore + Clone,
    H: ConnectMiddleware<LocalAdapter, T>,
    T: Send + Sync + 'static,
{
    let (socket_layer, io) = SocketIo::builder()
        .with_state(sockets.allowed_origins.clone())
        .with_state(chat)
        .with_state(SessionWatch {
            store: Arc::new(session_store.clone()),
            every: sockets.session_recheck,
        })
        .build_layer();

    // Origin first, then the session's user, then the chat's handlers: chapter 4's chain.
    io.ns(
        "/",
        on_connect
            .with(register_handlers)
            .with(authenticate_socket)
            .with(check_origin),
    );

    let passport = passport.on_logout(disconnect_on_logout(io.clone()));
    let routes = Router::new()
        .route("/", get(page))
        .merge(auth_routes::<SqliteUserStore>())
        .with_state(passport.clone());
    let router = with_session_layers(
        routes,
        socket_layer,
        passport,
        sessions,
        session_store,
        &sockets,
    );
    ChatServer { router, io }
}
// ANCHOR_END: build

/// The connect handler: the chat's own welcome, then step 4's session watch.
async fn on_connect(
    io: SocketIo,
    socket: SocketRef,
    user: Extension<User>,
    chat: State<Chat>,
    auth: socketioxide::extract::TryData<chat::HandshakeAuth>,
    State(watch): State<SessionWatch>,
) {
    watch_session(socket.clone(), watch.store, watch.every);
    chat::on_connect(io, socket, user, chat, auth).await;
}

async fn page() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}
