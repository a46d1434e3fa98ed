//! Presence across the cluster: a room's online list counts every user with a socket on any
//! node, once, and a node that dies stops counting within [`DEAD_NODE_GONE_WITHIN`].
//!
//! Each node keeps its own sockets' presence, as one process does (chapter "The chat under
//! load"), and copies its own users of each room to Redis: the set `presence:<room>:<node>`,
//! which expires [`EXPIRES_AFTER`] after the node last refreshed it, and the set
//! `presence-nodes:<room>` of the nodes that have users there. A node refreshes its keys
//! every [`REFRESH_EVERY`]; a node that dies stops refreshing, and its keys expire. The clock
//! that expires them is Redis's own, so the nodes' clocks need not agree.
//!
//! After changing a room's set, a node publishes the room's name; every node with sockets in
//! that room reads the other nodes' sets again and tells its sockets who came and went
//! (`Chat::presence_elsewhere`). Every [`REFRESH_EVERY`] each node also reads every room it
//! has sockets in, which is how a dead node's users leave the lists, and how a lost notice
//! (Redis pub/sub forgets) is made up for.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chat_under_load::Chat;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use step03_passport_like_auth::User;
use tokio::sync::broadcast::error::RecvError;
use tower_sessions_redis_store::fred::clients::SubscriberClient;
use tower_sessions_redis_store::fred::interfaces::{
    KeysInterface, PubsubInterface, SetsInterface, TransactionInterface,
};
use tower_sessions_redis_store::fred::prelude::{Error as RedisError, Pool};
use tower_sessions_redis_store::fred::types::{Message, Value};

/// How often a node refreshes its presence keys, and reads the rooms it has sockets in.
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);
/// How long a node's presence keys outlive its last refresh.
pub const EXPIRES_AFTER: Duration = Duration::from_secs(6);
/// The bound the chapter states: a killed node's keys expire within [`EXPIRES_AFTER`], and
/// each other node reads its rooms again within [`REFRESH_EVERY`] after that.
pub const DEAD_NODE_GONE_WITHIN: Duration = Duration::from_secs(10);
/// The Redis channel on which a node names a room whose users it changed.
const CHANNEL: &str = "chat:presence";

/// The set of `node`'s users in `room`.
fn users_key(room: &str, node: u64) -> String {
    format!("presence:{room}:{node:x}")
}

/// The set of the nodes with users in `room`.
fn nodes_key(room: &str) -> String {
    format!("presence-nodes:{room}")
}

/// A user as a member of a set: `<id> <username>`.
fn member(user: &User) -> String {
    format!("{} {}", user.id, user.username)
}

fn parse_member(member: &str) -> Option<User> {
    let (id, username) = member.split_once(' ')?;
    let id = id.parse().ok()?;
    Some(User {
        id,
        username: username.to_owned(),
    })
}

fn expiry_ms() -> i64 {
    EXPIRES_AFTER.as_millis() as i64
}

// ANCHOR: mirror
/// Copies this node's own users of each room to Redis as they change, and refreshes its keys
/// every [`REFRESH_EVERY`] for as long as the node lives.
pub async fn mirror(node: u64, redis: Pool, chat: Chat) {
    // What this node has written: room → its members there; and the rooms whose last write
    // failed, which Redis may hold in any state until they are written again whole.
    let mut copied: HashMap<String, HashSet<String>> = HashMap::new();
    let mut unsure: HashSet<String> = HashSet::new();
    let mut every = tokio::time::interval(REFRESH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = chat.presence.own_changed() => {
                for (room, users) in chat.presence.take_own_changes() {
                    let now: HashSet<String> = users.iter().map(member).collect();
                    let before = copied.remove(&room).unwrap_or_default();
                    let copying = match unsure.contains(&room) {
                        true => rewrite(&redis, node, &room, &now).await,
                        false => copy(&redis, node, &room, &before, &now).await,
                    };
                    match copying {
                        Ok(()) => unsure.remove(&room),
                        Err(error) => {
                            tracing::warn!(%error, room, "could not copy presence to Redis");
                            unsure.insert(room.clone())
                        }
                    };
                    if !now.is_empty() {
                        copied.insert(room, now);
                    }
                }
            }
            _ = every.tick() => {
                for room in unsure.clone() {
                    let members = copied.get(&room).cloned().unwrap_or_default();
                    if rewrite(&redis, node, &room, &members).await.is_ok() {
                        unsure.remove(&room);
                    }
                }
                if let Err(error) = refresh(&redis, node, &copied).await {
                    tracing::warn!(%error, "could not refresh presence in Redis");
                }
            }
        }
    }
}

