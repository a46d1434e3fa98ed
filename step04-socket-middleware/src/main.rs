//! `cargo run -p step04-socket-middleware`: step 3's login, and a Socket.IO
//! server that only lets logged-in users open a socket.

use std::process::ExitCode;

use step01_http_vs_socket::{
    exit_code, init_tracing, load_dotenv, raise_open_file_limit, serve,
    shutdown_signal,
};
use step03_passport_like_auth::DEMO_PASSWORD;
use step04_socket_middleware::{Demo, app};

// ANCHOR: main
#[tokio::main]
async fn main() -> ExitCode {
    exit_code("step04", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    load_dotenv()?; // SESSION_SECRET and friends may live in a .env file
    init_tracing();
    raise_open_file_limit()?;
    let demo = Demo::from_env().await?;
    let port = demo.listener.local_addr()?.port();
    let router = app(demo.passport, &demo.sessions, demo.store, demo.settings);
    println!("step04 is running: open http://localhost:{port}/");
    println!("demo users: alice and bob, password {DEMO_PASSWORD:?}");
    println!("(Ctrl-C to stop)");
    serve(demo.listener, router, shutdown_signal()).await?;
    Ok(())
}
// ANCHOR_END: main
