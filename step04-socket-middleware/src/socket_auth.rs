//! The heart of the walkthrough: only logged-in users may open a socket.
//!
//! In the Node.js version, `socketAuthMiddleware` runs express-session and
//! Passport by hand on `socket.request` and then checks `socket.request.user`.
//! Here nothing has to be run by hand: the Socket.IO layer sits *inside* the
//! session layer and step 3's `passport_session` middleware, so by the time the
//! handshake request reaches socketioxide, its session has been loaded and its
//! user deserialized. The connect middleware only reads the result.

use socketioxide::adapter::Adapter;
use socketioxide::extract::{MaybeHttpExtension, SocketRef};
use step03_passport_like_auth::{CurrentUser, User};
use tower_sessions::Session;
use tower_sessions::session::Id;

use crate::delivery::Home;
use crate::live_sessions::{session_room, user_room};

// ANCHOR: error
/// Why a handshake was refused. `Display` gives exactly `Unauthorized`:
/// socketioxide sends `e.to_string()` in the `connect_error` packet, so the
/// JavaScript client's `socket.on("connect_error", err => ...)` sees
/// `err.message === "Unauthorized"`.
#[derive(Debug, thiserror::Error)]
#[error("Unauthorized")]
pub struct Unauthorized;
// ANCHOR_END: error

// ANCHOR: socket_session
/// The session a socket was opened with, kept on the socket so that logging out
/// (or the session expiring) can find and close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketSession(pub Id);
// ANCHOR_END: socket_session

// ANCHOR: authenticate_socket
/// Connect middleware: admits a socket only if its handshake carried a
/// logged-in session.
///
/// On success the user is stored in the socket's extensions: that is
/// `socket.user` of the walkthrough, and every later handler reads it with
/// `Extension<User>`. The socket also joins one room for its session and one
/// for its user, which is how logout finds it again.
pub async fn authenticate_socket<A: Adapter>(
    socket: SocketRef<A>,
    MaybeHttpExtension(user): MaybeHttpExtension<CurrentUser>,
    MaybeHttpExtension(session): MaybeHttpExtension<Session>,
) -> Result<(), Unauthorized> {
    // `socket.request.user` and `socket.request.session` of the walkthrough.
    let session_id = session.and_then(|session| session.id());
    let (Some(CurrentUser(user)), Some(session_id)) = (user, session_id) else {
        tracing::info!(
            sid = %socket.id,
            "refused a socket without a logged-in session"
        );
        return Err(Unauthorized);
    };
    tracing::info!(
        sid = %socket.id,
        user = %user.username,
        "socket authenticated"
    );
    socket.join([session_room(session_id), user_room(user.id)]);
    socket.extensions.insert::<User>(user); // socket.user = user
    socket.extensions.insert(SocketSession(session_id));
    socket.extensions.insert(Home::here()); // where its chores will run
    Ok(())
}
// ANCHOR_END: authenticate_socket
