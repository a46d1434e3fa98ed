//! Floods, and the memory a server gives back after them (issue 23).
//!
//! A flood is many connections at once that each make the server allocate, then all close.
//! What matters is the server's resident memory before, at the peak, and some time after the
//! last connection closed: memory that stays after a flood is memory the machine lost. If
//! `malloc_trim(0)`, which hands glibc's free pages back to the kernel, brings it down again,
//! what stayed was free memory the allocator kept, not data the chat still holds.
//!
//! - [`Flood::Headers`]: request heads of 390 kB that never end (refused by the header limit).
//! - [`Flood::CatchUp`]: the reconnect storm after a restart: every socket comes back with
//!   `serverOffset` 0 and is sent the 1,000 messages it missed.
//! - [`Flood::Rooms`]: every socket joins 20 rooms.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{Connection, Packet, chat_message};
use crate::procfs;
use crate::workload::register_users;

/// Messages stored before the catch-up flood: what each returning socket is sent.
const CATCH_UP_MESSAGES: usize = 1_000;
/// Rooms each socket joins in the rooms flood (step 5's default `MAX_ROOMS_PER_SOCKET`).
const ROOMS: usize = 20;
/// The header of the headers flood, never ended.
const HEADER_BYTES: usize = 390 * 1000;
/// How long one flooding connection may take before it is given up.
const PATIENCE: Duration = Duration::from_secs(60);
/// Connections opened at once, so that the flood is a flood and not a queue at `connect`.
const OPENING_AT_ONCE: usize = 200;

/// Which flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// Unfinished 390 kB request heads.
    Headers,
    /// Every socket back at once, each owed [`CATCH_UP_MESSAGES`].
    CatchUp,
    /// Every socket joins [`ROOMS`] rooms.
    Rooms,
}

impl Flood {
    /// Its name on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Flood::Headers => "headers",
            Flood::CatchUp => "catch-up",
            Flood::Rooms => "rooms",
        }
    }

    /// The flood called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Flood::Headers, Flood::CatchUp, Flood::Rooms]
            .into_iter()
            .find(|flood| flood.name() == name)
    }
}

/// What one flood cost a server, in KiB of resident memory.
#[derive(Debug, Clone)]
pub struct FloodReport {
    /// Once the server was ready for the flood (users registered, messages stored).
    pub before_kib: u64,
    /// The most seen during the flood.
    pub peak_kib: u64,
    /// `settle` after the last connection closed.
    pub after_kib: u64,
    /// Right after `malloc_trim(0)` was called in the server, if it was asked for.
    pub trimmed_kib: Option<u64>,
    /// From the first connection to the last one closed.
    pub took: Duration,
    /// Connections that did what the flood asks of them (the rest failed or timed out).
    pub completed: usize,
}

/// Floods the server at `addr` (process `pid`) with `connections` connections, all at once,
/// closes them, waits `settle`, and reads its memory along the way; `rounds` times over, so
/// that a second round shows whether the server reuses what it kept or keeps growing. With
/// `trim`, then has the server call `malloc_trim(0)` and reads it once more. One report per
/// round.
pub async fn run_flood(
    addr: SocketAddr,
    pid: u32,
    flood: Flood,
    connections: usize,
    settle: Duration,
    rounds: usize,
    trim: Option<&Trim>,
) -> Result<Vec<FloodReport>, String> {
    let cookie = match flood {
        Flood::Headers => None,
        Flood::CatchUp | Flood::Rooms => Some(prepare_chat(addr).await?),
    };
    // Let what the preparation allocated settle before "before" is read.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = || procfs::rss_kib(&[pid]).ok_or("the server's memory cannot be read");
    let mut reports = Vec::new();
    for round in 1..=rounds {
        let before_kib = rss()?;
        let peak = Arc::new(AtomicU64::new(before_kib));
        let flooding = Arc::new(AtomicBool::new(true));
        let sampler = tokio::spawn(sample_peak(pid, peak.clone(), flooding.clone()));
        let started = Instant::now();
        let completed = match flood {
            Flood::Headers => flood_headers(addr, connections).await,
            Flood::CatchUp | Flood::Rooms => {
                let cookie = cookie.as_deref().unwrap_or_default();
                flood_sockets(addr, cookie, flood, connections).await
            }
        };
        let took = started.elapsed();
        flooding.store(false, Ordering::Relaxed);
        sampler.await.map_err(|error| error.to_string())?;
        tokio::time::sleep(settle).await;
        let after_kib = rss()?;
        let trimmed_kib = match trim {
            Some(trim) if round == rounds => {
                trim.trim(pid).await?;
                Some(rss()?)
            }
            _ => None,
        };
        reports.push(FloodReport {
            before_kib,
            peak_kib: peak.load(Ordering::Relaxed).max(after_kib),
            after_kib,
            trimmed_kib,
            took,
            completed,
        });
    }
    Ok(reports)
}

