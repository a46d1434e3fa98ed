//! Two chat nodes behind one Redis and one database (chapter "Scaling out with Redis"): what
//! happens on one node must be seen on the other.

// Step 5's test support, reused as it is: this crate's nodes are step 5's chat.
// `rustfmt::skip`: step 5 formats it, at its own width (its rustfmt.toml).
#[path = "../../step05-chat/tests/support/mod.rs"]
#[rustfmt::skip]
mod support;

use std::sync::Arc;
use std::time::Duration;

use scaling_with_redis::presence::REFRESH_EVERY;
use serde_json::{Value, json};
use support::{Options, TestApp, say};
use testkit::{OnlineList, RedisServer};
use tokio::time::Instant;
use tower_sessions::cookie::Key;

/// A node of the cluster behind `redis_url`, on a free port.
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

/// Two nodes sharing a Redis server, a database file and a cookie key, as a cluster's nodes
/// share `REDIS_URL`, `DATABASE_URL` and `SESSION_SECRET`.
struct Cluster {
    a: TestApp,
    b: TestApp,
    _redis: RedisServer,
}

async fn spawn_cluster() -> Cluster {
    spawn_cluster_with(None, None).await
}

/// [`spawn_cluster`], with a message rate (burst, per second) as in `Options`, and both
/// nodes' sockets re-reading their sessions every `session_recheck`, when given.
async fn spawn_cluster_with(
    rate_limit: Option<(u32, f64)>,
    session_recheck: Option<Duration>,
) -> Cluster {
    let redis = RedisServer::start().await;
    let database = Arc::new(tempfile::tempdir().expect("temp dir"));
    let key = Key::generate();
    let node = || Options {
        database: Some(database.clone()),
        key: Some(key.clone()),
        rate_limit,
        session_recheck,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_through_node_a_reaches_a_client_on_node_b() {
    let cluster = spawn_cluster().await;
    let (alice, _) = cluster
        .a
        .connected(&cluster.a.register("alice").await)
        .await;
    let (bob, _) = cluster.b.connected(&cluster.b.register("bob").await).await;

    let ack = say(&alice, json!("hello from node A")).await;
    assert_eq!(ack["ok"], true, "{ack}");
    for socket in [&alice, &bob] {
        let message = socket.next_named("chat message").await.data().clone();
        assert_eq!(message["text"], "hello from node A");
        assert_eq!(message["user"]["username"], "alice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_node_a_is_valid_on_node_b() {
    let cluster = spawn_cluster().await;
    let cookie = cluster.a.register("alice").await;

    let me = cluster
        .b
        .http
        .get(cluster.b.url("/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("GET /me on node B");
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.expect("JSON")["username"], "alice");

    let (socket, _) = cluster.b.connected(&cookie).await;
    let ack = say(&socket, json!("connected to B with A's cookie")).await;
    assert_eq!(ack["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_node_a_disconnects_the_socket_on_node_b() {
    let cluster = spawn_cluster().await;
    let cookie = cluster.a.register("alice").await;
    let (on_b, _) = cluster.b.connected(&cookie).await;

    let response = cluster
        .a
        .post_json("/logout", Some(&cookie), json!({}))
        .await;
    assert_eq!(response.status(), 204);
    let disconnect = on_b
        .try_next_named("disconnect", Duration::from_secs(2))
        .await
        .expect("node B's socket is disconnected by a logout on node A");
    assert_eq!(disconnect.raw["reason"], "io server disconnect");

    let again = cluster.b.socket(Some(&cookie), json!({})).await;
    assert_eq!(again.expect_connect_error().await, "xhr poll error"); // a 401 handshake
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_node_a_goes_away_no_message_is_lost_and_node_b_keeps_serving() {
    let cluster = spawn_cluster().await;
    let alice_cookie = cluster.a.register("alice").await;
    let (alice_on_a, _) = cluster.a.connected(&alice_cookie).await;
    let (bob_on_b, _) = cluster.b.connected(&cluster.b.register("bob").await).await;
    for n in 1..=3 {
        assert_eq!(
            say(&alice_on_a, json!(format!("via A {n}"))).await["ok"],
            true
        );
    }
    for _ in 1..=3 {
        bob_on_b.next_named("chat message").await;
    }

    let Cluster { a, b, _redis } = cluster;
    a.stop().await; // node A is gone; its sockets with it

    // Alice comes back through node B, with the same cookie: her session is in Redis.
    let (alice_on_b, history) = b.connected(&alice_cookie).await;
    let texts = support::history_texts(&history);
    assert_eq!(texts, ["via A 1", "via A 2", "via A 3"]);
    assert_eq!(say(&alice_on_b, json!("via B now")).await["ok"], true);
    let message = bob_on_b.next_named("chat message").await.data().clone();
    assert_eq!(message["text"], "via B now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_redis_is_down_refuses_to_start() {
    // A URL nobody listens on: the node must say so at start-up, not fail later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let database = tempfile::tempdir().expect("temp dir");
    let listener_addr = "127.0.0.1:0".parse().expect("addr");
    let config = support::test_config(listener_addr, &database, &Key::generate(), (20, 5.0));
    let url = format!("redis://127.0.0.1:{port}");
    let build = scaling_with_redis::build(config, &url);
    let outcome = tokio::time::timeout(Duration::from_secs(20), build).await;
    match outcome {
        Ok(Err(error)) => assert!(error.to_string().starts_with("redis"), "{error}"),
        Ok(Ok(_)) => panic!("a node started without its Redis"),
        Err(_) => panic!("start-up hung instead of failing"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_degrades_the_cluster_and_a_restart_heals_it() {
    // Redis comes back empty, without the sessions: the session watch rightly
    // ends the sockets at its second look. An hour keeps it from looking while
    // this test watches the broadcasts on the sockets already open, whatever
    // `SESSION_RECHECK` is (step 4's exercise 1 makes it a second).
    let mut cluster = spawn_cluster_with(None, Some(Duration::from_secs(3600))).await;
    let cookie = cluster.a.register("alice").await;
    let (alice, _) = cluster.a.connected(&cookie).await;
    let (bob, _) = cluster.b.connected(&cluster.b.register("bob").await).await;

    cluster._redis.kill();
    // A message is still stored and acknowledged: the broadcast gives up after its deadline
    // instead of holding the sender (and the room) until Redis is back.
    let started = std::time::Instant::now();
    let ack = say(&alice, json!("during the outage")).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Sessions live in Redis: a login cannot be saved, and fails instead of hanging.
    let login = cluster
        .a
        .post_json(
            "/login",
            None,
            json!({ "username": "alice", "password": support::PASSWORD }),
        )
        .await;
    assert_eq!(login.status(), 500);

    // Redis comes back (empty). Broadcasts between the nodes resume by themselves.
    cluster._redis.restart().await;
    let mut delivered = false;
    for attempt in 0..20 {
        say(&alice, json!(format!("after the restart {attempt}"))).await;
        if let Some(event) = bob
            .try_next_named("chat message", Duration::from_secs(1))
            .await
        {
            assert!(event.data()["text"].is_string());
            delivered = true;
            break;
        }
    }
    assert!(
        delivered,
        "node B never heard from node A again after Redis restarted"
    );
    // The stored messages were never in danger: they are in the database.
    let (_, history) = cluster.b.connected(&cluster.b.login("bob").await).await;
    let texts = support::history_texts(&history);
    assert!(texts.contains(&"during the outage"), "{texts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_list_heals_after_redis_comes_back_empty() {
    // An hour between session looks, as in the outage test: Redis comes back
    // without the sessions.
    let mut cluster = spawn_cluster_with(None, Some(Duration::from_secs(3600))).await;
    let cookie = cluster.a.register("alice").await;
    let (alice, _) = cluster.a.connected(&cookie).await;
    let (_bob, _) = cluster.b.connected(&cluster.b.register("bob").await).await;
    let mut list = OnlineList::default();
    let soon = || Instant::now() + Duration::from_secs(10);
    list.wait_for("alice", &alice, &["alice", "bob"], soon())
        .await;

    // Redis restarts empty: both nodes' copies of their users are gone. Node B
    // writes its whole set again (at its next refresh, or when Carol comes),
    // so Bob comes back beside her, and stays.
    cluster._redis.restart().await;
    let (_carol, _) = cluster
        .b
        .connected(&cluster.b.register("carol").await)
        .await;
    let everyone = ["alice", "bob", "carol"];
    list.wait_for("alice", &alice, &everyone, soon()).await;
    for event in alice.drain(REFRESH_EVERY * 2).await {
        list.apply(&event);
    }
    list.wait_for(
        "alice, two refreshes later",
        &alice,
        &everyone,
        Instant::now(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_can_be_stopped_while_redis_is_down() {
    let mut cluster = spawn_cluster().await;
    let (_alice, _) = cluster
        .a
        .connected(&cluster.a.register("alice").await)
        .await;
    cluster._redis.kill();
    // Long enough for the node's Redis client to notice and start reconnecting: from then on,
    // commands wait for Redis instead of failing at once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let Cluster { a, b: _b, _redis } = cluster;
    // `stop` fails the test if the node has not stopped within 10 s.
    let started = std::time::Instant::now();
    a.stop().await;
    assert!(started.elapsed() < Duration::from_secs(10));
}

// ANCHOR: shared_limit_test
/// A user's message rate is counted in Redis: a tab on each node does not double it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_s_rate_limit_holds_across_nodes() {
    // 5 messages and (almost) no refill, one every 100 s: the count does not
    // depend on how fast this machine is.
    let Cluster { a, b, _redis } = spawn_cluster_with(Some((5, 0.01)), None).await;
    let alice = a.register("alice").await;
    let (on_a, _) = a.connected(&alice).await;
    let (on_b, _) = b.connected(&alice).await;
    let mut accepted = Vec::new();
    for n in 1..=6 {
        for (node, socket) in [("A", &on_a), ("B", &on_b)] {
            let ack = say(socket, json!(format!("{n} via {node}"))).await;
            match ack["ok"] == true {
                true => accepted.push(format!("{n} via {node}")),
                false => assert_eq!(ack, json!({ "error": "rate limited" })),
            }
        }
    }
    assert_eq!(accepted.len(), 5, "accepted: {accepted:?}");
    // Per user: bob, on node B, has his own.
    let (bob, _) = b.connected(&b.register("bob").await).await;
    assert_eq!(say(&bob, json!("bob")).await["ok"], true);
}
// ANCHOR_END: shared_limit_test
