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
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use socketioxide_redis::drivers::fred::{FredDriver, FredError};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use std::time::Duration;
use step03_passport_like_auth::Passport;
use tower_sessions_redis_store::RedisStore;

use tower_sessions_redis_store::fred::clients::SubscriberClient;
use tower_sessions_redis_store::fred::interfaces::{EventInterface, PubsubInterface};
use tower_sessions_redis_store::fred::prelude::{
    Builder, ClientLike, Config, PerformanceConfig, Pool, ReconnectPolicy,
};
use tower_sessions_redis_store::fred::types::RespVersion;

use crate::messages::MessageStore;
use crate::users::SqliteUserStore;
use crate::{BuildError, Chat, ChatConfig, ChatIo, ChatServer, assemble, chat, db};

/// The Socket.IO adapter of a cluster node: socketioxide's Redis adapter, over `fred`.
pub type ClusterAdapter = CustomRedisAdapter<Emitter, ResubscribingDriver>;

// ANCHOR: resubscribing_driver
/// socketioxide-redis's `fred` driver, plus one thing it lacks: after Redis restarts, the
/// connection comes back by itself but its pub/sub subscriptions do not, and without them this
/// node would silently stop hearing the other nodes' broadcasts. This wrapper remembers every
/// channel the adapter subscribes to and subscribes again on each reconnection.
#[derive(Clone)]
pub struct ResubscribingDriver {
    inner: FredDriver,
    client: SubscriberClient,
    channels: Arc<Mutex<BTreeSet<String>>>,
}

impl ResubscribingDriver {
    async fn new(client: SubscriberClient) -> Result<Self, FredError> {
        let driver = ResubscribingDriver {
            inner: FredDriver::new(client.clone()).await?,
            client,
            channels: Arc::default(),
        };
        let (client, channels) = (driver.client.clone(), driver.channels.clone());
        driver.client.on_reconnect(move |_server| {
            let (client, channels) = (client.clone(), channels.clone());
            async move {
                let channels: Vec<String> = lock(&channels).iter().cloned().collect();
                tracing::warn!(
                    count = channels.len(),
                    "reconnected to Redis: subscribing again"
                );
                for channel in channels {
                    // `ssubscribe` because the fred driver uses sharded pub/sub.
                    if let Err(error) = client.ssubscribe(channel.as_str()).await {
                        tracing::error!(%error, channel, "could not subscribe again");
                    }
                }
                Ok(())
            }
        });
        Ok(driver)
    }
}

impl Driver for ResubscribingDriver {
    type Error = FredError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), FredError> {
        self.inner.publish(chan, val).await
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, FredError> {
        lock(&self.channels).insert(chan.clone());
        self.inner.subscribe(chan, size).await
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), FredError> {
        lock(&self.channels).remove(&chan);
        self.inner.unsubscribe(chan).await
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, FredError> {
        self.inner.num_serv(chan).await
    }
}
// ANCHOR_END: resubscribing_driver

impl std::fmt::Debug for ResubscribingDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResubscribingDriver")
            .field("channels", &lock(&self.channels).len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn redis_error(error: impl std::fmt::Display) -> BuildError {
    BuildError::Redis(error.to_string())
}

// ANCHOR: build
/// Builds one node of a cluster whose nodes share `redis_url` and `config.database_url`.
pub(crate) async fn build(config: ChatConfig, redis_url: &str) -> Result<ChatServer, BuildError> {
    let pool = db::open_database(&config.database_url).await?;
    let redis = connect(redis_url).await?;
    let session_store = RedisStore::new(redis.sessions);

    let passport = Passport::with_hasher_params(SqliteUserStore::new(pool.clone()), config.hashing)
        .with_limits(config.auth_limits);
    let chat = Chat::new(MessageStore::new(pool), config.rate_limit)
        .with_limits(config.limits)
        .in_cluster();
    chat.spawn_housekeeping();

    let (socket_layer, io) =
        crate::socket_io_builder(&config.sockets, config.socket_buffer, chat, &session_store)
            .with_adapter::<ClusterAdapter>(redis.adapter)
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

/// A node's two uses of Redis.
pub(crate) struct RedisParts {
    /// A pool for the session store (and anything else that reads and writes keys).
    pub(crate) sessions: Pool,
    /// What the Socket.IO adapter needs: a subscriber connection, wrapped in our driver.
    pub(crate) adapter: RedisAdapterCtr<ResubscribingDriver>,
}

/// Connects to Redis for sessions and for the adapter.
pub(crate) async fn connect(redis_url: &str) -> Result<RedisParts, BuildError> {
    let redis_config = Config::from_url(redis_url).map_err(redis_error)?;
    // Start-up fails at once if Redis is not there (fred's `fail_fast`), but once running,
    // a lost connection is retried for ever, backing off up to 5 s between attempts.
    let reconnect = || ReconnectPolicy::new_exponential(0, 100, 5_000, 2);

    // Sessions in Redis: any node can load a session that another node created. Redis
    // expires them by itself (the store sets a TTL), so no clean-up task is needed.
    // While Redis is unreachable, a session read fails after 2 s (an error page) rather than
    // leaving the request hanging until Redis is back.
    let sessions_performance = PerformanceConfig {
        default_command_timeout: Duration::from_secs(2),
        ..PerformanceConfig::default()
    };
    let sessions = Pool::new(
        redis_config.clone(),
        Some(sessions_performance),
        None,
        Some(reconnect()),
        2,
    )
    .map_err(redis_error)?;
    sessions.init().await.map_err(redis_error)?;

    // The adapter needs a connection of its own, in subscriber mode, speaking RESP3.
    let mut subscriber_config = redis_config;
    subscriber_config.version = RespVersion::RESP3;
    let subscriber = Builder::from_config(subscriber_config)
        .set_policy(reconnect())
        .build_subscriber_client()
        .map_err(redis_error)?;
    let driver = ResubscribingDriver::new(subscriber)
        .await
        .map_err(redis_error)?;
    let adapter = RedisAdapterCtr::new_with_driver(driver, RedisAdapterConfig::default());
    Ok(RedisParts { sessions, adapter })
}
// ANCHOR_END: build
