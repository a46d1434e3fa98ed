//! Step 4: only logged-in users may open a socket.
//!
//! This is the `socketAuthMiddleware` of the Node.js walkthrough, done the Rust
//! way:
//! - [`origin`]: which *pages* may open a socket (the `Origin` allow-list) and
//!   CORS for a front end on another origin;
//! - [`socket_auth`]: which *users* may: the connect middleware that reads the
//!   handshake's session and user, attaches the user to the socket, or refuses
//!   with `Unauthorized`;
//! - [`live_sessions`]: a socket outlives its handshake, so logout and expiry
//!   must reach it.
//! - [`handshake`]: the same "logged in?" question asked over HTTP, before
//!   socketioxide allocates a connection, and [`limits`]: how big and how slow
//!   a client may be; [`fair_use`]: how much one user may ask, counted (step 5
//!   chooses the numbers); [`text`]: text fit to show other people;
//!   [`delivery`]: sending to one socket without losing a packet in silence;
//!   [`chores`]: work a handler notes for later, off its hot path.
//!
//! Everything else is reused: step 2's session layer, step 3's passport module
//! and routes, step 1's `serve`. (The chapter "JWT vs session" and its crate,
//! `jwt-vs-session`, admit sockets by a signed token instead, with
//! [`http_routes`], [`register_handlers`] and [`around_sockets`] from here.)

pub mod chores;
pub mod delivery;
pub mod fair_use;
pub mod handshake;
pub mod in_order;
pub mod limits;
pub mod live_sessions;
pub mod origin;
pub mod socket_auth;
pub mod text;

use std::convert::Infallible;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::Html;
use axum::routing::get;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Extension, SocketRef, State};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use step02_sessions::SessionConfig;
use step03_passport_like_auth::{
    AuthLimits, MemoryUserStore, Passport, User, UserStore, auth_routes,
    seed_demo_users,
};
use tower_sessions::{MemoryStore, SessionStore};

pub use chores::Chores;
pub use fair_use::{
    FairRoom, RateLimit, RateLimited, SocketCount, SocketSlot, Strikes,
    UNLIMITED_RATE,
};
pub use handshake::{SOCKET_IO_PATH, identify_user, require_login_to_connect};
pub use in_order::InOrder;
pub use limits::{LimitsError, SocketLimits, positive_env};
pub use live_sessions::{
    disconnect_on_logout, let_go, session_room, user_room, watch_session,
};
pub use origin::{
    AllowedOrigins, ForbiddenOrigin, check_origin, check_request_origin,
    cors_layer,
};
pub use socket_auth::{SocketSession, Unauthorized, authenticate_socket};

/// Locks `mutex`, poisoned or not: the tables behind this crate's locks are
/// sound after any panic (no update is left half-done), so they stay usable.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How often a live socket re-reads its session from the store, unless told
/// otherwise: the longest a socket can outlive a session that ended without a
/// logout (see `live_sessions`).
pub const SESSION_RECHECK: Duration = Duration::from_secs(30);

/// Everything about sockets this step lets you configure.
#[derive(Debug, Clone)]
pub struct SocketSettings {
    /// The pages that may open a socket.
    pub allowed_origins: AllowedOrigins,
    /// How often a live socket re-checks that its session still exists.
    pub session_recheck: Duration,
    /// How big and how slow a client may be.
    pub limits: SocketLimits,
}

impl SocketSettings {
    /// `allowed_origins`, with the default [`SESSION_RECHECK`] and limits.
    pub fn new(allowed_origins: AllowedOrigins) -> Self {
        SocketSettings {
            allowed_origins,
            session_recheck: SESSION_RECHECK,
            limits: SocketLimits::default(),
        }
    }

    /// The server's own origins (plus `ALLOWED_ORIGINS`), a [`SESSION_RECHECK`]
    /// re-check and the limits of `SOCKET_MAX_MESSAGE_BYTES` and
    /// `SOCKET_CONNECT_TIMEOUT_SECS`. Logs what it read.
    pub fn from_env(port: u16) -> Result<Self, LimitsError> {
        let settings = SocketSettings {
            limits: SocketLimits::from_env()?,
            ..SocketSettings::new(AllowedOrigins::from_env(port))
        };
        tracing::info!(
            origins = ?settings.allowed_origins.as_slice(),
            "allowed origins"
        );
        tracing::info!(limits = ?settings.limits, "socket limits");
        Ok(settings)
    }

