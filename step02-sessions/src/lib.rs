//! Step 2: sessions, the tower-sessions way.
//!
//! HTTP forgets a visitor between two requests. A session is how a server
//! remembers: it keeps the visitor's data in a *store* on the server and gives
//! the browser only a random session id, in a cookie. Every later request
//! brings the cookie back, and the id finds the data again.
//!
//! In Express that is `app.use(session(sessionConfig))`. Here it is a tower
//! layer built from a [`SessionConfig`], whose fields follow the walkthrough's
//! `sessionConfig` option by option, and a store: [`MemoryStore`] for a quick
//! demo, or a SQLite file ([`open_sqlite_store`]) so that sessions survive a
//! restart. Handlers receive a [`Session`] and read or write it.
//!
//! Later steps build on this crate: they keep the same `SessionConfig` and
//! store and put the logged-in user into the session.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions,
    SqliteSynchronous,
};
use step01_http_vs_socket::now_ms;
use time::Duration;
use tower_sessions::cookie::{Key, SameSite};
use tower_sessions::service::SignedCookie;
use tower_sessions::session::Record;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{
    Expiry, Session, SessionManagerLayer, SessionStore, session,
};

pub use tower_sessions::MemoryStore;
pub use tower_sessions_sqlx_store::SqliteStore;

pub mod tasks;
pub use tasks::BackgroundTasks;

/// The name of the session cookie. express-session calls it `connect.sid`; a
/// name that does not advertise the framework tells an attacker a little less.
pub const SESSION_COOKIE_NAME: &str = "id";

/// How long a session lives after it was last saved: the walkthrough's
/// `30 * 24 * 60 * 60 * 1000` milliseconds. A read does not save it; see
/// [`touch`].
pub const DEFAULT_MAX_AGE: Duration = Duration::days(30);

/// How long a session may live in all, however active: 90 days, unless
/// `SESSION_ABSOLUTE_LIFETIME_SECS` says otherwise. See [`outlived`].
pub const DEFAULT_ABSOLUTE_LIFETIME: Duration = Duration::days(90);

/// The fewest bytes a hex `SESSION_SECRET` must decode to: 32, the size of the
/// HMAC-SHA256 key that signs the cookie. That is 64 hex digits; `openssl rand
/// -hex 64` prints 128.
pub const MIN_SECRET_BYTES: usize = 32;

/// The fewest characters of a `SESSION_SECRET` that is not hex: 43 characters
/// of base64 carry 32 bytes (`openssl rand -base64 32` prints 44).
pub const MIN_SECRET_CHARS: usize = 43;

/// The fewest different characters a `SESSION_SECRET` must use. Random hex uses
/// all 16 digits; `kkkk…` or `abab…` was typed by a person, however long it is.
pub const MIN_DISTINCT_CHARS: usize = 8;

// ANCHOR: config
/// Everything the session layer needs to know, one field per option of the
/// walkthrough's `sessionConfig` (and the cookie attributes the walkthrough
/// leaves to their defaults).
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// `secret`: the key that **signs** the session cookie. A signature proves
    /// the cookie was issued by this server; it hides nothing. The cookie only
    /// carries a random id, so there is nothing to hide. (`Key`'s `Debug`
    /// prints no bytes, so logging the config is safe.)
    pub key: Key,
    /// `resave`: `false` saves the session only when a handler changed it.
    /// `true` saves it, and sends the cookie again, on every response.
    pub always_save: bool,
    // `saveUninitialized` has no field: tower-sessions never stores a session
    // nobody wrote to and never sends a cookie for it. That is
    // express-session's `saveUninitialized: false`.
    /// `cookie.maxAge`: how long the session lives after it was last saved.
    /// Only a change saves it (or [`touch`], at most once a day).
    pub max_age: Duration,
    /// No express-session option: how long a session may live since it was
    /// [`start`]ed, renewals or not (OWASP's "absolute timeout"). Checked
    /// where the session is read, with [`outlived`].
    pub absolute_lifetime: Duration,
    /// `cookie.secure`: the browser sends the cookie back over HTTPS only. Keep
    /// it `false` for plain http, where a browser may refuse a `Secure` cookie;
    /// then every request looks like a new visitor.
    pub secure: bool,
    /// `cookie.sameSite`: `Lax` keeps the cookie on links *to* this site but
    /// off cross-site POSTs, `fetch`es and WebSocket handshakes.
    pub same_site: SameSite,
    /// `cookie.httpOnly`: hide the cookie from the page's JavaScript
    /// (`document.cookie`).
    pub http_only: bool,
    /// `name`: the cookie's name.
    pub cookie_name: &'static str,
}
// ANCHOR_END: config

