//! Exercise 2: the `online` event.

use serde_json::json;
use socketioxide::SocketIo;
use socketioxide::extract::AckSender;
use step05_chat::chat::ChatError;

use crate::ClusterAdapter;

// ANCHOR: online
// A new module, `src/online.rs`; `build` registers it in a connect middleware of its own,
// after step 5's handlers: `socket.on("online", on_online)`.
/// `online`: how many sockets, and how many users, are connected to the whole cluster.
pub async fn on_online(io: SocketIo<ClusterAdapter>, ack: AckSender<ClusterAdapter>) {
    // `io.sockets()` would list this node's sockets only. `fetch_sockets` and `rooms` ask
    // every node, through the adapter (Redis pub/sub), and wait for all of their answers.
    let reply = match tokio::try_join!(io.fetch_sockets(), io.rooms()) {
        Ok((sockets, rooms)) => {
            // Step 4 put every socket of a user in the room `user:<id>`: one per user online.
            let users = rooms
                .iter()
                .filter(|room| room.starts_with("user:"))
                .count();
            json!({ "sockets": sockets.len(), "users": users })
        }
        Err(error) => {
            tracing::warn!(%error, "could not ask the other nodes who is online");
            json!({ "error": ChatError::Internal.to_string() })
        }
    };
    ack.send(&reply).ok();
}
// ANCHOR_END: online
