//! Serving an app on a listener, with the limits a public server needs.
//!
//! `axum::serve` is a one-liner, and a browser would never notice what it
//! lacks: timeouts and a cap on connections. A script would. It can open
//! connections and say nothing, send its headers one byte at a time, or never
//! finish a body; each costs a file descriptor and memory for as long as it
//! likes, until the process runs out of files and stops answering everyone. So
//! this module drives hyper, the HTTP library under axum, itself: it is the
//! same accept loop as `axum::serve`, plus a slot per connection and the timers
//! hyper already has.
//!
//! Shutting down is tokio-util's `CancellationToken` (tell every connection to
//! finish) and `TaskTracker` (wait until they have). hyper-util's
//! `GracefulShutdown` does the same for plain connections, but as of 0.1.21 it
//! cannot watch an HTTP/1 connection that may upgrade to a WebSocket, and its
//! `auto` builder, which it can watch, reads the first bytes without any
//! timeout and also speaks HTTP/2, where these timeouts do not apply.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_http::timeout::TimeoutLayer;

use crate::security_headers::security_headers;
use crate::socket_io_client::{LOCAL_CLIENT_PATH, SocketIoClient};

// ANCHOR: limits
/// The limits [`serve_with`] applies, each read from an environment variable by
/// [`ServeLimits::from_env`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeLimits {
    /// `MAX_CONNECTIONS`: open connections, WebSockets included.
    /// Over it, new ones wait in the kernel's queue until one closes.
    pub max_connections: usize,
    /// `MAX_CONNECTIONS_PER_ADDRESS`: open connections from one client
    /// address (one /64 for IPv6). Over it, a new one is closed at once.
    pub max_connections_per_address: usize,
    /// `TRUSTED_PROXY`: addresses exempt from the per-address limit. All
    /// the clients behind a reverse proxy come from its address.
    pub trusted_proxies: Vec<IpAddr>,
    /// `HEADER_READ_TIMEOUT_SECS`: how long a connection may take to
    /// send a request's headers, counted from the moment it is waiting
    /// for one. So it also closes idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// `MAX_HEADER_BYTES`: a request's line and headers together. A
    /// longer one gets `431` and its connection is closed.
    pub max_header_bytes: usize,
    /// `REQUEST_TIMEOUT_SECS`: how long the app may take to answer,
    /// reading the body included. A WebSocket is not a request: once
    /// upgraded, no timeout here applies to it.
    pub request_timeout: Duration,
}
// ANCHOR_END: limits

// ANCHOR: limits_default
impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            // A classroom needs a few hundred; the 10,000-socket benchmark
            // needs 10,000 and some. Each one is an open file: see
            // `raise_open_file_limit`.
            max_connections: 16_384,
            // 40 students behind one school router, five tabs each: 200
            // WebSockets, and at most 6 HTTP connections per browser, 240.
            // Twice that still leaves a single address 1/16 of the cap.
            max_connections_per_address: 1_024,
            trusted_proxies: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            // Node's default. The pages' requests, cookie included, are
            // about 650 bytes; hyper's own default would be 400 kB.
            max_header_bytes: 16 * 1024,
            // Above Engine.IO's 25 s ping interval, which is how long
            // socketioxide may hold a long-polling GET open.
            request_timeout: Duration::from_secs(60),
        }
    }
}
// ANCHOR_END: limits_default

/// The least `MAX_HEADER_BYTES` may be: hyper's read buffer is never
/// smaller.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