/// Why a [`SessionConfig`] could not be read from the environment.
#[derive(Debug, thiserror::Error)]
pub enum SessionConfigError {
    /// `SESSION_SECRET` is set but too short to be a signing key.
    #[error(
        "SESSION_SECRET is {len} characters long but must be at least 64 hex \
         digits or {MIN_SECRET_CHARS} characters of other text; generate one \
         with `openssl rand -hex 64` and put it in .env"
    )]
    SecretTooShort {
        /// The length that was found, in characters.
        len: usize,
    },
    /// `SESSION_SECRET` is long enough but obviously not random.
    #[error(
        "SESSION_SECRET is made of too few different characters ({distinct}, \
         at least {MIN_DISTINCT_CHARS} needed): it was typed, not generated, \
         and can be guessed; generate one with `openssl rand -hex 64` and put \
         it in .env"
    )]
    SecretTooWeak {
        /// How many different characters it uses.
        distinct: usize,
    },
    /// `SESSION_SECRET` is set but is not UTF-8 text.
    #[error(
        "SESSION_SECRET is not valid UTF-8; use a hex string: \
         `openssl rand -hex 64`"
    )]
    SecretNotUtf8,
    /// `COOKIE_SECURE` is set to something other than true/false.
    #[error("COOKIE_SECURE must be `true` or `false`, got {0:?}")]
    InvalidCookieSecure(String),
    /// `SESSION_ABSOLUTE_LIFETIME_SECS` is not a whole number of seconds
    /// above zero.
    #[error(
        "SESSION_ABSOLUTE_LIFETIME_SECS must be a whole number of seconds \
         above zero, got {0:?}"
    )]
    InvalidAbsoluteLifetime(String),
    /// `SESSION_STORE` names a store this step does not have.
    #[error("SESSION_STORE must be `sqlite` or `memory`, got {0:?}")]
    UnknownStore(String),
}

impl SessionConfig {
    // ANCHOR: with_key
    /// The defaults this book uses: 30 days after the last save, `HttpOnly`,
    /// `SameSite=Lax`, and `Secure` off so that the cookie works on
    /// `http://127.0.0.1`.
    pub fn with_key(key: Key) -> Self {
        Self {
            key,
            always_save: false,
            max_age: DEFAULT_MAX_AGE,
            absolute_lifetime: DEFAULT_ABSOLUTE_LIFETIME,
            secure: false,
            same_site: SameSite::Lax,
            http_only: true,
            cookie_name: SESSION_COOKIE_NAME,
        }
    }
    // ANCHOR_END: with_key

