// ANCHOR: main
use step01_http_vs_socket::{
    app, init_tracing, listen_addr_from_env, serve, shutdown_signal,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let addr = listen_addr_from_env()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("step01 is running: open http://{}/", listener.local_addr()?);
    println!("(Ctrl-C to stop)");
    serve(listener, app(), shutdown_signal()).await?;
    Ok(())
}
// ANCHOR_END: main
