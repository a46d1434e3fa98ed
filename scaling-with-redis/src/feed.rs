//! How the nodes on PostgreSQL hear of each other's messages: a *notice* per delivered batch,
//! on one Redis pub/sub channel, and a *sweep* of the database for what notices missed.
//!
//! Redis pub/sub is fast and forgets: a notice published while a node is disconnected, or
//! lost with a node killed between its commit and its publish, never arrives. That is fine,
//! because a notice is only a hint. The messages are in PostgreSQL, where each room's ids
//! grow in commit order; every notice says which id came just before its messages, so a node
//! that lacks some reads them from the database before it delivers (the room's sequencer does
//! it: `read_gap`). And once a second each node asks the database for the newest id of each
//! room it serves, which brings in the tail no notice announced.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

use chat_under_load::Chat;
use serde::{Deserialize, Serialize};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use sqlx::PgPool;
use step05_chat::messages::ChatMessage;
use tokio::sync::mpsc;
use tower_sessions_redis_store::fred::clients::SubscriberClient;
use tower_sessions_redis_store::fred::interfaces::PubsubInterface;
use tower_sessions_redis_store::fred::prelude::Pool;
use tower_sessions_redis_store::fred::types::Message;

use crate::postgres::{Delivered, room_heads};

/// The Redis channel of the notices.
const CHANNEL: &str = "chat:delivered";
/// How many notices may wait to be published before new ones are dropped.
pub const NOTICES_WAITING: usize = 1024;
/// How often a node compares the rooms it serves with the database.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

// ANCHOR: notice
/// What a node publishes after delivering a batch to its own sockets.
#[derive(Debug, Serialize, Deserialize)]
struct Notice {
    /// The publishing node, which skips its own notices.
    node: u64,
    room: String,
    /// The id of the room's message before the first of `messages`.
    after: i64,
    messages: Vec<ChatMessage>,
}
// ANCHOR_END: notice

/// A random id for this node's notices.
pub fn node_id() -> u64 {
    RandomState::new().hash_one(std::process::id())
}

/// Publishes what `delivered` receives, in order, until it closes.
pub async fn publish(node: u64, redis: Pool, mut delivered: mpsc::Receiver<Delivered>) {
    while let Some(Delivered {
        room,
        after,
        messages,
    }) = delivered.recv().await
    {
        let notice = Notice {
            node,
            room,
            after,
            messages: messages.to_vec(),
        };
        let Ok(payload) = serde_json::to_string(&notice) else {
            continue; // cannot happen: a notice is strings and numbers
        };
        // Sharded pub/sub, as the adapter's driver uses (`ssubscribe` below).
        let published: Result<i64, _> = redis.next().spublish(CHANNEL, payload).await;
        if let Err(error) = published {
            // The others find these messages in their next sweep.
            tracing::warn!(%error, room = %notice.room, "could not publish a notice");
        }
    }
}

// ANCHOR: listen
/// Hands every other node's notice to `chat`, whose room sequencers deliver it to this
/// node's sockets in order, once. Subscribes again after each reconnection to Redis (as the
/// adapter's driver does); what was published meanwhile, the sweep finds.
pub async fn listen<A: Adapter>(node: u64, client: SubscriberClient, chat: Chat, io: SocketIo<A>) {
    crate::follow_channel(client, CHANNEL, |notices| {
        hand_over(node, notices, chat, io)
    })
    .await;
}

/// [`listen`]'s loop: each notice to its room's sequencer.
async fn hand_over<A: Adapter>(
    node: u64,
    mut notices: tokio::sync::broadcast::Receiver<Message>,
    chat: Chat,
    io: SocketIo<A>,
) {
    loop {
        let message = match notices.recv().await {
            Ok(message) => message,
            // Fell behind: the sweep brings in what the skipped notices said.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(payload) = message.value.as_str() else {
            continue;
        };
        let notice: Notice = match serde_json::from_str(&payload) {
            Ok(notice) => notice,
            Err(error) => {
                tracing::warn!(%error, "not a notice");
                continue;
            }
        };
        if notice.node == node {
            continue; // delivered here already
        }
        let delivering =
            chat.deliver_from_elsewhere(&io, &notice.room, notice.after, notice.messages);
        if let Err(error) = delivering {
            tracing::error!(%error, room = %notice.room, "could not deliver a notice");
        }
    }
}
// ANCHOR_END: listen

// ANCHOR: sweep
/// Once every [`SWEEP_EVERY`], tells each room this node serves where the room's newest
/// message is: a room that has not delivered up to there reads the rest from the database.
/// This bounds how late a message whose notice was lost reaches this node's sockets.
pub async fn sweep<A: Adapter>(pool: PgPool, chat: Chat, io: SocketIo<A>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let rooms = chat.known_rooms();
        if rooms.is_empty() {
            continue;
        }
        let heads = match room_heads(&pool, &rooms).await {
            Ok(heads) => heads,
            Err(error) => {
                tracing::warn!(%error, "could not sweep the rooms");
                continue;
            }
        };
        for (room, last_id) in heads {
            chat.deliver_from_elsewhere(&io, &room, last_id, Vec::new())
                .ok();
        }
    }
}
// ANCHOR_END: sweep
