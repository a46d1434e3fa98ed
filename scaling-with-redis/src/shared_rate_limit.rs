//! A rate limit every node of the cluster shares, because it is counted in Redis.

use std::convert::Infallible;
use std::time::Duration;

use chat_under_load::Chat;
use chat_under_load::chat::{ChatError, answer, send_message};
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use step03_passport_like_auth::User;
use step04_socket_middleware::InOrder;
use step05_chat::limits::MessageRate;
use tower_sessions_redis_store::fred::interfaces::KeysInterface;
use tower_sessions_redis_store::fred::prelude::{Error as RedisError, Pool};
use tower_sessions_redis_store::fred::types::ExpireOptions;

use crate::ClusterAdapter;

/// A per-user message limit that every node shares: at most `burst` messages in each window of
/// `burst / per_second` seconds (with the default 20 and 5 a second: 20 every 4 s), whichever
/// nodes they were sent through.
#[derive(Debug, Clone)]
pub struct SharedRateLimit {
    redis: Pool,
    burst: i64,
    window_secs: i64,
    /// `RATE_LIMITS=off` lifts this limit too, as it lifts the node's own.
    enabled: bool,
}

impl SharedRateLimit {
    /// A shared limit with the settings of the node's own limit, `rate`, on if `enabled`.
    pub fn new(redis: Pool, rate: &MessageRate, enabled: bool) -> Self {
        // A rate of 0 never refills: a window of a day stands in for "for ever".
        let window = (f64::from(rate.burst) / rate.per_second).ceil();
        SharedRateLimit {
            redis,
            burst: i64::from(rate.burst),
            window_secs: window.clamp(1.0, 86_400.0) as i64,
            enabled,
        }
    }

    // ANCHOR: check
    /// Counts one message of `user_id`; whether it is within the limit.
    async fn check(&self, user_id: i64) -> Result<bool, RedisError> {
        let key = format!("rate:{user_id}");
        // One round trip for both commands. INCR is atomic: two nodes counting at the same
        // moment get 1 and 2, never 1 and 1. EXPIRE ... NX starts the window at the first
        // message and never moves it; sent every time, so that a node that died between the
        // two commands cannot leave behind a counter that never expires.
        let pipeline = self.redis.next().pipeline();
        let () = pipeline.incr(&key).await?; // queued, not yet sent
        let () = pipeline
            .expire(&key, self.window_secs, Some(ExpireOptions::NX))
            .await?;
        // Sent, with both answers.
        let (count, _expire_set): (i64, i64) = pipeline.all().await?;
        Ok(count <= self.burst)
    }
    // ANCHOR_END: check

    /// [`Self::check`], for a handler: while Redis cannot answer, the message is let through
    /// and only the node's own limiter applies. Refusing every message would turn a Redis
    /// outage into a chat outage.
    async fn allows(&self, user_id: i64) -> bool {
        if !self.enabled {
            return true;
        }
        // fred would hold the command for up to 2 s while Redis is away, and the sender waits
        // for its acknowledgement meanwhile.
        let checked = tokio::time::timeout(Duration::from_secs(1), self.check(user_id)).await;
        match checked {
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

/// A connect middleware, after step 5's `register_chat_handlers`: registering `chat message`
/// again replaces step 5's handler with this crate's.
pub async fn register_chat_message(socket: SocketRef<ClusterAdapter>) -> Result<(), Infallible> {
    socket.on("chat message", on_chat_message);
    Ok(())
}

/// `chat message` on a cluster node: the shared limit, then step 5's `send_message`, whose
/// per-node limiter still applies. (Asked before `send_message` has checked the payload, a
/// malformed message uses up a turn too.)
async fn on_chat_message(
    socket: SocketRef<ClusterAdapter>,
    Extension(user): Extension<User>,
    State(chat): State<Chat>,
    State(limit): State<SharedRateLimit>,
    TryData(payload): TryData<Value>,
    ack: AckSender<ClusterAdapter>,
    mut turn: InOrder,
) {
    // This socket's messages in the order they came, as in the handler this one replaces.
    turn.wait().await;
    let sent = if limit.allows(user.id).await {
        send_message(&socket, &chat, &user, payload.unwrap_or(Value::Null), turn).await
    } else {
        Err(ChatError::RateLimited)
    };
    // As step 5's handler answers: a refusal is a strike, like any other.
    let reply = sent.map(|message| json!({ "ok": true, "id": message.id }));
    answer(&socket, ack, reply);
}
