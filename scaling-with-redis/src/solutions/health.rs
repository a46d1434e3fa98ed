//! Exercise 1: `GET /health`.

use std::time::Duration;

use axum::extract::State as HttpState;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_sessions_redis_store::fred::interfaces::ClientLike;
use tower_sessions_redis_store::fred::prelude::Pool;

// ANCHOR: health
// A new module, `src/health.rs`; `build` passes the node's router through
// `health::with_health(node.router, sessions)`, `sessions` being the Redis pool that
// `connect` returned (cloned before `build_server` takes it).
/// Adds `GET /health` to the chat's router, for the load balancer in front of the nodes: 200
/// while this node can reach its Redis, 503 when it cannot ("take me out of the rotation").
pub fn with_health(router: Router, redis: Pool) -> Router {
    // Added after the chat's layers, so outside them: no session, no login. The load balancer
    // has no cookie, and a health check must not depend on the session store. (Not with
    // `merge`: merging two routers keeps the second one's fallback, and the chat's Socket.IO
    // layer is reached through the first one's, so every socket would get a 404.)
    router.route("/health", get(health).with_state(redis))
}

async fn health(HttpState(redis): HttpState<Pool>) -> (StatusCode, Json<Value>) {
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
