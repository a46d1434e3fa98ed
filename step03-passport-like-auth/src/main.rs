// ANCHOR: main
use step01_http_vs_socket::{
    init_tracing, listen_addr_from_env, serve, shutdown_signal,
};
use step02_sessions::{MemoryStore, SessionConfig};
use step03_passport_like_auth::{
    AuthLimits, DEMO_PASSWORD, DEMO_USERNAMES, MemoryUserStore, Passport, app,
    seed_demo_users,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    dotenvy::dotenv().ok(); // SESSION_SECRET and friends may live in .env
    init_tracing();
    let config = SessionConfig::from_env()?;
    // The users live in memory in this step, so the sessions must too. Sessions
    // kept on disk would outlive the users, and after a restart an old cookie
    // could point at a user id that now belongs to somebody who registered
    // since. Step05 moves both to SQLite.
    let session_layer = config.layer(MemoryStore::default());
    // The throttles and the Argon2 bound: LOGIN_ATTEMPTS_PER_ADDRESS,
    // RATE_LIMITS and friends.
    let passport = Passport::new(MemoryUserStore::new())
        .with_limits(AuthLimits::from_env()?);
    seed_demo_users(&passport).await?;

    let listener =
        tokio::net::TcpListener::bind(listen_addr_from_env()?).await?;
    println!(
        "step03 is running: open http://{}/login",
        listener.local_addr()?
    );
    println!(
        "demo users: {} (password {DEMO_PASSWORD:?}) (Ctrl-C to stop)",
        DEMO_USERNAMES.join(", ")
    );
    serve(listener, app(passport, session_layer), shutdown_signal()).await?;
    Ok(())
}
// ANCHOR_END: main
