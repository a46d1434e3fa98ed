// ANCHOR: main
use std::process::ExitCode;

use step01_http_vs_socket::{
    init_tracing, listen_addr_from_env, serve, shutdown_signal,
};
use step02_sessions::{SessionBackend, SessionConfig, app_with_backend};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("step02 stopped: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // SESSION_SECRET and friends may live in a .env file. No file is fine; a
    // broken one is not.
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        return Err(format!(".env: {error}").into());
    }
    init_tracing();
    let config = SessionConfig::from_env()?;
    let backend = SessionBackend::from_env()?;
    let app = app_with_backend(&config, &backend).await?;
    let listener =
        tokio::net::TcpListener::bind(listen_addr_from_env()?).await?;
    println!("step02 is running: open http://{}/", listener.local_addr()?);
    println!("sessions are kept in {backend} (Ctrl-C to stop)");
    serve(listener, app, shutdown_signal()).await?;
    Ok(())
}
// ANCHOR_END: main
