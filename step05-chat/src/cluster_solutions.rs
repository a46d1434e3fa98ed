//! Reference solutions of the exercises of the chapter "Scaling out with Redis". Compiled only
//! with `--features solutions`; CI uses them to prove each exercise check passes once the task
//! is done.
//!
//! A student edits the crate itself: `lib.rs` and `cluster.rs` (to add a route and hand the
//! Redis pool around), `chat.rs` (a new event, and a question to Redis before a message goes
//! out), a new module or two.
//! This module leaves the crate as it is, so it brings its own [`build`] and its own copy of
//! `cluster::build` with the exercises' additions, and reuses everything else.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State as HttpState;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use step03_passport_like_auth::{Passport, User};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::interfaces::{ClientLike, KeysInterface};
use tower_sessions_redis_store::fred::prelude::{Error as RedisError, Pool};
use tower_sessions_redis_store::fred::types::ExpireOptions;

use crate::chat::{self, Chat, ChatError, send_message};
use crate::cluster::{self, ClusterAdapter, redis_error};
use crate::messages::MessageStore;
use crate::rate_limit::RateLimiter;
use crate::users::SqliteUserStore;
use crate::{BuildError, ChatConfig, ChatIo, ChatServer, assemble, db};

/// The chat with every exercise done: the crate's `build`, plus `/health` (exercise 1), the
/// `online` event (exercise 2) and, on a cluster node, the limit shared through Redis
/// (exercise 3).
pub async fn build(config: ChatConfig) -> Result<ChatServer, BuildError> {
    match config.redis_url.clone() {
        None => {
            let server = crate::build_with_handlers(config, register_handlers).await?;
            Ok(ChatServer {
                router: with_health(server.router, None),
                io: server.io,
            })
        }
        Some(redis_url) => build_node(config, &redis_url).await,
    }
}

// ---------------------------------------------------------------- exercise 1

// ANCHOR: health
// A new module, `src/health.rs`. `build_with_handlers` passes its router through
// `health::with_health(router, None)`; `cluster::build` through
// `health::with_health(router, Some(sessions_client.clone()))`.
/// Adds `GET /health` to the chat's router, for the load balancer in front of the nodes: 200
/// while this node can reach its Redis, 503 when it cannot ("take me out of the rotation").
pub fn with_health(router: Router, redis: Option<Pool>) -> Router {
    // Added after the chat's layers, so outside them: no session, no login. The load balancer
    // has no cookie, and a health check must not depend on the session store. (Not with
    // `merge`: merging two routers keeps the second one's fallback, and the chat's Socket.IO
    // layer is reached through the first one's, so every socket would get a 404.)
    router.route("/health", get(health).with_state(redis))
}

async fn health(HttpState(redis): HttpState<Option<Pool>>) -> (StatusCode, Json<Value>) {
    let Some(redis) = redis else {
        // A single process needs no Redis: there is nothing to check.
        return (StatusCode::OK, Json(json!({ "redis": "not used" })));
    };
    // While Redis is unreachable, fred keeps a command queued until it reconnects; a load
    // balancer waits a few seconds at most. One second without an answer counts as down.
    match tokio::time::timeout(Duration::from_secs(1), redis.ping::<String>(None)).await {
        Ok(Ok(_pong)) => (StatusCode::OK, Json(json!({ "redis": "ok" }))),
        Ok(Err(_)) | Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "redis": "down" })),
        ),
    }
}
// ANCHOR_END: health

// ---------------------------------------------------------------- exercise 2

