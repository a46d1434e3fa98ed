//! The checks of the exercises of the chapter "Scaling out with Redis", one per exercise. Each
//! fails on the code as shipped and passes once the exercise is done:
//!
//! ```console
//! cargo test -p scaling-with-redis --test cluster_exercises ex1 -- --ignored
//! ```
//!
//! They are `#[ignore]`d so that `cargo test` stays green on unsolved code. Each starts its
//! own `redis-server` (installed by `scripts/test.sh`).

// Step 5's test support, reused as it is.
// `rustfmt::skip`: step 5 formats it, at its own width (its rustfmt.toml).
#[path = "../../step05-chat/tests/support/mod.rs"]
#[rustfmt::skip]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Options, TestApp};
use testkit::{DEFAULT_WAIT, JsSocket, RedisServer};
use tower_sessions::cookie::Key;

/// A node as `scaling_with_redis::build` builds it (your code), behind `redis_url`, on a free
/// port.
async fn spawn_node(redis_url: &str, options: Options) -> TestApp {
    let build = |config| async move {
        let node = scaling_with_redis::build(config, redis_url)
            .await
            .expect("build the node");
        let (io, tasks) = (node.io.clone(), node.tasks.clone());
        let close = async move {
            scaling_with_redis::close_sockets(io).await;
            tasks.stop().await;
        };
        (node.router, close)
    };
    support::spawn_server(build, options).await
}

/// `GET /health`: the status and the JSON body (`null` if it is not JSON). A request that
/// takes more than 5 s fails the check: a load balancer would have given up on it.
async fn health(app: &TestApp) -> (u16, Value) {
    let response = app
        .http
        .get(app.url("/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("GET /health answers within 5 s");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Asks `GET /health` every 200 ms until it answers `expected`, for up to `wait`.
async fn wait_for_health(app: &TestApp, expected: (u16, Value), wait: Duration, why: &str) {
    let started = Instant::now();
    loop {
        let got = health(app).await;
        if got == expected {
            return;
        }
        assert!(
            started.elapsed() < wait,
            "{why}: GET /health should answer {expected:?} within {wait:?}, still {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex1_health_endpoint() {
    let mut redis = RedisServer::start().await;
    let node = spawn_node(&redis.url, Options::default()).await;
    assert_eq!(
        health(&node).await,
        (200, json!({ "redis": "ok" })),
        "a node whose Redis is up"
    );
    node.connected(&node.register("alice").await).await;

    redis.kill();
    let down = (503, json!({ "redis": "down" }));
    wait_for_health(&node, down, Duration::from_secs(10), "Redis was killed").await;

    redis.restart().await;
    let ok = (200, json!({ "redis": "ok" }));
    // fred retries every second at most: give it a few attempts.
    wait_for_health(&node, ok, Duration::from_secs(20), "Redis is back").await;
}

/// Two nodes sharing a Redis server, a database file and a cookie key, as in tests/cluster.rs;
/// `rate_limit` as in `Options`.
struct Cluster {
    a: TestApp,
    b: TestApp,
    _redis: RedisServer,
}

async fn spawn_cluster(rate_limit: Option<(u32, f64)>) -> Cluster {
    let redis = RedisServer::start().await;
    let database = Arc::new(tempfile::tempdir().expect("temp dir"));
    let key = Key::generate();
    let node = || Options {
        database: Some(database.clone()),
        key: Some(key.clone()),
        rate_limit,
        ..Options::default()
    };
    let a = spawn_node(&redis.url, node()).await;
    let b = spawn_node(&redis.url, node()).await;
    Cluster {
        a,
        b,
        _redis: redis,
    }
}

/// Asks `online` through `socket`.
async fn online(socket: &JsSocket) -> Value {
    socket.emit_with_ack("online", json!([])).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex2_online_across_nodes() {
    let Cluster { a, b, _redis } = spawn_cluster(None).await;
    // Alice has a tab on each node; bob is on node B.
    let alice = a.register("alice").await;
    let (alice_on_a, _) = a.connected(&alice).await;
    let (_alice_on_b, _) = b.connected(&alice).await;
    let (bob_on_b, _) = b.connected(&b.register("bob").await).await;

    let everyone = json!({ "sockets": 3, "users": 2 });
    assert_eq!(online(&alice_on_a).await, everyone, "asked on node A");
    assert_eq!(online(&bob_on_b).await, everyone, "asked on node B");

    // Bob leaves; node A hears of it (the server sees the disconnect a moment later).
    bob_on_b.close().await;
    let without_bob = json!({ "sockets": 2, "users": 1 });
    let started = Instant::now();
    loop {
        let got = online(&alice_on_a).await;
        if got == without_bob {
            break;
        }
        assert!(
            started.elapsed() < DEFAULT_WAIT,
            "after bob left, node A should answer {without_bob}, still {got}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex3_one_login_throttle_for_the_whole_cluster() {
    // The default: 60 logins a minute from one address. This test's 70 come
    // from one address (127.0.0.1), in turn through each node, each for a name
    // of its own, so that only the per-address count can refuse them.
    let Cluster { a, b, _redis } = spawn_cluster(None).await;
    let mut answered = 0;
    let mut refused = Vec::new();
    for n in 1..=35 {
        for (node, app) in [("A", &a), ("B", &b)] {
            let login =
                json!({ "username": format!("nobody{n}{node}"), "password": "wrong password" });
            let response = app.post_json("/login", None, login).await;
            match response.status().as_u16() {
                401 => answered += 1,
                429 => {
                    let retry_after = response.headers().get("retry-after").cloned();
                    assert!(retry_after.is_some(), "a 429 says when to come back");
                    refused.push(format!("{n} via {node}"));
                }
                status => panic!("login {n} via {node}: {status}"),
            }
        }
    }
    assert_eq!(
        (answered, refused.len()),
        (60, 10),
        "one address gets 60 logins a minute from the whole cluster, not 60 per node; \
         refused: {refused:?}"
    );
}
