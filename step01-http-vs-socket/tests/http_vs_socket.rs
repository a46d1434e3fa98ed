//! Step 1, seen from the outside: a plain HTTP client and the official
//! Socket.IO client against the real server on a free port.

use std::net::SocketAddr;

use serde_json::{Value, json};
use step01_http_vs_socket::{
    LOCAL_CLIENT_PATH, ServeLimits, SocketIoClient, TimeReply, app, serve,
    serve_with,
};
use testkit::JsClient;

/// The server under test, on a port the OS picked.
struct TestApp {
    address: SocketAddr,
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

async fn spawn_app() -> TestApp {
    spawn(app()).await
}

async fn spawn(app: axum::Router) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(serve(listener, app, std::future::pending()));
    TestApp { address }
}

/// The app in the offline classroom mode, `SOCKET_IO_CLIENT=local`: the
/// Socket.IO client served by the server itself, from the npm package the tests
/// install.
async fn spawn_app_serving_the_client() -> TestApp {
    let client = SocketIoClient::local(&testkit::socket_io_browser_bundle())
        .expect("the npm package holds the pinned client");
    spawn(client.apply(app())).await
}

#[tokio::test]
async fn every_http_answer_needs_its_own_request() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    for expected in 1..=3 {
        let reply: TimeReply = client
            .get(app.url("/api/time"))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON body");
        assert_eq!(reply.request_number, expected);
    }
}

#[tokio::test]
async fn page_loads_the_pinned_socket_io_client() {
    // The page as written; `serve` points it at its own copy when it has one.
    let app = spawn_app_with_the_cdn_client().await;
    let response = reqwest::get(app.url("/")).await.expect("request");
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("body");
    assert!(
        html.contains(testkit::SOCKET_IO_CDN_URL),
        "CDN script tag missing"
    );
    assert!(html.contains(testkit::SOCKET_IO_SRI), "SRI hash missing");
}

#[tokio::test]
async fn server_pushes_ticks_without_being_asked() {
    let app = spawn_app().await;
    let client = JsClient::start().await;
    let socket = client.connect(&app.url("/"), json!({})).await;
    socket.expect_connect().await;
    // The client sends nothing: these arrive only because the server decides to
    // send them.
    let first = socket.next_named("tick").await;
    let second = socket.next_named("tick").await;
    assert_eq!(first.data()["seq"], 1);
    assert_eq!(second.data()["seq"], 2);
}

#[tokio::test]
async fn ping_is_answered_with_an_acknowledgement() {
    let app = spawn_app().await;
    let client = JsClient::start().await;
    let socket = client.connect(&app.url("/"), json!({})).await;
    socket.expect_connect().await;
    let ack = socket
        .emit_with_ack("ping", json!([{ "client_time_ms": 1234.5 }]))
        .await;
    assert_eq!(ack["client_time_ms"], 1234.5);
    assert!(ack["server_time_ms"].as_u64().is_some(), "ack: {ack}");
}

#[tokio::test]
async fn ping_with_a_wrong_payload_gets_an_error_not_silence() {
    let app = spawn_app().await;
    let client = JsClient::start().await;
    let socket = client.connect(&app.url("/"), json!({})).await;
    socket.expect_connect().await;
    let ack = socket.emit_with_ack("ping", json!(["not an object"])).await;
    assert!(ack["error"].as_str().is_some(), "ack: {ack}");
    // The connection survives the bad input.
    let ack = socket
        .emit_with_ack("ping", json!([{ "client_time_ms": 1.0 }]))
        .await;
    assert_eq!(ack["client_time_ms"], 1.0);
}

async fn connect_with_transports(
    transports: Value,
) -> (String, Option<String>) {
    let app = spawn_app().await;
    let client = JsClient::start().await;
    let socket = client
        .connect(&app.url("/"), json!({ "transports": transports }))
        .await;
    let first = socket.expect_connect().await;
    let upgrade = socket
        .try_next_named("upgrade", std::time::Duration::from_secs(3))
        .await
        .map(|e| e.raw["transport"].as_str().unwrap_or_default().to_owned());
    // Whatever the transport, the socket works both ways.
    socket.next_named("tick").await;
    let ack = socket
        .emit_with_ack("ping", json!([{ "client_time_ms": 7.0 }]))
        .await;
    assert_eq!(ack["client_time_ms"], 7.0);
    (first, upgrade)
}

#[tokio::test]
async fn works_over_long_polling_only() {
    let (transport, upgrade) =
        connect_with_transports(json!(["polling"])).await;
    assert_eq!(transport, "polling");
    assert_eq!(upgrade, None);
}

#[tokio::test]
async fn works_over_websocket_only() {
    let (transport, upgrade) =
        connect_with_transports(json!(["websocket"])).await;
    assert_eq!(transport, "websocket");
    assert_eq!(upgrade, None);
}

