//! `cargo run -p step04-socket-middleware`: step 3's login, and a Socket.IO
//! server that only lets logged-in users open a socket.

use std::process::ExitCode;

use step01_http_vs_socket::{
    exit_code, init_tracing, listen_addr_from_env, load_dotenv, serve,
    shutdown_signal,
};
use step02_sessions::SessionConfig;
use step03_passport_like_auth::DEMO_PASSWORD;
use step04_socket_middleware::{SocketSettings, app, demo_stores};

// ANCHOR: main
#[tokio::main]
async fn main() -> ExitCode {
    exit_code("step04", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    load_dotenv()?; // SESSION_SECRET and friends may live in a .env file
    init_tracing();
    let sessions = SessionConfig::from_env()?;
    // Users and sessions in memory, together: a restart forgets both (see
    // `in_memory_stores`).
    let (passport, store) = demo_stores().await?;

    let listener =
        tokio::net::TcpListener::bind(listen_addr_from_env()?).await?;
    let port = listener.local_addr()?.port();
    let settings = SocketSettings::from_env(port)?;

    let router = app(passport, &sessions, store, settings);
    println!("step04 is running: open http://localhost:{port}/");
    println!("demo users: alice and bob, password {DEMO_PASSWORD:?}");
    println!("(Ctrl-C to stop)");
    serve(listener, router, shutdown_signal()).await?;
    Ok(())
}
// ANCHOR_END: main
