//! The cluster on PostgreSQL (chapter "Scaling out with Redis"): node processes, each in a
//! working directory of its own, behind one Redis and one PostgreSQL, keep step 5's promises
//! across nodes. Needs `TEST_POSTGRES_URL` (`bash scripts/test.sh` starts a throw-away
//! PostgreSQL through `scripts/with-postgres.sh`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use scaling_with_redis::presence::DEAD_NODE_GONE_WITHIN;

use serde_json::{Value, json};
use testkit::{JsClient, JsSocket, OnlineList, RedisServer};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

const PASSWORD: &str = "correct horse battery staple";

/// A database of one test on the test PostgreSQL server, dropped with it (declare it before
/// the nodes: they are dropped, and killed, first).
struct Database {
    url: String,
    server: String,
    name: String,
}

impl std::ops::Deref for Database {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Drop runs outside async: a thread with a runtime of its own. `FORCE` closes what a
        // killed node left open. On a server of your own, nothing piles up.
        let (admin, name) = (format!("{}/postgres", self.server), self.name.clone());
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                if let Ok(admin) = sqlx::PgPool::connect(&admin).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    sqlx::query(&drop).execute(&admin).await.ok();
                }
            });
        });
        dropping.join().ok();
    }
}

/// A fresh database on the test PostgreSQL server.
async fn fresh_database() -> Database {
    let server = std::env::var("TEST_POSTGRES_URL").expect(
        "TEST_POSTGRES_URL is not set: run `bash scripts/with-postgres.sh cargo test -p \
         scaling-with-redis` (bash scripts/test.sh does it), or point it at a PostgreSQL \
         role that may CREATE DATABASE",
    );
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "cluster_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres"))
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("create a database");
    admin.close().await;
    Database {
        url: format!("{server}/{name}"),
        server,
        name,
    }
}

/// The secret every node of this test run signs cookies with: random, as
/// `openssl rand -hex 32` would make it.
fn session_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| {
        use std::hash::BuildHasher;
        (0..4u64)
            .map(|n| {
                format!(
                    "{:016x}",
                    std::collections::hash_map::RandomState::new().hash_one(n)
                )
            })
            .collect()
    })
}

/// One node: the `scaling-with-redis` binary in a working directory of its own.
struct Node {
    address: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start(redis_url: &str, database_url: &str) -> Node {
        Node::start_with(redis_url, database_url, &[]).await
    }

