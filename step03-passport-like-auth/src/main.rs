//! `cargo run -p step03-passport-like-auth`: login, logout and registration,
//! the Passport way, with demo users in memory.

use std::process::ExitCode;

use step01_http_vs_socket::{
    exit_code, init_tracing, listen_addr_from_env, load_dotenv,
    raise_open_file_limit, serve, shutdown_signal,
};
use step02_sessions::{MemoryStore, SessionConfig};
use step03_passport_like_auth::{
    AuthLimits, DEMO_PASSWORD, DEMO_USERNAMES, MemoryUserStore, Passport, app,
    seed_demo_users,
};

// ANCHOR: main
#[tokio::main]
async fn main() -> ExitCode {
    exit_code("step03", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    load_dotenv()?; // SESSION_SECRET and friends may live in a .env file
    init_tracing();
    raise_open_file_limit()?;
    let config = SessionConfig::from_env()?;
    // The users live in memory in this step, so the sessions must too. Sessions
    // kept on disk would outlive the users, and after a restart an old cookie
    // could point at a user id that now belongs to somebody who registered
    // since. Step05 moves both to SQLite.
    let session_layer = config.layer(MemoryStore::default());
    // The throttles and the Argon2 bound: LOGIN_ATTEMPTS_PER_ADDRESS,
    // RATE_LIMITS and friends.
    let passport = Passport::new(MemoryUserStore::new())
        .with_limits(AuthLimits::from_env()?)
        .with_absolute_lifetime(config.absolute_lifetime);
    seed_demo_users(&passport).await?;

    let listener =
        tokio::net::TcpListener::bind(listen_addr_from_env()?).await?;
    let addr = listener.local_addr()?;
    println!("step03 is running: open http://{addr}/login");
    let users = DEMO_USERNAMES.join(", ");
    println!("demo users: {users} (password {DEMO_PASSWORD:?})");
    println!("(Ctrl-C to stop)");
    serve(listener, app(passport, session_layer), shutdown_signal()).await?;
    Ok(())
}
// ANCHOR_END: main
