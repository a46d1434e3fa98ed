//! Refuse before allocating: who may *open* a Socket.IO connection, decided
//! over HTTP.
//!
//! A Socket.IO connection starts with an Engine.IO handshake: a `GET
//! /socket.io/?EIO=4&...` without a `sid` (session id of the Engine.IO
//! connection). socketioxide answers it by creating a connection, with its
//! buffers, timers and task, and only later, when the client's `CONNECT` packet
//! arrives, runs our connect middlewares. Refusing in a connect middleware is
//! therefore refusing *after* paying: an anonymous script can open connections
//! faster than they time out and fill the memory.
//!
//! So the same rule is applied twice. [`require_login_to_connect`] answers a
//! handshake with `401` before socketioxide sees it; `authenticate_socket`
//! stays as the second line of defence, and is the one that attaches the user
//! to the socket. Requests that carry a `sid` belong to a connection that was
//! already admitted: engineioxide checks the `sid`, and [`identify_user`] does
//! not even look the session up for them.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use step03_passport_like_auth::{
    ApiError, CurrentUser, Passport, UserStore, passport_session,
};
use tower_sessions::Session;

/// Where the Socket.IO layer answers (socketioxide's default path).
pub const SOCKET_IO_PATH: &str = "/socket.io";

// ANCHOR: engine_io_request
/// Whether a request is for the Socket.IO layer: `/socket.io` or anything under
/// it.
pub fn is_socket_io(path: &str) -> bool {
    path.strip_prefix(SOCKET_IO_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether a Socket.IO request opens a *new* connection: it has no `sid=` in
/// its query, read the way engineioxide reads it.
pub fn opens_a_connection(request: &Request) -> bool {
    is_socket_io(request.uri().path())
        && !request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .any(|pair| pair.starts_with("sid="))
}
// ANCHOR_END: engine_io_request

// ANCHOR: require_login_to_connect
/// HTTP middleware, inside `passport_session`: answers a new Socket.IO
/// connection without a logged-in user with `401 {"error":"Unauthorized"}`,
/// before socketioxide allocates anything.
///
/// Node.js: an `io.engine.use(onlyForHandshake(...))` middleware that answers
/// `res.writeHead(401)`, as in Socket.IO's Passport example.
pub async fn require_login_to_connect(req: Request, next: Next) -> Response {
    let logged_in = req.extensions().get::<CurrentUser>().is_some();
    if opens_a_connection(&req) && !logged_in {
        tracing::info!("refused a handshake without a logged-in session");
        return ApiError::unauthorized().into_response();
    }
    next.run(req).await
}
// ANCHOR_END: require_login_to_connect

// ANCHOR: identify_user
/// Step 3's `passport_session`, except for requests of an admitted Socket.IO
/// connection.
///
/// A long-polling client sends a request every few seconds, and every message
/// it sends is one more. Their user was settled at the handshake, so loading
/// the session and the user again would be two lookups per message for nothing.
/// (Socket.IO calls this option `onlyForHandshake`.)
pub async fn identify_user<U: UserStore>(
    passport: State<Passport<U>>,
    session: Session,
    request: Request,
    next: Next,
) -> Response {
    if is_socket_io(request.uri().path()) && !opens_a_connection(&request) {
        // No session read: tower-sessions reads the store only when asked.
        return next.run(request).await;
    }
    passport_session(passport, session, request, next).await
}
// ANCHOR_END: identify_user

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str) -> Request {
        Request::get(uri)
            .body(axum::body::Body::empty())
            .expect("a valid test request")
    }

    #[test]
    fn only_socket_io_requests_without_a_sid_open_a_connection() {
        assert!(opens_a_connection(&request(
            "/socket.io/?EIO=4&transport=polling"
        )));
        assert!(opens_a_connection(&request(
            "/socket.io/?EIO=4&transport=websocket&foo=sid"
        )));
        assert!(!opens_a_connection(&request(
            "/socket.io/?EIO=4&transport=polling&sid=abc"
        )));
        assert!(!opens_a_connection(&request("/login")));
        assert!(!opens_a_connection(&request("/socket.iox/?EIO=4")));
        assert!(is_socket_io("/socket.io"));
    }
}
