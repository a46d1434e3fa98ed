//! One `spawn_token_app` for the token tests and the token exercise checks: the
//! chapter "JWT vs session"'s app on a free port, alice and bob registered, an
//! HTTP client and the official Socket.IO client at hand.
#![allow(dead_code)] // each test file uses a different part of this helper

use std::net::SocketAddr;

use jwt_vs_session::{TokenConfig, token_app};
use serde_json::{Value, json};
use step01_http_vs_socket::serve;
use step02_sessions::SessionConfig;
use step03_passport_like_auth::{MemoryUserStore, Passport};
use step04_socket_middleware::{AllowedOrigins, SocketSettings};
use testkit::{JsClient, JsSocket};
use tower_sessions::MemoryStore;
use tower_sessions::cookie::Key;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub address: SocketAddr,
    pub http: reqwest::Client,
    pub js: JsClient,
    /// The user store, to delete a user behind the server's back.
    pub users: MemoryUserStore,
}

/// Starts `token_app` with `tokens`, and alice and bob registered.
pub async fn spawn_token_app(tokens: TokenConfig) -> TestApp {
    let users = MemoryUserStore::default();
    let passport = Passport::new(users.clone());
    for name in ["alice", "bob"] {
        passport
            .register(name, PASSWORD)
            .await
            .expect("register a test user");
    }
    let address = testkit::spawn_server(|listener, address| {
        let origins = AllowedOrigins::for_port(address.port(), None);
        let sessions = SessionConfig::with_key(Key::generate());
        let store = MemoryStore::default();
        let settings = SocketSettings::new(origins);
        let router = token_app(passport, &sessions, store, settings, tokens);
        serve(listener, router, std::future::pending())
    })
    .await;
    let http = reqwest::Client::new();
    let js = JsClient::start().await;
    TestApp {
        address,
        http,
        js,
        users,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Logs in over HTTP and returns the session cookie, as `name=value`.
    pub async fn login(&self, username: &str) -> String {
        testkit::login(&self.http, &self.url(""), username, PASSWORD).await
    }

    pub async fn logout(&self, cookie: &str) -> reqwest::StatusCode {
        testkit::logout(&self.http, &self.url(""), cookie).await
    }

    /// `POST /token`, with the session cookie if there is one.
    pub async fn post_token(&self, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.http.post(self.url("/token"));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.expect("POST /token")
    }

    /// Logs in as `username`; returns the session cookie and a token from
    /// `POST /token`.
    pub async fn login_and_get_token(
        &self,
        username: &str,
    ) -> (String, String) {
        let cookie = self.login(username).await;
        let response = self.post_token(Some(&cookie)).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("a JSON body");
        let token = body["token"].as_str().expect("a token").to_owned();
        (cookie, token)
    }

    /// Logs in as `username` and returns a token from `POST /token`.
    pub async fn token_for(&self, username: &str) -> String {
        self.login_and_get_token(username).await.1
    }

    /// Opens a socket with the official JS client, with `io(url, opts)`.
    pub async fn socket(&self, opts: Value) -> JsSocket {
        self.js.connect(&self.url("/"), opts).await
    }

    /// `io(url, { auth: { token } })`, over WebSocket only.
    pub async fn socket_with_token(&self, token: &str) -> JsSocket {
        self.socket(
            json!({ "auth": { "token": token }, "transports": ["websocket"] }),
        )
        .await
    }
}