impl ServeLimits {
    /// Reads `MAX_CONNECTIONS`, `MAX_CONNECTIONS_PER_ADDRESS`,
    /// `TRUSTED_PROXY`, `HEADER_READ_TIMEOUT_SECS`, `MAX_HEADER_BYTES` and
    /// `REQUEST_TIMEOUT_SECS`; an unset variable keeps its default.
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`ServeLimits::from_env`] with the variables looked up by `var`, so that
    /// it can be tested without changing the process's environment.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let defaults = Self::default();
        let number = |name: &str, default: u64| -> Result<u64, String> {
            match var(name).as_deref().map(str::trim) {
                None | Some("") => Ok(default),
                Some(value) => value
                    .parse::<u64>()
                    .ok()
                    .filter(|number| *number > 0)
                    .ok_or_else(|| {
                        format!(
                            "{name} must be a whole number \
                             above 0, got {value:?}"
                        )
                    }),
            }
        };
        let count = |name: &str, default: usize| -> Result<usize, String> {
            let value = number(name, default as u64)?;
            usize::try_from(value)
                .map_err(|_| format!("{name} is too large: {value}"))
        };
        let max_header_bytes =
            count("MAX_HEADER_BYTES", defaults.max_header_bytes)?;
        if max_header_bytes < MIN_HEADER_BYTES {
            return Err(format!(
                "MAX_HEADER_BYTES must be at least {MIN_HEADER_BYTES}, \
                 got {max_header_bytes}"
            ));
        }
        Ok(Self {
            max_connections: count(
                "MAX_CONNECTIONS",
                defaults.max_connections,
            )?,
            max_connections_per_address: count(
                "MAX_CONNECTIONS_PER_ADDRESS",
                defaults.max_connections_per_address,
            )?,
            trusted_proxies: addresses(
                "TRUSTED_PROXY",
                var("TRUSTED_PROXY").as_deref().unwrap_or_default(),
            )?,
            header_read_timeout: Duration::from_secs(number(
                "HEADER_READ_TIMEOUT_SECS",
                defaults.header_read_timeout.as_secs(),
            )?),
            max_header_bytes,
            request_timeout: Duration::from_secs(number(
                "REQUEST_TIMEOUT_SECS",
                defaults.request_timeout.as_secs(),
            )?),
        })
    }
}

/// IP addresses separated by commas, as step 3's `TRUSTED_PROXY` reads them.
fn addresses(name: &str, value: &str) -> Result<Vec<IpAddr>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<IpAddr>()
                .map(|ip| ip.to_canonical())
                .map_err(|_| {
                    format!(
                        "{name} must be IP addresses separated by commas, \
                     got {value:?}"
                    )
                })
        })
        .collect()
}

// ANCHOR: serve
/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// requests finish.
///
/// Taking a listener (not a port) is what lets a test bind `127.0.0.1:0`,
/// read the port the OS picked, and start the real server on it. Every
/// later step serves itself with this. The limits, and where the pages
/// get the Socket.IO client, come from the environment; a bad value is
/// an `InvalidInput` error before anything is served.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let invalid = |error| io::Error::new(io::ErrorKind::InvalidInput, error);
    let limits = ServeLimits::from_env().map_err(invalid)?;
    let client = SocketIoClient::from_env().map_err(invalid)?;
    if client.is_local() {
        tracing::info!("serving the Socket.IO client at {LOCAL_CLIENT_PATH}");
    }
    serve_with(listener, client.apply(app), shutdown, limits).await
}
// ANCHOR_END: serve

// ANCHOR: serve_with
/// [`serve`] with the limits given rather than read from the environment.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
    limits: ServeLimits,
) -> io::Result<()> {
    let app = app
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::from_fn(security_headers));
    let cap = connection_cap(limits.max_connections);
    let slots = Arc::new(Semaphore::new(cap));
    let per_address = PerAddress::new(&limits);
    let http = http1_settings(&limits);
    let finish = CancellationToken::new(); // end after this request
    let connections = TaskTracker::new(); // which are still running
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = shutdown.as_mut() => break,
            accepted = next_connection(&listener, &slots, &per_address) =>
                accepted,
        };
        let Some((connection, remote)) = accepted else {
            continue;
        };
        let (app, http, finish) = (app.clone(), http.clone(), finish.clone());
        connections
            .spawn(serve_connection(connection, remote, app, http, finish));
    }
    drop(listener);
    finish.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}
// ANCHOR_END: serve_with

// ANCHOR: accept
/// Waits for a free slot, *then* accepts. Over the cap, new connections
/// wait in the kernel's listen queue, costing this process nothing,
/// and are served in turn as slots free up. Over its address's limit, a
/// connection is closed at once: queued, it would wait among everyone's.
async fn next_connection(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    per_address: &PerAddress,
) -> Option<(Connection, SocketAddr)> {
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, remote)) => {
            // No room for its address: `stream` is dropped here, closed.
            let address_slot = per_address.try_take(remote.ip())?;
            Some((Connection::new(stream, slot, address_slot), remote))
        }
        Err(error) => {
            tracing::warn!(%error, "accepting a connection failed");
            // Out of file descriptors, say: do not spin on the error.
            if !is_one_connection_failing(&error) {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            None
        }
    }
}
// ANCHOR_END: accept

/// How many connections are open from each address, by [`address_key`].
type OpenByAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

