//! Chapter "JWT vs session": step 4's rule, "only logged-in users may open a
//! socket", with a signed token in the handshake instead of the session cookie.
//!
//! Step 4 admits a socket because its handshake carried the session cookie,
//! which the browser attaches by itself. This crate admits a socket because its
//! handshake carried a *token* ([`tokens`]) that the page fetched over HTTP a
//! moment before and hands to `io({ auth: { token } })`. Fetching it does need
//! the session cookie: the cookie still proves who the browser is, the token
//! only carries that proof over to the socket.
//!
//! - [`issue_token`]: the `POST /token` route;
//! - [`authenticate_token`]: the connect middleware, the twin of step 4's
//!   `authenticate_socket`;
//! - [`token_app`]: step 4's app with the token middleware in place of the
//!   session one.
//!
//! Everything else is step 4's: its page and login routes, its layers, its
//! limits and its `whoami` handler.

pub mod tokens;

use axum::extract::State as HttpState;
use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use step02_sessions::SessionConfig;
use step03_passport_like_auth::{
    ApiError, CurrentUser, Passport, User, UserStore,
};
use step04_socket_middleware::{
    SocketSettings, around_sockets, check_origin, http_routes,
    register_handlers, user_room,
};
use tower_sessions::SessionStore;

pub use tokens::{
    Claims, MIN_TOKEN_SECRET_LEN, TOKEN_AUDIENCE, TOKEN_ISSUER, TOKEN_LIFETIME,
    TokenConfig, TokenError, TokenSecretError,
};

// ANCHOR: issue_token
/// The answer of `POST /token`: `{"token": "...", "expires_in": 300}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The signed token, to pass as `io({ auth: { token } })`.
    pub token: String,
    /// How many seconds it stays valid.
    pub expires_in: u64,
}

/// `POST /token`: a short-lived socket token for the logged-in user. Without a
/// session, the `CurrentUser` extractor answers `401 {"error":"Unauthorized"}`.
///
/// A POST, not a GET, and `Cache-Control: no-store`: a token must not be
/// fetched by an `<img src>` on another site, nor kept by a cache. Another page
/// cannot read the answer either: the CORS layer names the origins that may.
pub async fn issue_token(
    HttpState(tokens): HttpState<TokenConfig>,
    CurrentUser(user): CurrentUser,
) -> Result<impl IntoResponse, ApiError> {
    let token = tokens.issue(&user).map_err(|error| {
        tracing::error!(%error, "could not sign a socket token");
        ApiError::internal()
    })?;
    tracing::info!(user = %user.username, "issued a socket token");
    let body = IssuedToken {
        token,
        expires_in: tokens.lifetime().as_secs(),
    };
    let no_store = [(CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    Ok((no_store, Json(body)))
}
// ANCHOR_END: issue_token

// ANCHOR: auth_payload
/// The handshake's `auth` payload: `io(url, { auth: { token } })` on the
/// client, `socket.handshake.auth` in Node.js.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenAuth {
    /// The token from `POST /token`, if the client sent one.
    #[serde(default)]
    pub token: Option<String>,
}
// ANCHOR_END: auth_payload

// ANCHOR: authenticate_token
/// Connect middleware: admits a socket only if its handshake's `auth` carries
/// a valid token of an existing user.
///
/// On success it leaves the same `User` in the socket's extensions as
/// `authenticate_socket` does, so the event handlers cannot tell, and need not
/// care, which middleware let the socket in. The token's [`Claims`] are stored
/// too, for handlers that want to know when it expires.
pub async fn authenticate_token<U: UserStore>(
    socket: SocketRef,
    TryData(auth): TryData<TokenAuth>,
    State(tokens): State<TokenConfig>,
    State(users): State<U>,
) -> Result<(), TokenError> {
    // `socket.handshake.auth.token`. No `auth`, no `token`, or not a string:
    // no credential.
    let Some(token) = auth.ok().and_then(|auth| auth.token) else {
        tracing::info!(sid = %socket.id, "refused a socket without a token");
        return Err(TokenError::Missing);
    };
    let claims = tokens.verify(&token).inspect_err(|error| {
        // The reason, never the token: a log line must not be a credential.
        tracing::info!(
            sid = %socket.id,
            %error,
            "refused a socket with a bad token"
        );
    })?;
    let user = load_token_user(&users, &claims).await?;
    tracing::info!(
        sid = %socket.id,
        user = %user.username,
        "socket authenticated by token"
    );
    socket.join(user_room(user.id));
    // socket.user = user, as with the cookie
    socket.extensions.insert::<User>(user);
    socket.extensions.insert(claims);
    Ok(())
}
// ANCHOR_END: authenticate_token

// ANCHOR: load_token_user
/// The user a verified token names, loaded fresh from the store.
///
/// One lookup per handshake, the same one `passport_session` does for a
/// cookie. It buys two things: a deleted user's tokens stop working at once
/// (not at expiry), and a renamed user connects under the new name. A server
/// that wants no store at all on the socket side would build the `User` from
/// the claims instead, and accept both costs.
pub async fn load_token_user<U: UserStore>(
    users: &U,
    claims: &Claims,
) -> Result<User, TokenError> {
    let id: i64 = claims.sub.parse().map_err(|_| TokenError::Malformed)?;
    match users.find_by_id(id).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => {
            tracing::info!(user_id = id, "refused a token of a deleted user");
            Err(TokenError::UnknownUser)
        }
        Err(error) => {
            tracing::error!(%error, "could not load the user of a token");
            Err(TokenError::Internal)
        }
    }
}
// ANCHOR_END: load_token_user

