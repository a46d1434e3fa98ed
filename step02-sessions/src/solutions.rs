//! Reference solutions of the chapter's exercises. Compiled only with
//! `--features solutions`; CI uses them to prove each exercise check passes
//! once the task is done.
//!
//! All three exercises are done here at once, the way a student does them one
//! after the other in `lib.rs`. What they do not change (the configuration, the
//! layer, the stores, the page, `POST /api/clear`) is the crate's own. The
//! layer is untouched on purpose: later steps build on `SessionConfig::layer`,
//! and these exercises only change the demo's handlers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use step01_http_vs_socket::now_ms;
use time::{Duration, OffsetDateTime};
use tower_sessions::{Expiry, Session, SessionStore};

use crate::{
    CookieAttributes, SessionConfig, SessionError, VISITS_KEY, clear_session,
    page,
};

// ANCHOR: last_visit
/// The key under which the time of the last counted visit lives in the session.
const LAST_VISIT_KEY: &str = "last_visit_ms";

/// The answer of `GET /api/session`, with one more field.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionView {
    /// How many times this visitor pressed "count a visit".
    pub visits: u64,
    /// When this visitor last pressed it, in milliseconds since the Unix epoch
    /// (what JavaScript's `new Date(ms)` takes); `None` before the first time.
    pub last_visit_ms: Option<u64>,
    /// The session id, or `None` while this visitor has no stored session.
    pub session_id: Option<String>,
    /// The attributes the session cookie is sent with.
    pub cookie: CookieAttributes,
}

/// `GET /api/session`: still only reads.
async fn show_session(
    session: Session,
    State(cookie): State<CookieAttributes>,
) -> Result<Json<SessionView>, SessionError> {
    let visits = session.get::<u64>(VISITS_KEY).await?.unwrap_or(0);
    let last_visit_ms = session.get::<u64>(LAST_VISIT_KEY).await?;
    let session_id = session.id().map(|id| id.to_string());
    Ok(Json(SessionView {
        visits,
        last_visit_ms,
        session_id,
        cookie,
    }))
}
// ANCHOR_END: last_visit

// ANCHOR: count_visit
/// `POST /api/visit`: counts, and remembers when.
async fn count_visit(
    session: Session,
    State(cookie): State<CookieAttributes>,
) -> Result<StatusCode, SessionError> {
    let visits: u64 = session.get(VISITS_KEY).await?.unwrap_or(0);
    session.insert(VISITS_KEY, visits + 1).await?;
    // Exercise 1: the time of this visit.
    session.insert(LAST_VISIT_KEY, now_ms()).await?;
    // Exercise 2: this write must not push the end of the session back. The
    // cookie's Max-Age is the configured `max_age`, so the state already holds
    // it.
    keep_the_first_deadline(
        &session,
        Duration::seconds(cookie.max_age_seconds),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
// ANCHOR_END: count_visit

// ANCHOR: absolute_expiry
/// The key under which the session's absolute deadline lives, in seconds since
/// the Unix epoch.
const DEADLINE_KEY: &str = "expires_at";

/// Makes the session end `max_age` after its *first* write, however often it is
/// written again.
///
/// Call it in every handler that writes. The session's expiry is not stored
/// with it: each request starts with the layer's `OnInactivity(max_age)`, so
/// without this call the next save would set "now + max_age" again. The
/// deadline itself is data, so it goes into the session.
async fn keep_the_first_deadline(
    session: &Session,
    max_age: Duration,
) -> Result<(), tower_sessions::session::Error> {
    let deadline = match session.get::<i64>(DEADLINE_KEY).await? {
        Some(seconds) => OffsetDateTime::UNIX_EPOCH
            .saturating_add(Duration::seconds(seconds)),
        None => {
            let deadline = OffsetDateTime::now_utc() + max_age;
            session
                .insert(DEADLINE_KEY, deadline.unix_timestamp())
                .await?;
            deadline
        }
    };
    // Sets both the expiry date stored with the record and the cookie's
    // Max-Age.
    session.set_expiry(Some(Expiry::AtDateTime(deadline)));
    Ok(())
}
// ANCHOR_END: absolute_expiry

// ANCHOR: new_id
/// `POST /api/new-id`: `req.session.regenerate()`, but keeping the data.
async fn give_a_new_id(
    session: Session,
    State(cookie): State<CookieAttributes>,
) -> Result<StatusCode, SessionError> {
    // No stored session (no cookie, or one that expired): nothing to renew, and
    // no reason to store an empty session just to give it an id.
    if session.is_empty().await {
        return Ok(StatusCode::NO_CONTENT);
    }
    // Deletes the old record now; the layer stores the data under a fresh id
    // once this handler has returned, and sends the new cookie.
    session.cycle_id().await?;
    // Exercise 2: a new id is a write too, and must not push the deadline back.
    keep_the_first_deadline(
        &session,
        Duration::seconds(cookie.max_age_seconds),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The crate's `app()` with the handlers above and one more route.
pub fn app<S: SessionStore + Clone>(
    config: &SessionConfig,
    store: S,
) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/session", get(show_session))
        .route("/api/visit", post(count_visit))
        .route("/api/clear", post(clear_session))
        .route("/api/new-id", post(give_a_new_id))
        .with_state(CookieAttributes::from_config(config))
        .layer(config.layer(store))
}
// ANCHOR_END: new_id
