//! `cargo run -p step01-http-vs-socket`: one server, two ways to talk to it
//! (HTTP requests and a Socket.IO connection), and a page that shows both.

use std::process::ExitCode;

use step01_http_vs_socket::{
    app, exit_code, init_tracing, listen_addr_from_env, load_dotenv,
    raise_open_file_limit, serve, shutdown_signal,
};

// ANCHOR: main
#[tokio::main]
async fn main() -> ExitCode {
    exit_code("step01", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    load_dotenv()?;
    init_tracing();
    raise_open_file_limit()?;
    let listener =
        tokio::net::TcpListener::bind(listen_addr_from_env()?).await?;
    println!("step01 is running: open http://{}/", listener.local_addr()?);
    println!("(Ctrl-C to stop)");
    serve(listener, app(), shutdown_signal()).await?;
    Ok(())
}
// ANCHOR_END: main
