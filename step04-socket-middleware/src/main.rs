use step01_http_vs_socket::{init_tracing, listen_addr_from_env, serve, shutdown_signal};
use step02_sessions::SessionConfig;
use step03_passport_like_auth::{AuthLimits, DEMO_PASSWORD, seed_demo_users};
use step04_socket_middleware::{SocketSettings, TokenConfig, app, in_memory_stores, token_app};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    dotenvy::dotenv().ok(); // a missing .env file is fine
    init_tracing();

    let sessions = SessionConfig::from_env()?;
    // Users and sessions in memory, together: a restart forgets both (see `in_memory_stores`).
    let (passport, store) = in_memory_stores();
    // Step 3's throttles and Argon2 bound, from LOGIN_ATTEMPTS_PER_ADDRESS, RATE_LIMITS...
    let passport = passport.with_limits(AuthLimits::from_env()?);
    seed_demo_users(&passport).await?;

    let listener = tokio::net::TcpListener::bind(listen_addr_from_env()?).await?;
    let port = listener.local_addr()?.port();
    let settings = SocketSettings::from_env(port)?;
    tracing::info!(origins = ?settings.allowed_origins.as_slice(), "allowed origins");
    tracing::info!(limits = ?settings.limits, "socket limits");

    // `cargo run -p step04-socket-middleware -- --token`: sockets by token (chapter "JWT vs session").
    let router = if std::env::args().any(|arg| arg == "--token") {
        println!("sockets need a token from POST /token (chapter \"JWT vs session\")");
        let tokens = TokenConfig::from_env()?;
        token_app(passport, &sessions, store, settings, tokens)
    } else {
        app(passport, &sessions, store, settings)
    };
    println!("step04 is running: open http://localhost:{port}/");
    println!("demo users: alice and bob, password {DEMO_PASSWORD:?}");
    serve(listener, router, shutdown_signal()).await?;
    Ok(())
}