    // ANCHOR: from_env
    /// Reads `SESSION_SECRET`, `COOKIE_SECURE` and
    /// `SESSION_ABSOLUTE_LIFETIME_SECS` from the environment (load `.env`
    /// first).
    ///
    /// An unset `SESSION_SECRET` is not an error, so that the demo runs out of
    /// the box, but the generated key dies with the process: after a restart
    /// every cookie fails its signature check and everybody is logged out. That
    /// is worth a loud warning.
    pub fn from_env() -> Result<Self, SessionConfigError> {
        let secret = match std::env::var("SESSION_SECRET") {
            Ok(secret) => Some(secret),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(SessionConfigError::SecretNotUtf8);
            }
        };
        let cookie_secure = std::env::var("COOKIE_SECURE").ok();
        let config =
            Self::from_settings(secret.as_deref(), cookie_secure.as_deref())?;
        let lifetime = std::env::var("SESSION_ABSOLUTE_LIFETIME_SECS").ok();
        Ok(config.absolute_lifetime(parse_lifetime(lifetime.as_deref())?))
    }
    // ANCHOR_END: from_env

    // ANCHOR: from_settings
    /// [`SessionConfig::from_env`] without the environment, so that it can be
    /// tested.
    pub fn from_settings(
        session_secret: Option<&str>,
        cookie_secure: Option<&str>,
    ) -> Result<Self, SessionConfigError> {
        let key = match session_secret.filter(|secret| !secret.is_empty()) {
            Some(secret) => key_from_secret(secret)?,
            None => {
                tracing::warn!(
                    "SESSION_SECRET is not set: using a random key for this \
                     run only. Every session cookie becomes invalid when the \
                     server restarts. Set SESSION_SECRET (e.g. \
                     `openssl rand -hex 64`) in .env to keep sessions across \
                     restarts."
                );
                Key::generate()
            }
        };
        let secure = match cookie_secure.map(str::trim) {
            None | Some("") => false,
            Some(value)
                if value.eq_ignore_ascii_case("true") || value == "1" =>
            {
                true
            }
            Some(value)
                if value.eq_ignore_ascii_case("false") || value == "0" =>
            {
                false
            }
            Some(other) => {
                return Err(SessionConfigError::InvalidCookieSecure(
                    other.to_owned(),
                ));
            }
        };
        Ok(Self::with_key(key).secure(secure))
    }
    // ANCHOR_END: from_settings

    /// Sets how long a session lives after it was last written.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Sets how long a session may live since it started, however active.
    pub fn absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.absolute_lifetime = lifetime;
        self
    }

    /// Turns the cookie's `Secure` attribute on or off.
    pub fn secure(mut self, on: bool) -> Self {
        self.secure = on;
        self
    }

    // ANCHOR: layer
    /// Builds the tower layer: `app.use(session(sessionConfig))` becomes
    /// `router.layer(config.layer(store))`.
    pub fn layer<S: SessionStore + Clone>(
        &self,
        store: S,
    ) -> SessionManagerLayer<S, SignedCookie> {
        SessionManagerLayer::new(store)
            .with_name(self.cookie_name)
            .with_always_save(self.always_save)
            // The clock restarts each time the session is saved.
            .with_expiry(Expiry::OnInactivity(self.max_age))
            .with_secure(self.secure)
            .with_same_site(self.same_site)
            .with_http_only(self.http_only)
            .with_path("/")
            .with_signed(self.key.clone())
    }
    // ANCHOR_END: layer
}

// ANCHOR: touch
/// The session key holding when the session was last renewed, in Unix
/// milliseconds. Only a session that carries it is renewed by [`touch`].
pub const RENEWED_AT_KEY: &str = "renewed_at";

/// How many times [`touch`] may renew a session within one `max_age`:
/// a 30-day session is renewed at most once a day.
pub const RENEWALS_PER_MAX_AGE: i32 = 30;

/// Renews `session` now: writes the time into it, so the layer saves it
/// (pushing its expiry `max_age` into the future) and sends the cookie
/// again. A login calls it; [`touch`] calls it when a renewal is due.
pub async fn renew(session: &Session) -> Result<(), session::Error> {
    session.insert(RENEWED_AT_KEY, now_ms()).await
}

/// express-session's `touch()`, rationed: call it on a request that shows
/// the visitor is active. It renews a session that was renewed before
/// (see [`renew`]), once `max_age / 30` has passed since then, and does
/// nothing otherwise: no store write, no cookie. Returns whether it renewed.
///
/// The session is usually loaded already (the caller read it), so the
/// check itself costs no store access.
pub async fn touch(session: &Session) -> Result<bool, session::Error> {
    let Some(Expiry::OnInactivity(max_age)) = session.expiry() else {
        return Ok(false); // a fixed deadline, or a browser-session cookie
    };
    let Some(renewed_at) = session.get::<u64>(RENEWED_AT_KEY).await? else {
        return Ok(false); // never renewed: not a session that asked for it
    };
    let every = (max_age / RENEWALS_PER_MAX_AGE).whole_milliseconds();
    let since = i128::from(now_ms()) - i128::from(renewed_at);
    if since < every {
        return Ok(false);
    }
    renew(session).await?;
    Ok(true)
}
// ANCHOR_END: touch