/// Registers the flood's user and stores [`CATCH_UP_MESSAGES`] in `general`; returns the
/// user's session cookie.
async fn prepare_chat(addr: SocketAddr) -> Result<String, String> {
    let cookies = register_users(addr, 1)
        .await
        .map_err(|error| error.to_string())?;
    let cookie = cookies.into_iter().flatten().next().ok_or("no cookie")?;
    let mut sender = Connection::connect(addr, Some(&cookie), None)
        .await
        .map_err(|error| error.to_string())?;
    // About 200 bytes a message, the size of a sentence or two.
    let text = "a flood of words ".repeat(12);
    for id in 0..CATCH_UP_MESSAGES as u64 {
        sender
            .send_chat_message(id, "general", &text)
            .await
            .map_err(|error| error.to_string())?;
        loop {
            match sender.next().await.map_err(|error| error.to_string())? {
                Packet::Ack { id: acked, ok } if acked == id => match ok {
                    true => break,
                    false => return Err(format!("message {id} refused")),
                },
                _ => {}
            }
        }
    }
    sender.close().await;
    Ok(cookie)
}

/// The peak of `pid`'s resident memory into `peak`, every 50 ms while `flooding`.
async fn sample_peak(pid: u32, peak: Arc<AtomicU64>, flooding: Arc<AtomicBool>) {
    while flooding.load(Ordering::Relaxed) {
        if let Some(kib) = procfs::rss_kib(&[pid]) {
            peak.fetch_max(kib, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens `connections` connections that each send a request line and [`HEADER_BYTES`] of
/// one header, never ending the head, and waits until the server has closed every one. Each
/// counts as completed when the server answered or closed it.
async fn flood_headers(addr: SocketAddr, connections: usize) -> usize {
    let opened: Vec<Option<TcpStream>> = futures_util::stream::iter(0..connections)
        .map(|_| async {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            let mut head = b"GET / HTTP/1.1\r\nHost: flood\r\nX-Flood: ".to_vec();
            head.resize(HEADER_BYTES, b'a');
            // The server may refuse it before it has all of it: a failed write is fine.
            let _ = stream.write_all(&head).await;
            Some(stream)
        })
        .buffer_unordered(OPENING_AT_ONCE)
        .collect()
        .await;
    // Every one held open until the server ends it (the peak is all of them at once).
    let waits = opened.into_iter().flatten().map(|mut stream| async move {
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        tokio::time::timeout(PATIENCE, read).await.is_ok()
    });
    futures_util::future::join_all(waits)
        .await
        .into_iter()
        .filter(|ended| *ended)
        .count()
}

/// Opens `connections` sockets as the user of `cookie`, each doing its part of `flood`, holds
/// them all open until every one is done, then closes them all.
async fn flood_sockets(addr: SocketAddr, cookie: &str, flood: Flood, connections: usize) -> usize {
    let sockets: Vec<Option<Connection>> = futures_util::stream::iter(0..connections)
        .map(|_| async {
            let work = flood_one_socket(addr, cookie, flood);
            tokio::time::timeout(PATIENCE, work).await.ok().flatten()
        })
        .buffer_unordered(OPENING_AT_ONCE)
        .collect()
        .await;
    let completed = sockets.iter().flatten().count();
    let closing = sockets.into_iter().flatten().map(Connection::close);
    futures_util::future::join_all(closing).await;
    completed
}

/// One socket of a socket flood: connected, then caught up or in its rooms.
async fn flood_one_socket(addr: SocketAddr, cookie: &str, flood: Flood) -> Option<Connection> {
    let offset = (flood == Flood::CatchUp).then_some(0);
    let mut socket = Connection::connect(addr, Some(cookie), offset).await.ok()?;
    match flood {
        Flood::CatchUp => {
            let mut caught_up = 0;
            while caught_up < CATCH_UP_MESSAGES {
                if let Packet::Event(frame) = socket.next().await.ok()? {
                    caught_up += usize::from(chat_message(&frame).is_some());
                }
            }
        }
        Flood::Rooms => {
            for room in 0..ROOMS as u64 {
                socket.join(room, &format!("flood{room}")).await.ok()?;
                loop {
                    match socket.next().await.ok()? {
                        Packet::Ack { id, ok } if id == room => match ok {
                            true => break,
                            false => return None,
                        },
                        _ => {}
                    }
                }
            }
        }
        Flood::Headers => return None,
    }
    Some(socket)
}

/// How to make a server call glibc's `malloc_trim(0)` (see `bench/trim/trim_on_signal.c`):
/// it was started with that library preloaded, and `done` is its `TRIM_DONE_FILE`.
#[derive(Debug, Clone)]
pub struct Trim {
    /// The file the server creates once it has trimmed.
    pub done: PathBuf,
}

impl Trim {
    /// Sends `SIGUSR2` to `pid` and waits until it says it has trimmed.
    async fn trim(&self, pid: u32) -> Result<(), String> {
        let _ = std::fs::remove_file(&self.done);
        let status = std::process::Command::new("kill")
            .args(["-USR2", &pid.to_string()])
            .status()
            .map_err(|error| format!("kill: {error}"))?;
        if !status.success() {
            return Err(format!("kill -USR2 {pid} failed"));
        }
        let started = Instant::now();
        while !self.done.exists() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err("the server did not trim: was it started with the library?".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flood_is_found_by_its_name_and_no_other() {
        for flood in [Flood::Headers, Flood::CatchUp, Flood::Rooms] {
            assert_eq!(Flood::parse(flood.name()), Some(flood));
        }
        assert_eq!(Flood::parse("reconnect"), None);
    }
}
