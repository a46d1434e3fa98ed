//! `cargo run -p jwt-vs-session`: step 4's server, where a socket is admitted
//! by a signed token from `POST /token` instead of by the session cookie.

use std::process::ExitCode;

use jwt_vs_session::{TokenConfig, token_app};
use step01_http_vs_socket::{
    exit_code, init_tracing, load_dotenv, raise_open_file_limit, serve,
    shutdown_signal,
};
use step03_passport_like_auth::DEMO_PASSWORD;
use step04_socket_middleware::Demo;

// ANCHOR: main
#[tokio::main]
async fn main() -> ExitCode {
    exit_code("jwt-vs-session", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    load_dotenv()?; // TOKEN_SECRET and friends may live in a .env file
    init_tracing();
    raise_open_file_limit()?;
    // TOKEN_SECRET, or a random secret for this run (with a warning).
    let tokens = TokenConfig::from_env()?;
    // Step 4's starting point: its settings, alice and bob, the listener.
    let Demo {
        sessions,
        passport,
        store,
        listener,
        settings,
    } = Demo::from_env().await?;
    let port = listener.local_addr()?.port();
    let router = token_app(passport, &sessions, store, settings, tokens);
    println!("jwt-vs-session is running: open http://localhost:{port}/");
    println!("sockets need a token from POST /token");
    println!("demo users: alice and bob, password {DEMO_PASSWORD:?}");
    println!("(Ctrl-C to stop)");
    serve(listener, router, shutdown_signal()).await?;
    Ok(())
}
// ANCHOR_END: main