    /// A Socket.IO builder with these settings: the limits applied, the
    /// allowed origins ([`check_origin`]'s state) and the session watch's
    /// [`SessionWatch`] over `store`, with the lifetime of `sessions`.
    pub fn io_builder<S: SessionStore + Clone>(
        &self,
        store: &S,
        sessions: &SessionConfig,
    ) -> socketioxide::SocketIoBuilder {
        let store = Arc::new(store.clone());
        let every = self.session_recheck;
        let lifetime = sessions.absolute_lifetime;
        (self.limits.apply(SocketIo::builder()))
            .with_state(self.allowed_origins.clone())
            .with_state(SessionWatch {
                store,
                every,
                lifetime,
            })
    }
}

// ANCHOR: stores
/// Where step 4 keeps its users and its sessions: both in memory, so that they
/// live and die together. A session names a user by id; if sessions outlived
/// users (sessions in a file, users in memory), a restart would hand an old
/// cookie to whoever registers next and gets the same id. Step 5 keeps both in
/// one SQLite file instead, which survives restarts.
pub fn in_memory_stores() -> (Passport<MemoryUserStore>, MemoryStore) {
    (
        Passport::new(MemoryUserStore::default()),
        MemoryStore::default(),
    )
}
// ANCHOR_END: stores

/// The stores `cargo run` starts with: [`in_memory_stores`], with step 3's
/// throttles and Argon2 bound read from the environment (`RATE_LIMITS`,
/// `LOGIN_ATTEMPTS_PER_ADDRESS`...) and the demo users alice and bob.
pub async fn demo_stores()
-> Result<(Passport<MemoryUserStore>, MemoryStore), Box<dyn Error>> {
    let (passport, store) = in_memory_stores();
    let passport = passport.with_limits(AuthLimits::from_env()?);
    seed_demo_users(&passport).await?;
    Ok((passport, store))
}

/// Everything `cargo run` starts from, read from the environment: the session
/// settings, [`demo_stores`], a listener on `HOST`/`PORT`, and the socket
/// settings for its port. The JWT chapter's server starts from it too.
#[derive(Debug)]
pub struct Demo {
    /// The session cookie's settings (`SESSION_SECRET`...).
    pub sessions: SessionConfig,
    /// Step 3's passport over the demo users.
    pub passport: Passport<MemoryUserStore>,
    /// Where the sessions live.
    pub store: MemoryStore,
    /// Bound to `HOST`/`PORT`.
    pub listener: tokio::net::TcpListener,
    /// The allowed origins (for the listener's port) and the socket limits.
    pub settings: SocketSettings,
}

impl Demo {
    /// Reads the settings, seeds the demo users and binds the listener.
    pub async fn from_env() -> Result<Self, Box<dyn Error>> {
        let sessions = SessionConfig::from_env()?;
        // Users and sessions in memory, together: a restart forgets both (see
        // `in_memory_stores`).
        let (passport, store) = demo_stores().await?;
        let passport =
            passport.with_absolute_lifetime(sessions.absolute_lifetime);
        let addr = step01_http_vs_socket::listen_addr_from_env()?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let settings = SocketSettings::from_env(listener.local_addr()?.port())?;
        Ok(Demo {
            sessions,
            passport,
            store,
            listener,
            settings,
        })
    }
}

/// What the connect handler needs to watch a socket's session (see
/// [`watch_session`]): the store to ask, how often, and the sessions' absolute
/// lifetime. Socket.IO state, shared with step 5.
#[derive(Debug, Clone)]
pub struct SessionWatch {
    pub store: Arc<dyn SessionStore>,
    pub every: Duration,
    pub lifetime: time::Duration,
}