// ANCHOR: per_address
/// Counts connections per client address against
/// `MAX_CONNECTIONS_PER_ADDRESS`, so that one address cannot take every
/// slot under `MAX_CONNECTIONS`.
struct PerAddress {
    limit: usize,
    /// Trusted proxies: every client behind one shares its address.
    exempt: Vec<IpAddr>,
    open: OpenByAddress,
}

impl PerAddress {
    /// A place for one more connection from `address`, or `None` if that
    /// address has its limit's worth open already.
    fn try_take(&self, address: IpAddr) -> Option<AddressSlot> {
        let address = address.to_canonical();
        let open = Arc::clone(&self.open);
        if self.exempt.contains(&address) {
            return Some(AddressSlot { key: None, open });
        }
        let key = address_key(address);
        let mut counts = lock(&self.open);
        let count = counts.entry(key).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            key: Some(key),
            open,
        })
    }
}
// ANCHOR_END: per_address

// ANCHOR: address_slot
/// A connection's place under its address's limit, given back when the
/// connection is dropped, like its slot under `MAX_CONNECTIONS`.
struct AddressSlot {
    /// `None` for a trusted proxy, which is not counted.
    key: Option<IpAddr>,
    open: OpenByAddress,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        if let Entry::Occupied(mut count) = lock(&self.open).entry(key) {
            *count.get_mut() -= 1;
            // Only addresses with a connection open stay in the map.
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}
// ANCHOR_END: address_slot

impl PerAddress {
    fn new(limits: &ServeLimits) -> Self {
        PerAddress {
            limit: limits.max_connections_per_address,
            exempt: limits.trusted_proxies.clone(),
            open: OpenByAddress::default(),
        }
    }
}

/// The counts behind a poisoned lock are still right: nothing that holds
/// it can panic halfway through changing one.
fn lock(
    open: &Mutex<HashMap<IpAddr, usize>>,
) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
    open.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The key an address is counted under, here and by step 3's throttles. One
/// IPv6 customer usually gets a whole /64, so counting each of its addresses
/// apart would hand out billions of budgets. An IPv4 address seen through an
/// IPv6 socket (`::ffff:192.0.2.1`) counts as itself.
pub fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let network = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// An error about one connection (the client gave up during the handshake), as
/// opposed to the listener's (no file descriptors left).
fn is_one_connection_failing(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// File descriptors kept for everything that is not a client connection: the
/// listener, the SQLite files and their journals, Redis, standard output, the
/// runtime's own.
pub const RESERVED_FILES: u64 = 128;

// ANCHOR: open_file_limit
/// Raises this process's limit on open files as far as the system allows
/// (the soft limit up to the hard one, as Go's runtime does at start) and
/// returns the new limit. Every connection is an open file, and a common
/// default of 1,024 would hold a few hundred sockets. Past the limit,
/// `accept` fails with "Too many open files", and so does every other file
/// the server opens, SQLite's included. A `main` calls this before
/// [`serve`]: the limit belongs to the whole process, so the program sets
/// it, and `serve` only sizes its cap on connections to fit under it.
pub fn raise_open_file_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}
// ANCHOR_END: open_file_limit

/// The process's soft limit on open files, read and left as it is.
#[cfg(unix)]
fn open_file_limit() -> io::Result<Option<u64>> {
    rlimit::Resource::NOFILE
        .get()
        .map(|(soft, _hard)| Some(soft))
}

/// No limit on open files to read on this system.
#[cfg(not(unix))]
fn open_file_limit() -> io::Result<Option<u64>> {
    Ok(None)
}

/// How many connections the server can really hold: `wanted`, unless the
/// process's limit on open files is too low; then the cap is lowered to fit
/// under it, so that a crowd of clients cannot starve the files the server
/// itself needs.
fn connection_cap(wanted: usize) -> usize {
    match open_file_limit() {
        Ok(Some(file_limit)) => {
            let cap = cap_for_file_limit(wanted, file_limit);
            if cap < wanted {
                tracing::warn!(
                    "MAX_CONNECTIONS is {wanted} but this process may open \
                     only {file_limit} files: serving at most {cap} \
                     connections at once. Raise the limit (`ulimit -n`, \
                     LimitNOFILE= in systemd, or `raise_open_file_limit` in \
                     `main`) for more."
                );
            }
            cap
        }
        Ok(None) => wanted,
        Err(error) => {
            tracing::warn!(
                %error,
                "could not read the open-file limit; trusting MAX_CONNECTIONS"
            );
            wanted
        }
    }
}

/// `wanted`, or fewer if `file_limit` open files cannot hold them and
/// [`RESERVED_FILES`].
pub fn cap_for_file_limit(wanted: usize, file_limit: u64) -> usize {
    let room = file_limit.saturating_sub(RESERVED_FILES).max(1);
    wanted.min(usize::try_from(room).unwrap_or(usize::MAX))
}

// ANCHOR: connection
/// Serves one connection over HTTP/1.1 until it closes. On shutdown,
/// it finishes the request in progress, then closes.
async fn serve_connection(
    connection: Connection,
    remote: SocketAddr,
    app: Router,
    http: http1::Builder,
    finish: CancellationToken,
) {
    // What `into_make_service_with_connect_info` did: handlers may ask
    // for `ConnectInfo<SocketAddr>`, the client's address.
    let app = app.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        request
    });
    let io = TokioIo::new(connection);
    let service = TowerToHyperService::new(app);
    // `with_upgrades`: a WebSocket handshake hands the connection over
    // to socketioxide, which from then on owns it, and its slot.
    let mut served = pin!(http.serve_connection(io, service).with_upgrades());
    let result = match finish.run_until_cancelled(served.as_mut()).await {
        Some(result) => result,
        // Shutting down: finish the request in progress, take no other.
        None => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(error) = result {
        // A header timeout, a client that went away: routine, not alarming.
        tracing::debug!(%error, %remote, "connection closed with an error");
    }
}
// ANCHOR_END: connection

