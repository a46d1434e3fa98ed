//! What slow login bodies cost the server. Alone in its own test binary,
//! because it measures the memory of the whole process.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::spawn_demo_app;

use step03_passport_like_auth::AuthLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The resident memory of this process, in bytes (Linux).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("resident pages");
    pages * 4096
}

// ANCHOR: trickle_bound
/// Connections that each send a login body one byte at a time.
const TRICKLES: usize = 200;
/// Bytes each sends, one every 10 ms.
const TRICKLED_BYTES: usize = 250;
/// What all of them together may add to this process's memory: 64 KiB each
/// (hyper's read buffer, the body so far, both ends' tasks and sockets; about
/// 30 KiB measured). Before the body was copied out of hyper's chunks, each
/// byte received kept about 4 KiB: +205 MiB for this test.
const TRICKLE_BOUND: u64 = TRICKLES as u64 * 64 * 1024;
// ANCHOR_END: trickle_bound

// ANCHOR: trickle_test
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_trickled_login_bodies_cost_a_bounded_amount_of_memory() {
    let limits = AuthLimits {
        // Longer than the trickle takes (2.5 s, more on a busy machine).
        body_timeout: Duration::from_secs(8),
        ..AuthLimits::default()
    };
    let address = spawn_demo_app(limits).await;
    let before = resident_bytes();
    let started = Instant::now();
    let trickles: Vec<_> = (0..TRICKLES)
        .map(|_| tokio::spawn(trickle_a_login(address)))
        .collect();
    // The peak, sampled while they trickle.
    let mut peak = before;
    while !trickles.iter().all(|trickle| trickle.is_finished()) {
        peak = peak.max(resident_bytes());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut streams = Vec::new();
    for trickle in trickles {
        streams.push(trickle.await.expect("trickle task"));
    }
    let grown = peak.max(resident_bytes()).saturating_sub(before);
    println!(
        "{TRICKLES} connections, {TRICKLED_BYTES} bytes each, in {:?}: \
         +{} KiB",
        started.elapsed(),
        grown / 1024
    );
    assert!(grown < TRICKLE_BOUND, "+{} KiB", grown / 1024);
    // And each is cut at the body's deadline, with a 408.
    for stream in &mut streams {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(20));
}
// ANCHOR_END: trickle_test

async fn trickle_a_login(address: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let head = "POST /login HTTP/1.1\r\nHost: test\r\n\
                Content-Type: application/json\r\n\
                Content-Length: 4000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("head");
    for _ in 0..TRICKLED_BYTES {
        // Whitespace: a valid start of a JSON body.
        if stream.write_all(b" ").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stream
}
