//! Reference solutions of the chapter's exercises. Compiled only with
//! `--features solutions`; CI uses them to prove each exercise check passes
//! once the task is done.
//!
//! All four are applied at once. A student edits the crate itself; this module
//! cannot, so it re-implements only what the exercises change and reuses the
//! rest of the crate:
//! - exercise 1 (`MIN_PASSWORD_CHARS`) is one line in `passport.rs`; here
//!   `/register` checks the new minimum before it calls the crate's
//!   `Passport::register`;
//! - exercises 2 and 3 change the `/login` route, so [`auth_routes`] is the
//!   crate's, with a new `/login` and `/register` (and `/logout` and `/me`
//!   copied unchanged from `routes.rs`);
//! - exercise 4 changes [`require_login`] and the login page (`login.html` in
//!   this folder).
//!
//! [`app`] is the crate's `app` built from these parts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Deserializer};
use tower_sessions::service::SignedCookie;
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore};

pub use crate::*;

// ANCHOR: min_password_length
/// The fewest characters a password may have. (In `src/passport.rs`: the one
/// line to change.)
pub const MIN_PASSWORD_CHARS: usize = 10;
// ANCHOR_END: min_password_length

// ANCHOR: remember_me
/// What `/login` accepts now: the credentials, and the "Remember me" box.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// Username and password, as before (and still printed as `[redacted]`).
    #[serde(flatten)]
    pub credentials: Credentials,
    /// Whether the box was ticked. Absent means no: an HTML form leaves out an
    /// unticked box.
    #[serde(default, deserialize_with = "checkbox")]
    pub remember: bool,
}

/// A checkbox as `fetch` sends it in JSON (`true` or `false`) or as an HTML
/// form sends it (`remember=on`).
fn checkbox<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Checkbox {
        Json(bool),
        Form(String),
    }
    Ok(match Checkbox::deserialize(deserializer)? {
        Checkbox::Json(ticked) => ticked,
        Checkbox::Form(value) => value == "on" || value == "true",
    })
}
// ANCHOR_END: remember_me

// ANCHOR: apply_remember_me
/// Not remembered: the cookie loses its `Max-Age` and dies with the browser.
/// (The session in the store still expires on its own; tower-sessions gives it
/// two weeks.) Nor is it renewed: a renewal (`touch`, chapter 2) saves it with
/// the layer's expiry, and its cookie would get its 30 days back.
async fn apply_remember_me(
    session: &Session,
    remember: bool,
) -> Result<(), AuthError> {
    if !remember {
        session.set_expiry(Some(Expiry::OnSessionEnd));
        session
            .remove::<u64>(step02_sessions::RENEWED_AT_KEY)
            .await?;
    }
    // Remembered: keep the layer's `Expiry::OnInactivity(30 days)`, the
    // `Max-Age=2592000`.
    Ok(())
}
// ANCHOR_END: apply_remember_me

// ANCHOR: lock_after_failures
/// Wrong passwords in a row after which a username is locked.
pub const MAX_FAILED_LOGINS: u32 = 5;

/// How long a locked username stays locked, counted from its last failure.
pub const LOCK_DURATION: Duration = Duration::from_secs(15 * 60);

/// The answer while a username is locked.
pub const LOCKED_MESSAGE: &str =
    "Too many failed logins: try again in 15 minutes";

/// Failed logins per username, shared by every request (the `Arc` is shared by
/// clones).
///
/// Unknown usernames are counted like real ones: if only real accounts could be
/// locked, the 429 would tell an attacker which usernames exist.
#[derive(Clone, Debug, Default)]
pub struct FailedLogins {
    /// Lower-cased username → (failures in a row, time of the last one).
    by_name: Arc<Mutex<HashMap<String, (u32, Instant)>>>,
}
// ANCHOR_END: lock_after_failures

// ANCHOR: failed_logins
impl FailedLogins {
    /// Whether `username` is locked at `now`. Time is a parameter so that a
    /// test does not have to wait 15 minutes.
    pub fn is_locked(&self, username: &str, now: Instant) -> bool {
        let failures = self.lock();
        failures.get(&username.to_ascii_lowercase()).is_some_and(
            |&(count, last)| {
                count >= MAX_FAILED_LOGINS
                    && now.duration_since(last) < LOCK_DURATION
            },
        )
    }

    /// Counts one more failure; a run older than [`LOCK_DURATION`] starts again
    /// from zero.
    pub fn record_failure(&self, username: &str, now: Instant) {
        let mut failures = self.lock();
        let entry = failures
            .entry(username.to_ascii_lowercase())
            .or_insert((0, now));
        if now.duration_since(entry.1) >= LOCK_DURATION {
            entry.0 = 0;
        }
        *entry = (entry.0 + 1, now);
    }

    /// A successful login forgets the failures.
    pub fn clear(&self, username: &str) {
        self.lock().remove(&username.to_ascii_lowercase());
    }

