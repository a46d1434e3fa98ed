//! The JSON side of the HTTP contract: every error is `{"error": "..."}`, and a
//! body may come as JSON or as an HTML form.

use std::borrow::Cow;
use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::passport::{AuthError, Passport, RegisterError};
use crate::store::UserStore;

// ANCHOR: api_error
/// An error answer: a status code and `{"error": message}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    message: Cow<'static, str>,
    /// Seconds to wait, sent as `Retry-After` with a 429 or a 503.
    retry_after: Option<u64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        let mut response = (self.status, body).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
// ANCHOR_END: api_error

// ANCHOR: api_error_named
impl ApiError {
    /// `503` + `Retry-After: 1`: the server is too busy right now (see
    /// [`AuthError::Busy`]).
    pub fn busy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is busy: please try again in a moment",
        )
        .with_retry_after(1)
    }

    /// `401 {"error":"Unauthorized"}`: nobody is logged in.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized")
    }

    /// `500 {"error":"internal error"}`: our fault. Log the cause before
    /// returning this.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}
// ANCHOR_END: api_error_named

// ANCHOR: api_error_plumbing
impl ApiError {
    /// Any status, any message. The message is shown to the user: keep
    /// internals out of it.
    pub fn new(
        status: StatusCode,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, telling the client to wait `seconds` before trying
    /// again.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The status code this error answers with (what a unit test of a
    /// throttle checks).
    pub fn status(&self) -> StatusCode {
        self.status
    }
}
// ANCHOR_END: api_error_plumbing

// ANCHOR: api_error_from
impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        if matches!(error, AuthError::Busy) {
            // Not a failure: the server protects itself. Nothing to log per
            // request.
            return Self::busy();
        }
        // The one place where an internal failure is logged: the user gets a
        // bland 500, the log gets the cause.
        tracing::error!(%error, "authentication failed internally");
        Self::internal()
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

impl From<RegisterError> for ApiError {
    fn from(error: RegisterError) -> Self {
        match error {
            RegisterError::InvalidUsername | RegisterError::WeakPassword => {
                Self::new(StatusCode::BAD_REQUEST, error.to_string())
            }
            RegisterError::Taken => {
                Self::new(StatusCode::CONFLICT, error.to_string())
            }
            RegisterError::Internal(error) => error.into(),
        }
    }
}

impl IntoResponse for RegisterError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
// ANCHOR_END: api_error_from

// ANCHOR: credentials
/// A username and a password, as sent to `/login` and `/register`.
#[derive(Deserialize)]
pub struct Credentials {
    /// As typed.
    pub username: String,
    /// In clear text, over (in production) HTTPS. Never logged.
    pub password: String,
}

// Written by hand, not derived: a derived `Debug` would print the password into
// any log line that prints the credentials.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}
// ANCHOR_END: credentials

/// The body of `POST /password`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordChange {
    /// The password the user has now: whoever holds only a cookie does not
    /// know it.
    pub current_password: String,
    /// The password to have from now on (the register's rules apply).
    pub new_password: String,
}

// Not derived, for the same reason as `Credentials`'.
impl fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordChange").finish_non_exhaustive()
    }
}

// ANCHOR: json_or_form
/// A body extractor that accepts JSON (`fetch`) and urlencoded forms (`<form
/// method=post>`), like `express.json()` plus `express.urlencoded()`, and
/// rejects anything else with a JSON error instead of axum's plain-text one.
#[derive(Debug, Clone)]
pub struct JsonOrForm<T>(pub T);

/// Whether the body says it is an urlencoded form; anything else is taken for
/// JSON.
fn is_form(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.starts_with("application/x-www-form-urlencoded")
        })
}

/// axum answers a body it cannot parse with 400 (bad syntax) or 422 (missing or
/// mistyped field). Our contract says 400 for both; only a body over the size
/// limit keeps its 413.
fn bad_body(status: StatusCode, message: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, message),
        _ => ApiError::new(StatusCode::BAD_REQUEST, message),
    }
}
// ANCHOR_END: json_or_form

// ANCHOR: json_or_form_impl
impl<T, U> FromRequest<Passport<U>> for JsonOrForm<T>
where
    T: DeserializeOwned,
    U: UserStore,
{
    type Rejection = ApiError;

    async fn from_request(
        request: Request,
        passport: &Passport<U>,
    ) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let deadline = passport.limits().body_timeout;
        let bytes =
            read_small_body(body, MAX_AUTH_BODY_BYTES, deadline).await?;
        let request = Request::from_parts(parts, Body::from(bytes));
        if is_form(&request) {
            match Form::<T>::from_request(request, &()).await {
                Ok(Form(value)) => Ok(Self(value)),
                Err(rejection) => {
                    Err(bad_body(rejection.status(), rejection.body_text()))
                }
            }
        } else {
            match Json::<T>::from_request(request, &()).await {
                Ok(Json(value)) => Ok(Self(value)),
                Err(JsonRejection::MissingJsonContentType(_)) => {
                    Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "Send the body as application/json or \
                         application/x-www-form-urlencoded",
                    ))
                }
                Err(rejection) => {
                    Err(bad_body(rejection.status(), rejection.body_text()))
                }
            }
        }
    }
}
// ANCHOR_END: json_or_form_impl

// ANCHOR: small_body_limit
/// The largest body an auth route reads. The largest honest one is a
/// 32-character username and a long password, each character written the
/// longest way (`%F0%9F%94%91` in a form, `\ud83d\udd11` in JSON: 12 bytes):
/// a password of 256 such characters still fits.
pub const MAX_AUTH_BODY_BYTES: usize = 4 * 1024;
// ANCHOR_END: small_body_limit

// ANCHOR: small_body
/// A body that is small by nature: at most `limit` bytes, all of them within
/// `deadline`, or a `413` / `408` with a JSON error.
pub async fn read_small_body(
    mut body: Body,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, ApiError> {
    // `Content-Length` says too much: refused before reading a byte.
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large(limit));
    }
    let read = async {
        let mut bytes = Vec::new();
        while let Some(frame) =
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            // An error here is the client's: it closed the connection.
            let frame = frame.map_err(|_| cut_short())?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if bytes.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            // Copied, and the chunk dropped at once: a chunk of one byte keeps
            // the whole buffer hyper read it into (kilobytes) alive.
            bytes.extend_from_slice(&data);
        }
        Ok(Bytes::from(bytes))
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or_else(|_| Err(too_slow()))
}
// ANCHOR_END: small_body

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("The body may be at most {limit} bytes"),
    )
}

fn cut_short() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "The body was cut short")
}

fn too_slow() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "The body took too long to arrive",
    )
}

// ANCHOR: small_body_extractor
/// The body of a route that takes nothing in it (`/logout`): read, within the
/// same limits as [`JsonOrForm`], and thrown away.
#[derive(Debug, Clone)]
pub struct SmallBody(pub Bytes);

impl<U: UserStore> FromRequest<Passport<U>> for SmallBody {
    type Rejection = ApiError;

    async fn from_request(
        request: Request,
        passport: &Passport<U>,
    ) -> Result<Self, Self::Rejection> {
        let deadline = passport.limits().body_timeout;
        let body = request.into_body();
        read_small_body(body, MAX_AUTH_BODY_BYTES, deadline)
            .await
            .map(Self)
    }
}
// ANCHOR_END: small_body_extractor
