use step01_http_vs_socket::{init_tracing, listen_addr_from_env, serve, shutdown_signal};
use step02_sessions::{SessionConfig, open_sqlite_store, spawn_expired_session_cleanup};
use step03_passport_like_auth::{DEMO_PASSWORD, MemoryUserStore, Passport, seed_demo_users};
use step04_socket_middleware::{SocketSettings, TokenConfig, app, token_app};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    dotenvy::dotenv().ok(); // a missing .env file is fine
    init_tracing();

    let sessions = SessionConfig::from_env()?;
    let database_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://data/step04.db".into());
    let store = open_sqlite_store(&database_url).await?;
    spawn_expired_session_cleanup(store.clone());

    let passport = Passport::new(MemoryUserStore::default());
    seed_demo_users(&passport).await?;

    let listener = tokio::net::TcpListener::bind(listen_addr_from_env()?).await?;
    let port = listener.local_addr()?.port();
    let settings = SocketSettings::from_env(port);
    tracing::info!(origins = ?settings.allowed_origins.as_slice(), "allowed origins");

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
