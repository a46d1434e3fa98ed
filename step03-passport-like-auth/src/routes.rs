//! The JSON routes of the HTTP contract. Step04 and step05 merge
//! [`auth_routes`] into their own routers unchanged.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_sessions::Session;

use crate::api::{
    ApiError, Credentials, JsonOrForm, PasswordChange, SmallBody,
};
use crate::limits::ClientAddress;
use crate::middleware::CurrentUser;
use crate::passport::Passport;
use crate::store::{User, UserStore};

/// The one message for every failed login, whatever was wrong.
pub const INVALID_CREDENTIALS: &str = "Invalid username or password";

// ANCHOR: auth_routes
/// `POST /register`, `POST /login`, `POST /logout`, `GET /me`, and the
/// routes that end sessions: `POST /logout-everywhere`, `POST /password`.
///
/// The router still needs its state (`.with_state(passport)`), the
/// [`crate::passport_layer`] for `/me`, and the session layer around both.
pub fn auth_routes<U: UserStore>() -> Router<Passport<U>> {
    Router::new()
        .route("/register", post(register::<U>))
        .route("/login", post(login::<U>))
        .route("/logout", post(logout::<U>))
        .route("/me", get(me))
        .route("/logout-everywhere", post(logout_everywhere::<U>))
        .route("/password", post(change_password::<U>))
}
// ANCHOR_END: auth_routes

// ANCHOR: login
/// `POST /login`: `passport.authenticate('local')` followed by
/// `req.login(user)`, behind the throttles.
async fn login<U: UserStore>(
    State(passport): State<Passport<U>>,
    ClientAddress(address): ClientAddress,
    session: Session,
    JsonOrForm(credentials): JsonOrForm<Credentials>,
) -> Result<Json<User>, ApiError> {
    let Credentials { username, password } = &credentials;
    // Before the password is checked: a throttled guess costs no Argon2 run.
    // Unknown usernames are counted like real ones, so a 429 does not tell
    // which names exist.
    passport.throttle().login_attempt(address, username)?;
    let user = passport
        .authenticate(username, password)
        .await?
        // Same status, same body for an unknown user and a wrong password: the
        // answer must not tell an attacker which usernames exist.
        .ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, INVALID_CREDENTIALS)
        })?;
    passport.throttle().login_succeeded(address, username);
    passport.login(&session, &user).await?;
    tracing::info!(user.id, user.username, "logged in");
    Ok(Json(user))
}
// ANCHOR_END: login

// ANCHOR: register
/// `POST /register`: creates the account and logs it in, in one step.
async fn register<U: UserStore>(
    State(passport): State<Passport<U>>,
    ClientAddress(address): ClientAddress,
    session: Session,
    JsonOrForm(credentials): JsonOrForm<Credentials>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    passport.throttle().registration_attempt(address)?;
    let user = passport
        .register(&credentials.username, &credentials.password)
        .await?;
    passport.login(&session, &user).await?;
    tracing::info!(user.id, user.username, "registered");
    Ok((StatusCode::CREATED, Json(user)))
}
// ANCHOR_END: register

// ANCHOR: logout_me
/// `POST /logout`: always 204, even for nobody: after it, nobody is logged in,
/// as asked.
async fn logout<U: UserStore>(
    State(passport): State<Passport<U>>,
    session: Session,
    // Nothing in it is used, but it is read within the same limits, so that
    // a logout announcing megabytes gets the same 413 as a login.
    _: SmallBody,
) -> Result<StatusCode, ApiError> {
    passport.logout(&session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /me`: the whole handler is "who is this?", and the extractor already
/// answered.
async fn me(CurrentUser(user): CurrentUser) -> Json<User> {
    Json(user)
}
// ANCHOR_END: logout_me

// ANCHOR: end_sessions
/// `POST /logout-everywhere`: every session of this user ends, this one
/// too, and every socket of the user closes.
async fn logout_everywhere<U: UserStore>(
    State(passport): State<Passport<U>>,
    CurrentUser(user): CurrentUser,
    session: Session,
    _: SmallBody,
) -> Result<StatusCode, ApiError> {
    passport.logout_everywhere(&session, &user).await?;
    tracing::info!(user.id, user.username, "logged out everywhere");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /password`: the current password, checked like a login (and
/// throttled like one: a stolen cookie must not become a free guessing
/// machine), then the new one. This session stays; the others end.
async fn change_password<U: UserStore>(
    State(passport): State<Passport<U>>,
    ClientAddress(address): ClientAddress,
    CurrentUser(user): CurrentUser,
    session: Session,
    JsonOrForm(change): JsonOrForm<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let name = &user.username;
    passport.throttle().login_attempt(address, name)?;
    let current = passport.authenticate(name, &change.current_password);
    if current.await?.is_none() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            INVALID_CREDENTIALS,
        ));
    }
    passport.throttle().login_succeeded(address, name);
    let new = &change.new_password;
    if !passport.change_password(&session, &user, new).await? {
        return Err(ApiError::unauthorized()); // deleted meanwhile
    }
    tracing::info!(user.id, user.username, "changed password");
    Ok(StatusCode::NO_CONTENT)
}
// ANCHOR_END: end_sessions

/// Compile-time checks, not run: each function compiles only if the future it
/// names is `Send`. When a route fails with "`Handler<_, _>` is not
/// implemented", asking the compiler this smaller question names the line that
/// is not `Send` (teacher's guide, chapter 3).
#[cfg(test)]
#[allow(dead_code)]
mod send_checks {
    use super::*;

    // ANCHOR: is_send
    fn logout_future_is_send<U: UserStore>(
        passport: Passport<U>,
        session: Session,
        body: SmallBody,
    ) {
        fn is_send<T: Send>(_: T) {}
        is_send(logout(State(passport), session, body));
    }
    // ANCHOR_END: is_send
}
