//! One socket's events, handled in the order they arrived.
//!
//! socketioxide runs each event's handler as a task of its own. On a runtime
//! with several threads, two events that one socket sent back to back may
//! then run in either order: a client that sends "a" then "b" without waiting
//! could see "b" stored first. A handler that takes an [`InOrder`] and awaits
//! [`InOrder::wait`] first runs after the handlers of the socket's earlier
//! events that took one. (Node runs one handler at a time: it has no such
//! question.)

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use socketioxide::adapter::Adapter;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use tokio::sync::oneshot;

/// This event's turn among the socket's events (an extractor).
#[derive(Debug)]
pub struct InOrder {
    previous: Option<oneshot::Receiver<()>>,
    /// Dropped with the handler: the next event's turn comes.
    _done: oneshot::Sender<()>,
}

impl InOrder {
    /// A turn with nothing before it, for what is sent outside a socket's
    /// events (a test, a message of the server's own).
    pub fn first() -> Self {
        let (done, _) = oneshot::channel();
        InOrder {
            previous: None,
            _done: done,
        }
    }

    /// Waits until the socket's previous event (that took an `InOrder`) has
    /// been handled.
    pub async fn wait(&mut self) {
        if let Some(previous) = self.previous.take() {
            previous.await.ok(); // its handler ended, one way or another
        }
    }
}

/// The turn of the socket's latest event, kept in the socket's extensions.
#[derive(Clone, Default)]
struct Latest(Arc<Mutex<Option<oneshot::Receiver<()>>>>);

impl<A: Adapter> FromMessageParts<A> for InOrder {
    type Error = Infallible;

    // Extractors run as the events arrive, one after the other, before the
    // handler's task is spawned: this is where the order is still known.
    fn from_message_parts(
        socket: &Arc<Socket<A>>,
        _: &mut socketioxide::handler::Value,
        _: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let latest = socket.extensions.get::<Latest>().unwrap_or_else(|| {
            let latest = Latest::default();
            socket.extensions.insert(latest.clone());
            latest
        });
        let (done, turn) = oneshot::channel();
        let mut slot = latest.0.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = slot.replace(turn);
        Ok(InOrder {
            previous,
            _done: done,
        })
    }
}
