//! `cargo run -p scaling-with-redis`: one node of a chat cluster. Needs `REDIS_URL`; every
//! node shares it, `DATABASE_URL` and `SESSION_SECRET`.

use scaling_with_redis::close_sockets;
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
    let redis_url = std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .ok_or("REDIS_URL is not set: a node needs its Redis, e.g. redis://127.0.0.1:6379")?;
    let listener = tokio::net::TcpListener::bind(listen_addr_from_env()?).await?;
    let addr = listener.local_addr()?;
    let config = ChatConfig::from_env(addr)?;
    tracing::info!(database = %config.database_url, "starting a node");
    let node = scaling_with_redis::build(config, &redis_url).await?;
    println!("This node is running: open http://{addr}/ (Ctrl-C to stop)");

    // On Ctrl-C, close every socket first, as step 5 does.
    let io = node.io.clone();
    let shutdown = async move {
        shutdown_signal().await;
        close_sockets(io).await;
    };
    serve(listener, node.router, shutdown).await?;
    Ok(())
}
// ANCHOR_END: main