    /// [`Node::start`], with `env` added last (so it may override).
    async fn start_with(redis_url: &str, database_url: &str, env: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_scaling-with-redis"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("REDIS_URL", redis_url)
            .env("DATABASE_URL", database_url)
            // Every node signs cookies with the same key.
            .env("SESSION_SECRET", session_secret())
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            // The tests send fast on purpose.
            .env("RATE_LIMITS", "off")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start a node");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let started = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("This node is running: open http://") {
                    return url.split('/').next()?.parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await;
        let Ok(Some(address)) = started else {
            panic!("the node did not start (its error, if any, is above)");
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Node {
            address,
            child,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Kills the node with SIGKILL: no goodbye to its sockets, to Redis or to PostgreSQL.
    async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL the node");
    }

    /// Registers `username` (or logs in, if it exists) and returns the session cookie.
    async fn session(&self, username: &str) -> String {
        let http = reqwest::Client::new();
        let body = json!({ "username": username, "password": PASSWORD });
        for path in ["/register", "/login"] {
            let response = http
                .post(format!("{}{path}", self.url()))
                .json(&body)
                .send()
                .await
                .expect("POST");
            if response.status().is_success() {
                let cookie = response.headers()["set-cookie"].to_str().expect("ASCII");
                return cookie.split(';').next().expect("a cookie").to_owned();
            }
        }
        panic!("could not register nor log in {username}");
    }

    /// A connected socket with `cookie` (and `auth`), after its `history`, which is returned.
    async fn socket(&self, js: &JsClient, cookie: &str, auth: Value) -> (JsSocket, Value) {
        let opts = json!({
            "transports": ["websocket"],
            "extraHeaders": { "cookie": cookie },
            "auth": auth,
        });
        let socket = js.connect(&self.url(), opts).await;
        socket.expect_connect().await;
        let history = socket.next_named("history").await.data().clone();
        (socket, history)
    }
}

/// Reads `chat message` events until `socket` has seen every id of `expected`, or nothing
/// comes for 10 s. Returns the ids in the order they came.
async fn read_until(socket: &JsSocket, expected: &HashSet<i64>, mut seen: Vec<i64>) -> Vec<i64> {
    while !expected.iter().all(|id| seen.contains(id)) {
        let Some(event) = socket
            .try_next_named("chat message", Duration::from_secs(10))
            .await
        else {
            break;
        };
        seen.push(event.data()["id"].as_i64().expect("an id"));
    }
    seen
}

/// Asserts that `seen` holds every id of `expected`, each once, in increasing order.
fn assert_once_in_order(who: &str, seen: &[i64], expected: &HashSet<i64>) {
    let distinct: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        seen.len(),
        "{who} got a message twice: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "{who} got messages out of order: {seen:?}"
    );
    let missing: Vec<_> = expected.difference(&distinct).collect();
    assert!(missing.is_empty(), "{who} never got {missing:?}");
}

/// Sends `count` messages to `room` from `socket`, ten at a time (each ten sent at once, the next ten
/// once they are acknowledged), and returns the ids of the acknowledged ones. Stops at the
/// first ten not all acknowledged (its node is gone).
async fn send_many(socket: &JsSocket, who: &str, room: &str, count: usize) -> Vec<i64> {
    let mut acked = Vec::new();
    for tens in 0..count.div_ceil(10) {
        let payloads = (tens * 10..count.min(tens * 10 + 10))
            .map(|n| {
                let (text, offset) = (format!("{who} {n}"), format!("{who}-{n}"));
                json!([{ "room": room, "text": text, "clientOffset": offset }])
            })
            .collect::<Vec<_>>();
        let sent = payloads.len();
        let acks = socket.emit_many("chat message", payloads).await;
        acked.extend(acks.iter().filter_map(|ack| ack["id"].as_i64()));
        if acked.len() < tens * 10 + sent {
            break;
        }
    }
    acked
}

// ANCHOR: three_nodes_test
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_on_every_node_gets_every_message_once_in_order() {
    let redis = RedisServer::start().await;
    let database = fresh_database().await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Node::start(&redis.url, &database).await);
    }
    let js = JsClient::start().await;
    // On each node, a reader and a sender.
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let reader = node.session(&format!("reader{n}")).await;
        readers.push(node.socket(&js, &reader, json!({})).await.0);
        let sender = node.session(&format!("sender{n}")).await;
        senders.push((
            format!("sender{n}"),
            node.socket(&js, &sender, json!({})).await.0,
        ));
    }

    // The three senders at once: their messages interleave in the room.
    let sending = senders
        .iter()
        .map(|(who, socket)| send_many(socket, who, "general", 100));
    let acked: HashSet<i64> = futures_util::future::join_all(sending)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(acked.len(), 300, "every message acknowledged");

    for (n, reader) in readers.iter().enumerate() {
        let seen = read_until(reader, &acked, Vec::new()).await;
        assert_once_in_order(&format!("the reader on node {n}"), &seen, &acked);
    }
}
// ANCHOR_END: three_nodes_test

