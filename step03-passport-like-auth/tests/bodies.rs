//! The bodies of the auth routes, from outside: how big they may be, and how
//! slowly they may come. The memory they may cost is `tests/trickle.rs`.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::spawn_demo_app;

use step03_passport_like_auth::AuthLimits;
use step03_passport_like_auth::api::MAX_AUTH_BODY_BYTES;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `head` and then `body` as they are, and reads the whole answer.
async fn raw_request(address: SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(body).await.expect("body");
    read_answer(&mut stream).await
}

async fn read_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    // The server closes a connection whose body it refused; a keep-alive
    // answer ends at its last byte, which `read` returns first.
    let mut chunk = [0; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}")
        {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn head(path: &str, content_type: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n\
         Content-Length: {length}\r\n\r\n"
    )
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// A character that takes 12 bytes in a form (`%F0%9F%94%91`) and in JSON
/// written with escapes (`\ud83d\udd11`): the longest way to send one.
const KEY: char = '\u{1F511}';

#[tokio::test]
async fn the_largest_honest_bodies_fit_and_a_larger_one_gets_a_413() {
    let address = spawn_demo_app(AuthLimits::default()).await;
    // 32 fullwidth letters (NFKC folds them onto `a`, a valid username), and
    // a password of 256 characters, each written the longest way.
    let username = "\u{FF41}".repeat(32);
    let password: String = std::iter::repeat_n(KEY, 256).collect();
    let form = format!(
        "username={}&password={}",
        percent_encode(&username),
        percent_encode(&password)
    );
    let json = format!(
        r#"{{"username":"{}","password":"{}"}}"#,
        json_escape(&username),
        json_escape(&password)
    );
    println!("form: {} bytes, JSON: {} bytes", form.len(), json.len());
    for (content_type, body, path, status) in [
        (FORM, &form, "/register", "201"),
        (JSON, &json, "/login", "200"),
    ] {
        assert!(body.len() <= MAX_AUTH_BODY_BYTES, "{} bytes", body.len());
        let answer = raw_request(
            address,
            &head(path, content_type, body.len()),
            body.as_bytes(),
        )
        .await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
    }

    // One byte over: JSON whitespace, so that only the size is wrong.
    let too_big = format!("{json}{}", " ".repeat(MAX_AUTH_BODY_BYTES));
    let too_big = &too_big[..MAX_AUTH_BODY_BYTES + 1];
    for path in ["/login", "/register", "/logout"] {
        let answer = raw_request(
            address,
            &head(path, JSON, too_big.len()),
            too_big.as_bytes(),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains(r#"{"error":"#), "{path}: {answer}");
    }
    // A body announced as a megabyte is refused before any of it is sent.
    let answer =
        raw_request(address, &head("/login", JSON, 1 << 20), b"").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

fn percent_encode(text: &str) -> String {
    text.bytes().map(|byte| format!("%{byte:02X}")).collect()
}

/// Every character as `\uXXXX` escapes (a surrogate pair beyond U+FFFF).
fn json_escape(text: &str) -> String {
    let mut units = [0; 2];
    text.chars()
        .flat_map(|c| c.encode_utf16(&mut units).to_vec())
        .map(|unit| format!("\\u{unit:04x}"))
        .collect()
}

#[tokio::test]
async fn a_body_that_stops_coming_gets_a_408_at_the_body_deadline() {
    let limits = AuthLimits {
        body_timeout: Duration::from_secs(1),
        ..AuthLimits::default()
    };
    let address = spawn_demo_app(limits).await;
    let started = Instant::now();
    // Ten bytes of the hundred announced, then nothing.
    let answer =
        raw_request(address, &head("/login", JSON, 100), b"{\"username").await;
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#"{"error":"#), "{answer}");
    // The body's deadline, not the request's (60 s by default).
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );
}
