//! `cargo run -p step02-sessions`: a visit counter kept in a session, behind a
//! signed cookie, in SQLite (or in memory with `SESSION_STORE=memory`).

use std::process::ExitCode;

use step01_http_vs_socket::{
    exit_code, init_tracing, listen_addr_from_env, load_dotenv,
    raise_open_file_limit, serve, shutdown_signal,
};
use step02_sessions::{
    BackgroundTasks, SessionBackend, SessionConfig, app_with_backend,
};

// ANCHOR: main
#[tokio::main]
async fn main() -> ExitCode {
    exit_code("step02", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    load_dotenv()?; // SESSION_SECRET and friends may live in a .env file
    init_tracing();
    raise_open_file_limit()?;
    let config = SessionConfig::from_env()?;
    let backend = SessionBackend::from_env()?;
    let tasks = BackgroundTasks::default();
    let app = app_with_backend(&config, &backend, &tasks).await?;
    let listener =
        tokio::net::TcpListener::bind(listen_addr_from_env()?).await?;
    println!("step02 is running: open http://{}/", listener.local_addr()?);
    println!("sessions are kept in {backend} (Ctrl-C to stop)");
    serve(listener, app, shutdown_signal()).await?;
    tasks.stop().await; // the session cleanup stops with the server
    Ok(())
}
// ANCHOR_END: main
