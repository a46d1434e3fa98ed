//! The self-checks of the chapter's exercises, one per exercise. They are
//! `#[ignore]`d so that `cargo test` stays green on the starter code; run one
//! with `cargo test -p step01-http-vs-socket --test exercises ex1 --
//! --ignored`. Each fails on the code as shipped and passes once the exercise
//! is done.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use step01_http_vs_socket::{ServeLimits, app, serve, serve_with};
use testkit::{DEFAULT_WAIT, JsClient, JsSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts the app under test on a port the OS picked and returns its base URL.
async fn spawn_app() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address: SocketAddr = listener.local_addr().expect("local address");
    tokio::spawn(serve(listener, app(), std::future::pending()));
    format!("http://{address}/")
}

/// Connects one socket of the official client and waits until it is connected.
async fn connect(client: &JsClient, url: &str) -> JsSocket {
    let socket = client.connect(url, json!({})).await;
    socket.expect_connect().await;
    socket
}

/// [`spawn_app`], but on a runtime and a thread of its own. A tick loop that
/// lost its `.await` never gives its thread back; sharing the check's thread,
/// it would freeze the check instead of failing it.
fn spawn_app_on_its_own_thread() -> String {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let address = listener.local_addr().expect("local address");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the server");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)
                .expect("tokio listener");
            serve(listener, app(), std::future::pending()).await.ok();
        });
    });
    format!("http://{address}/")
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex1_faster_ticks() {
    let url = spawn_app_on_its_own_thread();
    let client = JsClient::start().await;
    let socket = client.connect(&url, json!({})).await;
    let frozen = |what: &str| {
        format!(
            "{what} within {DEFAULT_WAIT:?}: is the `.await` after \
             `interval.tick()` still there? Without it the loop never waits, \
             and nothing else runs on its thread."
        )
    };
    if socket
        .try_next_named("connect", DEFAULT_WAIT)
        .await
        .is_none()
    {
        panic!("{}", frozen("not even connected"));
    }

    // Each tick carries the server's clock, so delays on the way to the client
    // do not count.
    let mut stamps = Vec::new();
    for _ in 0..6 {
        let Some(tick) = socket.try_next_named("tick", DEFAULT_WAIT).await
        else {
            panic!(
                "{}",
                frozen(&format!("no tick after {} of them", stamps.len()))
            );
        };
        let stamp =
            tick.data()["server_time_ms"].as_u64().unwrap_or_else(|| {
                panic!("a tick without server_time_ms: {}", tick.raw)
            });
        stamps.push(stamp);
    }
    // The first tick comes at once, whatever the interval: measure the four
    // gaps after it.
    let average = (stamps[5] - stamps[1]) / 4;

    assert!(
        average < 800,
        "ticks come every {average} ms; the exercise asks for one every 500 ms"
    );
    assert!(
        average >= 200,
        "ticks come every {average} ms, much faster than 500 ms: is the \
         `.await` after `interval.tick()` still there?"
    );
}