// ANCHOR: killed_node_test
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_moving_from_a_killed_node_catches_up_exactly_once_in_every_room() {
    let redis = RedisServer::start().await;
    let database = fresh_database().await;
    let a = Node::start(&redis.url, &database).await;
    let b = Node::start(&redis.url, &database).await;
    let js = JsClient::start().await;
    let reader_cookie = a.session("reader").await;
    let (reader, _) = a.socket(&js, &reader_cookie, json!({})).await;
    let (alice, _) = a.socket(&js, &a.session("alice").await, json!({})).await;
    let (bob, _) = b.socket(&js, &b.session("bob").await, json!({})).await;
    let (carol, _) = b.socket(&js, &b.session("carol").await, json!({})).await;
    for socket in [&reader, &alice, &carol] {
        let joined = socket.emit_with_ack("join", json!(["rust"])).await;
        assert!(joined["error"].is_null(), "{joined}");
    }

    // Alice (on A) and Carol (on B) send in `rust`, Bob (on B) in `general`; node A is
    // killed with SIGKILL in the middle of it, once the reader has seen 100 messages.
    let alice_sends = send_many(&alice, "alice", "rust", 200);
    let bob_sends = send_many(&bob, "bob", "general", 200);
    let carol_sends = send_many(&carol, "carol", "rust", 200);
    let kill_a = async {
        let mut seen = Vec::new();
        while seen.len() < 100 {
            seen.push(room_and_id(&reader.next_named("chat message").await));
        }
        a.kill().await;
        seen
    };
    let (alice_acked, bob_acked, carol_acked, mut seen) =
        tokio::join!(alice_sends, bob_sends, carol_sends, kill_a);
    assert_eq!(
        bob_acked.len() + carol_acked.len(),
        400,
        "node B acknowledged all"
    );
    assert!(alice_acked.len() < 200, "node A was killed mid-stream");
    // Whatever else reached the reader's client before the kill.
    while let Some(event) = reader
        .try_next_named("chat message", Duration::from_millis(200))
        .await
    {
        seen.push(room_and_id(&event));
    }
    let last_seen = |room: &str| {
        let ids = seen.iter().filter(|(r, _)| r == room).map(|(_, id)| *id);
        ids.max().unwrap_or(0)
    };

    // The reader comes back through node B with its offset in each room, as the page would:
    // `general`'s in the handshake, `rust`'s when it joins again.
    let auth = json!({ "serverOffset": last_seen("general") });
    let (reader, _) = b.socket(&js, &reader_cookie, auth).await;
    let join = json!([{ "room": "rust", "serverOffset": last_seen("rust") }]);
    let joined = reader.emit_with_ack("join", join).await;
    assert!(joined["error"].is_null(), "{joined}");
    let general: HashSet<i64> = bob_acked.into_iter().collect();
    let rust: HashSet<i64> = alice_acked.into_iter().chain(carol_acked).collect();
    let everything: HashSet<i64> = general.union(&rust).copied().collect();
    while !everything
        .iter()
        .all(|id| seen.iter().any(|(_, seen)| seen == id))
    {
        let Some(event) = reader
            .try_next_named("chat message", Duration::from_secs(10))
            .await
        else {
            break;
        };
        seen.push(room_and_id(&event));
    }
    // Everything acknowledged (to Alice before her node died, to Bob, to Carol) reached the
    // reader, once each, in each room's order.
    for (room, expected) in [("general", &general), ("rust", &rust)] {
        let ids: Vec<i64> = seen
            .iter()
            .filter(|(r, _)| r == room)
            .map(|(_, id)| *id)
            .collect();
        assert_once_in_order(&format!("the reader, in {room}"), &ids, expected);
    }
}
// ANCHOR_END: killed_node_test

// ANCHOR: presence_test
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_one_list_on_every_node_and_drops_a_killed_node_s_users_within_the_bound() {
    let redis = RedisServer::start().await;
    let database = fresh_database().await;
    let a = Node::start(&redis.url, &database).await;
    let b = Node::start(&redis.url, &database).await;
    let c = Node::start(&redis.url, &database).await;
    let js = JsClient::start().await;
    let (alice, _) = a.socket(&js, &a.session("alice").await, json!({})).await;
    let (bob, _) = b.socket(&js, &b.session("bob").await, json!({})).await;
    let (carol, _) = c.socket(&js, &c.session("carol").await, json!({})).await;
    // Dave has a tab on node A and one on node C: listed once.
    let dave_cookie = a.session("dave").await;
    let (dave_on_a, _) = a.socket(&js, &dave_cookie, json!({})).await;
    let (dave_on_c, _) = c.socket(&js, &dave_cookie, json!({})).await;
    let sockets = [
        ("alice", &alice),
        ("bob", &bob),
        ("carol", &carol),
        ("dave on A", &dave_on_a),
        ("dave on C", &dave_on_c),
    ];
    let mut lists: Vec<OnlineList> = sockets.iter().map(|_| OnlineList::default()).collect();
    let everyone = ["alice", "bob", "carol", "dave"];
    let deadline = Instant::now() + Duration::from_secs(10);
    for ((who, socket), list) in sockets.iter().zip(&mut lists) {
        list.wait_for(who, socket, &everyone, deadline).await;
    }

    // Node C is killed: no goodbye. Carol leaves every list within the stated bound; Dave,
    // still on node A, stays.
    c.kill().await;
    let deadline = Instant::now() + DEAD_NODE_GONE_WITHIN;
    let survivors = ["alice", "bob", "dave"];
    for (index, ((who, socket), list)) in sockets.iter().zip(&mut lists).enumerate() {
        if [0, 1, 3].contains(&index) {
            list.wait_for(who, socket, &survivors, deadline).await;
        }
    }
}
// ANCHOR_END: presence_test

