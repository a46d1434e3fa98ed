//! A classroom whose network does not reach the Internet: with
//! `SOCKET_IO_CLIENT=local` the server hands out the Socket.IO client itself,
//! and the chat works in a browser that can reach nothing but this machine.
//! Without it, the same browser gets a page that says why it cannot chat.

mod support;

use serde_json::{Value, json};
use step01_http_vs_socket::SocketIoClient;
use support::{
    Options, TestApp, register_in_page as register, spawn_app,
    spawn_app_built_by,
};

/// The chat as `SOCKET_IO_CLIENT=local cargo run -p step05-chat` serves it.
async fn spawn_app_serving_the_client() -> TestApp {
    let client = SocketIoClient::local(&testkit::socket_io_browser_bundle())
        .expect("the npm package holds the pinned client");
    let build = move |config| async move {
        let mut chat = step05_chat::build(config).await?;
        chat.router = client.apply(chat.router);
        Ok::<_, step05_chat::BuildError>(chat)
    };
    spawn_app_built_by(build, Options::default()).await
}

#[tokio::test]
async fn without_internet_the_chat_works_when_the_server_serves_the_client() {
    let app = spawn_app_serving_the_client().await;
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
async fn without_internet_the_default_page_cannot_load_the_client_and_says_so()
{
    // The control: the chat as it starts by default, in the same browser.
    let app = spawn_app().await;
    let url = format!("http://localhost:{}/", app.address.port());
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
