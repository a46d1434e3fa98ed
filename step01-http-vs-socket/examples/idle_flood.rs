//! What chapter 1's limits are for, measured: opens many connections that never
//! send a byte, then times a normal request while they are open, and waits for
//! the server to close them.
//!
//! ```console
//! $ cargo run -p step01-http-vs-socket                 # in one terminal
//! $ cargo run -p step01-http-vs-socket --example idle_flood -- \
//!     127.0.0.1:3000 1100
//! ```
//!
//! Try the server with a low open-file limit too, `bash -c 'ulimit -n 1024;
//! cargo run -p step01-http-vs-socket'`: it serves fewer connections, says so,
//! and keeps answering.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let count: usize = args.next().as_deref().unwrap_or("1100").parse()?;

    // All at once, as a script would: one after the other, the first would time
    // out before the last is open.
    let started = Instant::now();
    let connects = (0..count).map(|_| TcpStream::connect(address.clone()));
    let mut idle = Vec::with_capacity(count);
    for connected in join_all_spawned(connects).await {
        match connected {
            Ok(stream) => idle.push(stream),
            Err(error) => println!("a connection failed: {error}"),
        }
    }
    println!(
        "{} idle connections opened in {:.1?}",
        idle.len(),
        started.elapsed()
    );
    timed_request(&address).await;

    // Each connection waits for the server to hang up (read returns 0) or reset
    // it.
    let started = Instant::now();
    let waits = idle.into_iter().map(|mut stream| async move {
        let mut buffer = [0u8; 1];
        let closed = tokio::time::timeout(
            Duration::from_secs(60),
            stream.read(&mut buffer),
        );
        closed.await.is_ok().then(Instant::now)
    });
    let closed: Vec<Instant> = join_all_spawned(waits)
        .await
        .into_iter()
        .flatten()
        .collect();
    if let Some(last) = closed.iter().max() {
        println!(
            "{} of them closed by the server, the last {:.1?} after the \
             request",
            closed.len(),
            last.duration_since(started)
        );
    } else {
        println!("none of them closed by the server within 60 s");
    }
    timed_request(&address).await;
    Ok(())
}

/// `GET /api/time` on a new connection: the status line and how long it took.
async fn timed_request(address: &str) {
    let started = Instant::now();
    let answer = async {
        let mut stream = TcpStream::connect(address).await?;
        stream
            .write_all(
                b"GET /api/time HTTP/1.1\r\nHost: flood\r\nConnection: \
                  close\r\n\r\n",
            )
            .await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(
            answer.lines().next().unwrap_or_default().to_owned(),
        )
    };
    match tokio::time::timeout(Duration::from_secs(30), answer).await {
        Ok(Ok(status)) => {
            println!("GET /api/time: {status} in {:.1?}", started.elapsed())
        }
        Ok(Err(error)) => println!("GET /api/time failed: {error}"),
        Err(_) => println!("GET /api/time: no answer within 30 s"),
    }
}

/// Runs the futures concurrently and collects their outputs, in order.
async fn join_all_spawned<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(output) = task.await {
            outputs.push(output);
        }
    }
    outputs
}