/// A `chat message` event's room and id.
fn room_and_id(event: &testkit::Event) -> (String, i64) {
    let message = event.data();
    let room = message["room"].as_str().expect("a room").to_owned();
    (room, message["id"].as_i64().expect("an id"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_while_redis_is_down_reach_the_other_node_from_the_database() {
    let mut redis = RedisServer::start().await;
    let database = fresh_database().await;
    let a = Node::start(&redis.url, &database).await;
    let b = Node::start(&redis.url, &database).await;
    let js = JsClient::start().await;
    let (alice, _) = a.socket(&js, &a.session("alice").await, json!({})).await;
    let (bob, _) = b.socket(&js, &b.session("bob").await, json!({})).await;

    redis.kill();
    // No notice can go from A to B now; the messages are in PostgreSQL all the same.
    let acked: HashSet<i64> = send_many(&alice, "alice", "general", 5)
        .await
        .into_iter()
        .collect();
    assert_eq!(acked.len(), 5, "stored and acknowledged without Redis");
    let seen = read_until(&bob, &acked, Vec::new()).await;
    assert_once_in_order("Bob, on the other node", &seen, &acked);
    redis.restart().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_again_through_another_node_is_stored_and_delivered_once() {
    let redis = RedisServer::start().await;
    let database = fresh_database().await;
    let a = Node::start(&redis.url, &database).await;
    let b = Node::start(&redis.url, &database).await;
    let js = JsClient::start().await;
    let cookie = a.session("alice").await;
    let (on_a, _) = a.socket(&js, &cookie, json!({})).await;
    let (reader, _) = b.socket(&js, &b.session("reader").await, json!({})).await;

    // The page sends again, with the same client offset, when an acknowledgement is late: here
    // through the other node, as after a reconnection the load balancer sent elsewhere.
    let message = json!([{ "room": "general", "text": "once", "clientOffset": "page-1" }]);
    let first = on_a.emit_with_ack("chat message", message.clone()).await;
    let (on_b, _) = b.socket(&js, &cookie, json!({})).await;
    let again = on_b.emit_with_ack("chat message", message).await;
    assert_eq!(
        first["id"], again["id"],
        "the same message: {first} {again}"
    );

    let id = first["id"].as_i64().expect("an id");
    let seen = read_until(&reader, &HashSet::from([id]), Vec::new()).await;
    assert_eq!(seen, [id]);
    assert!(
        reader
            .try_next_named("chat message", Duration::from_millis(1500))
            .await
            .is_none(),
        "delivered once, even after a sweep"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_everywhere_on_one_node_ends_the_sessions_made_on_another() {
    let redis = RedisServer::start().await;
    let database = fresh_database().await;
    let a = Node::start(&redis.url, &database).await;
    let b = Node::start(&redis.url, &database).await;
    let on_a = a.session("alice").await;
    let on_b = b.session("alice").await; // a login on the other node: a second session
    let http = reqwest::Client::new();
    let me = |node: &Node, cookie: &str| {
        let request = http
            .get(format!("{}/me", node.url()))
            .header("cookie", cookie);
        async move { request.send().await.expect("GET /me").status() }
    };
    assert_eq!(me(&b, &on_b).await, 200);

    let ended = http
        .post(format!("{}/logout-everywhere", a.url()))
        .header("cookie", &on_a)
        .json(&json!({}))
        .send()
        .await
        .expect("POST /logout-everywhere");
    assert!(ended.status().is_success(), "{}", ended.status());
    // The session epoch lives in PostgreSQL: node B sees it moved.
    assert_eq!(me(&b, &on_b).await, 401);
}

/// Retention on PostgreSQL, as in step 5: a room keeps its newest `ROOM_HISTORY_CAP` messages,
/// and a client coming back from a deleted one is told `truncated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_a_room_at_its_cap_on_postgres_and_says_truncated_past_it() {
    let redis = RedisServer::start().await;
    let database = fresh_database().await;
    let capped = [("RATE_LIMITS", "on"), ("ROOM_HISTORY_CAP", "5")];
    let a = Node::start_with(&redis.url, &database, &capped).await;
    let b = Node::start_with(&redis.url, &database, &capped).await;
    let js = JsClient::start().await;
    let (alice, _) = a.socket(&js, &a.session("alice").await, json!({})).await;
    let ids = send_many(&alice, "alice", "general", 12).await;

    let db = sqlx::PgPool::connect(&database)
        .await
        .expect("the database");
    let count = "SELECT COUNT(*) FROM messages WHERE room = 'general'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let kept: i64 = sqlx::query_scalar(count)
            .fetch_one(&db)
            .await
            .expect("count");
        if kept == 5 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {kept} kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // On the other node, back from the first message: gone, and said so; the 5 kept follow.
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    let back = json!({ "serverOffset": sorted[0] });
    let (bob, welcome) = b.socket(&js, &b.session("bob").await, back).await;
    assert_eq!(welcome["truncated"], true, "{welcome}");
    let kept: HashSet<i64> = sorted[7..].iter().copied().collect();
    let seen = read_until(&bob, &kept, Vec::new()).await;
    assert_eq!(seen, sorted[7..], "the 5 kept, in order, once");
}
