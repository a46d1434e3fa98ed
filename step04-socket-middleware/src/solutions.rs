//! Reference solutions of the chapter's exercises. Compiled only with
//! `--features solutions`; CI uses them to prove each exercise check passes
//! once the task is done.
//!
//! All four are applied at once, in one [`app`] with the signature of the
//! crate's `app`, so that `tests/exercises.rs` can build either. A student
//! edits the crate itself; this module re-implements only what the exercises
//! change and reuses everything else:
//! - exercise 1 is one line, [`SESSION_RECHECK`];
//! - exercise 2 adds a connect middleware, [`reject_banned`], to the
//!   `.with(...)` chain;
//! - exercises 3 and 4 change the `whoami` handler in [`register_handlers`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde::Serialize;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Extension, SocketRef, State};
use socketioxide::handler::ConnectHandler;
use step02_sessions::SessionConfig;
use step03_passport_like_auth::{Passport, User, UserStore};
use tower_sessions::SessionStore;

use crate::on_connect;
pub use crate::*;

// ANCHOR: recheck_interval
/// How often a live socket re-reads its session from the store. (In
/// `src/lib.rs`: the one line to change, from 30 seconds.)
pub const SESSION_RECHECK: Duration = Duration::from_secs(1);
// ANCHOR_END: recheck_interval

// ANCHOR: banned_users
/// Users who may log in over HTTP but may not open a socket.
pub const BANNED_USERS: &[&str] = &["mallory"];

/// Why a handshake was refused by [`reject_banned`]: the client's `err.message`
/// is `Banned`.
#[derive(Debug, thiserror::Error)]
#[error("Banned")]
pub struct Banned;

/// Connect middleware: refuses banned users. It reads the `User` that
/// `authenticate_socket` stored, so it must run *after* it: in the `.with(...)`
/// chain, it comes *before* it.
pub async fn reject_banned(
    socket: SocketRef,
    Extension(user): Extension<User>,
) -> Result<(), Banned> {
    // Usernames are unique ignoring case (see `UserStore`), so compare them the
    // same way.
    if BANNED_USERS
        .iter()
        .any(|banned| banned.eq_ignore_ascii_case(&user.username))
    {
        tracing::info!(
            sid = %socket.id,
            user = %user.username,
            "refused a banned user's socket"
        );
        return Err(Banned);
    }
    Ok(())
}
// ANCHOR_END: banned_users

// ANCHOR: tabs
/// What `whoami` answers now: `{"id": 1, "username": "alice", "tabs": 3}`.
#[derive(Debug, Serialize)]
struct WhoAmI {
    #[serde(flatten)]
    user: User,
    tabs: usize,
}

/// How many sockets `user` has open on this server: each one joined the user's
/// room in `authenticate_socket`, and leaves it when it disconnects.
fn open_tabs(io: &SocketIo, user: &User) -> usize {
    io.within(user_room(user.id)).sockets().len()
}
// ANCHOR_END: tabs

// ANCHOR: recheck_on_event
/// Re-reads the socket's session from the store, as `watch_session` does on its
/// timer. If it is gone, tells the client and disconnects the socket, and the
/// caller must stop there.
async fn session_still_alive(
    socket: &SocketRef,
    store: &Arc<dyn SessionStore>,
) -> bool {
    let Some(SocketSession(session_id)) =
        socket.extensions.get::<SocketSession>()
    else {
        return false; // not an authenticated socket: never answer it
    };
    match store.load(&session_id).await {
        Ok(Some(_)) => true,
        Ok(None) => {
            tracing::info!(
                sid = %socket.id,
                "session ended: disconnecting its socket"
            );
            socket.emit("session ended", &()).ok();
            socket.clone().disconnect().ok();
            false
        }
        // As on the timer: a store hiccup is not proof that the session is
        // gone.
        Err(error) => {
            tracing::warn!(%error, "could not re-check a socket's session");
            true
        }
    }
}
// ANCHOR_END: recheck_on_event

// ANCHOR: whoami
/// The crate's `register_handlers`, with a `whoami` that checks the session
/// first (exercise 4) and counts the user's tabs (exercise 3).
pub async fn register_handlers(socket: SocketRef) -> Result<(), Infallible> {
    socket.on(
        "whoami",
        async |socket: SocketRef,
               io: SocketIo,
               Extension(user): Extension<User>,
               State(watch): State<SessionWatch>,
               ack: AckSender| {
            if !session_still_alive(&socket, &watch.store).await {
                return; // no answer: the socket is being disconnected
            }
            let tabs = open_tabs(&io, &user);
            ack.send(&WhoAmI { user, tabs }).ok();
        },
    );
    Ok(())
}
// ANCHOR_END: whoami

/// The crate's `app`, with [`reject_banned`] in the chain and the new
/// [`register_handlers`].
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
        })
        .build_layer();

    // ANCHOR: banned_chain
    // Run order: check_origin, authenticate_socket, reject_banned,
    // register_handlers.
    io.ns(
        "/",
        on_connect
            .with(register_handlers)
            .with(reject_banned)
            .with(authenticate_socket)
            .with(check_origin),
    );
    // ANCHOR_END: banned_chain

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