/// `SESSION_ABSOLUTE_LIFETIME_SECS`: unset or empty is the default.
pub fn parse_lifetime(
    seconds: Option<&str>,
) -> Result<Duration, SessionConfigError> {
    match seconds.map(str::trim).filter(|value| !value.is_empty()) {
        None => Ok(DEFAULT_ABSOLUTE_LIFETIME),
        Some(value) => match value.parse::<u32>() {
            Ok(seconds) if seconds > 0 => {
                Ok(Duration::seconds(i64::from(seconds)))
            }
            _ => Err(SessionConfigError::InvalidAbsoluteLifetime(
                value.to_owned(),
            )),
        },
    }
}

// ANCHOR: absolute_lifetime
/// The session key holding when the session started (a login, in later
/// steps), in Unix milliseconds. Renewals never change it.
pub const STARTED_AT_KEY: &str = "started_at";

/// Marks now as the start of `session`'s absolute lifetime.
pub async fn start(session: &Session) -> Result<(), session::Error> {
    session.insert(STARTED_AT_KEY, now_ms()).await
}

/// Whether `session` started more than `lifetime` ago. Idle expiry ends a
/// session nobody uses; this ends one that is used every day, so that a
/// stolen cookie kept busy by a script still dies. A session never
/// [`start`]ed has no absolute lifetime.
pub async fn outlived(
    session: &Session,
    lifetime: Duration,
) -> Result<bool, session::Error> {
    let started_at = session.get::<u64>(STARTED_AT_KEY).await?;
    Ok(started_at.is_some_and(|at| older_than(at, lifetime)))
}

/// [`outlived`] for a session read straight from the store, as a socket's
/// session watch reads it (it has no request, so no [`Session`]).
pub fn record_outlived(record: &Record, lifetime: Duration) -> bool {
    let started_at = record.data.get(STARTED_AT_KEY).and_then(|at| at.as_u64());
    started_at.is_some_and(|at| older_than(at, lifetime))
}

fn older_than(started_at: u64, lifetime: Duration) -> bool {
    let age = i128::from(now_ms()) - i128::from(started_at);
    age >= lifetime.whole_milliseconds()
}
// ANCHOR_END: absolute_lifetime

// ANCHOR: key_from_secret
/// Turns `SESSION_SECRET` into the cookie key, using every byte of it.
///
/// A hex secret is decoded first: the 128 characters of
/// `openssl rand -hex 64` are 64 random bytes. Other text is taken as it
/// is. Then HKDF (`Key::derive_from`) stretches the whole secret into the
/// key's 64 bytes, so a change anywhere in it gives another key.
/// Spaces around it (a stray one in `.env`) are not part of it.
pub fn key_from_secret(secret: &str) -> Result<Key, SessionConfigError> {
    let secret = secret.trim();
    let len = secret.chars().count();
    let too_short = SessionConfigError::SecretTooShort { len };
    let material = match hex::decode(secret) {
        Ok(bytes) if bytes.len() >= MIN_SECRET_BYTES => bytes,
        Ok(_) => return Err(too_short),
        Err(_) if len >= MIN_SECRET_CHARS => secret.as_bytes().to_vec(),
        Err(_) => return Err(too_short),
    };
    let distinct = secret.chars().collect::<HashSet<_>>().len();
    if distinct < MIN_DISTINCT_CHARS {
        return Err(SessionConfigError::SecretTooWeak { distinct });
    }
    Ok(Key::derive_from(&material))
}
// ANCHOR_END: key_from_secret

// ANCHOR: sqlite_store
/// Opens (creating the file and its directory if needed) the SQLite database at
/// `database_url`, e.g. `sqlite://data/step02.db`, and creates the sessions
/// table.
pub async fn open_sqlite_store(
    database_url: &str,
) -> Result<SqliteStore, sqlx::Error> {
    let store = SqliteStore::new(open_sqlite(database_url).await?);
    store.migrate().await?;
    Ok(store)
}

