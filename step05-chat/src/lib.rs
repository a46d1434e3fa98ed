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
//! - [`limits`]: how much one user, one socket and one room may ask of the server.
//! - [`presence`]: who is online in which room.
//! - [`sequencer`]: each room's messages stored, broadcast and acknowledged in order.
//! - [`delivery`]: sending to a socket that may be too slow, without losing anything.
//! - [`chat`]: the Socket.IO event handlers.
//! - [`config`]: settings from the environment.
//! - [`cluster`]: with `REDIS_URL`, one node of several (chapter "Scaling out with Redis").

pub mod chat;
pub mod cluster;
pub mod config;
pub mod db;
pub mod delivery;
pub mod limits;
pub mod messages;
pub mod presence;
pub mod rate_limit;
pub mod sequencer;
pub mod users;
pub mod validation;

#[cfg(feature = "solutions")]
pub mod cluster_solutions;
#[cfg(feature = "solutions")]
pub mod solutions;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use socketioxide::SocketIo;
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::extract::{Extension, SocketRef, State};
use socketioxide::handler::{ConnectHandler, ConnectMiddleware};
use socketioxide_core::adapter::DefinedAdapter;
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
    pub io: ChatIo,
}

/// The `io` handle of a single server, or of one node of a cluster (their adapters differ,
/// and so do their types).
#[derive(Debug, Clone)]
pub enum ChatIo {
    /// One process, rooms in memory.
    Local(SocketIo<LocalAdapter>),
    /// One node of several, rooms shared through Redis.
    Cluster(SocketIo<cluster::ClusterAdapter>),
}

impl ChatIo {
    /// Closes every socket of this server (for a graceful shutdown).
    pub async fn close(&self) {
        match self {
            ChatIo::Local(io) => io.close().await,
            // A cluster node tells the others through Redis; with Redis down that would wait
            // until Redis is back, and the node could not be stopped. Give it 5 s.
            ChatIo::Cluster(io) => {
                if tokio::time::timeout(Duration::from_secs(5), io.close())
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        "closing the sockets through Redis took too long: stopping anyway"
                    );
                }
            }
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The SQLite database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// `REDIS_URL` was set, but Redis could not be reached or set up.
    #[error("redis: {0}")]
    Redis(String),
}

/// What the connect handler needs to keep an eye on a socket's session (see step 4).
#[derive(Debug, Clone)]
struct SessionWatch {
    store: Arc<dyn SessionStore>,
    every: std::time::Duration,
}

// ANCHOR: build
/// Opens (or creates) the database and builds the whole chat server: a single process, or,
/// with `REDIS_URL`, one node of a cluster.
pub async fn build(config: ChatConfig) -> Result<ChatServer, BuildError> {
    match config.redis_url.clone() {
        None => Ok(build_with_handlers(config, chat::register_chat_handlers).await?),
        Some(redis_url) => cluster::build(config, &redis_url).await,
    }
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
    let passport = Passport::with_hasher_params(SqliteUserStore::new(pool.clone()), config.hashing)
        .with_limits(config.auth_limits);
    let chat = Chat::new(MessageStore::new(pool), config.rate_limit).with_limits(config.limits);
    chat.spawn_housekeeping();

    let (socket_layer, io) =
        socket_io_builder(&config.sockets, config.socket_buffer, chat, &session_store)
            .build_layer();
    // A local adapter is ready at once: there is nothing to wait for.
    let (router, ()) = assemble(
        passport,
        &config.sessions,
        session_store,
        &config.sockets,
        (socket_layer, io.clone()),
        register_handlers,
    );
    Ok(ChatServer {
        router,
        io: ChatIo::Local(io),
    })
}

/// The Socket.IO server's settings and shared state, before an adapter is chosen.
pub(crate) fn socket_io_builder<S: SessionStore + Clone>(
    sockets: &SocketSettings,
    socket_buffer: usize,
    chat: Chat,
    session_store: &S,
) -> socketioxide::SocketIoBuilder {
    // Step 4's size and time limits: 16 KiB messages, no binary, a 10 s connect timeout.
    sockets
        .limits
        .apply(SocketIo::builder())
        .max_buffer_size(socket_buffer)
        .with_state(sockets.allowed_origins.clone())
        .with_state(chat)
        .with_state(SessionWatch {
            store: Arc::new(session_store.clone()),
            every: sockets.session_recheck,
        })
}

/// Puts the pieces together: step 4's middlewares and layers around the chat's handlers.
///
/// Generic over the adapter `A`: the same code serves one process (`LocalAdapter`) and a node
/// of a cluster (the Redis adapter). Returns the router; the namespace's adapter is started by
/// the caller, because only a remote adapter needs to wait for that.
pub(crate) fn assemble<S, H, T, A>(
    passport: Passport<SqliteUserStore>,
    sessions: &SessionConfig,
    session_store: S,
    sockets: &SocketSettings,
    (socket_layer, io): (socketioxide::layer::SocketIoLayer<A>, SocketIo<A>),
    register_handlers: H,
) -> (Router, A::InitRes)
where
    S: SessionStore + Clone,
    H: ConnectMiddleware<A, T>,
    T: Send + Sync + 'static,
    // `DefinedAdapter` marks a concrete adapter type (local, Redis...), which `io.ns` requires.
    A: Adapter + DefinedAdapter,
{
    // Origin first, then the session's user, then the chat's handlers: chapter 4's chain.
    let adapter_ready = io.ns(
        "/",
        on_connect
            .with(register_handlers)
            .with(chat::admit_socket)
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
        sockets,
    );
    (router, adapter_ready)
}
// ANCHOR_END: build

/// The connect handler: the chat's own welcome, then step 4's session watch.
async fn on_connect<A: Adapter>(
    io: SocketIo<A>,
    socket: SocketRef<A>,
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