#[tokio::test]
async fn starts_with_polling_then_upgrades_to_websocket() {
    let (transport, upgrade) =
        connect_with_transports(json!(["polling", "websocket"])).await;
    assert_eq!(transport, "polling");
    assert_eq!(upgrade.as_deref(), Some("websocket"));
}

#[tokio::test]
async fn the_page_shows_pushed_ticks_and_the_websocket_transport() {
    let app = spawn_app().await;
    let png = std::env::temp_dir()
        .join(format!("step01-page-{}.png", app.address.port()));
    let report = testkit::browser_check(
        &app.url("/"),
        &png,
        &[("#transport", "websocket"), ("#ticks", "3")],
    )
    .await;
    assert_eq!(report["errors"], json!([]), "page errors: {report}");
}

/// Run in a page: writes the corner radius of its first panel into a new
/// `#corners` element, for a `read` step.
const READ_PANEL_CORNERS: &str = "const out = document.createElement('output'); \
    out.id = 'corners'; \
    out.textContent = getComputedStyle(document.querySelector('section')) \
        .borderRadius; \
    document.body.append(out);";

#[tokio::test]
async fn the_page_takes_its_look_from_the_shared_stylesheet() {
    let app = spawn_app().await;
    let css = reqwest::get(app.url("/steps.css")).await.expect("request");
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    // The rounded panels come from /steps.css only: if the browser refused
    // the file (a wrong type under `nosniff`, a policy), they would be square.
    let report = testkit::browser_run(json!([
        { "goto": app.url("/") },
        { "evaluate": READ_PANEL_CORNERS },
        { "read": "#corners", "as": "corners" },
    ]))
    .await;
    assert_eq!(report["read"]["corners"], "8px", "{report}");
    assert_eq!(report["errors"], json!([]), "page errors: {report}");
}

#[tokio::test]
async fn in_local_mode_the_page_loads_the_client_from_this_server() {
    let app = spawn_app_serving_the_client().await;
    let page = reqwest::get(app.url("/")).await.expect("request");
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("ASCII policy")
        .to_owned();
    let html = page.text().await.expect("body");
    assert!(
        html.contains(&format!("src=\"{LOCAL_CLIENT_PATH}\"")),
        "{html}"
    );
    assert!(!html.contains(testkit::SOCKET_IO_CDN_URL), "still the CDN");
    // The same bytes, so the same integrity hash still applies.
    assert!(html.contains(testkit::SOCKET_IO_SRI), "SRI hash missing");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("cdn.socket.io"), "{policy}");

    let file = reqwest::get(app.url(LOCAL_CLIENT_PATH))
        .await
        .expect("request");
    assert_eq!(file.status(), 200);
    assert_eq!(
        file.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let bytes = file.bytes().await.expect("body");
    let npm =
        std::fs::read(testkit::socket_io_browser_bundle()).expect("npm file");
    assert!(bytes == npm, "not the npm package's file");
}

#[tokio::test]
async fn in_local_mode_the_page_works_with_no_internet_at_all() {
    let app = spawn_app_serving_the_client().await;
    let report = testkit::browser_run_without_internet(json!([
        { "goto": app.url("/") },
        { "waitText": "#transport", "text": "websocket" },
        { "waitText": "#ticks", "text": "3" },
    ]))
    .await;
    assert_eq!(report["errors"], json!([]), "page errors: {report}");
    assert_eq!(report["blocked"], json!([]), "asked the Internet: {report}");
}

/// The app with its pages as written, loading the client from the CDN
/// (`SOCKET_IO_CLIENT=cdn`, or a machine without the npm package).
async fn spawn_app_with_the_cdn_client() -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address = listener.local_addr().expect("local address");
    let limits = ServeLimits::default();
    tokio::spawn(serve_with(listener, app(), std::future::pending(), limits));
    TestApp { address }
}

#[tokio::test]
async fn by_default_the_page_works_with_no_internet_once_the_client_is_installed()
 {
    // `bash scripts/test.sh` installed the npm package: `serve` hands it out.
    let app = spawn_app().await;
    let report = testkit::browser_run_without_internet(json!([
        { "goto": app.url("/") },
        { "waitText": "#transport", "text": "websocket" },
    ]))
    .await;
    assert_eq!(report["errors"], json!([]), "page errors: {report}");
    assert_eq!(report["blocked"], json!([]), "asked the Internet: {report}");
}

#[tokio::test]
async fn with_no_internet_the_cdn_page_says_the_client_could_not_be_loaded() {
    // The control: the page as written, the same blocked network.
    let app = spawn_app_with_the_cdn_client().await;
    let report = testkit::browser_run_without_internet(json!([
        { "goto": app.url("/") },
        { "waitText": "#status", "text": "could not be loaded" },
    ]))
    .await;
    assert_eq!(
        report["blocked"],
        json!([testkit::SOCKET_IO_CDN_URL]),
        "{report}"
    );
}