    // Held for a map lookup, never across an `.await`: a std lock is the right
    // one.
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.by_name.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
// ANCHOR_END: failed_logins

// ANCHOR: login
/// `POST /login` with both exercises: the lock first, then the strategy, then
/// the expiry.
async fn login<U: UserStore>(
    State(passport): State<Passport<U>>,
    Extension(failed_logins): Extension<FailedLogins>,
    session: Session,
    JsonOrForm(form): JsonOrForm<LoginForm>,
) -> Result<Json<User>, ApiError> {
    let LoginForm {
        credentials,
        remember,
    } = form;
    let username = &credentials.username;
    // Exercise 3: a locked name is refused before its password is even checked.
    if failed_logins.is_locked(username, Instant::now()) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            LOCKED_MESSAGE,
        ));
    }
    let Some(user) = passport
        .authenticate(username, &credentials.password)
        .await?
    else {
        failed_logins.record_failure(username, Instant::now());
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            INVALID_CREDENTIALS,
        ));
    };
    failed_logins.clear(username);
    passport.login(&session, &user).await?;
    apply_remember_me(&session, remember).await?; // exercise 2
    tracing::info!(user.id, user.username, remember, "logged in");
    Ok(Json(user))
}
// ANCHOR_END: login

/// `POST /register`, with exercise 1's minimum. The crate's
/// `Passport::register` checks its own `MIN_PASSWORD_CHARS` (8) after this; a
/// student changes that constant instead.
async fn register<U: UserStore>(
    State(passport): State<Passport<U>>,
    session: Session,
    JsonOrForm(credentials): JsonOrForm<Credentials>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    if credentials.password.chars().count() < MIN_PASSWORD_CHARS {
        let message = format!(
            "Password must be at least {MIN_PASSWORD_CHARS} characters long"
        );
        return Err(ApiError::new(StatusCode::BAD_REQUEST, message));
    }
    let user = passport
        .register(&credentials.username, &credentials.password)
        .await?;
    passport.login(&session, &user).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// `POST /logout`, unchanged.
async fn logout<U: UserStore>(
    State(passport): State<Passport<U>>,
    session: Session,
) -> Result<StatusCode, ApiError> {
    passport.logout(&session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /me`, unchanged.
async fn me(CurrentUser(user): CurrentUser) -> Json<User> {
    Json(user)
}

/// The crate's `auth_routes`, with the new `/login` and `/register`. `/login`
/// needs a [`FailedLogins`] extension: [`app`] adds it.
pub fn auth_routes<U: UserStore>() -> Router<Passport<U>> {
    Router::new()
        .route("/register", post(register::<U>))
        .route("/login", post(login::<U>))
        .route("/logout", post(logout::<U>))
        .route("/me", get(me))
}

// ANCHOR: next_page
/// The guard for pages, as in `middleware.rs`, but the login page is told where
/// the visitor was going: `/login?next=%2Fprivate`. The page goes back there
/// after the login, if `next` is a path on this site (see `login.html`).
pub async fn require_login(request: Request, next: Next) -> Response {
    // (`middleware.rs` asks its private `logged_in_user`; only its `Ok(None)`
    // arm changes.)
    if request.extensions().get::<CurrentUser>().is_some() {
        return next.run(request).await;
    }
    let wanted = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    Redirect::to(&format!("{LOGIN_PATH}?next={}", percent_encode(wanted)))
        .into_response()
}

/// Percent-encodes everything but letters, digits and `-._~`, so that a `?` or
/// `&` in the path cannot end the `next` parameter early.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~' => char::from(byte).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
// ANCHOR_END: next_page

async fn login_page() -> Html<&'static str> {
    Html(include_str!("login.html"))
}

/// The crate's `app`, with the routes, guard and page above and the
/// failed-login counter.
pub fn app<U, S>(
    passport: Passport<U>,
    session_layer: SessionManagerLayer<S, SignedCookie>,
) -> Router
where
    U: UserStore,
    S: SessionStore + Clone,
{
    let protected = Router::new()
        .route("/private", get(crate::private_page))
        .route_layer(axum::middleware::from_fn(require_login));

    Router::new()
        .route("/", get(|| async { Redirect::to(LOGIN_PATH) }))
        .route(LOGIN_PATH, get(login_page))
        .merge(protected)
        .merge(auth_routes())
        .layer(Extension(FailedLogins::default()))
        .layer(passport_layer(passport.clone()))
        .layer(session_layer)
        .with_state(passport)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_starts_at_the_fifth_failure_and_ends_after_the_lock_duration() {
        let failed = FailedLogins::default();
        let start = Instant::now();
        for _ in 0..MAX_FAILED_LOGINS - 1 {
            failed.record_failure("Alice", start);
        }
        assert!(!failed.is_locked("alice", start));
        failed.record_failure("ALICE", start);
        assert!(failed.is_locked("alice", start));
        assert!(failed.is_locked(
            "alice",
            start + LOCK_DURATION - Duration::from_secs(1)
        ));
        assert!(!failed.is_locked("alice", start + LOCK_DURATION));
        // After the lock, one more failure starts a new run instead of locking
        // again.
        failed.record_failure("alice", start + LOCK_DURATION);
        assert!(!failed.is_locked("alice", start + LOCK_DURATION));
    }

    #[test]
    fn next_is_encoded_so_that_it_stays_one_parameter() {
        assert_eq!(percent_encode("/private"), "%2Fprivate");
        assert_eq!(percent_encode("/a?b=1&c"), "%2Fa%3Fb%3D1%26c");
    }
}
