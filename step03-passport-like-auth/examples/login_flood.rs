//! A login flood against a running step03 server, reporting what it costs the
//! server.
//!
//! Start a release server, then point this at it (Linux: it reads the server's
//! memory from `/proc/<pid>/status`):
//!
//! ```console
//! cargo build --release -p step03-passport-like-auth --bins \
//!     --example login_flood
//! RATE_LIMITS=off PORT=3003 target/release/step03-passport-like-auth &
//! target/release/examples/login_flood --url http://127.0.0.1:3003 \
//!     --pid $! --logins 200
//! ```
//!
//! It sends `--logins` logins at once (a quarter right, a quarter wrong, half
//! for unknown users), and, while they are in flight, one legitimate login that
//! retries on `503` after `Retry-After`, like the page does. It prints the
//! answers by status, the slowest answer, the legitimate login's latency, and
//! the server's resident memory (RSS) before, at its peak during the flood, and
//! 5 s after it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::json;

#[derive(Debug)]
struct Args {
    url: String,
    pid: u32,
    logins: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "http://127.0.0.1:3000".to_owned(),
        pid: 0,
        logins: 200,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let value = words.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => args.url = value,
            "--pid" => {
                args.pid = value.parse().map_err(|_| "--pid: a number")?
            }
            "--logins" => {
                args.logins = value.parse().map_err(|_| "--logins: a number")?
            }
            _ => {
                return Err(format!(
                    "unknown flag {flag}: use --url, --pid, --logins"
                ));
            }
        }
    }
    if args.pid == 0 {
        return Err("--pid <the server's process id> is required".to_owned());
    }
    Ok(args)
}

/// The server's resident memory in MiB, from `/proc/<pid>/status`.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

async fn login(
    client: &Client,
    url: &str,
    username: &str,
    password: &str,
) -> (StatusCode, u64) {
    let response = client
        .post(format!("{url}/login"))
        .json(&json!({ "username": username, "password": password }))
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    match response {
        Ok(response) => {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok()?.parse().ok())
                .unwrap_or(1);
            (response.status(), retry_after)
        }
        Err(_) => (StatusCode::REQUEST_TIMEOUT, 1),
    }
}

/// A person logging in during the flood: retries after a 503 or 429 as the page
/// would.
async fn legitimate_login(url: String) -> (Duration, usize, StatusCode) {
    let client = Client::new();
    let started = Instant::now();
    for attempt in 1..=20 {
        let (status, retry_after) =
            login(&client, &url, "alice", "correct-horse").await;
        let busy = [
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::TOO_MANY_REQUESTS,
        ];
        if !busy.contains(&status) {
            return (started.elapsed(), attempt, status);
        }
        tokio::time::sleep(Duration::from_secs(retry_after)).await;
    }
    (started.elapsed(), 20, StatusCode::SERVICE_UNAVAILABLE)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let client = Client::new();
    // Warm up: one login, so that the baseline includes a server that has
    // hashed once.
    login(&client, &args.url, "alice", "correct-horse").await;
    let before = rss_mib(args.pid);

    // Samples the server's memory every 10 ms until the end, keeping the
    // highest.
    let peak_probe = std::sync::Arc::new(std::sync::Mutex::new(0.0_f64));
    let probe = {
        let (pid, peak) = (args.pid, std::sync::Arc::clone(&peak_probe));
        tokio::spawn(async move {
            loop {
                let now = rss_mib(pid);
                {
                    let mut peak =
                        peak.lock().unwrap_or_else(|e| e.into_inner());
                    *peak = peak.max(now);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let started = Instant::now();
    let flood: Vec<_> = (0..args.logins)
        .map(|n| {
            let (client, url) = (client.clone(), args.url.clone());
            tokio::spawn(async move {
                let (username, password) = match n % 4 {
                    0 => ("alice".to_owned(), "correct-horse"),
                    1 => ("alice".to_owned(), "wrong-password"),
                    _ => (format!("nobody{n}"), "whatever-pw"),
                };
                let sent = Instant::now();
                let (status, _) =
                    login(&client, &url, &username, password).await;
                (status, sent.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let legitimate = tokio::spawn(legitimate_login(args.url.clone()));

    let mut by_status = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    for login in flood {
        let (status, took) = login.await?;
        *by_status.entry(status.as_u16()).or_insert(0) += 1;
        slowest = slowest.max(took);
    }
    let flood_time = started.elapsed();
    let (legit_took, legit_attempts, legit_status) = legitimate.await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    probe.abort();
    let peak = *peak_probe.lock().unwrap_or_else(|e| e.into_inner());
    let after = rss_mib(args.pid);

    println!("logins {} answered in {flood_time:.2?}", args.logins);
    println!("answers by status {by_status:?}, slowest {slowest:.2?}");
    println!(
        "legitimate login: {legit_status} after {legit_took:.2?} \
         ({legit_attempts} attempt(s))"
    );
    println!(
        "server RSS: before {before:.0} MiB, peak {peak:.0} MiB (+{:.0}), 5 s \
         after {after:.0} MiB (+{:.0})",
        peak - before,
        after - before
    );
    Ok(())
}
