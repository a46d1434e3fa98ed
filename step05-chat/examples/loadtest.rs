//! A load test of the chat, with the official Socket.IO client on the other end.
//!
//! ```console
//! cargo run --release -p step05-chat --example loadtest -- --users 50 --sockets 500 --messages 200
//! ```
//!
//! It starts the real chat in this process (on a free loopback port, over a temporary SQLite
//! file), registers `--users` accounts over HTTP, then runs `testkit/js/loadtest.mjs`, which
//! opens `--sockets` sockets spread over those users and sends `--messages` messages to
//! `general` (all at once, or `--rate` per second). Every socket receives every message, so
//! deliveries = sockets × messages.
//!
//! Printed: connects/s, deliveries/s, the latency from send to each delivery (p50, p99), and
//! the server's memory per socket (the growth of this process's RSS while the sockets were
//! opened, divided by their number). The rate limit is lifted for the run: it measures the
//! server, not the limiter.
//!
//! With `--cluster`, it starts a throw-away `redis-server` and two chat nodes in this process,
//! sharing the SQLite file, the cookie key and `REDIS_URL` (chapter "Scaling out with Redis").
//! The users register on node A; the sockets alternate between the nodes, and so do the
//! senders, so every message crosses Redis to reach half of its recipients. The RSS figure is
//! then both nodes' memory (one process) per socket; Redis's own memory is not in it.
//!
//! ```console
//! cargo run --release -p step05-chat --example loadtest -- --cluster --users 50 --sockets 500 --messages 200
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use step02_sessions::SessionConfig;
use step03_passport_like_auth::argon2;
use step04_socket_middleware::SocketSettings;
use step05_chat::ChatConfig;
use step05_chat::rate_limit::RateLimiter;
use tokio::io::{AsyncBufReadExt, BufReader};
use tower_sessions::cookie::Key;

struct Args {
    users: usize,
    sockets: usize,
    messages: usize,
    rate: usize,
    transport: String,
    /// Two nodes behind one Redis instead of one process.
    cluster: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        users: 20,
        sockets: 200,
        messages: 100,
        rate: 0,
        transport: "websocket".into(),
        cluster: false,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        if flag == "--cluster" {
            args.cluster = true; // the one flag without a value
            continue;
        }
        let value = words
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag} takes a whole number, got {value:?}"))
        };
        match flag.as_str() {
            "--users" => args.users = number()?.max(1),
            "--sockets" => args.sockets = number()?.max(1),
            "--messages" => args.messages = number()?,
            "--rate" => args.rate = number()?,
            "--transport" => args.transport = value.clone(),
            _ => {
                return Err(format!(
                    "unknown flag {flag}: use --users, --sockets, --messages, --rate, --transport, --cluster"
                ));
            }
        }
    }
    Ok(args)
}

/// This process's resident memory, in KiB, from /proc (Linux only).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Starts one chat server (a node of a cluster if `redis_url` is set) on a free loopback port,
/// over the database in `database`, signing cookies with `key`. Returns its address.
async fn start_node(
    database: &tempfile::TempDir,
    key: &Key,
    redis_url: Option<String>,
) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let config = ChatConfig {
        database_url: format!("sqlite://{}", database.path().join("load.db").display()),
        sessions: SessionConfig::with_key(key.clone()),
        sockets: SocketSettings {
            allowed_origins: step05_chat::config::allowed_origins(address, None),
            session_recheck: Duration::from_secs(30),
            limits: Default::default(),
        },
        rate_limit: RateLimiter::new(u32::MAX, 1e9),
        hashing: argon2::Params::new(8, 1, 1, None)?,
        socket_buffer: step05_chat::delivery::DEFAULT_SOCKET_BUFFER,
        limits: step05_chat::limits::ChatLimits::off(),
        auth_limits: step03_passport_like_auth::AuthLimits::disabled(),
        redis_url,
    };
    let chat = step05_chat::build(config).await?;
    tokio::spawn(step01_http_vs_socket::serve(
        listener,
        chat.router,
        std::future::pending(),
    ));
    Ok(address)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let database = tempfile::tempdir()?;
    let key = Key::generate();
    // Kept until the end of `main`: dropping it stops Redis.
    let redis = if args.cluster {
        Some(testkit::RedisServer::start().await)
    } else {
        None
    };
    let mut nodes = Vec::new();
    for _ in 0..if args.cluster { 2 } else { 1 } {
        let redis_url = redis.as_ref().map(|redis| redis.url.clone());
        nodes.push(start_node(&database, &key, redis_url).await?);
    }
    // Accounts are in the shared database and sessions in Redis: a cookie from node A is
    // good on node B.
    let address = nodes[0];

    let http = reqwest::Client::new();
    let mut cookies = Vec::new();
    for n in 0..args.users {
        let response = http
            .post(format!("http://{address}/register"))
            .json(&json!({ "username": format!("load{n}"), "password": "load-test-password" }))
            .send()
            .await?;
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .ok_or("register did not set a cookie")?
            .to_owned();
        cookies.push(cookie);
    }

    testkit::ensure_node_modules();
    let rss_before = rss_kib();
    let mut plan = json!({
        "url": format!("http://{address}/"), "cookies": cookies,
        "sockets": args.sockets, "messages": args.messages, "transports": [args.transport],
        "rate": args.rate,
    });
    if args.cluster {
        // Socket i connects to node i % 2, and message n is sent by socket n.
        let urls: Vec<String> = nodes.iter().map(|node| format!("http://{node}/")).collect();
        plan["urls"] = json!(urls);
    }
    let mut child = tokio::process::Command::new("node")
        .arg(testkit::js_dir().join("loadtest.mjs"))
        .arg(plan.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut rss_connected = None;
    let mut report = None;
    while let Some(line) = lines.next_line().await? {
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            eprintln!("{line}");
            continue;
        };
        match event["phase"].as_str() {
            Some("connected") => rss_connected = rss_kib(),
            Some("done") => report = Some(event),
            _ => eprintln!("{line}"),
        }
    }
    child.wait().await?;
    let report = report.ok_or("the client script ended without a report")?;

    let per_socket_kib = match (rss_before, rss_connected) {
        (Some(before), Some(after)) => {
            format!(
                "{:.1}",
                after.saturating_sub(before) as f64 / args.sockets as f64
            )
        }
        _ => "n/a".into(),
    };
    let number = |key: &str| report[key].as_f64().unwrap_or(f64::NAN);
    let pace = match args.rate {
        0 => "all at once".to_owned(),
        rate => format!("{rate}/s"),
    };
    let (setup, rss_of) = if args.cluster {
        (
            " | 2 nodes + Redis, sockets and senders alternate",
            "both nodes' RSS (one process)",
        )
    } else {
        ("", "server RSS")
    };
    println!(
        "users {} | sockets {} ({}) | messages {} ({pace}){setup}",
        args.users, args.sockets, args.transport, args.messages
    );
    println!(
        "connects/s {:.0} | deliveries {}/{} ({}) | deliveries/s {:.0}",
        number("connects_per_sec"),
        report["deliveries"],
        report["expected_deliveries"],
        report["outcome"].as_str().unwrap_or("?"),
        number("deliveries_per_sec"),
    );
    println!(
        "latency p50 {:.1} ms | p99 {:.1} ms | refused sends {} | {rss_of} per socket {per_socket_kib} KiB",
        number("latency_ms_p50"),
        number("latency_ms_p99"),
        report["refused"],
    );
    Ok(())
}