/// A pool on the SQLite file at `database_url`, made if missing (and its
/// directory: SQLite makes the file, not the directory it goes in). Step 5
/// keeps its users and messages in the same file.
pub async fn open_sqlite(
    database_url: &str,
) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(database_url)?
        .create_if_missing(true)
        // Readers (a joining user's history) carry on while a writer commits.
        .journal_mode(SqliteJournalMode::Wal)
        // A commit returns once the log is on disk (fsync): "stored" survives
        // a power cut. SQLite's default, said out loud: WAL is often paired
        // with NORMAL, which may lose the last commits.
        .synchronous(SqliteSynchronous::Full)
        // One writer at a time: under a burst, wait for the lock rather than
        // fail at once with "database is locked".
        .busy_timeout(std::time::Duration::from_secs(5))
        .foreign_keys(true); // sqlx's default, said out loud
    let directory = options.get_filename().parent();
    if let Some(directory) = directory.filter(|dir| !dir.as_os_str().is_empty())
    {
        tokio::fs::create_dir_all(directory).await?;
    }
    SqlitePoolOptions::new().connect_with(options).await
}
// ANCHOR_END: sqlite_store

// ANCHOR: expired_cleanup
/// How often expired sessions are deleted from a store that does not do it by
/// itself.
pub const CLEANUP_PERIOD: std::time::Duration =
    std::time::Duration::from_secs(60);

/// Deletes expired sessions every [`CLEANUP_PERIOD`], one of `tasks`.
///
/// An expired session is never *used* (a lookup checks the expiry date), but
/// its row stays in the table until something deletes it.
pub fn spawn_expired_session_cleanup<S>(tasks: &BackgroundTasks, store: S)
where
    S: ExpiredDeletion + Clone + 'static,
{
    tasks.spawn(async move {
        if let Err(error) =
            store.continuously_delete_expired(CLEANUP_PERIOD).await
        {
            tracing::error!(%error, "expired-session cleanup stopped");
        }
    });
}
// ANCHOR_END: expired_cleanup

// ANCHOR: backend
/// Where sessions are kept, chosen with `SESSION_STORE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionBackend {
    /// A SQLite file: sessions survive a restart. The default.
    Sqlite {
        /// e.g. `sqlite://data/step02.db`
        database_url: String,
    },
    /// A `HashMap` inside the process: gone on restart, never shrinks, one
    /// process only.
    Memory,
}

/// The SQLite file used when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/step02.db";

impl SessionBackend {
    /// Reads `SESSION_STORE` (`sqlite`, the default, or `memory`) and
    /// `DATABASE_URL`.
    pub fn from_env() -> Result<Self, SessionConfigError> {
        let database_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
        match std::env::var("SESSION_STORE").as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => Ok(Self::Sqlite { database_url }),
            Ok("memory") => Ok(Self::Memory),
            Ok(other) => {
                Err(SessionConfigError::UnknownStore(other.to_owned()))
            }
        }
    }
}
// ANCHOR_END: backend

// ANCHOR: app_with_backend

impl fmt::Display for SessionBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite { database_url } => {
                write!(f, "the SQLite file {database_url}")
            }
            Self::Memory => write!(f, "memory (lost when the server stops)"),
        }
    }
}

/// Opens the chosen store and builds [`app`] on it. For SQLite this also starts
/// the cleanup of expired sessions, one of `tasks`.
pub async fn app_with_backend(
    config: &SessionConfig,
    backend: &SessionBackend,
    tasks: &BackgroundTasks,
) -> Result<Router, sqlx::Error> {
    Ok(match backend {
        SessionBackend::Sqlite { database_url } => {
            let store = open_sqlite_store(database_url).await?;
            spawn_expired_session_cleanup(tasks, store.clone());
            app(config, store)
        }
        SessionBackend::Memory => app(config, MemoryStore::default()),
    })
}
// ANCHOR_END: app_with_backend

