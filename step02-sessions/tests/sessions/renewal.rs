//! How activity keeps a session alive: a read alone does not; `touch` does,
//! rationed.

use std::time::Duration as StdDuration;

use axum::Json;
use axum::Router;
use axum::routing::{get, post};
use reqwest::header::COOKIE;
use serde_json::{Value, json};
use step02_sessions::{MemoryStore, renew, touch};
use time::Duration;
use tower_sessions::Session;

use crate::helpers::{cookie_pair, set_cookies, spawn_app, test_config};

#[tokio::test]
async fn reading_a_session_does_not_keep_it_alive() {
    // The demo's `GET /api/session` only reads: the deadline stays where the
    // write put it.
    let app = spawn_app(
        &test_config().max_age(Duration::seconds(3)),
        MemoryStore::default(),
    )
    .await;
    let cookie = app.new_session_cookie().await;
    for _ in 0..2 {
        tokio::time::sleep(StdDuration::from_millis(1000)).await;
        assert_eq!(app.session_with_cookie(&cookie).await.visits, 1);
    }
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    // 3.5 s after the write, 1.5 s after the last read: gone.
    assert_eq!(app.session_with_cookie(&cookie).await.visits, 0);
}

/// A server with a login that starts renewal and an endpoint that `touch`es,
/// with the given `max_age`. Answers `{"alive": bool, "renewed": bool}`.
async fn spawn_touching_app(max_age: Duration) -> (String, reqwest::Client) {
    async fn login(session: Session) -> Result<(), String> {
        renew(&session).await.map_err(|e| e.to_string())
    }
    async fn plain_write(session: Session) -> Result<(), String> {
        session.insert("x", 1).await.map_err(|e| e.to_string())
    }
    async fn activity(session: Session) -> Result<Json<Value>, String> {
        let renewed = touch(&session).await.map_err(|e| e.to_string())?;
        let alive = !session.is_empty().await;
        Ok(Json(json!({ "alive": alive, "renewed": renewed })))
    }
    let config = test_config().max_age(max_age);
    let app = Router::new()
        .route("/login", post(login))
        .route("/plain", post(plain_write))
        .route("/activity", get(activity))
        .layer(config.layer(MemoryStore::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(step01_http_vs_socket::serve(
        listener,
        app,
        std::future::pending(),
    ));
    (address, reqwest::Client::new())
}

/// `POST path` without a cookie; the session cookie it set, as `name=value`.
async fn start(client: &reqwest::Client, address: &str, path: &str) -> String {
    let response = client
        .post(format!("{address}{path}"))
        .send()
        .await
        .expect("POST");
    cookie_pair(&set_cookies(&response)[0])
}

/// `GET /activity` with `cookie`: its JSON, and its `Set-Cookie` headers.
async fn activity(
    client: &reqwest::Client,
    address: &str,
    cookie: &str,
) -> (Value, Vec<String>) {
    let response = client
        .get(format!("{address}/activity"))
        .header(COOKIE, cookie)
        .send()
        .await
        .expect("GET /activity");
    let cookies = set_cookies(&response);
    (response.json().await.expect("JSON"), cookies)
}

#[tokio::test]
async fn touch_keeps_an_active_session_alive_past_max_age() {
    let (address, client) = spawn_touching_app(Duration::seconds(3)).await;
    let cookie = start(&client, &address, "/login").await;
    // Active every second for five seconds: longer than max_age since the
    // login.
    for _ in 0..5 {
        tokio::time::sleep(StdDuration::from_millis(1000)).await;
        let (answer, _) = activity(&client, &address, &cookie).await;
        assert_eq!(answer, json!({ "alive": true, "renewed": true }));
    }
    // Then idle for longer than max_age: gone, as without touch.
    tokio::time::sleep(StdDuration::from_millis(3500)).await;
    let (answer, _) = activity(&client, &address, &cookie).await;
    assert_eq!(answer["alive"], false, "{answer}");
}

#[tokio::test]
async fn touch_renews_at_most_once_per_thirtieth_of_max_age() {
    // 30 s, so at most one renewal a second (30 days: one a day).
    let (address, client) = spawn_touching_app(Duration::seconds(30)).await;
    let cookie = start(&client, &address, "/login").await;

    let (answer, cookies) = activity(&client, &address, &cookie).await;
    assert_eq!(answer["renewed"], false, "just renewed by the login");
    assert!(cookies.is_empty(), "no write, no cookie: {cookies:?}");

    tokio::time::sleep(StdDuration::from_millis(1200)).await;
    let (answer, cookies) = activity(&client, &address, &cookie).await;
    assert_eq!(answer["renewed"], true);
    assert_eq!(cookies.len(), 1, "the renewal sends the cookie again");
    assert!(cookies[0].contains("Max-Age=30"), "{cookies:?}");
    assert_eq!(cookie_pair(&cookies[0]), cookie, "same session, same id");

    let (answer, cookies) = activity(&client, &address, &cookie).await;
    assert_eq!(answer["renewed"], false);
    assert!(cookies.is_empty(), "{cookies:?}");
}

#[tokio::test]
async fn touch_leaves_a_session_that_was_never_renewed_alone() {
    let (address, client) = spawn_touching_app(Duration::seconds(3)).await;
    let cookie = start(&client, &address, "/plain").await;
    for _ in 0..2 {
        tokio::time::sleep(StdDuration::from_millis(1000)).await;
        let (answer, cookies) = activity(&client, &address, &cookie).await;
        assert_eq!(answer, json!({ "alive": true, "renewed": false }));
        assert!(cookies.is_empty(), "{cookies:?}");
    }
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    let (answer, _) = activity(&client, &address, &cookie).await;
    assert_eq!(answer["alive"], false, "{answer}");
}
