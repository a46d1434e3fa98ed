//! `passport.session()` and `req.user`: who is asking, answered once per
//! request.
//!
//! [`passport_session`] is the middleware. It runs [`Passport::deserialize`]
//! and leaves the answer in the request's *extensions*, a type-keyed map that
//! travels with the request. The extractors [`CurrentUser`] and [`MaybeUser`]
//! read it back in handlers, and [`require_login`] guards whole pages with it.
//! Anything else that sees the request later, such as the Socket.IO layer of
//! step04, can read the same extension.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::Extensions;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::Route;
use step02_sessions::touch;
use tower::{Layer, Service};
use tower_sessions::Session;

use crate::api::ApiError;
use crate::passport::{AuthError, Passport};
use crate::store::{User, UserStore};

/// Where [`require_login`] sends visitors who are not logged in.
pub const LOGIN_PATH: &str = "/login";

// ANCHOR: current_user
/// The logged-in user: `req.user` as an extractor. A handler that takes it
/// cannot run for an anonymous request, which is answered `401
/// {"error":"Unauthorized"}` instead.
#[derive(Clone, Debug)]
pub struct CurrentUser(pub User);

/// The user if someone is logged in, `None` if not. Never rejects a request.
#[derive(Clone, Debug)]
pub struct MaybeUser(pub Option<User>);

/// Left in the extensions by [`passport_session`], so that an extractor can
/// tell "nobody is logged in" from "the middleware was never installed".
#[derive(Clone, Copy, Debug)]
struct PassportSessionRan;
// ANCHOR_END: current_user

// ANCHOR: passport_session
/// The `passport.session()` middleware: deserializes the user once per request
/// and, if there is one, renews the session when due ([`touch`]) and inserts
/// [`CurrentUser`] into the request extensions.
///
/// Install it *inside* the session layer (it needs the [`Session`]), with
/// [`passport_layer`] or `axum::middleware::from_fn_with_state(passport,
/// passport_session::<U>)`.
pub async fn passport_session<U: UserStore>(
    State(passport): State<Passport<U>>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    let user = match passport.deserialize(&session).await {
        Ok(user) => user,
        // The session or user store is down: nobody can be identified, so say
        // so.
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(PassportSessionRan);
    if let Some(user) = user {
        // A logged-in user is active: keep the session alive (chapter 2's
        // `touch`: at most once a day; it reads nothing, the session is
        // loaded).
        if let Err(error) = touch(&session).await {
            return AuthError::from(error).into_response();
        }
        request.extensions_mut().insert(CurrentUser(user));
    }
    next.run(request).await
}
// ANCHOR_END: passport_session

/// [`passport_session`] as a layer: `router.layer(passport_layer(passport))`.
///
/// The return type only promises what `Router::layer` asks for; the concrete
/// type (an `axum::middleware::FromFnLayer` around a function) cannot be
/// written down.
pub fn passport_layer<U: UserStore>(
    passport: Passport<U>,
) -> impl Layer<
    Route,
    Service: Service<
        Request,
        Response = Response,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
                 + Send
                 + Sync
                 + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    axum::middleware::from_fn_with_state(passport, passport_session::<U>)
}

/// What [`passport_session`] found, or `Err` if it did not run on this request.
fn logged_in_user(extensions: &Extensions) -> Result<Option<&User>, ApiError> {
    if extensions.get::<PassportSessionRan>().is_none() {
        // A programming mistake, not a visitor's: fail loudly instead of
        // treating everybody as anonymous and leaving the developer to wonder
        // why login "does not work".
        tracing::error!(
            "no user information on this request: is the passport_session \
             middleware installed on this route, inside the session layer?"
        );
        return Err(ApiError::internal());
    }
    Ok(extensions
        .get::<CurrentUser>()
        .map(|CurrentUser(user)| user))
}

// ANCHOR: extractors
impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        match logged_in_user(&parts.extensions)? {
            Some(user) => Ok(CurrentUser(user.clone())),
            None => Err(ApiError::unauthorized()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        // A missing middleware is logged by `logged_in_user`; here it just
        // means "nobody".
        let user = logged_in_user(&parts.extensions).ok().flatten().cloned();
        Ok(MaybeUser(user))
    }
}
// ANCHOR_END: extractors

// ANCHOR: require_login
/// The guard for pages: lets logged-in visitors through and redirects everyone
/// else to the login page (connect-ensure-login's `ensureLoggedIn('/login')`).
/// JSON endpoints take a [`CurrentUser`] instead, which answers 401: a script
/// cannot follow a redirect to a form.
pub async fn require_login(request: Request, next: Next) -> Response {
    match logged_in_user(request.extensions()) {
        Ok(Some(_)) => next.run(request).await,
        Ok(None) => Redirect::to(LOGIN_PATH).into_response(),
        Err(error) => error.into_response(),
    }
}
// ANCHOR_END: require_login
