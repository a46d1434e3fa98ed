//! One node of a cluster: the chat of step 5, with what must be shared between its nodes
//! moved to Redis (chapter "Scaling out with Redis").
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
//! Everything else is the chat of the chapter "The chat under load", reused from its library:
//! its handlers are generic over the adapter for this crate's sake.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

pub mod feed;
pub mod postgres;
pub mod presence;
mod shared_rate_limit;

use axum::Router;
use chat_under_load::log::Messages;
use chat_under_load::{
    Chat, admit_socket, on_connect, passport_and_chat, register_chat_handlers, router,
    socket_io_builder,
};
use postgres::{PgMessageLog, PgUserStore};
use shared_rate_limit::SharedRateLimit;
use socketioxide::SocketIo;
use socketioxide::adapter::Emitter;
use socketioxide::handler::ConnectHandler;
use socketioxide_redis::drivers::fred::{FredDriver, FredError};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use step02_sessions::BackgroundTasks;
use step03_passport_like_auth::{Passport, UserStore};
use step04_socket_middleware::{RateLimit, authenticate_socket, check_origin};
use step05_chat::{BuildError, ChatConfig, db};
use tokio::sync::mpsc;
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::clients::SubscriberClient;
use tower_sessions_redis_store::fred::interfaces::{EventInterface, PubsubInterface};
use tower_sessions_redis_store::fred::prelude::{
    Builder, ClientLike, Config, PerformanceConfig, Pool, ReconnectPolicy,
};
use tower_sessions_redis_store::fred::types::{Message, RespVersion};

/// The Socket.IO adapter of a cluster node: socketioxide's Redis adapter, over `fred`.
pub type ClusterAdapter = CustomRedisAdapter<Emitter, ResubscribingDriver>;

// ANCHOR: resubscribing_driver
/// socketioxide-redis's `fred` driver, plus one thing it lacks: after Redis restarts, the
/// connection comes back by itself but its pub/sub subscriptions do not, and without them this
/// node would silently stop hearing the other nodes' broadcasts. This wrapper remembers every
/// channel the adapter subscribes to and subscribes again after each reconnection.
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
        tokio::spawn(resubscribe_after_reconnections(client, channels));
        Ok(driver)
    }
}

