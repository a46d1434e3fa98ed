//! Exercise 3: a rate limit every node shares.

use std::time::Duration;

use serde_json::{Value, json};
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use step03_passport_like_auth::User;
use step05_chat::Chat;
use step05_chat::chat::{ChatError, send_message};
use step05_chat::rate_limit::RateLimiter;
use tower_sessions_redis_store::fred::interfaces::KeysInterface;
use tower_sessions_redis_store::fred::prelude::{Error as RedisError, Pool};
use tower_sessions_redis_store::fred::types::ExpireOptions;

use crate::ClusterAdapter;

// ANCHOR: shared_rate_limit
// A new module, `src/shared_rate_limit.rs`.
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
        let window = (limiter.burst() / limiter.per_second()).ceil();
        SharedRateLimit {
            redis,
            burst: limiter.burst() as i64,
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
        // ANCHOR: pipeline
        let pipeline = self.redis.next().pipeline();
        let () = pipeline.incr(&key).await?; // queued, not yet sent
        let () = pipeline
            .expire(&key, self.window_secs, Some(ExpireOptions::NX))
            .await?;
        // Sent, with both answers.
        let (count, _expire_set): (i64, i64) = pipeline.all().await?;
        // ANCHOR_END: pipeline
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

// `build` puts the limit in each socket's extensions, in the same connect middleware that
// registers this handler in place of step 5's `chat message`.
/// `chat message` on a cluster node: the shared limit, then step 5's `send_message`, whose
/// per-node limiter still applies. (Asked here, before `send_message` has checked the payload,
/// a malformed message uses up a turn too.)
pub async fn on_chat_message(
    socket: SocketRef<ClusterAdapter>,
    Extension(user): Extension<User>,
    Extension(shared): Extension<SharedRateLimit>,
    State(chat): State<Chat>,
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
