//! Step 1: request/response versus a persistent Socket.IO connection.
//!
//! HTTP is a conversation in which only the client may speak first: every
//! answer needs a new request. A Socket.IO connection stays open after the
//! handshake, so the server can push an event whenever it likes and the client
//! can ask for an acknowledgement without opening anything new. This crate
//! serves one page that shows both side by side.
//!
//! The crate is a library plus a tiny `main.rs`, so that tests (and later
//! steps) can build the same app and serve it on any listener, `127.0.0.1:0`
//! included. Its [`serve`] is what every step serves itself with, with the
//! timeouts, the connection cap and the security headers a public server needs
//! (modules `server` and `security_headers`), and, for a classroom without
//! Internet, the Socket.IO client served locally (module `socket_io_client`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::{SendError, SocketError, SocketIo};

mod security_headers;
mod server;
mod socket_io_client;

pub use security_headers::{
    NON_PAGE_POLICY, SOCKET_IO_CLIENT_URL, page_policy, security_headers,
};
pub use server::{
    MIN_HEADER_BYTES, RESERVED_FILES, ServeLimits, address_key,
    cap_for_file_limit, raise_open_file_limit, serve, serve_with,
};
pub use socket_io_client::{
    LOCAL_CLIENT_PATH, NPM_CLIENT_FILE, SOCKET_IO_CLIENT_SRI, SocketIoClient,
};

/// How often the server pushes a `tick` to every connected socket.
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

// ANCHOR: http_endpoint
/// State of the plain-HTTP half of the demo: how many requests `/api/time` has
/// answered.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<AtomicU64>);

/// The answer of `GET /api/time`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TimeReply {
    /// How many times this endpoint has been asked, this request included.
    pub request_number: u64,
    /// The server's clock, in milliseconds since the Unix epoch.
    pub server_time_ms: u64,
}

/// Each call is a whole HTTP exchange: the browser asks, the server answers,
/// and the exchange is over. The server has no way to send the next answer
/// unless it is asked again.
async fn time_now(State(counter): State<RequestCounter>) -> Json<TimeReply> {
    let request_number = counter.0.fetch_add(1, Ordering::Relaxed) + 1;
    Json(TimeReply {
        request_number,
        server_time_ms: now_ms(),
    })
}
// ANCHOR_END: http_endpoint

// ANCHOR: on_connect
/// Runs once per connected socket, like `io.on("connection", socket => ...)` in
/// Node.js.
async fn on_connect(socket: SocketRef) {
    tracing::info!(
        sid = %socket.id,
        transport = ?socket.transport_type(),
        "socket connected"
    );

    socket.on("ping", answer_ping);

    // The server speaks first: nobody asked for these ticks. The task
    // ends by itself once the socket is closed (see `push_ticks`).
    tokio::spawn(push_ticks(socket));
}
// ANCHOR_END: on_connect

// ANCHOR: push_ticks
/// The payload of the `tick` event that the server pushes without being asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tick {
    /// Counts up from 1 for each socket, so the page can show the pushes
    /// arriving.
    pub seq: u64,
    /// The server's clock, in milliseconds since the Unix epoch.
    pub server_time_ms: u64,
}

async fn push_ticks(socket: SocketRef) {
    let mut interval = tokio::time::interval(TICK_INTERVAL);
    let mut seq = 0;
    loop {
        interval.tick().await;
        seq += 1;
        let tick = Tick {
            seq,
            server_time_ms: now_ms(),
        };
        match socket.emit("tick", &tick) {
            Ok(()) => {}
            // The tab is gone: so is this task.
            Err(SendError::Socket(SocketError::Closed)) => break,
            // Still connected, but its queue is full (a frozen tab, a slow
            // network): this tick is lost, the next one is tried. A clock
            // can skip a beat.
            Err(error) => tracing::debug!(%error, "tick dropped"),
        }
    }
}
// ANCHOR_END: push_ticks

// ANCHOR: answer_ping
/// What the client sends with a `ping`: its own clock, so it can measure the
/// round trip.
#[derive(Debug, Deserialize)]
struct PingRequest {
    client_time_ms: f64,
}

