//! Exercise 2, solved: logging out revokes the user's tokens and closes the
//! sockets they opened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use step02_sessions::SessionConfig;
use step03_passport_like_auth::{LogoutEvent, Passport, User, UserStore};
use step04_socket_middleware::{
    SocketSettings, around_sockets, check_origin, register_handlers, user_room,
};
use tower_sessions::SessionStore;

use crate::{
    Claims, TokenAuth, TokenConfig, TokenError, load_token_user, token_routes,
};

// ANCHOR: logged_out_at
/// When each user last logged out, in seconds since 1970. A token issued at or
/// before that second is revoked. Shared by the logout hook (writes) and the
/// middleware (reads).
///
/// This is state again, the very thing tokens were meant to avoid: with several
/// servers it would have to live in Redis or the database, and be read on every
/// handshake.
#[derive(Debug, Clone, Default)]
pub struct LoggedOutAt(Arc<Mutex<HashMap<i64, u64>>>);

impl LoggedOutAt {
    fn record(&self, user_id: i64, at: u64) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(user_id, at);
    }

    /// Whether the user logged out at or after the second the token was
    /// issued. (Seconds are all `iat` has: a new login within the same second
    /// as a logout gets a revoked token, and must ask again a second later.)
    fn revokes(&self, user_id: i64, claims: &Claims) -> bool {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&user_id).is_some_and(|&at| claims.iat <= at)
    }
}
// ANCHOR_END: logged_out_at

// ANCHOR: revoke_on_logout
/// The logout hook: revokes the user's tokens and closes the sockets they
/// opened. Every socket of a user is in `user_room(id)`, so this is "log out
/// everywhere" for sockets.
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
                tracing::error!(%error, "could not disconnect a user");
            }
        });
    }
}
// ANCHOR_END: revoke_on_logout

// ANCHOR: authenticate
/// Why a socket was refused: the starter's reasons, plus a revoked token.
#[derive(Debug, thiserror::Error)]
pub enum RefusedToken {
    /// Any refusal of the starter's middleware, with the same message.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A valid token issued before its user logged out.
    #[error("Invalid token: revoked")]
    Revoked,
}

/// The starter's `authenticate_token`, which also refuses a token issued
/// before a logout.
pub async fn authenticate_token<U: UserStore>(
    socket: SocketRef,
    TryData(auth): TryData<TokenAuth>,
    State(tokens): State<TokenConfig>,
    State(users): State<U>,
    State(logged_out): State<LoggedOutAt>,
) -> Result<(), RefusedToken> {
    let token = auth.ok().and_then(|auth| auth.token);
    let claims = tokens.verify(&token.ok_or(TokenError::Missing)?)?;
    let user = load_token_user(&users, &claims).await?;
    if logged_out.revokes(user.id, &claims) {
        return Err(RefusedToken::Revoked);
    }
    socket.join(user_room(user.id));
    socket.extensions.insert::<User>(user);
    socket.extensions.insert(claims);
    Ok(())
}
// ANCHOR_END: authenticate

// ANCHOR: token_app
/// The starter's `token_app`, with the table of logouts shared by the new
/// middleware and the new logout hook.
pub fn token_app<U: UserStore>(
    passport: Passport<U>,
    sessions: &SessionConfig,
    store: impl SessionStore + Clone,
    settings: SocketSettings,
    tokens: TokenConfig,
) -> Router {
    let logged_out = LoggedOutAt::default();
    let (socket_layer, io) = settings
        .limits
        .apply(SocketIo::builder())
        .with_state(settings.allowed_origins.clone())
        .with_state(tokens.clone())
        .with_state(passport.users().clone())
        .with_state(logged_out.clone()) // new
        .build_layer();
    io.ns(
        "/",
        greet
            .with(register_handlers)
            .with(authenticate_token::<U>) // this file's
            .with(check_origin),
    );
    let passport = passport.on_logout(revoke_on_logout(io, logged_out)); // new
    let routes = token_routes(passport.clone(), tokens).layer(socket_layer);
    around_sockets(routes, passport, sessions, store, &settings)
}
// ANCHOR_END: token_app

/// The starter's greeting.
async fn greet(socket: SocketRef, Extension(user): Extension<User>) {
    socket.emit("welcome", &user).ok();
}