/// Waits (up to 15 s, several `server-stats` periods) for a `server-stats`
/// event that counts `expected` sockets, and panics with what arrived instead.
async fn wait_for_stats(socket: &JsSocket, expected: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    loop {
        let left =
            deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(event) = socket.try_next_named("server-stats", left).await
        else {
            panic!(
                "no `server-stats` event with {{\"sockets\": {expected}}} \
                 within 15 s; received: {seen:?}"
            );
        };
        if event.data()["sockets"] == json!(expected) {
            return;
        }
        seen.push(event.data().clone());
    }
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex2_second_pushed_event() {
    let url = spawn_app().await;
    let client = JsClient::start().await;
    let alice = connect(&client, &url).await;
    let bob = connect(&client, &url).await;

    // Nobody asks: the server pushes the count to everybody, and it counts both
    // sockets.
    wait_for_stats(&alice, 2).await;
    wait_for_stats(&bob, 2).await;

    // The count follows the connections.
    bob.close().await;
    wait_for_stats(&alice, 1).await;
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex3_stop_ticks() {
    let url = spawn_app().await;
    let client = JsClient::start().await;
    let alice = connect(&client, &url).await;
    let bob = connect(&client, &url).await;
    alice.next_named("tick").await;

    // Without a `stop-ticks` handler, this waits 10 s and fails with "no
    // acknowledgement".
    let ack: Value = alice.emit_with_ack("stop-ticks", json!([])).await;
    assert_eq!(ack, json!({ "stopped": true }), "the acknowledgement");

    // A tick that was already on its way when the ack was sent may still
    // arrive: let it come, forget it, then listen for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while alice
        .try_next_named("tick", Duration::from_millis(100))
        .await
        .is_some()
    {}
    let late = alice.try_next_named("tick", Duration::from_secs(3)).await;
    assert!(
        late.is_none(),
        "alice still gets ticks 2 s after `stop-ticks` was acknowledged: {:?}",
        late.map(|tick| tick.raw)
    );

    // Alice is still connected: only the ticks stopped.
    let pong = alice
        .emit_with_ack("ping", json!([{ "client_time_ms": 1.0 }]))
        .await;
    assert_eq!(pong["client_time_ms"], 1.0, "ping after stop-ticks: {pong}");

    // Only alice asked: bob's ticks go on.
    while bob
        .try_next_named("tick", Duration::from_millis(100))
        .await
        .is_some()
    {}
    assert!(
        bob.try_next_named("tick", DEFAULT_WAIT).await.is_some(),
        "bob's ticks stopped too, but only alice sent `stop-ticks`"
    );
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex4_permissions_policy() {
    let url = spawn_app().await;
    let client = reqwest::Client::new();
    for path in ["", "api/time", "no-such-page"] {
        let response = client
            .get(format!("{url}{path}"))
            .send()
            .await
            .expect("request");
        let policy = response
            .headers()
            .get("permissions-policy")
            .unwrap_or_else(|| panic!("no Permissions-Policy on /{path}"))
            .to_str()
            .expect("a text header")
            .to_owned();
        for feature in ["camera=()", "microphone=()", "geolocation=()"] {
            assert!(
                policy.contains(feature),
                "the Permissions-Policy of /{path} should say {feature}: \
                 {policy:?}"
            );
        }
    }
}

const GET_TIME: &[u8] = b"GET /api/time HTTP/1.1\r\nHost: test\r\n\r\n";

/// Reads until the end of a response's headers, or panics after `DEFAULT_WAIT`.
async fn read_response_head(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    let reading = async {
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = stream.read(&mut buffer).await.expect("read");
            assert!(read > 0, "closed before answering");
            received.extend_from_slice(&buffer[..read]);
        }
    };
    tokio::time::timeout(DEFAULT_WAIT, reading)
        .await
        .expect("an answer");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex5_refuse_over_the_cap() {
    // One slot, and timeouts far longer than the check: only a refusal can
    // close the second connection within its two seconds.
    let limits = ServeLimits {
        max_connections: 1,
        header_read_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(30),
        ..ServeLimits::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(serve_with(listener, app(), std::future::pending(), limits));

    // The first connection is answered, and then kept open (keep-alive): it
    // holds the only slot.
    let mut first = TcpStream::connect(address).await.expect("connect");
    first.write_all(GET_TIME).await.expect("write");
    let answer = read_response_head(&mut first).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut second = TcpStream::connect(address).await.expect("connect");
    second.write_all(GET_TIME).await.ok();
    let mut received = Vec::new();
    let closed = tokio::time::timeout(
        Duration::from_secs(2),
        second.read_to_end(&mut received),
    )
    .await;
    assert!(
        closed.is_ok(),
        "over the cap, the second connection still waits after 2 s: it \
         should be accepted and closed at once"
    );
    let received = String::from_utf8_lossy(&received);
    assert!(
        !received.contains("200 OK"),
        "the second connection was served while the first held the only \
         slot: {received}"
    );
    drop(first);
}
