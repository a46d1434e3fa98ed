//! `cargo run -p chat-under-load`: step 5's chat, built for 10,000 sockets.

use std::process::ExitCode;

use step01_http_vs_socket::{
    browser_url, exit_code, init_tracing, listen_addr_from_env, load_dotenv, raise_open_file_limit,
    serve, shutdown_signal,
};
use step05_chat::config::ChatConfig;

// jemalloc, not glibc's malloc: after a flood (a thousand sockets catching up
// at once), glibc keeps the freed memory in its arenas; jemalloc's background
// thread gives back what has stayed free for ten seconds. Measured in the
// chapter "The chat under load"; `--no-default-features` builds with glibc's.
// ANCHOR: allocator
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
// ANCHOR_END: allocator

// ANCHOR: main
#[tokio::main]
async fn main() -> ExitCode {
    exit_code("chat-under-load", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    load_dotenv()?; // SESSION_SECRET and friends may live in a .env file
    init_tracing();
    raise_open_file_limit()?;
    let listener = tokio::net::TcpListener::bind(listen_addr_from_env()?).await?;
    let addr = listener.local_addr()?;
    let config = ChatConfig::from_env(addr)?;
    let origins = config.sockets.allowed_origins.as_slice();
    tracing::info!(database = %config.database_url, ?origins, "starting");
    let server = chat_under_load::build(config).await?;

    println!("The chat is running: open {}", browser_url(addr));
    println!("(Ctrl-C to stop)");

    // On Ctrl-C, close every socket first: an open WebSocket would otherwise
    // keep the graceful shutdown waiting for as long as the tab stays open.
    let io = server.io.clone();
    let shutdown = async move {
        shutdown_signal().await;
        io.close().await;
    };
    serve(listener, server.router, shutdown).await?;
    // Last, the jobs beside the handlers: the session cleanup, the rooms'
    // tasks.
    server.tasks.stop().await;
    Ok(())
}
// ANCHOR_END: main
