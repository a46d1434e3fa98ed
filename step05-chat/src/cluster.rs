//! One node of a cluster: what changes when `REDIS_URL` is set.
//!
//! A single chat process keeps three things in its own memory that every node must share
//! once there are several:
//! - **the sessions**, or a cookie issued by node A means nothing to node B: they move to
//!   Redis (a tower-sessions Redis store);
//! - **the rooms**, or `io.to("general").emit(...)` on node A reaches only A's sockets: the
//!   Socket.IO *adapter* becomes socketioxide's Redis adapter, which forwards every broadcast,
//!   every room change and every remote disconnect to the other nodes through Redis pub/sub;
//! - **the messages and accounts** already live in the database, which every node opens.
//!
//! Everything else is the single-process chat, generic over the adapter, unchanged.

use socketioxide::adapter::Emitter;
use socketioxide_redis::{FredAdapter, RedisAdapterCtr};
use step03_passport_like_auth::Passport;
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{
    Builder, ClientLike, Config, Pool, ReconnectPolicy,
};
use tower_sessions_redis_store::fred::types::RespVersion;

use crate::messages::MessageStore;
use crate::users::SqliteUserStore;
use crate::{BuildError, Chat, ChatConfig, ChatIo, ChatServer, assemble, chat, db};

/// The Socket.IO adapter of a cluster node: socketioxide's Redis adapter, over `fred`.
pub type ClusterAdapter = FredAdapter<Emitter>;

fn redis_error(error: impl std::fmt::Display) -> BuildError {
    BuildError::Redis(error.to_string())
}

// ANCHOR: build
/// Builds one node of a cluster whose nodes share `redis_url` and `config.database_url`.
pub(crate) async fn build(config: ChatConfig, redis_url: &str) -> Result<ChatServer, BuildError> {
    let pool = db::open_database(&config.database_url).await?;
    let redis_config = Config::from_url(redis_url).map_err(redis_error)?;
    // Start-up fails at once if Redis is not there (fred's `fail_fast`), but once running,
    // a lost connection is retried for ever, backing off up to 5 s between attempts.
    let reconnect = || ReconnectPolicy::new_exponential(0, 100, 5_000, 2);

    // Sessions in Redis: any node can load a session that another node created. Redis
    // expires them by itself (the store sets a TTL), so no clean-up task is needed.
    let sessions_client =
        Pool::new(redis_config.clone(), None, None, Some(reconnect()), 2).map_err(redis_error)?;
    sessions_client.init().await.map_err(redis_error)?;
    let session_store = RedisStore::new(sessions_client);

    // The adapter needs a connection of its own, in subscriber mode, speaking RESP3.
    let mut subscriber_config = redis_config;
    subscriber_config.version = RespVersion::RESP3;
    let subscriber = Builder::from_config(subscriber_config)
        .set_policy(reconnect())
        .build_subscriber_client()
        .map_err(redis_error)?;
    let adapter = RedisAdapterCtr::new_with_fred(subscriber)
        .await
        .map_err(redis_error)?;

    let passport = Passport::with_hasher_params(SqliteUserStore::new(pool.clone()), config.hashing);
    let chat = Chat::new(MessageStore::new(pool), config.rate_limit);
    chat.spawn_housekeeping();

    let (socket_layer, io) = crate::socket_io_builder(&config.sockets, chat, &session_store)
        .with_adapter::<ClusterAdapter>(adapter)
        .build_layer();
    let (router, adapter_ready) = assemble(
        passport,
        &config.sessions,
        session_store,
        &config.sockets,
        (socket_layer, io.clone()),
        chat::register_chat_handlers,
    );
    // A remote adapter subscribes to its Redis channels before the node may accept sockets.
    adapter_ready.await.map_err(redis_error)?;
    Ok(ChatServer {
        router,
        io: ChatIo::Cluster(io),
    })
}
// ANCHOR_END: build
