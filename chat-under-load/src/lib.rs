//! The chat under load: step 5's chat, with the delivery machinery that keeps
//! its promises at 10,000 sockets (chapter "The chat under load").
//!
//! Step 5's library gives the database, the users, the messages, the input
//! checks, the limits and the settings; this crate replaces the handlers and
//! how a message reaches a room:
//!
//! - [`presence`]: who is online in which room, announced in batches and
//!   a page at a time.
//! - [`sequencer`]: each room's messages stored, broadcast and acknowledged in
//!   order.
//! - [`delivery`]: sending to a socket that may be too slow, without losing
//!   anything.
//! - [`chat`]: the Socket.IO event handlers.
//!
//! The crate `scaling-with-redis` (its own chapter) runs this chat as one node
//! of several.

pub mod chat;
pub mod delivery;
pub mod log;
pub mod presence;
pub mod quotas;
pub mod sequencer;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use sqlx::SqlitePool;
use step03_passport_like_auth::{Passport, User, UserStore, auth_routes};
use step04_socket_middleware::{
    SessionWatch, SocketSettings, authenticate_socket, check_origin, disconnect_on_logout,
    watch_session, with_session_layers,
};
use tower_sessions::SessionStore;

pub use chat::{Chat, admit_socket, register_chat_handlers};
use step04_socket_middleware::RateLimit;
use step05_chat::config::ChatConfig;
use step05_chat::messages::MessageStore;
use step05_chat::users::SqliteUserStore;
use step05_chat::{BuildError, ChatServer, db};

// ANCHOR: build
/// Opens (or creates) the database and builds the whole chat server: the
/// database and the sessions in it, step 3's routes, the Socket.IO layer and
/// its namespace, the page.
pub async fn build(config: ChatConfig) -> Result<ChatServer, BuildError> {
    let pool = db::open_database(&config.database_url).await?;
    let sessions = db::session_store(&pool);
    let (passport, chat) = passport_and_chat(&config, pool);
    let tasks = chat.tasks().clone();
    step02_sessions::spawn_expired_session_cleanup(&tasks, sessions.clone());

    let builder = socket_io_builder(&config, chat, &sessions);
    let (socket_layer, io) = builder.build_layer();
    io.ns("/", chat_connect_handler());
    let router = router(passport, &config, sessions, socket_layer, io.clone());
    Ok(ChatServer { router, io, tasks })
}
// ANCHOR_END: build

// ANCHOR: chat_namespace
/// The connect handler of the namespace `/`: chapter 4's chain (origin
/// first, then the session's user), then the chat's admission and its
/// handlers, then [`on_connect`]. Generic over the adapter for the reason
/// given at [`register_chat_handlers`].
pub fn chat_connect_handler<A: Adapter>() -> impl ConnectHandler<A, OnConnectArgs<A>> {
    on_connect
        .with(register_chat_handlers)
        .with(admit_socket)
        .with(authenticate_socket)
        .with(check_origin)
}

/// What [`on_connect`] takes. socketioxide tells handlers apart by the types
/// of their arguments, so naming a handler's type means naming these.
pub type OnConnectArgs<A> = (
    SocketIo<A>,
    SocketRef<A>,
    Extension<User>,
    State<Chat>,
    TryData<chat::HandshakeAuth>,
    State<SessionWatch>,
);
// ANCHOR_END: chat_namespace

/// Step 3's passport module, unchanged, over users in SQLite instead of in
/// memory; and the chat's shared state, over the messages in the same database.
pub fn passport_and_chat(
    config: &ChatConfig,
    pool: SqlitePool,
) -> (Passport<SqliteUserStore>, Chat) {
    let users = SqliteUserStore::new(pool.clone());
    let passport = Passport::with_hasher_params(users, config.hashing.clone())
        .with_limits(config.auth_limits.clone())
        .with_absolute_lifetime(config.sessions.absolute_lifetime);
    let rate = RateLimit::new(
        f64::from(config.rate_limit.burst),
        config.rate_limit.per_second,
    );
    let chat = Chat::new(MessageStore::new(pool), rate)
        .with_limits(config.limits.clone())
        .with_presence_page(config.presence_page);
    (passport, chat)
}

/// The Socket.IO server's settings and shared state: step 4's size and time
/// limits (16 KiB messages, no binary, a 10 s connect timeout), the allowed
/// origins, the chat, and what the session watch needs.
pub fn socket_io_builder<S: SessionStore + Clone>(
    config: &ChatConfig,
    chat: Chat,
    session_store: &S,
) -> socketioxide::SocketIoBuilder {
    let sockets: &SocketSettings = &config.sockets;
    sockets
        .limits
        .apply(SocketIo::builder())
        .max_buffer_size(config.socket_buffer)
        .with_state(sockets.allowed_origins.clone())
        .with_state(chat)
        .with_state(SessionWatch {
            store: Arc::new(session_store.clone()),
            every: sockets.session_recheck,
            lifetime: config.sessions.absolute_lifetime,
        })
}

/// The HTTP side: the page and step 3's routes, inside step 4's layers around
/// the Socket.IO layer. A logout disconnects that session's sockets.
///
/// Generic over the adapter `A` for the reason given at
/// [`register_chat_handlers`], and over the user store `U` for the chapter
/// "Scaling out with Redis" (its users in PostgreSQL).
pub fn router<S, A, U>(
    passport: Passport<U>,
    config: &ChatConfig,
    session_store: S,
    socket_layer: SocketIoLayer<A>,
    io: SocketIo<A>,
) -> Router
where
    S: SessionStore + Clone,
    A: Adapter,
    U: UserStore,
{
    let passport = passport.on_logout(disconnect_on_logout(io));
    let routes = Router::new()
        .route("/", get(step05_chat::page))
        .merge(auth_routes::<U>())
        .with_state(passport.clone());
    with_session_layers(
        routes,
        socket_layer,
        passport,
        &config.sessions,
        session_store,
        &config.sockets,
    )
}

/// The connect handler: the chat's own welcome, then step 4's session watch.
/// (Generic over the adapter: see [`register_chat_handlers`].)
pub async fn on_connect<A: Adapter>(
    io: SocketIo<A>,
    socket: SocketRef<A>,
    user: Extension<User>,
    chat: State<Chat>,
    auth: TryData<chat::HandshakeAuth>,
    State(watch): State<SessionWatch>,
) {
    let watching = watch_session(socket.clone(), watch);
    chat.tasks().spawn(watching);
    chat::on_connect(io, socket, user, chat, auth).await;
}
