//! A socket outlives the request that opened it.
//!
//! The session a socket sees is a snapshot taken at the handshake. Logging out
//! over HTTP, or the session expiring, changes the session store, and nothing
//! in Socket.IO notices: the socket would go on chatting as a user who is no
//! longer logged in. This module closes that gap in two ways:
//! - **on logout**, at once: every socket joined the room of its session at the
//!   handshake, so the logout route can disconnect that room;
//! - **on expiry or any other removal** (an admin deleting sessions, the
//!   store's cleanup task): each socket re-reads its session from the store
//!   every so often, and leaves when it is gone. The interval is the trade-off:
//!   shorter means sooner, and more store reads.

use std::sync::Arc;
use std::time::Duration;

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use step03_passport_like_auth::LogoutEvent;
use tower_sessions::SessionStore;
use tower_sessions::session::Id;

use crate::socket_auth::SocketSession;

// ANCHOR: rooms
/// The room every socket of one session joins.
pub fn session_room(id: Id) -> String {
    format!("session:{id}")
}

/// The room every socket of one user joins, whatever the session (tab, browser,
/// device).
pub fn user_room(user_id: i64) -> String {
    format!("user:{user_id}")
}
// ANCHOR_END: rooms

// ANCHOR: disconnect_on_logout
/// A logout hook for step 3's `Passport::on_logout`: disconnects every socket
/// that was opened with the session being destroyed. The client sees
/// `disconnect` with the reason `io server disconnect`, and does not reconnect
/// by itself after that reason.
pub fn disconnect_on_logout<A: Adapter>(
    io: SocketIo<A>,
) -> impl Fn(&LogoutEvent) + Send + Sync + 'static {
    move |event: &LogoutEvent| {
        let Some(session_id) = event.session_id else {
            return; // no session, so no socket can have been opened with it
        };
        let io = io.clone();
        tokio::spawn(async move {
            if let Err(error) =
                io.to(session_room(session_id)).disconnect().await
            {
                tracing::error!(
                    %error,
                    "could not disconnect the sockets of a closed session"
                );
            }
        });
    }
}
// ANCHOR_END: disconnect_on_logout

// ANCHOR: watch_session
/// Re-reads the socket's session from the store every `every`, and disconnects
/// the socket once the session is gone (expired, destroyed, or deleted behind
/// our back). It runs until then, or until the socket closes: spawn it, on
/// whatever owns the server's tasks.
pub async fn watch_session<A: Adapter>(
    socket: SocketRef<A>,
    store: Arc<dyn SessionStore>,
    every: Duration,
) {
    let Some(SocketSession(session_id)) =
        socket.extensions.get::<SocketSession>()
    else {
        return; // not an authenticated socket: nothing to watch
    };
    // The socket every second (a closed one is let go: it holds its queue),
    // the session every `every`.
    let mut next_check = tokio::time::Instant::now() + every;
    let mut seconds = tokio::time::interval(every.min(Duration::from_secs(1)));
    seconds.tick().await; // immediate: the handshake just checked the session
    while socket.connected() {
        seconds.tick().await;
        if tokio::time::Instant::now() < next_check || !socket.connected() {
            continue;
        }
        next_check += every;
        match store.load(&session_id).await {
            Ok(Some(_)) => continue,
            Ok(None) => return end_session(socket),
            // A store hiccup is no proof that the session is gone: retry.
            Err(error) => {
                tracing::warn!(%error, "could not re-check a socket's session")
            }
        }
    }
}
// ANCHOR_END: watch_session

/// The socket's session is gone: tell the socket, and disconnect it.
fn end_session<A: Adapter>(socket: SocketRef<A>) {
    let sid = socket.id;
    tracing::info!(%sid, "session ended: disconnecting its socket");
    socket.emit("session ended", &()).ok();
    socket.disconnect().ok();
}