// ANCHOR: online
// In src/chat.rs, registered in `register_chat_handlers` with
// `socket.on("online", on_online::<A>)`.
/// `online`: how many sockets, and how many users, are connected to the whole cluster.
async fn on_online<A: Adapter>(io: SocketIo<A>, ack: AckSender<A>) {
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

/// A single process: the crate's handlers, plus exercise 2's `online`.
async fn register_handlers(socket: SocketRef) -> Result<(), Infallible> {
    chat::register_chat_handlers(socket.clone()).await?;
    socket.on("online", on_online::<LocalAdapter>);
    Ok(())
}

// ---------------------------------------------------------------- exercise 3

// ANCHOR: shared_rate_limit
// A new module, `src/shared_rate_limit.rs` (with `burst` and `per_second` of `RateLimiter`
// made `pub(crate)`, as they are here).
/// A per-user message limit that every node of the cluster shares, because it is counted in
/// Redis: at most `burst` messages in each window of `burst / per_second` seconds (with the
/// default 20 and 5 a second: 20 every 4 s), whichever nodes they were sent through.
#[derive(Debug, Clone)]
pub struct SharedRateLimit {
    redis: Pool,
    burst: i64,
    window_secs: i64,
}

impl SharedRateLimit {
    /// A shared limit with the settings of the node's own `limiter`.
    pub fn new(redis: Pool, limiter: &RateLimiter) -> Self {
        // A rate of 0 never refills: a window of a day stands in for "for ever".
        let window = (limiter.burst / limiter.per_second).ceil();
        SharedRateLimit {
            redis,
            burst: limiter.burst as i64,
            window_secs: window.clamp(1.0, 86_400.0) as i64,
        }
    }

    /// Counts one message of `user_id`; whether it is within the limit.
    pub async fn check(&self, user_id: i64) -> Result<bool, RedisError> {
        let key = format!("rate:{user_id}");
        // One round trip for both commands. INCR is atomic: two nodes counting at the same
        // moment get 1 and 2, never 1 and 1. EXPIRE ... NX starts the window at the first
        // message and never moves it; sending it every time means a node that died between the
        // two commands cannot leave a counter behind that never expires.
        let pipeline = self.redis.next().pipeline();
        let () = pipeline.incr(&key).await?;
        let () = pipeline
            .expire(&key, self.window_secs, Some(ExpireOptions::NX))
            .await?;
        let (count, _expire_set): (i64, i64) = pipeline.all().await?;
        Ok(count <= self.burst)
    }

    /// [`Self::check`], for a handler: while Redis cannot answer, the message is let through
    /// and only the node's own limiter applies (a user with two tabs may then send twice as
    /// much, for as long as the outage lasts). Refusing every message would turn a Redis
    /// outage into a chat outage.
    pub async fn allows(&self, user_id: i64) -> bool {
        // As for `/health`: fred would hold the command for up to 2 s while Redis is away,
        // and the sender waits for its acknowledgement meanwhile.
        match tokio::time::timeout(Duration::from_secs(1), self.check(user_id)).await {
            Ok(Ok(allowed)) => allowed,
            Ok(Err(error)) => {
                tracing::warn!(%error, "shared rate limit unavailable: the node's own applies");
                true
            }
            Err(_) => {
                tracing::warn!("shared rate limit: no answer within 1 s: the node's own applies");
                true
            }
        }
    }
}

// In your code, `send_message` (src/chat.rs) asks the shared limit right after the node's own
// limiter; `Chat` keeps it as an `Option<SharedRateLimit>`, which `cluster::build` fills in.
/// `chat message` on a cluster node: the shared limit, then the crate's `send_message`, whose
/// per-node limiter still applies. (Asked here, before `send_message` has checked the payload,
/// a malformed message uses up a turn too; in `send_message` you can ask after the checks.)
async fn on_chat_message(
    socket: SocketRef<ClusterAdapter>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    State(shared): State<SharedRateLimit>,
    TryData(payload): TryData<Value>,
    ack: AckSender<ClusterAdapter>,
) {
    let sent = if shared.allows(user.id).await {
        send_message(&socket, &chat, &user, payload.unwrap_or(Value::Null)).await
    } else {
        Err(ChatError::RateLimited)
    };
    let reply = sent
        .map(|message| json!({ "ok": true, "id": message.id }))
        .unwrap_or_else(|error| json!({ "error": error.to_string() }));
    ack.send(&reply).ok();
}
// ANCHOR_END: shared_rate_limit

/// A cluster node: the crate's handlers, plus exercise 2's `online`, and exercise 3's
/// `chat message` instead of the crate's.
async fn register_node_handlers(socket: SocketRef<ClusterAdapter>) -> Result<(), Infallible> {
    chat::register_chat_handlers(socket.clone()).await?;
    socket.on("online", on_online::<ClusterAdapter>);
    // Registering an event again replaces its handler.
    socket.on("chat message", on_chat_message);
    Ok(())
}

/// `cluster::build`, with the exercises' additions marked: the sessions' Redis pool also
/// serves `/health` and the shared limit.
async fn build_node(config: ChatConfig, redis_url: &str) -> Result<ChatServer, BuildError> {
    let pool = db::open_database(&config.database_url).await?;
    let redis = cluster::connect(redis_url).await?;
    let sessions_client = redis.sessions;
    let session_store = RedisStore::new(sessions_client.clone());

    let passport = Passport::with_hasher_params(SqliteUserStore::new(pool.clone()), config.hashing)
        .with_limits(config.auth_limits);
    // Exercise 3: the shared limit, with the node's own limiter's settings.
    let shared_limit = SharedRateLimit::new(sessions_client.clone(), &config.rate_limit);
    let chat = Chat::new(MessageStore::new(pool), config.rate_limit)
        .with_limits(config.limits)
        .in_cluster();
    chat.spawn_housekeeping();

    let (socket_layer, io) =
        crate::socket_io_builder(&config.sockets, config.socket_buffer, chat, &session_store)
            .with_state(shared_limit)
            .with_adapter::<ClusterAdapter>(redis.adapter)
            .build_layer();
    let (router, adapter_ready) = assemble(
        passport,
        &config.sessions,
        session_store,
        &config.sockets,
        (socket_layer, io.clone()),
        register_node_handlers,
    );
    adapter_ready.await.map_err(redis_error)?;
    Ok(ChatServer {
        // Exercise 1: `/health`, over the sessions' pool.
        router: with_health(router, Some(sessions_client)),
        io: ChatIo::Cluster(io),
    })
}
