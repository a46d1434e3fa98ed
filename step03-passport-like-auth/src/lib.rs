//! Step 3: what Passport does, built small and visible.
//!
//! Passport.js hides its work behind a few calls: `passport.initialize()`,
//! `passport.session()`, `serializeUser`, `deserializeUser`, `req.login`,
//! `req.logout`. This crate writes each of them out as a small piece of Rust
//! with the same name, so you can see what "being logged in" actually is: one
//! user id in a server-side session, and a lookup on every request.
//!
//! - [`store`]: the users, behind the [`UserStore`] trait (memory here, SQLite
//!   in step05).
//! - [`passport`]: the local strategy (Argon2 passwords), login, logout,
//!   deserialize.
//! - [`hashing`]: Argon2, a few hashes at a time, in reused memory.
//! - [`limits`]: the throttles on `/login` and `/register`, and `RATE_LIMITS`.
//! - [`middleware`]: `passport.session()` and the `req.user` extractors.
//! - [`routes`]: `/register`, `/login`, `/logout`, `/me`,
//!   `/logout-everywhere`, `/password`.
//!
//! [`app`] puts them together with a login page and a page only logged-in users
//! may see.

pub mod api;
pub mod hashing;
pub mod limits;
pub mod middleware;
pub mod passport;
pub mod routes;
pub mod store;

use axum::Router;
use axum::response::{Html, Redirect};
use axum::routing::get;
use tower_sessions::service::SignedCookie;
use tower_sessions::{SessionManagerLayer, SessionStore};

pub use api::{ApiError, Credentials, JsonOrForm, PasswordChange};
/// The argon2 crate, for [`Passport::with_hasher_params`]'s `argon2::Params`.
pub use argon2;
pub use hashing::HashPool;
pub use limits::{
    AuthLimits, AuthThrottle, ClientAddress, LimitsError, client_address,
    rate_limits_enabled_from_env,
};
pub use middleware::{
    CurrentUser, LOGIN_PATH, MaybeUser, passport_layer, passport_session,
    require_login,
};
pub use passport::{
    AuthError, LogoutEvent, LogoutScope, Passport, RegisterError,
    canonical_username,
};
pub use routes::{INVALID_CREDENTIALS, auth_routes};
pub use store::{
    CreateUserError, MemoryUserStore, StoreError, User, UserStore,
    end_sessions_in_sqlite,
};

// ANCHOR: app
/// The step's demo: the auth routes, a login page and a protected page.
///
/// Layers wrap everything added before them, so the last `.layer` is the
/// outermost: a request meets the session layer first
/// (`app.use(session(...))`), then `passport_session`
/// (`app.use(passport.session())`), then the routes.
pub fn app<U, S>(
    passport: Passport<U>,
    session_layer: SessionManagerLayer<S, SignedCookie>,
) -> Router
where
    U: UserStore,
    S: SessionStore + Clone,
{
    // `route_layer` wraps only this small router's routes, and runs only when
    // one of them matches: an unknown path stays a 404 instead of becoming a
    // redirect to the login page.
    let protected = Router::new()
        .route("/private", get(private_page))
        .route_layer(axum::middleware::from_fn(require_login));

    Router::new()
        .route("/", get(home))
        .route(LOGIN_PATH, get(login_page))
        .merge(protected)
        .merge(auth_routes())
        .layer(passport_layer(passport.clone()))
        .layer(session_layer)
        // `passport.initialize()`: every handler can now take
        // `State<Passport<U>>`.
        .with_state(passport)
}
// ANCHOR_END: app

/// `/`: the private page for someone logged in, the login page for anyone
/// else. It serves both, so it takes a [`MaybeUser`], which never refuses.
async fn home(MaybeUser(user): MaybeUser) -> Redirect {
    Redirect::to(if user.is_some() {
        "/private"
    } else {
        LOGIN_PATH
    })
}

async fn login_page() -> Html<&'static str> {
    Html(include_str!("../static/login.html"))
}

async fn private_page() -> Html<&'static str> {
    Html(include_str!("../static/private.html"))
}

// ANCHOR: demo_users
/// The password of the demo users. It is in the source code, so it protects
/// nothing: demo only.
pub const DEMO_PASSWORD: &str = "correct-horse";

/// The demo users that [`seed_demo_users`] creates.
pub const DEMO_USERNAMES: [&str; 2] = ["alice", "bob"];

/// Creates the demo users, all with [`DEMO_PASSWORD`]. Users that already exist
/// are left alone, so seeding a store that persists (step05) is harmless.
pub async fn seed_demo_users<U: UserStore>(
    passport: &Passport<U>,
) -> Result<(), RegisterError> {
    for username in DEMO_USERNAMES {
        match passport.register(username, DEMO_PASSWORD).await {
            Ok(_) | Err(RegisterError::Taken) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
// ANCHOR_END: demo_users