/// Changes `node`'s set of `room` from `before` to `now`, and tells the other nodes.
async fn copy(
    redis: &Pool,
    node: u64,
    room: &str,
    before: &HashSet<String>,
    now: &HashSet<String>,
) -> Result<(), RedisError> {
    if now.is_empty() {
        return rewrite(redis, node, room, now).await;
    }
    let (key, nodes) = (users_key(room, node), nodes_key(room));
    // Only the difference is written: a room of 10,000 users changes one at a time.
    let came: Vec<String> = now.difference(before).cloned().collect();
    let went: Vec<String> = before.difference(now).cloned().collect();
    let pipeline = redis.next().pipeline();
    let () = pipeline.exists(&key).await?;
    // Added before removed: the set is never empty on the way (a reader would take this
    // node off the room).
    if !came.is_empty() {
        let () = pipeline.sadd(&key, came).await?;
    }
    if !went.is_empty() {
        let () = pipeline.srem(&key, went).await?;
    }
    let () = pipeline.pexpire(&key, expiry_ms(), None).await?;
    let () = pipeline.sadd(&nodes, node_name(node)).await?;
    let () = pipeline.pexpire(&nodes, expiry_ms(), None).await?;
    let () = pipeline.spublish(CHANNEL, room).await?;
    let answers: Vec<Value> = pipeline.all().await?;
    let existed = answers.first() == Some(&Value::Integer(1));
    if !existed && !before.is_empty() {
        // Expired meanwhile (this node stalled, or Redis restarted): the difference is not
        // enough.
        rewrite(redis, node, room, now).await?;
    }
    Ok(())
}

/// Writes `node`'s set of `room` whole, in one transaction (a reader never sees it half
/// written), and tells the other nodes.
async fn rewrite(
    redis: &Pool,
    node: u64,
    room: &str,
    members: &HashSet<String>,
) -> Result<(), RedisError> {
    let (key, nodes) = (users_key(room, node), nodes_key(room));
    let transaction = redis.next().multi();
    let () = transaction.del(&key).await?;
    if members.is_empty() {
        let () = transaction.srem(&nodes, node_name(node)).await?;
    } else {
        let members: Vec<String> = members.iter().cloned().collect();
        let () = transaction.sadd(&key, members).await?;
        let () = transaction.pexpire(&key, expiry_ms(), None).await?;
        let () = transaction.sadd(&nodes, node_name(node)).await?;
        let () = transaction.pexpire(&nodes, expiry_ms(), None).await?;
    }
    let _: Value = transaction.exec(true).await?;
    let _: i64 = redis.next().spublish(CHANNEL, room).await?;
    Ok(())
}

/// Pushes back the expiry of every key of `node`. A set that is gone (Redis restarted, or
/// this node stalled past [`EXPIRES_AFTER`]) is written again whole.
async fn refresh(
    redis: &Pool,
    node: u64,
    copied: &HashMap<String, HashSet<String>>,
) -> Result<(), RedisError> {
    if copied.is_empty() {
        return Ok(());
    }
    let pipeline = redis.next().pipeline();
    for room in copied.keys() {
        let () = pipeline
            .pexpire(users_key(room, node), expiry_ms(), None)
            .await?;
        let () = pipeline.sadd(nodes_key(room), node_name(node)).await?;
        let () = pipeline.pexpire(nodes_key(room), expiry_ms(), None).await?;
    }
    let answers: Vec<Value> = pipeline.all().await?;
    // PEXPIRE answers 0 for a key that does not exist: the first answer of each three.
    for ((room, members), answers) in copied.iter().zip(answers.chunks(3)) {
        if answers.first() == Some(&Value::Integer(0)) {
            tracing::warn!(room, "presence was lost from Redis: writing it again");
            rewrite(redis, node, room, members).await?;
        }
    }
    Ok(())
}
// ANCHOR_END: mirror

