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

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use step02_sessions::record_outlived;
use step03_passport_like_auth::{LogoutEvent, LogoutScope};
use tokio_util::sync::CancellationToken;
use tower_sessions::session::Id;

use crate::SessionWatch;
use crate::fair_use::SocketSlot;
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
/// that was opened with the sessions that end: the one being destroyed, or
/// all of its user's (log out everywhere), or all but this one (a password
/// change). The client sees `disconnect` with the reason
/// `io server disconnect`, and does not reconnect by itself after that
/// reason.
pub fn disconnect_on_logout<A: Adapter>(
    io: SocketIo<A>,
) -> impl Fn(&LogoutEvent) + Send + Sync + 'static {
    move |event: &LogoutEvent| {
        let session = event.session_id.map(session_room);
        let user = event.user.as_ref().map(|user| user_room(user.id));
        let (room, except) = match (event.scope, session, user) {
            (LogoutScope::ThisSession, Some(session), _) => (session, vec![]),
            (LogoutScope::EveryUserSession, _, Some(user)) => (user, vec![]),
            (LogoutScope::OtherUserSessions { kept_as }, old, Some(user)) => {
                let new =
                    kept_as.map(|id| follow_session(&io, old.as_ref(), id));
                (user, old.into_iter().chain(new).collect())
            }
            // No session or no user: no socket can have been opened with it.
            _ => return,
        };
        let io = io.clone();
        tokio::spawn(async move {
            let sockets = io.to(room).except(except);
            if let Err(error) = sockets.disconnect().await {
                tracing::error!(
                    %error,
                    "could not disconnect the sockets of a closed session"
                );
            }
        });
    }
}

// ANCHOR_END: disconnect_on_logout

// ANCHOR: follow_session
/// The sockets of this process in room `old` now belong to session `id`: they
/// change rooms, and their session watch reads the new id. Returns the new
/// room.
fn follow_session<A: Adapter>(
    io: &SocketIo<A>,
    old: Option<&String>,
    id: Id,
) -> String {
    let new = session_room(id);
    for socket in old
        .map(|old| io.to(old.clone()).sockets())
        .unwrap_or_default()
    {
        socket.extensions.insert(SocketSession(id));
        socket.join(new.clone());
        if let Some(old) = old {
            socket.leave(old.clone());
        }
    }
    new
}
// ANCHOR_END: follow_session

// ANCHOR: watch_session
/// Re-reads the socket's session from the store every `watch.every`, and
/// disconnects the socket once the session is gone (expired, destroyed, or
/// deleted behind our back) or its login is older than `watch.lifetime`.
/// Spawn it, on whatever owns the server's tasks. It ends then, or when the
/// socket closes (at once if the disconnect handler calls `let_go`).
pub async fn watch_session<A: Adapter>(
    socket: SocketRef<A>,
    watch: SessionWatch,
) {
    let closed = closed_signal(&socket);
    let mut ticks = tokio::time::interval(watch.every);
    ticks.tick().await; // immediate: the handshake just checked the session
    // Gone twice in a row, not once: a password change deletes the old id a
    // moment before the socket learns the new one (`follow_session`).
    let mut missing = false;
    while socket.connected() {
        tokio::select! {
            () = closed.cancelled() => break,
            _ = ticks.tick() => {}
        }
        // Read each time, for the same reason.
        let Some(SocketSession(id)) = socket.extensions.get() else {
            return; // not an authenticated socket: nothing to watch
        };
        match watch.store.load(&id).await {
            // Busy or not: an open socket makes no HTTP request to refuse.
            Ok(Some(record)) if record_outlived(&record, watch.lifetime) => {
                return end_session(socket);
            }
            Ok(Some(_)) => missing = false,
            Ok(None) if !missing => missing = true,
            Ok(None) => return end_session(socket),
            // A store hiccup is no proof that the session is gone: retry.
            Err(error) => {
                tracing::warn!(%error, "could not re-check a socket's session")
            }
        }
    }
}
// ANCHOR_END: watch_session

/// In a socket's extensions: cancelled by [`let_go`] when it disconnects.
#[derive(Clone, Default)]
struct Closed(CancellationToken);

/// The socket's [`Closed`] signal, made on first use.
fn closed_signal<A: Adapter>(socket: &SocketRef<A>) -> CancellationToken {
    let closed = socket.extensions.get::<Closed>().unwrap_or_else(|| {
        let closed = Closed::default();
        socket.extensions.insert(closed.clone());
        closed
    });
    closed.0
}

// ANCHOR: let_go
/// For a socket's disconnect handler: gives back at once what step 4 keeps for
/// the socket, its place among its user's sockets ([`SocketSlot`]) and the
/// watch on its session, rather than when they next look.
pub fn let_go<A: Adapter>(socket: &SocketRef<A>) {
    if let Some(slot) = socket.extensions.get::<Arc<SocketSlot>>() {
        slot.release();
    }
    closed_signal(socket).cancel();
}
// ANCHOR_END: let_go

/// The socket's session is gone: tell the socket, and disconnect it.
fn end_session<A: Adapter>(socket: SocketRef<A>) {
    let sid = socket.id;
    tracing::info!(%sid, "session ended: disconnecting its socket");
    socket.emit("session ended", &()).ok();
    socket.disconnect().ok();
}
