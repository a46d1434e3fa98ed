//! One way to start the real server for a test: `spawn_app`.

use std::time::Duration;

use reqwest::header::{COOKIE, SET_COOKIE};
use step02_sessions::{MemoryStore, SessionConfig, SessionView, app};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_sessions::SessionStore;
use tower_sessions::cookie::Key;

/// A running server and two clients: `browser` keeps cookies like a browser
/// does, `raw` keeps none, so that a test can read `Set-Cookie` and choose what
/// `Cookie` to send.
pub struct TestApp {
    pub address: String,
    pub browser: reqwest::Client,
    pub raw: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

/// The same 64-byte key every time, like a `SESSION_SECRET` that stays put
/// across restarts.
pub fn fixed_key() -> Key {
    Key::try_from(&[42u8; 64][..]).expect("64 bytes is a valid key")
}

/// The book's defaults with a fixed key.
pub fn test_config() -> SessionConfig {
    SessionConfig::with_key(fixed_key())
}

/// Starts the real app on `127.0.0.1:0`, with the given configuration and
/// store.
pub async fn spawn_app<S>(config: &SessionConfig, store: S) -> TestApp
where
    S: SessionStore + Clone,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address =
        format!("http://{}", listener.local_addr().expect("local address"));
    let (shutdown, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(step01_http_vs_socket::serve(
        listener,
        app(config, store),
        async {
            stopped.await.ok();
        },
    ));
    TestApp {
        address,
        browser: reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("build the browser-like client"),
        raw: reqwest::Client::new(),
        shutdown: Some(shutdown),
        server,
    }
}

/// The app with the default configuration and an in-memory store.
pub async fn spawn_memory_app() -> TestApp {
    spawn_app(&test_config(), MemoryStore::default()).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `POST /api/visit` from the browser-like client.
    pub async fn visit(&self) {
        let response = self
            .browser
            .post(self.url("/api/visit"))
            .send()
            .await
            .expect("POST /api/visit");
        assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    }

    /// `GET /api/session` from the browser-like client.
    pub async fn session(&self) -> SessionView {
        self.browser
            .get(self.url("/api/session"))
            .send()
            .await
            .expect("GET /api/session")
            .json()
            .await
            .expect("a SessionView")
    }

    /// `POST /api/visit` with no cookie, returning the new session cookie as
    /// `name=value`.
    pub async fn new_session_cookie(&self) -> String {
        let response = self
            .raw
            .post(self.url("/api/visit"))
            .send()
            .await
            .expect("POST /api/visit");
        let set_cookie = set_cookies(&response);
        assert_eq!(set_cookie.len(), 1, "one Set-Cookie: {set_cookie:?}");
        cookie_pair(&set_cookie[0])
    }

    /// `GET /api/session` sending exactly `cookie` (a `name=value` pair).
    pub async fn session_with_cookie(&self, cookie: &str) -> SessionView {
        let response = self
            .raw
            .get(self.url("/api/session"))
            .header(COOKIE, cookie)
            .send()
            .await
            .expect("GET /api/session");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.json().await.expect("a SessionView")
    }

    /// Stops the server the way Ctrl-C would, and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            shutdown.send(()).ok();
        }
        drop(self.browser);
        drop(self.raw);
        let stopped =
            tokio::time::timeout(Duration::from_secs(10), &mut self.server)
                .await;
        match stopped {
            Ok(result) => result.expect("server task").expect("server ran"),
            Err(_) => self.server.abort(),
        }
    }
}

/// Every `Set-Cookie` header of `response`.
pub fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|value| value.to_str().expect("ASCII header").to_owned())
        .collect()
}

/// `id=abc; HttpOnly; ...` → `id=abc`, what a browser sends back.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .expect("split yields at least one item")
        .trim()
        .to_owned()
}