// ANCHOR: session_view
/// The key under which the visit counter lives in the session.
const VISITS_KEY: &str = "visits";

/// The answer of `GET /api/session`: what the server knows about this visitor.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionView {
    /// How many times this visitor pressed "count a visit".
    pub visits: u64,
    /// The session id, or `None` while this visitor has no stored session.
    /// (A real app never shows it: whoever holds the id *is* the visitor.)
    pub session_id: Option<String>,
    /// The attributes the session cookie is sent with.
    pub cookie: CookieAttributes,
}

/// The session cookie's attributes, as configured. The page cannot read the
/// cookie itself: it is `HttpOnly`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CookieAttributes {
    /// The cookie's name.
    pub name: String,
    /// `Max-Age`, in seconds.
    pub max_age_seconds: i64,
    /// `HttpOnly`.
    pub http_only: bool,
    /// `SameSite`: `Strict`, `Lax` or `None`.
    pub same_site: String,
    /// `Secure`.
    pub secure: bool,
    /// Whether the value carries a signature (always, here).
    pub signed: bool,
}
// ANCHOR_END: session_view

impl CookieAttributes {
    /// The attributes `config` gives the session cookie.
    pub fn from_config(config: &SessionConfig) -> Self {
        Self {
            name: config.cookie_name.to_owned(),
            max_age_seconds: config.max_age.whole_seconds(),
            http_only: config.http_only,
            same_site: config.same_site.to_string(),
            secure: config.secure,
            signed: true,
        }
    }
}

// ANCHOR: handlers
/// `GET /api/session`: only reads, so a first-time visitor gets no cookie.
async fn show_session(
    session: Session,
    State(cookie): State<CookieAttributes>,
) -> Result<Json<SessionView>, SessionError> {
    // Reading loads the session from the store. A cookie whose session expired,
    // or was deleted, loads nothing, and the session forgets its id: order
    // matters here.
    let visits = session.get::<u64>(VISITS_KEY).await?.unwrap_or(0);
    let session_id = session.id().map(|id| id.to_string());
    Ok(Json(SessionView {
        visits,
        session_id,
        cookie,
    }))
}

/// `POST /api/visit`: writes, so this is where the cookie is first set.
async fn count_visit(session: Session) -> Result<StatusCode, SessionError> {
    let visits: u64 = session.get(VISITS_KEY).await?.unwrap_or(0);
    session.insert(VISITS_KEY, visits + 1).await?;
    // `insert` only marks the session as changed. The layer saves it to the
    // store, which gives a new session its id, and sets the cookie, once this
    // handler has returned.
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/clear`: `req.session.destroy()`. Deletes the stored session; the
/// layer then tells the browser to drop the cookie.
async fn clear_session(session: Session) -> Result<StatusCode, SessionError> {
    // No id means no valid cookie: nothing to delete (and no warning in the log
    // about it).
    if session.id().is_some() {
        session.flush().await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
// ANCHOR_END: handlers

/// A session store that failed (the SQLite file became unwritable, say).
/// Logged, and answered with a 500 that leaks nothing.
#[derive(Debug)]
pub struct SessionError(tower_sessions::session::Error);

impl From<tower_sessions::session::Error> for SessionError {
    fn from(error: tower_sessions::session::Error) -> Self {
        Self(error)
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "session store error");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({ "error": "the session store failed" })),
        )
            .into_response()
    }
}

// ANCHOR: app
/// Builds the demo: the page and its three JSON endpoints, behind the session
/// layer.
pub fn app<S: SessionStore + Clone>(
    config: &SessionConfig,
    store: S,
) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/session", get(show_session))
        .route("/api/visit", post(count_visit))
        .route("/api/clear", post(clear_session))
        // The page shows the cookie's attributes: every handler may ask for
        // them.
        .with_state(CookieAttributes::from_config(config))
        // The `app.use(session(...))` moment: every route added above gets a
        // `Session`.
        .layer(config.layer(store))
}
// ANCHOR_END: app

async fn page() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}