fn node_name(node: u64) -> String {
    format!("{node:x}")
}

// ANCHOR: listen
/// Reads the other nodes' users of each room this node has sockets in, when a node says the
/// room changed and every [`REFRESH_EVERY`], and hands them to `chat`. Subscribes again after
/// each reconnection to Redis (as the adapter's driver does).
pub async fn listen<A: Adapter>(
    node: u64,
    client: SubscriberClient,
    redis: Pool,
    chat: Chat,
    io: SocketIo<A>,
) {
    let read = |notices| async move { read_rooms(node, notices, &redis, &chat, &io).await };
    crate::follow_channel(client, CHANNEL, read).await;
}

/// [`listen`]'s loop: the rooms named since the last pass (or, every [`REFRESH_EVERY`],
/// every room this node has sockets in), read in one pass.
async fn read_rooms<A: Adapter>(
    node: u64,
    mut notices: tokio::sync::broadcast::Receiver<Message>,
    redis: &Pool,
    chat: &Chat,
    io: &SocketIo<A>,
) {
    let mut every = tokio::time::interval(REFRESH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut due = BTreeSet::new();
        tokio::select! {
            notice = notices.recv() => match notice {
                Ok(message) => due.extend(room_named(&message)),
                // Fell behind: read them all.
                Err(RecvError::Lagged(_)) => due.extend(own_rooms(chat)),
                Err(RecvError::Closed) => return,
            },
            _ = every.tick() => due.extend(own_rooms(chat)),
        }
        // The notices that came meanwhile join this pass.
        while let Ok(message) = notices.try_recv() {
            due.extend(room_named(&message));
        }
        for room in due.into_iter().filter(|room| chat.presence.has_own(room)) {
            match users_elsewhere(redis, node, &room).await {
                Ok(users) => chat.presence_elsewhere(io, &room, users).await,
                Err(error) => tracing::warn!(%error, room, "could not read presence"),
            }
        }
    }
}
// ANCHOR_END: listen

fn room_named(message: &Message) -> Option<String> {
    (&*message.channel == CHANNEL).then(|| message.value.as_string())?
}

fn own_rooms(chat: &Chat) -> impl Iterator<Item = String> {
    chat.presence.own_rooms().into_iter().map(|(room, _)| room)
}

// ANCHOR: users_elsewhere
/// The users of `room` on the nodes other than `node`, each once. A node whose set has
/// expired is dead (or has no one left there): it is taken off the room's list of nodes.
async fn users_elsewhere(
    redis: &Pool,
    node: u64,
    room: &str,
) -> Result<BTreeMap<i64, User>, RedisError> {
    let nodes: Vec<String> = redis.smembers(nodes_key(room)).await?;
    let others: Vec<String> = nodes
        .into_iter()
        .filter(|n| *n != node_name(node))
        .collect();
    if others.is_empty() {
        return Ok(BTreeMap::new());
    }
    let pipeline = redis.next().pipeline();
    for other in &others {
        let () = pipeline
            .smembers(format!("presence:{room}:{other}"))
            .await?;
    }
    let sets: Vec<Vec<String>> = pipeline.all().await?;
    let mut users = BTreeMap::new();
    for (other, members) in others.iter().zip(sets) {
        if members.is_empty() {
            // Alive but with nobody there, it has taken itself off already; dead, it cannot.
            let _: i64 = redis.srem(nodes_key(room), other.as_str()).await?;
        }
        let found = members.iter().filter_map(|member| parse_member(member));
        users.extend(found.map(|user| (user.id, user)));
    }
    Ok(users)
}
// ANCHOR_END: users_elsewhere

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_names_its_user_even_with_a_space_in_the_name() {
        let user = User {
            id: 42,
            username: "ada lovelace".into(),
        };
        assert_eq!(parse_member(&member(&user)), Some(user));
        assert_eq!(parse_member("not-a-number x"), None);
    }
}
