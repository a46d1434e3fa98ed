//! `cargo run -p step04-socket-middleware`: step 3's login, and a Socket.IO
//! server that only lets logged-in users open a socket.

use step01_http_vs_socket::{
    init_tracing, listen_addr_from_env, serve, shutdown_signal,
};
use step02_sessions::SessionConfig;
use step03_passport_like_auth::DEMO_PASSWORD;
use step04_socket_middleware::{SocketSettings, app, demo_stores};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    dotenvy::dotenv().ok(); // a missing .env file is fine
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
    serve(listener, router, shutdown_signal()).await?;
    Ok(())
}
