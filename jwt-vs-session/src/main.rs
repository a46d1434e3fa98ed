//! `cargo run -p jwt-vs-session`: step 4's server, where a socket is admitted
//! by a signed token from `POST /token` instead of by the session cookie.

use jwt_vs_session::{TokenConfig, token_app};
use step01_http_vs_socket::{
    init_tracing, listen_addr_from_env, serve, shutdown_signal,
};
use step02_sessions::SessionConfig;
use step03_passport_like_auth::DEMO_PASSWORD;
use step04_socket_middleware::{SocketSettings, demo_stores};

#[tokio::main]
async fn main() {
    dotenvy::dotenv().ok(); // a missing .env file is fine
    init_tracing();
    if let Err(error) = run().await {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // TOKEN_SECRET, or a random secret for this run (with a warning).
    let tokens = TokenConfig::from_env()?;
    let sessions = SessionConfig::from_env()?;
    // Step 4's users and sessions, in memory: alice and bob.
    let (passport, store) = demo_stores().await?;
    let listener =
        tokio::net::TcpListener::bind(listen_addr_from_env()?).await?;
    let port = listener.local_addr()?.port();
    let settings = SocketSettings::from_env(port)?;

    let router = token_app(passport, &sessions, store, settings, tokens);
    println!("jwt-vs-session is running: open http://localhost:{port}/");
    println!("sockets need a token from POST /token");
    println!("demo users: alice and bob, password {DEMO_PASSWORD:?}");
    serve(listener, router, shutdown_signal()).await?;
    Ok(())
}