// ANCHOR: app
/// Builds the step-4 app: step 3's login routes and a page, and a Socket.IO
/// server that only admits logged-in users from allowed pages.
pub fn app<U, S>(
    passport: Passport<U>,
    sessions: &SessionConfig,
    store: S,
    settings: SocketSettings,
) -> Router
where
    U: UserStore,
    S: SessionStore + Clone,
{
    let (socket_layer, io) = settings
        .limits
        .apply(SocketIo::builder())
        .with_state(settings.allowed_origins.clone())
        .with_state(SessionWatch {
            store: Arc::new(store.clone()),
            every: settings.session_recheck,
            lifetime: sessions.absolute_lifetime,
        })
        .build_layer();
    // ANCHOR_END: app

    // ANCHOR: app_middlewares
    // `io.use(...)` of Node.js. With `.with(a).with(b)`, `b` runs first: so the
    // origin is checked, then the session, and handlers are registered last,
    // only for admitted sockets.
    io.ns(
        "/",
        on_connect
            .with(register_handlers)
            .with(authenticate_socket)
            .with(check_origin),
    );

    // Logging out over HTTP must also close the sockets opened with that
    // session.
    let passport = passport.on_logout(disconnect_on_logout(io));

    let routes = http_routes(passport.clone());
    with_session_layers(
        routes,
        socket_layer,
        passport,
        sessions,
        store,
        &settings,
    )
}
// ANCHOR_END: app_middlewares

/// The HTTP side of step 4: the page at `/` (with step 1's stylesheet), and
/// step 3's `/register`, `/login`, `/logout` and `/me`.
pub fn http_routes<U: UserStore>(passport: Passport<U>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/steps.css", get(step01_http_vs_socket::steps_stylesheet))
        .merge(auth_routes::<U>())
        .with_state(passport)
}

// ANCHOR: layers
/// Wraps the HTTP routes and the Socket.IO layer in the layers every request
/// goes through, in the one order that works: the Socket.IO layer innermost, so
/// that its handshake request has already been given a session (step 2) and a
/// user (step 3).
///
/// Step 5 builds its chat with this same function.
pub fn with_session_layers<U, S, A>(
    routes: Router,
    socket_layer: SocketIoLayer<A>,
    passport: Passport<U>,
    sessions: &SessionConfig,
    store: S,
    settings: &SocketSettings,
) -> Router
where
    U: UserStore,
    S: SessionStore + Clone,
    A: Adapter,
{
    // Layers wrap what is above them: the last one added runs first on a
    // request.
    let routes = routes
        .layer(socket_layer) // innermost: sees the session and the user
        .layer(from_fn(require_login_to_connect)); // no user: 401
    around_sockets(routes, passport, sessions, store, settings)
}
// ANCHOR_END: layers

// ANCHOR: around_sockets
/// The layers outside the Socket.IO layer: CORS, then the `Origin` check of
/// requests that could change something or open a socket, then the session,
/// then the user. An app that admits sockets by something else than the session
/// (the chapter "JWT vs session") wraps its routes in these alone.
pub fn around_sockets<U, S>(
    routes: Router,
    passport: Passport<U>,
    sessions: &SessionConfig,
    store: S,
    settings: &SocketSettings,
) -> Router
where
    U: UserStore,
    S: SessionStore + Clone,
{
    let origins = settings.allowed_origins.clone();
    routes
        .layer(from_fn_with_state(passport, identify_user::<U>))
        .layer(sessions.layer(store))
        .layer(from_fn_with_state(origins, check_request_origin)) // 403
        .layer(cors_layer(&settings.allowed_origins)) // outermost
}
// ANCHOR_END: around_sockets

// ANCHOR: register_handlers
/// The last connect middleware: registers the socket's event handlers. Public,
/// because they work whatever middleware admitted the socket, as long as it
/// left a `User` in the socket's extensions.
///
/// Why here and not in `on_connect`? socketioxide sends the "connected" packet
/// to the client *before* it spawns the connect handler. A client that emits in
/// its `connect` callback can therefore get its event to the server before the
/// handler has been registered, and the event is dropped. Middlewares run
/// before the "connected" packet, so handlers registered here are always in
/// place in time.
pub async fn register_handlers(socket: SocketRef) -> Result<(), Infallible> {
    // Every handler can ask for the user the middleware attached:
    // `socket.user`.
    socket.on(
        "whoami",
        async |Extension(user): Extension<User>, ack: AckSender| {
            ack.send(&user).ok();
        },
    );
    Ok(())
}
// ANCHOR_END: register_handlers

// ANCHOR: on_connect
/// Runs once the socket is admitted: greet the user by name and keep an eye on
/// the session.
async fn on_connect(
    socket: SocketRef,
    Extension(user): Extension<User>,
    State(watch): State<SessionWatch>,
) {
    socket.emit("welcome", &user).ok();
    tokio::spawn(watch_session(socket, watch));
}
// ANCHOR_END: on_connect

async fn page() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}
