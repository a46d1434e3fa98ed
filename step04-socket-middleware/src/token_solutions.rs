//! Reference solutions of the exercises of the chapter "JWT vs session". Compiled only with
//! `--features solutions`; CI uses them to prove each exercise check passes once the task is
//! done.
//!
//! All three are in one [`token_app`], with the same signature as
//! [`crate::token_auth::token_app`], so that `tests/token_exercises.rs` can build either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{get, post};
use http::header::AUTHORIZATION;
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use step02_sessions::SessionConfig;
use step03_passport_like_auth::{LogoutEvent, Passport, User, UserStore, auth_routes};
use tower_sessions::SessionStore;

use crate::token_auth::load_token_user;
use crate::{
    Claims, SocketSettings, TokenAuth, TokenConfig, TokenError, around_sockets, check_origin,
    issue_token, page, register_handlers, user_room,
};

// ANCHOR: close-at-expiry
/// Exercise 1: greets the user, then closes the socket when its token expires. The client is
/// told why first, so it can fetch a new token and reconnect.
async fn greet_until_expiry(
    socket: SocketRef,
    Extension(user): Extension<User>,
    Extension(claims): Extension<Claims>,
) {
    socket.emit("welcome", &user).ok();
    let expires_at = UNIX_EPOCH + Duration::from_secs(claims.exp);
    // Already expired (a clock jumped)? Then the wait is zero.
    let left = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::spawn(async move {
        tokio::time::sleep(left).await;
        if socket.connected() {
            tracing::info!(sid = %socket.id, "token expired: disconnecting its socket");
            socket.emit("token expired", &()).ok();
            socket.disconnect().ok();
        }
    });
}
// ANCHOR_END: close-at-expiry

// ANCHOR: revoke-on-logout
/// Exercise 2: when each user last logged out, in seconds since 1970. A token issued at or
/// before that second is revoked. Shared by the logout hook (writes) and the middleware (reads).
///
/// This is state again, the very thing tokens were meant to avoid: with several servers it
/// would have to live in Redis or the database, and be read on every handshake.
#[derive(Debug, Clone, Default)]
pub struct LoggedOutAt(Arc<Mutex<HashMap<i64, u64>>>);

impl LoggedOutAt {
    fn record(&self, user_id: i64, at: u64) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(user_id, at);
    }

    /// Whether the user logged out at or after the second the token was issued. (Seconds are
    /// all `iat` has: a new login within the same second as a logout gets a revoked token, and
    /// must ask again a second later.)
    fn revokes(&self, user_id: i64, claims: &Claims) -> bool {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&user_id).is_some_and(|&at| claims.iat <= at)
    }
}

/// The logout hook: revokes the user's tokens and closes the sockets they opened. Every
/// socket of a user is in `user_room(id)`, so this is "log out everywhere" for sockets.
fn revoke_on_logout(
    io: SocketIo,
    logged_out: LoggedOutAt,
) -> impl Fn(&LogoutEvent) + Send + Sync + 'static {
    move |event: &LogoutEvent| {
        let Some(user) = &event.user else {
            return;
        };
        logged_out.record(user.id, jsonwebtoken::get_current_timestamp());
        let io = io.clone();
        let room = user_room(user.id);
        tokio::spawn(async move {
            if let Err(error) = io.to(room).disconnect().await {
                tracing::error!(%error, "could not disconnect the sockets of a logged-out user");
            }
        });
    }
}
// ANCHOR_END: revoke-on-logout

// ANCHOR: bearer-header
/// Exercise 3: the token of an `Authorization: Bearer <token>` header on the handshake
/// request. Node.js clients can send one (`extraHeaders`); a browser's WebSocket cannot.
fn bearer_token(socket: &SocketRef) -> Option<String> {
    let header = socket.req_parts().headers.get(AUTHORIZATION)?;
    let token = header.to_str().ok()?.strip_prefix("Bearer ")?;
    Some(token.trim().to_owned())
}
// ANCHOR_END: bearer-header

// ANCHOR: authenticate
/// Why a socket was refused: the starter's reasons, plus a revoked token.
#[derive(Debug, thiserror::Error)]
pub enum RefusedToken {
    /// Any refusal of the starter's middleware, with the same message.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A valid token issued before its user logged out (exercise 2).
    #[error("Invalid token: revoked")]
    Revoked,
}

/// `authenticate_token` with exercises 2 and 3: the token may also come from a Bearer header,
/// and a token issued before a logout is refused.
pub async fn authenticate_token<U: UserStore>(
    socket: SocketRef,
    TryData(auth): TryData<TokenAuth>,
    State(tokens): State<TokenConfig>,
    State(users): State<U>,
    State(logged_out): State<LoggedOutAt>,
) -> Result<(), RefusedToken> {
    let token = auth
        .ok()
        .and_then(|auth| auth.token)
        .or_else(|| bearer_token(&socket)) // exercise 3
        .ok_or(TokenError::Missing)?;
    let claims = tokens.verify(&token)?;
    let user = load_token_user(&users, &claims).await?;
    if logged_out.revokes(user.id, &claims) {
        return Err(RefusedToken::Revoked); // exercise 2
    }
    socket.join(user_room(user.id));
    socket.extensions.insert::<User>(user);
    socket.extensions.insert(claims);
    Ok(())
}
// ANCHOR_END: authenticate

// ANCHOR: token_app
/// The starter's `token_app`, with the solutions wired in.
pub fn token_app<U, S>(
    passport: Passport<U>,
    sessions: &SessionConfig,
    store: S,
    settings: SocketSettings,
    tokens: TokenConfig,
) -> Router
where
    U: UserStore,
    S: SessionStore + Clone,
{
    let logged_out = LoggedOutAt::default();
    let (socket_layer, io) = settings
        .limits
        .apply(SocketIo::builder())
        .with_state(settings.allowed_origins.clone())
        .with_state(tokens.clone())
        .with_state(passport.users().clone())
        .with_state(logged_out.clone())
        .build_layer();
    io.ns(
        "/",
        greet_until_expiry
            .with(register_handlers)
            .with(authenticate_token::<U>)
            .with(check_origin),
    );
    let passport = passport.on_logout(revoke_on_logout(io, logged_out));

    let routes = Router::new()
        .route("/", get(page))
        .merge(auth_routes::<U>())
        .with_state(passport.clone())
        .merge(
            Router::new()
                .route("/token", post(issue_token))
                .with_state(tokens),
        );
    // No `require_login_to_connect`: the token arrives in the CONNECT packet, after the
    // handshake, so over HTTP only the origin can be checked.
    around_sockets(
        routes.layer(socket_layer),
        passport,
        sessions,
        store,
        &settings,
    )
}
// ANCHOR_END: token_app