// ANCHOR: http1_settings
/// How hyper serves each connection: HTTP/1.1, with the header timer on
/// and a bound on a request's head. Past `max_header_size`, the client
/// gets `431` and the connection is closed. `max_buf_size` is the most
/// hyper buffers while it reads; its default, about 400 kB, is what an
/// unfinished header would otherwise cost, per connection.
fn http1_settings(limits: &ServeLimits) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(MAX_HEADERS);
    http
}
// ANCHOR_END: http1_settings

/// Headers per request, the same cap as Node's default
/// (`server.maxHeadersCount`).
const MAX_HEADERS: usize = 100;

/// How long a write may wait for the peer to read before the connection is
/// given up. A client that reads nothing (a frozen tab, a script that only
/// answers Engine.IO's pings) would otherwise hold its connection, and every
/// byte queued for it, for ever: nothing above the TCP stream can close a
/// connection whose writer is stuck waiting for it.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// An accepted TCP connection and the slot it holds under `MAX_CONNECTIONS`.
/// The slot is given back when the connection is dropped: for a WebSocket, that
/// is when socketioxide closes it, long after hyper has handed it over.
/// Releasing the slot when hyper is done instead would let WebSockets pile up
/// beyond the cap.
struct Connection {
    stream: TcpStream,
    /// Held, never read: dropping it frees the slot.
    _slot: OwnedSemaphorePermit,
    /// The same for its place under `MAX_CONNECTIONS_PER_ADDRESS`.
    _address_slot: AddressSlot,
    /// Runs while a write waits for the peer to read; reset by any progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The peer read nothing for [`WRITE_STALL_TIMEOUT`]: from then on every
    /// read and write fails, so that HTTP or the WebSocket lets go of it.
    gone: bool,
}

impl Connection {
    fn new(
        stream: TcpStream,
        slot: OwnedSemaphorePermit,
        address_slot: AddressSlot,
    ) -> Self {
        Connection {
            stream,
            _slot: slot,
            _address_slot: address_slot,
            stalled: None,
            gone: false,
        }
    }
}