/// Subscribes to every remembered channel again after each reconnection, until Redis has
/// accepted them all. (Not fred's `on_reconnect`: its listener stops for good when it falls
/// behind, and a subscription that failed once would never be tried again.)
pub(crate) async fn resubscribe_after_reconnections(
    client: SubscriberClient,
    channels: Arc<Mutex<BTreeSet<String>>>,
) {
    let mut reconnections = client.reconnect_rx();
    loop {
        match reconnections.recv().await {
            // Fallen behind a few reconnections: one pass covers them all.
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return, // the client is gone
        }
        let wanted: Vec<String> = lock(&channels).iter().cloned().collect();
        tracing::warn!(
            count = wanted.len(),
            "reconnected to Redis: subscribing again"
        );
        'pass: for channel in &wanted {
            // `ssubscribe` because the fred driver uses sharded pub/sub. A failure is tried
            // again until it works, or until the connection is lost again (the next pass).
            while let Err(error) = client.ssubscribe(channel.as_str()).await {
                tracing::error!(%error, channel, "could not subscribe again: retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                if !reconnections.is_empty() {
                    break 'pass;
                }
            }
        }
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

/// Subscribes `client` to `channel` (sharded pub/sub, as the adapter's driver does), again
/// after each reconnection to Redis, and hands its messages to `read` until it ends. A node's
/// own channels (the notices of [`feed`] and of [`presence`]) are hints that a periodic pass
/// makes up for: a failed subscription is logged, not fatal.
pub(crate) async fn follow_channel<F: std::future::Future<Output = ()>>(
    client: SubscriberClient,
    channel: &str,
    read: impl FnOnce(tokio::sync::broadcast::Receiver<Message>) -> F,
) {
    let channels = Arc::new(Mutex::new(BTreeSet::from([channel.to_owned()])));
    let resubscribing = resubscribe_after_reconnections(client.clone(), channels);
    let messages = client.message_rx();
    if let Err(error) = client.ssubscribe(channel).await {
        tracing::error!(%error, channel, "could not subscribe: the periodic pass alone reads");
    }
    tokio::select! {
        () = resubscribing => {}
        () = read(messages) => {}
    }
}

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

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// What stops step 5 from starting (the database).
    #[error(transparent)]
    Chat(#[from] BuildError),
    /// Redis could not be reached or set up.
    #[error("redis: {0}")]
    Redis(String),
    /// PostgreSQL could not be reached, or its tables set up.
    #[error("database: {0}")]
    Database(String),
}

fn redis_error(error: impl std::fmt::Display) -> NodeError {
    NodeError::Redis(error.to_string())
}

/// A built node: the router to serve, and its `io`, to close its sockets on shutdown.
#[derive(Debug)]
pub struct Node {
    /// Everything, HTTP and Socket.IO, as one axum router.
    pub router: Router,
    /// The `io` object, over the Redis adapter.
    pub io: SocketIo<ClusterAdapter>,
    /// The chat's background jobs (step 5), stopped once the node has stopped serving.
    pub tasks: BackgroundTasks,
}

// ANCHOR: build
/// Builds one node of a cluster whose nodes share `redis_url` and `config.database_url`: step
/// 5's server, with the sessions and the Socket.IO adapter in Redis. On PostgreSQL
/// (`DATABASE_URL=postgres://...`) the nodes may run on several machines and keep step 5's
/// promises across them ([`build_on_postgres`]); on a SQLite file, they share one machine.
pub async fn build(config: ChatConfig, redis_url: &str) -> Result<Node, NodeError> {
    let redis = connect(redis_url).await?;
    if postgres::is_postgres(&config.database_url) {
        return build_on_postgres(config, redis).await;
    }
    let pool = db::open_database(&config.database_url)
        .await
        .map_err(BuildError::from)?;
    let (passport, chat) = passport_and_chat(&config, pool);
    // Each node broadcasts its new messages through the adapter.
    let chat = chat.broadcast_through_adapter().with_shared_presence();
    let (router, io) = assemble(&config, passport, chat.clone(), redis).await?;
    let tasks = chat.tasks().clone();
    Ok(Node { router, io, tasks })
}

/// The node around its passport and chat: step 5's chain, over the Redis adapter.
async fn assemble<U: UserStore>(
    config: &ChatConfig,
    passport: Passport<U>,
    chat: Chat,
    redis: RedisParts,
) -> Result<(Router, SocketIo<ClusterAdapter>), NodeError> {
    let (rate, enabled) = (&config.rate_limit, config.limits.enabled);
    let shared_limit = SharedRateLimit::new(redis.sessions.clone(), rate, enabled);
    let presence_writer = redis.sessions.clone();
    let session_store = RedisStore::new(redis.sessions);
    let (socket_layer, io) = socket_io_builder(config, chat.clone(), &session_store)
        .with_state(shared_limit)
        .with_adapter::<ClusterAdapter>(redis.adapter)
        .build_layer();
    // Step 5's chain written out, to add a middleware after `register_chat_handlers`
    // (`.with(b)` runs `b` first), whose `chat message` handler replaces step 5's. A remote
    // adapter subscribes to its Redis channels before the node may accept sockets.
    let chain = on_connect
        .with(shared_rate_limit::register_chat_message)
        .with(register_chat_handlers)
        .with(admit_socket)
        .with(authenticate_socket)
        .with(check_origin);
    io.ns("/", chain).await.map_err(redis_error)?;
    // Presence across the cluster (see [`presence`]).
    let (tasks, node) = (chat.tasks().clone(), feed::node_id());
    tasks.spawn(presence::mirror(
        node,
        presence_writer.clone(),
        chat.clone(),
    ));
    let reader = presence::listen(node, redis.presence, presence_writer, chat, io.clone());
    tasks.spawn(reader);
    let router = router(passport, config, session_store, socket_layer, io.clone());
    Ok((router, io))
}
// ANCHOR_END: build

// ANCHOR: build_on_postgres
/// [`build`] on PostgreSQL: users and messages in the database every node reaches, each
/// room's messages delivered by each node's own sequencer, in order, once, whichever node
/// stored them (see [`feed`]).
async fn build_on_postgres(config: ChatConfig, redis: RedisParts) -> Result<Node, NodeError> {
    let pool = postgres::open(&config.database_url)
        .await
        .map_err(|error| NodeError::Database(error.to_string()))?;
    let (notices, delivered) = mpsc::channel(feed::NOTICES_WAITING);
    let log = PgMessageLog::new(pool.clone(), notices);
    let passport =
        Passport::with_hasher_params(PgUserStore::new(pool.clone()), config.hashing.clone())
            .with_limits(config.auth_limits.clone());
    let rate = RateLimit::new(
        f64::from(config.rate_limit.burst),
        config.rate_limit.per_second,
    );
    let chat = Chat::new(Messages::new(log), rate)
        .with_limits(config.limits.clone())
        .with_presence_page(config.presence_page)
        .with_shared_presence();

    let (publisher, subscriber) = (redis.sessions.clone(), redis.notices.clone());
    let (router, io) = assemble(&config, passport, chat.clone(), redis).await?;
    let (tasks, node) = (chat.tasks().clone(), feed::node_id());
    tasks.spawn(feed::publish(node, publisher, delivered));
    tasks.spawn(feed::listen(node, subscriber, chat.clone(), io.clone()));
    tasks.spawn(feed::sweep(pool, chat, io.clone()));
    Ok(Node { router, io, tasks })
}
// ANCHOR_END: build_on_postgres

/// Closes every socket of this node (for a graceful shutdown). The node tells the others
/// through Redis; with Redis down that would wait until Redis is back, and the node could not
/// be stopped. It gets 5 s.
pub async fn close_sockets(io: SocketIo<ClusterAdapter>) {
    if tokio::time::timeout(Duration::from_secs(5), io.close())
        .await
        .is_err()
    {
        tracing::warn!("closing the sockets through Redis took too long: stopping anyway");
    }
}

// ANCHOR: connect
/// A node's two uses of Redis.
struct RedisParts {
    /// A pool for the session store (and anything else that reads and writes keys).
    sessions: Pool,
    /// What the Socket.IO adapter needs: a subscriber connection, wrapped in our driver.
    adapter: RedisAdapterCtr<ResubscribingDriver>,
    /// A subscriber connection for the other nodes' notices (on PostgreSQL, see [`feed`]).
    notices: SubscriberClient,
    /// A subscriber connection for the rooms whose presence changed (see [`presence`]).
    presence: SubscriberClient,
}

/// Connects to Redis for sessions and for the adapter.
async fn connect(redis_url: &str) -> Result<RedisParts, NodeError> {
    let redis_config = Config::from_url(redis_url).map_err(redis_error)?;
    // Start-up fails at once if Redis is not there (fred's `fail_fast`), but once running,
    // a lost connection is retried for ever, backing off up to 1 s between attempts: a node
    // is back at most a second after Redis is (with fred's default of 5 s, a node could stay
    // deaf for seconds after a long outage ended).
    let reconnect = || ReconnectPolicy::new_exponential(0, 100, 1_000, 2);

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
    let subscriber = Builder::from_config(subscriber_config.clone())
        .set_policy(reconnect())
        .build_subscriber_client()
        .map_err(redis_error)?;
    let subscriber_client = || {
        Builder::from_config(subscriber_config.clone())
            .set_policy(reconnect())
            .build_subscriber_client()
            .map_err(redis_error)
    };
    let (notices, presence) = (subscriber_client()?, subscriber_client()?);
    notices.init().await.map_err(redis_error)?;
    presence.init().await.map_err(redis_error)?;
    let driver = ResubscribingDriver::new(subscriber)
        .await
        .map_err(redis_error)?;
    let adapter = RedisAdapterCtr::new_with_driver(driver, RedisAdapterConfig::default());
    Ok(RedisParts {
        sessions,
        adapter,
        notices,
        presence,
    })
}
// ANCHOR_END: connect
