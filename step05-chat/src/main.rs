//! `cargo run -p step05-chat`: the finished chat, ready for a class.

use step01_http_vs_socket::{init_tracing, serve, shutdown_signal};
use step05_chat::config::{ChatConfig, listen_addr_from_env};

// ANCHOR: main
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
    let listener = tokio::net::TcpListener::bind(listen_addr_from_env()?).await?;
    let addr = listener.local_addr()?;
    let config = ChatConfig::from_env(addr)?;
    tracing::info!(database = %config.database_url, origins = ?config.sockets.allowed_origins.as_slice(), "starting");
    let server = step05_chat::build(config).await?;

    let url = if addr.ip().is_unspecified() {
        format!(
            "http://localhost:{} (and this machine's address on your network)",
            addr.port()
        )
    } else {
        format!("http://{addr}/")
    };
    println!("The chat is running: open {url}");
    println!("(Ctrl-C to stop)");

    // On Ctrl-C, close every socket first: an open WebSocket would otherwise keep the
    // graceful shutdown waiting for as long as the tab stays open.
    let io = server.io.clone();
    let shutdown = async move {
        shutdown_signal().await;
        io.close().await;
    };
    serve(listener, server.router, shutdown).await?;
    Ok(())
}
// ANCHOR_END: main
