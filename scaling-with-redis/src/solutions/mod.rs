//! Reference solutions of the exercises of the chapter "Scaling out with Redis". Compiled only
//! with `--features solutions`; CI uses them to prove each exercise check passes once the task
//! is done.
//!
//! Each exercise is a module of its own, built only from this crate's public API and step
//! 5's. A student edits the crate itself: [`build`] here is the crate's `build` with the
//! exercises' lines added (marked), and the new modules are new files in `src/`.

pub mod health;
pub mod online;
pub mod shared_rate_limit;

use std::convert::Infallible;

use socketioxide::extract::SocketRef;
use socketioxide::handler::ConnectHandler;
use step04_socket_middleware::{authenticate_socket, check_origin};
use step05_chat::{ChatConfig, admit_socket, on_connect, register_chat_handlers};

use crate::{ClusterAdapter, Node, NodeError, build_server, connect};
use shared_rate_limit::SharedRateLimit;

// ANCHOR: build
/// The crate's `build`, with every exercise done.
pub async fn build(config: ChatConfig, redis_url: &str) -> Result<Node, NodeError> {
    let redis = connect(redis_url).await?;
    let sessions = redis.sessions.clone(); // exercises 1 and 3
    let shared = SharedRateLimit::new(sessions.clone(), &config.rate_limit); // exercise 3
    let mut node = build_server(config, redis).await?;
    let register_node_handlers = move |socket: SocketRef<ClusterAdapter>| {
        let shared = shared.clone();
        async move {
            socket.on("online", online::on_online); // exercise 2
            // Exercise 3: registering an event again replaces its handler.
            socket.extensions.insert(shared);
            socket.on("chat message", shared_rate_limit::on_chat_message);
            Ok::<(), Infallible>(())
        }
    };
    let adapter_ready = node.io.ns(
        "/",
        on_connect
            .with(register_node_handlers) // exercises 2 and 3
            .with(register_chat_handlers)
            .with(admit_socket)
            .with(authenticate_socket)
            .with(check_origin),
    );
    adapter_ready.await.map_err(crate::redis_error)?;
    node.router = health::with_health(node.router, sessions); // exercise 1
    Ok(node)
}
// ANCHOR_END: build
