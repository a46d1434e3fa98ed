//! The "floor": the chat's Socket.IO events on a bare socketioxide server, and nothing else.
//!
//! No login, no session, no database, no rate limit, no presence: on connect a socket joins
//! `general` and gets an empty `history`; a `chat message` gets an id and is broadcast to the
//! room, sender included, with the same payload shape as step 5's. Whatever step 5 costs above
//! this floor, measured in the same run on the same workload, is the price of its features.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use serde::Deserialize;
use serde_json::json;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// The room every socket is in.
pub const GENERAL: &str = "general";

/// How many packets socketioxide may queue for one socket before it counts as a slow consumer.
/// Kept equal to step 5's setting, so both servers drop (or keep) the same slow sockets.
pub const MAX_BUFFER_SIZE: usize = 2048; // step05_chat::config::DEFAULT_SOCKET_BUFFER

/// The payload a client sends: `{"room": "general", "text": "hi"}`.
#[derive(Debug, Deserialize)]
struct Outgoing {
    room: String,
    text: String,
}

/// The last id given to a message. A mutex, not an atomic, because it is held across the
/// broadcast: ids then reach every socket in increasing order, as step 5's room lock ensures.
#[derive(Debug, Clone, Default)]
struct LastId(Arc<Mutex<i64>>);

/// The floor server as a router (with its Socket.IO layer), and its `io` handle.
pub fn app() -> (Router, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(MAX_BUFFER_SIZE)
        .with_state(LastId::default())
        .build_layer();
    io.ns("/", on_connect.with(register_handlers));
    (Router::new().layer(layer), io)
}

/// Serves the floor on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let (router, _io) = app();
    step01_http_vs_socket::serve(listener, router, std::future::pending()).await
}

/// A connect middleware, like step 5's: it runs before the client is told it is connected, so a
/// message sent the instant the client connects finds its handler.
async fn register_handlers(socket: SocketRef) -> Result<(), Infallible> {
    socket.on("chat message", on_chat_message);
    Ok(())
}

async fn on_connect(socket: SocketRef) {
    socket.join(GENERAL);
    socket
        .emit("history", &json!({ "room": GENERAL, "messages": [] }))
        .ok();
}

async fn on_chat_message(
    socket: SocketRef,
    State(last_id): State<LastId>,
    TryData(message): TryData<Outgoing>,
    ack: AckSender,
) {
    let Ok(message) = message else {
        ack.send(&json!({ "error": "expected {room, text}" })).ok();
        return;
    };
    let mut last_id = last_id.0.lock().await;
    *last_id += 1;
    let id = *last_id;
    let event = json!({
        "id": id,
        "room": message.room,
        "user": { "id": 0, "username": "floor" },
        "text": message.text,
        "ts": step01_http_vs_socket::now_ms(),
    });
    if let Err(error) = socket
        .within(message.room)
        .emit("chat message", &event)
        .await
    {
        tracing::warn!(%error, "could not broadcast a message");
    }
    drop(last_id);
    ack.send(&json!({ "ok": true, "id": id })).ok();
}