// ANCHOR: token_app
/// Step 4's app with tokens: the same page and login routes, plus
/// `POST /token`, and a Socket.IO server that admits a socket by the token in
/// its handshake, not by its cookie.
///
/// What is *not* here is the lesson. There is no `disconnect_on_logout` and no
/// session watch: a token is not tied to a session, so logging out neither
/// closes the sockets it opened nor stops it from opening new ones until it
/// expires. That is what "stateless" costs.
pub fn token_app<U: UserStore>(
    passport: Passport<U>,
    sessions: &SessionConfig,
    store: impl SessionStore + Clone,
    settings: SocketSettings,
    tokens: TokenConfig,
) -> Router {
    let (socket_layer, io) = settings
        .limits
        .apply(SocketIo::builder()) // step 4's limits
        .with_state(settings.allowed_origins.clone()) // for `check_origin`
        .with_state(tokens.clone())
        .with_state(passport.users().clone())
        .build_layer();
    // The origin check stays: it costs nothing. But it is no longer what stops
    // a foreign page: the browser never attaches a token by itself, so such a
    // page has none to send.
    io.ns(
        "/",
        greet
            .with(register_handlers) // the very same handlers as step 4's
            .with(authenticate_token::<U>)
            .with(check_origin),
    );
    let routes = token_routes(passport.clone(), tokens).layer(socket_layer);
    // No `require_login_to_connect`: the token arrives in the CONNECT packet,
    // after the handshake, so over HTTP only the origin can be checked.
    around_sockets(routes, passport, sessions, store, &settings)
}
// ANCHOR_END: token_app

// ANCHOR: token_app_parts
/// Step 4's page and login routes, plus `POST /token`. The HTTP side still runs
/// on sessions: `/login` sets the cookie, `/token` reads it.
pub fn token_routes<U: UserStore>(
    passport: Passport<U>,
    tokens: TokenConfig,
) -> Router {
    let issue = post(issue_token).with_state(tokens);
    http_routes(passport).route("/token", issue)
}

/// Greets the user, as step 4's `on_connect` does (with no session to watch).
async fn greet(socket: SocketRef, Extension(user): Extension<User>) {
    socket.emit("welcome", &user).ok();
}
// ANCHOR_END: token_app_parts
