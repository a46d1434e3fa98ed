//! Exercise 3, solved: a token may also come in an `Authorization: Bearer`
//! header on the handshake request.

use axum::Router;
use http::header::AUTHORIZATION;
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use step02_sessions::SessionConfig;
use step03_passport_like_auth::{Passport, User, UserStore};
use step04_socket_middleware::{
    SocketSettings, around_sockets, check_origin, register_handlers, user_room,
};
use tower_sessions::SessionStore;

use crate::{
    TokenAuth, TokenConfig, TokenError, load_token_user, token_routes,
};

// ANCHOR: bearer_header
/// The token of an `Authorization: Bearer <token>` header on the handshake
/// request. Node.js clients can send one (`extraHeaders`); a browser's
/// WebSocket cannot.
fn bearer_token(socket: &SocketRef) -> Option<String> {
    let header = socket.req_parts().headers.get(AUTHORIZATION)?;
    let token = header.to_str().ok()?.strip_prefix("Bearer ")?;
    Some(token.trim().to_owned())
}

/// The starter's `authenticate_token`, which also looks for a Bearer header
/// when the `auth` payload has no token.
pub async fn authenticate_token<U: UserStore>(
    socket: SocketRef,
    TryData(auth): TryData<TokenAuth>,
    State(tokens): State<TokenConfig>,
    State(users): State<U>,
) -> Result<(), TokenError> {
    let token = auth
        .ok()
        .and_then(|auth| auth.token)
        .or_else(|| bearer_token(&socket)) // the one new line
        .ok_or(TokenError::Missing)?;
    let claims = tokens.verify(&token)?;
    let user = load_token_user(&users, &claims).await?;
    socket.join(user_room(user.id));
    socket.extensions.insert::<User>(user);
    socket.extensions.insert(claims);
    Ok(())
}
// ANCHOR_END: bearer_header

/// The starter's `token_app`, with this file's `authenticate_token`.
pub fn token_app<U: UserStore>(
    passport: Passport<U>,
    sessions: &SessionConfig,
    store: impl SessionStore + Clone,
    settings: SocketSettings,
    tokens: TokenConfig,
) -> Router {
    let (socket_layer, io) = settings
        .limits
        .apply(SocketIo::builder())
        .with_state(settings.allowed_origins.clone())
        .with_state(tokens.clone())
        .with_state(passport.users().clone())
        .build_layer();
    io.ns(
        "/",
        greet
            .with(register_handlers)
            .with(authenticate_token::<U>) // this file's
            .with(check_origin),
    );
    let routes = token_routes(passport.clone(), tokens).layer(socket_layer);
    around_sockets(routes, passport, sessions, store, &settings)
}

/// The starter's greeting.
async fn greet(socket: SocketRef, Extension(user): Extension<User>) {
    socket.emit("welcome", &user).ok();
}