/// What the server acknowledges a `ping` with.
#[derive(Debug, Serialize, Deserialize)]
pub struct PingAck {
    /// The client's clock, sent back untouched: the client subtracts it from
    /// "now".
    pub client_time_ms: f64,
    /// The server's clock when it answered.
    pub server_time_ms: u64,
}

/// The `ping` handler. An acknowledgement is the answer to one event, sent back
/// over the same connection: the Socket.IO version of a response, without a new
/// request.
async fn answer_ping(ack: AckSender, TryData(request): TryData<PingRequest>) {
    let reply = match request {
        Ok(request) => serde_json::json!(PingAck {
            client_time_ms: request.client_time_ms,
            server_time_ms: now_ms(),
        }),
        // A wrong payload is the client's mistake: say so instead of staying
        // silent.
        Err(_) => serde_json::json!({
            "error": "expected {\"client_time_ms\": number}"
        }),
    };
    // The client may have sent no ack callback; that is not an error worth
    // logging.
    ack.send(&reply).ok();
}
// ANCHOR_END: answer_ping

// ANCHOR: app
/// Builds the whole application: the page, the HTTP endpoint and the Socket.IO
/// layer.
pub fn app() -> Router {
    let (socket_layer, io) = SocketIo::new_layer();
    io.ns("/", on_connect);

    Router::new()
        .route("/", get(page))
        .route("/steps.css", get(steps_stylesheet))
        .route("/api/time", get(time_now))
        .with_state(RequestCounter::default())
        // Socket.IO lives *beside* the routes, on the same port, as a tower
        // layer: it takes the requests whose path starts with `/socket.io/` and
        // lets everything else through.
        .layer(socket_layer)
}
// ANCHOR_END: app

async fn page() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}

/// The look the demo pages share (step 4's page links it too).
pub async fn steps_stylesheet() -> impl IntoResponse {
    let css = include_str!("../static/steps.css");
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], css)
}

// ANCHOR: shutdown_signal
/// Completes on Ctrl-C (and on SIGTERM on Unix), for a graceful shutdown.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        // If the handler cannot be installed we can still be stopped by
        // SIGTERM/SIGKILL.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
// ANCHOR_END: shutdown_signal

// ANCHOR: listen_addr
/// The address to listen on, from `HOST` (default `127.0.0.1`: this machine
/// only; `0.0.0.0` serves a classroom's network) and `PORT` (default 3000).
pub fn listen_addr_from_env() -> Result<SocketAddr, String> {
    let port = match std::env::var("PORT") {
        Ok(value) => value.parse::<u16>().map_err(|_| {
            format!("PORT must be a number from 0 to 65535, got {value:?}")
        })?,
        Err(_) => 3000,
    };
    let host = match std::env::var("HOST") {
        Ok(value) => value.parse::<IpAddr>().map_err(|_| {
            format!(
                "HOST must be an IP address such as 127.0.0.1 or 0.0.0.0, \
                 got {value:?}"
            )
        })?,
        Err(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    Ok(SocketAddr::new(host, port))
}
// ANCHOR_END: listen_addr

/// The address to open in a browser for a server listening on `addr`: with
/// `0.0.0.0` (every address of this machine), `localhost`.
pub fn browser_url(addr: SocketAddr) -> String {
    match addr.ip().is_unspecified() {
        true => format!("http://localhost:{}/", addr.port()),
        false => format!("http://{addr}/"),
    }
}

// ANCHOR: main_helpers
/// Reads a `.env` file into the environment, if there is one. No file is
/// fine; a file that cannot be read or parsed is an error, not a silent
/// default (a `SESSION_SECRET` in a broken file would be ignored).
pub fn load_dotenv() -> Result<(), String> {
    match dotenvy::dotenv() {
        Err(error) if !error.not_found() => Err(format!(".env: {error}")),
        _ => Ok(()),
    }
}

/// What every `main` returns: success, or the error on stderr, after the
/// program's `name`, and a failure exit code.
pub fn exit_code(
    name: &str,
    outcome: Result<(), Box<dyn std::error::Error>>,
) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name} stopped: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
// ANCHOR_END: main_helpers

/// Installs a `tracing` subscriber that reads `RUST_LOG` (default: `info`).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // `try_init` so calling it twice (e.g. from tests) is harmless.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .try_init()
        .ok();
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