// ANCHOR: write_stall
impl Connection {
    /// What a write (or flush) returned, with the stall clock applied: a
    /// `Pending` starts it, or goes on with it; anything else stops it.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let clock = self.stalled.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep(WRITE_STALL_TIMEOUT))
        });
        match clock.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.gone = true;
                Poll::Ready(Err(gone()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")
}
// ANCHOR_END: write_stall

// Reading and writing go to the TCP stream; writes under the stall clock.
impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.gone {
            return Poll::Ready(Err(gone()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.gone {
            return Poll::Ready(Err(gone()));
        }
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.gone {
            return Poll::Ready(Err(gone()));
        }
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.gone {
            return Poll::Ready(Err(gone()));
        }
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_files_that_are_not_connections() {
        assert_eq!(cap_for_file_limit(16_384, 1_048_576), 16_384);
        assert_eq!(
            cap_for_file_limit(16_384, 1_024),
            1_024 - RESERVED_FILES as usize
        );
        // Even a silly limit leaves one connection, not none.
        assert_eq!(cap_for_file_limit(16_384, 10), 1);
    }

    // One test, not two: both read the process's limit, and tests run in
    // parallel.
    #[cfg(unix)]
    #[test]
    fn serve_only_reads_the_open_file_limit_and_main_raises_it() {
        let nofile = || rlimit::Resource::NOFILE.get().expect("readable");
        let (soft, hard) = nofile();
        // Asking for more connections than the limit allows lowers the cap,
        // and leaves the limit as it was.
        let wanted = usize::try_from(hard).unwrap_or(usize::MAX);
        let cap = connection_cap(wanted);
        assert_eq!(nofile(), (soft, hard));
        assert_eq!(cap, cap_for_file_limit(wanted, soft));

        let raised = raise_open_file_limit().expect("raised");
        assert_eq!(nofile().0, raised);
        assert!(raised >= soft, "{raised} < {soft}");
    }

    #[test]
    fn an_address_is_counted_by_its_slash_64_and_a_proxy_is_not_counted() {
        let ip = |text: &str| text.parse::<IpAddr>().expect("an address");
        let per_address = PerAddress::new(&ServeLimits {
            max_connections_per_address: 2,
            trusted_proxies: vec![ip("10.0.0.1")],
            ..ServeLimits::default()
        });
        let first = per_address.try_take(ip("2001:db8::1"));
        let second = per_address.try_take(ip("2001:db8::ffff:2"));
        assert!(first.is_some() && second.is_some());
        // The same /64, another address: the limit is reached.
        assert!(per_address.try_take(ip("2001:db8::3")).is_none());
        assert!(per_address.try_take(ip("2001:db8:0:1::3")).is_some());
        drop(first);
        let third = per_address.try_take(ip("2001:db8::3"));
        assert!(third.is_some());

        let through_the_proxy: Vec<_> = (0..10)
            .filter_map(|_| per_address.try_take(ip("::ffff:10.0.0.1")))
            .collect();
        assert_eq!(through_the_proxy.len(), 10);
        drop(through_the_proxy);
        drop(second);
        // Only addresses with a connection open are remembered.
        assert_eq!(lock(&per_address.open).len(), 1);
        drop(third);
        assert!(lock(&per_address.open).is_empty());
    }

    #[test]
    fn unset_variables_keep_the_defaults() {
        assert_eq!(
            ServeLimits::from_vars(|_| None),
            Ok(ServeLimits::default())
        );
    }

    #[test]
    fn each_variable_is_read_and_a_bad_value_is_named() {
        let limits = ServeLimits::from_vars(|name| match name {
            "MAX_CONNECTIONS" => Some("500".into()),
            "MAX_CONNECTIONS_PER_ADDRESS" => Some("50".into()),
            "TRUSTED_PROXY" => Some("10.0.0.1, ::ffff:10.0.0.2,::1".into()),
            "HEADER_READ_TIMEOUT_SECS" => Some(" 5 ".into()),
            "MAX_HEADER_BYTES" => Some("32768".into()),
            "REQUEST_TIMEOUT_SECS" => Some("30".into()),
            _ => None,
        });
        let ip = |text: &str| text.parse::<IpAddr>().expect("an address");
        assert_eq!(
            limits,
            Ok(ServeLimits {
                max_connections: 500,
                max_connections_per_address: 50,
                // An IPv4 address written the IPv6 way is the IPv4 one.
                trusted_proxies: vec![
                    ip("10.0.0.1"),
                    ip("10.0.0.2"),
                    ip("::1")
                ],
                header_read_timeout: Duration::from_secs(5),
                max_header_bytes: 32_768,
                request_timeout: Duration::from_secs(30),
            })
        );
        for (name, bad) in [
            ("TRUSTED_PROXY", "10.0.0.1, proxy.local"),
            ("MAX_HEADER_BYTES", "8191"),
            ("MAX_CONNECTIONS_PER_ADDRESS", "0"),
        ] {
            let error = ServeLimits::from_vars(|asked| {
                (asked == name).then(|| bad.into())
            })
            .expect_err("refused");
            assert!(error.contains(name), "{error}");
        }
        for bad in ["0", "-1", "ten", "1.5"] {
            let error = ServeLimits::from_vars(|name| {
                (name == "HEADER_READ_TIMEOUT_SECS").then(|| bad.to_owned())
            })
            .expect_err("refused");
            assert!(error.contains("HEADER_READ_TIMEOUT_SECS"), "{error}");
            assert!(error.contains(bad), "{error}");
        }
    }
}
