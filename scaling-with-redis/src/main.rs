//! `cargo run -p scaling-with-redis`: one node of a chat cluster. Needs `REDIS_URL`; every
//! node shares it, `DATABASE_URL` (`postgres://...` for nodes on several machines) and
//! `SESSION_SECRET`.

use std::process::ExitCode;

use scaling_with_redis::close_sockets;
use step01_http_vs_socket::{
    exit_code, init_tracing, listen_addr_from_env, load_dotenv, raise_open_file_limit, serve,
    shutdown_signal,
};
use step05_chat::config::ChatConfig;

// ANCHOR: main
#[tokio::main]
async fn main() -> ExitCode {
    exit_code("scaling-with-redis", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    load_dotenv()?; // SESSION_SECRET, REDIS_URL and friends may live in a .env file
    init_tracing();
    raise_open_file_limit()?;
    let redis_url = std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .ok_or("REDIS_URL is not set: a node needs its Redis, e.g. redis://127.0.0.1:6379")?;
    let listener = tokio::net::TcpListener::bind(listen_addr_from_env()?).await?;
    let addr = listener.local_addr()?;
    let config = ChatConfig::from_env(addr)?;
    // Not the whole URL: a PostgreSQL URL may carry a password.
    let url = &config.database_url;
    let database = url
        .rsplit('@')
        .next()
        .and_then(|rest| rest.split('?').next());
    tracing::info!(database = %database.unwrap_or_default(), "starting a node");
    let node = scaling_with_redis::build(config, &redis_url).await?;
    println!("This node is running: open http://{addr}/ (Ctrl-C to stop)");

    // On Ctrl-C, close every socket first, as step 5 does.
    let io = node.io.clone();
    let shutdown = async move {
        shutdown_signal().await;
        close_sockets(io).await;
    };
    serve(listener, node.router, shutdown).await?;
    node.tasks.stop().await;
    Ok(())
}
// ANCHOR_END: main
