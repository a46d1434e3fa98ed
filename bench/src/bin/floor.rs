//! `floor`: the bare socketioxide server the load generator compares step 5 with.
//! Listens on `127.0.0.1:$PORT` (default 3000).

use std::net::Ipv4Addr;

#[tokio::main]
async fn main() {
    step01_http_vs_socket::init_tracing();
    if let Err(error) = run().await {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // One open file per socket: 10,000 sockets need more than a shell's usual 1,024.
    step01_http_vs_socket::raise_open_file_limit()?;
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT must be a number from 0 to 65535, got {port:?}"))?,
        Err(_) => 3000,
    };
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    println!("floor listening on http://{}/", listener.local_addr()?);
    bench::floor::serve(listener).await?;
    Ok(())
}
