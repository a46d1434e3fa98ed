//! A classroom whose network does not reach the Internet: the server hands
//! out the Socket.IO client itself whenever the npm package is installed (as
//! `bash scripts/test.sh` does), and the chat works in a browser that can
//! reach nothing but this machine. A page that loads the client from the CDN
//! (`SOCKET_IO_CLIENT=cdn`) says why it cannot chat.

mod support;

use serde_json::{Value, json};
use step01_http_vs_socket::{ServeLimits, serve_with};
use support::{register_in_page as register, spawn_app, test_config};
use tower_sessions::cookie::Key;

/// The chat with its page as written, loading the client from the CDN (what
/// `SOCKET_IO_CLIENT=cdn`, or a machine without the npm package, serves).
/// Served with `serve_with`, which leaves the pages as they are.
async fn spawn_chat_with_the_cdn_client() -> (String, tempfile::TempDir) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address = listener.local_addr().expect("local address");
    let database = tempfile::tempdir().expect("temp dir");
    let config = test_config(address, &database, &Key::generate(), (20, 5.0));
    let chat = step05_chat::build(config).await.expect("build the chat");
    let limits = ServeLimits::default();
    let serving =
        serve_with(listener, chat.router, std::future::pending(), limits);
    tokio::spawn(serving);
    (format!("http://localhost:{}/", address.port()), database)
}

#[tokio::test]
async fn without_internet_the_chat_works_as_it_starts_by_default() {
    let app = spawn_app().await;
    let url = format!("http://localhost:{}/", app.address.port());
    let mut steps = register(&url, "alice");
    steps.extend(register(&url, "bob"));
    steps.extend([
        json!({ "page": "alice", "fill": "#message-input",
                "value": "no Internet here" }),
        json!({ "page": "alice", "press": "#message-input", "key": "Enter" }),
        json!({ "page": "bob", "waitText": "#messages li.message .text",
                "text": "no Internet here" }),
        json!({ "page": "bob", "waitText": "#presence li", "text": "alice" }),
    ]);
    let report =
        testkit::browser_run_without_internet(Value::Array(steps)).await;
    assert_eq!(report["errors"], json!([]), "page errors: {report}");
    assert_eq!(
        report["blocked"],
        json!([]),
        "the page asked the Internet: {report}"
    );
}

#[tokio::test]
async fn without_internet_a_page_that_loads_the_cdn_client_says_so() {
    // The control: the page as written, in the same browser.
    let (url, _database) = spawn_chat_with_the_cdn_client().await;
    let report = testkit::browser_run_without_internet(json!([
        { "goto": url },
        { "waitText": "#auth-error", "text": "could not be loaded" },
    ]))
    .await;
    assert_eq!(
        report["blocked"],
        json!([testkit::SOCKET_IO_CDN_URL]),
        "{report}"
    );
}
