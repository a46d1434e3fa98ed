//! The servers under test, each started as a process of its own, so that the memory and CPU
//! time read from `/proc` are the server's alone and not the load generator's.
//!
//! The binaries are looked for next to the running executable (`target/release/` when the
//! load generator runs from there), where `cargo build --release -p step05-chat
//! -p chat-under-load -p scaling-with-redis -p bench` puts them. The Node twin is
//! `node compare/node-chat/server.js`, installed with `npm ci` there.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// How long a server may take to accept connections after it was started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A server process on a loopback port; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id, for `/proc`.
    pub pid: u32,
    /// Just before the process was started: cold start is counted from here.
    pub started: Instant,
    child: Child,
}

/// What the step-5 chat needs besides its port, shared by the nodes of a cluster.
#[derive(Debug)]
pub struct ChatSetup {
    /// Holds `chat.db`; removed when dropped.
    pub data: tempfile::TempDir,
    /// `SESSION_SECRET`: 64 random bytes, hex.
    pub session_secret: String,
}

impl ChatSetup {
    /// A fresh database folder and a fresh random secret.
    pub fn new() -> std::io::Result<Self> {
        use rand::RngCore;
        let mut secret = [0u8; 64];
        rand::thread_rng().fill_bytes(&mut secret);
        Ok(ChatSetup {
            data: tempfile::tempdir()?,
            session_secret: secret.iter().map(|byte| format!("{byte:02x}")).collect(),
        })
    }
}

/// Starts the floor (the `floor` binary next to this executable).
pub async fn start_floor() -> Result<ServerProcess, String> {
    Launcher::floor()?.start().await
}

/// How to start a server: its command, made afresh for every start, so that the same server
/// can be started again on the same port over the same database (see [`crate::restart`]).
pub struct Launcher {
    command: Box<dyn Fn() -> Command + Send + Sync>,
}

impl std::fmt::Debug for Launcher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Launcher")
    }
}

impl Launcher {
    /// The floor.
    pub fn floor() -> Result<Self, String> {
        let binary = sibling_binary("floor")?;
        Ok(Launcher::new(move || {
            let mut command = Command::new(&binary);
            command.env("RUST_LOG", "warn");
            command
        }))
    }

    /// A Rust chat over `setup`'s database and secret, with every throttle off.
    pub fn chat(setup: &ChatSetup, chat: Chat<'_>) -> Result<Self, String> {
        let binary = sibling_binary(chat.binary())?;
        let database = setup.data.path().join("chat.db");
        let (dir, secret) = (setup.data.path().to_owned(), setup.session_secret.clone());
        let (redis_url, database_url) = match chat {
            Chat::ClusterNode {
                redis_url,
                database_url,
            } => (Some(redis_url.to_owned()), database_url.map(str::to_owned)),
            Chat::Step05 | Chat::Step05OneThread | Chat::UnderLoad => (None, None),
        };
        // The nodes' shared SQLite file, unless a database server is given.
        let database_url =
            database_url.unwrap_or_else(|| format!("sqlite://{}", database.display()));
        // Tokio's `#[tokio::main]` runtime reads it: one worker thread, as many cores as
        // Node's one event loop uses for JavaScript.
        let one_thread = matches!(chat, Chat::Step05OneThread);
        Ok(Launcher::new(move || {
            let mut command = Command::new(&binary);
            command
                .env("DATABASE_URL", &database_url)
                .env("SESSION_SECRET", &secret)
                .env("RATE_LIMITS", "off")
                // `SERVER_RUST_LOG=step05_chat=info loadgen ...` shows the server's log (on
                // stderr).
                .env("RUST_LOG", server_log_filter())
                .env("HOST", "127.0.0.1")
                // The chat loads `.env` from the directory it runs in: run it where there is
                // none.
                .current_dir(&dir);
            match &redis_url {
                Some(url) => command.env("REDIS_URL", url),
                None => command.env_remove("REDIS_URL"),
            };
            match one_thread {
                true => command.env("TOKIO_WORKER_THREADS", "1"),
                false => command.env_remove("TOKIO_WORKER_THREADS"),
            };
            command
        }))
    }

    /// Step 5's Node.js twin (`node compare/node-chat/server.js`) over `setup`'s database,
    /// with the same settings as [`Launcher::chat`].
    pub fn node(setup: &ChatSetup) -> Self {
        let database = setup.data.path().join("chat.db");
        let (dir, secret) = (setup.data.path().to_owned(), setup.session_secret.clone());
        Launcher::new(move || {
            let mut command = Command::new("node");
            command
                .arg(node_chat_dir().join("server.js"))
                // What a Node.js server runs with in production: Express then skips
                // its development-only work (and the twin refuses test settings).
                .env("NODE_ENV", "production")
                .env("DATABASE_URL", format!("sqlite://{}", database.display()))
                .env("SESSION_SECRET", &secret)
                .env("RATE_LIMITS", "off")
                .env("RUST_LOG", server_log_filter())
                .env("HOST", "127.0.0.1")
                .env_remove("REDIS_URL")
                .current_dir(&dir);
            command
        })
    }

    /// The same server with one more environment variable (`LD_PRELOAD`, `MALLOC_*`...).
    pub fn with_env(self, name: &str, value: impl Into<std::ffi::OsString>) -> Self {
        let (name, value) = (name.to_owned(), value.into());
        let command = self.command;
        Launcher::new(move || {
            let mut command = command();
            command.env(&name, &value);
            command
        })
    }

    fn new(command: impl Fn() -> Command + Send + Sync + 'static) -> Self {
        Launcher {
            command: Box::new(command),
        }
    }

    /// Starts the server on a free port.
    pub async fn start(&self) -> Result<ServerProcess, String> {
        let port = free_port().map_err(|error| format!("no free port: {error}"))?;
        self.start_on(port).await
    }

    /// Starts the server on `port` (again, after a stop), and waits until it accepts.
    pub async fn start_on(&self, port: u16) -> Result<ServerProcess, String> {
        start((self.command)(), port).await
    }
}

/// The Rust chats, which all read the same settings.
#[derive(Debug, Clone, Copy)]
pub enum Chat<'a> {
    /// Step 5's chat, `step05-chat`.
    Step05,
    /// The same binary on one Tokio worker thread (`TOKIO_WORKER_THREADS=1`).
    Step05OneThread,
    /// Step 5 with the delivery machinery of "The chat under load", `chat-under-load`.
    UnderLoad,
    /// One node of a cluster sharing `redis_url`, `scaling-with-redis`.
    ClusterNode {
        /// The Redis server every node of the cluster uses.
        redis_url: &'a str,
        /// The PostgreSQL database every node uses (`postgres://...`), or `None` for the
        /// setup's SQLite file (nodes on one machine).
        database_url: Option<&'a str>,
    },
}

impl Chat<'_> {
    /// Its binary's name.
    pub fn binary(self) -> &'static str {
        match self {
            Chat::Step05 | Chat::Step05OneThread => "step05-chat",
            Chat::UnderLoad => "chat-under-load",
            Chat::ClusterNode { .. } => "scaling-with-redis",
        }
    }
}

/// Starts `chat` (its binary next to this executable) over `setup`'s database, with every
/// throttle off.
pub async fn start_chat(setup: &ChatSetup, chat: Chat<'_>) -> Result<ServerProcess, String> {
    Launcher::chat(setup, chat)?.start().await
}

/// Where a server's standard output (the Rust servers' log) goes: nowhere, unless
/// `SERVER_RUST_LOG` asks for the log, then to this process's standard error.
fn server_log_output() -> Stdio {
    match std::env::var_os("SERVER_RUST_LOG") {
        Some(_) => Stdio::from(std::io::stderr()),
        None => Stdio::null(),
    }
}

/// The chat's log filter: warnings only, unless `SERVER_RUST_LOG` says otherwise.
fn server_log_filter() -> String {
    std::env::var("SERVER_RUST_LOG").unwrap_or_else(|_| "warn".to_owned())
}

/// Starts step 5's Node.js twin (`node compare/node-chat/server.js`) over `setup`'s database,
/// with the same settings as [`start_chat`].
pub async fn start_node(setup: &ChatSetup) -> Result<ServerProcess, String> {
    Launcher::node(setup).start().await
}

/// `node --version` (`v24.19.0`), if `node` runs.
pub fn node_version() -> Option<String> {
    let output = std::process::Command::new("node")
        .arg("--version")
        .output()
        .ok()?;
    let version = String::from_utf8(output.stdout).ok()?;
    output.status.success().then(|| version.trim().to_owned())
}

/// The Node twin's folder, `compare/node-chat`.
pub fn node_chat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../compare/node-chat")
}

/// Whether `node` runs and the twin's packages are installed, or what to do about it.
pub fn check_node_chat() -> Result<(), String> {
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|output| output.status.success()) {
        return Err("the node target needs Node.js (bash scripts/test.sh installs it)".into());
    }
    let dir = node_chat_dir();
    if dir.join("node_modules/.package-lock.json").is_file() {
        Ok(())
    } else {
        Err(format!(
            "the Node twin is not installed: run `npm ci` in {}",
            dir.display()
        ))
    }
}

/// Runs `command` with `PORT` set to `port`, and waits until that port accepts.
/// Waits until the server at `addr` answers `GET /`: built (its database migrated), not only
/// listening.
pub async fn wait_until_serving(addr: SocketAddr) -> Result<(), String> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let answer = http.get(format!("http://{addr}/")).send().await;
        if answer.is_ok_and(|answer| answer.status().is_success()) {
            return Ok(());
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            return Err(format!(
                "{addr} did not answer GET / within {STARTUP_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start(mut command: Command, port: u16) -> Result<ServerProcess, String> {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let started = Instant::now();
    let mut child = command
        .env("PORT", port.to_string())
        // Every connection of the load comes from this machine, one address: at the default
        // per-address limit (1,024), the 10,000-socket load would be cut off.
        .env("MAX_CONNECTIONS_PER_ADDRESS", "65536")
        .stdin(Stdio::null())
        .stdout(server_log_output())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot start {program}: {error}"))?;
    let pid = child
        .id()
        .ok_or_else(|| format!("{program} exited at once"))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{program} exited with {status} before listening"));
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            return Err(format!(
                "{program} did not listen on {addr} within {STARTUP_TIMEOUT:?}"
            ));
        }
        // Often: the cold start is measured from outside, to the millisecond.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(ServerProcess {
        addr,
        pid,
        started,
        child,
    })
}

/// How to stop a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopSignal {
    /// `SIGTERM`, what `systemctl stop` and `docker stop` send first: the chat closes its
    /// sockets and ends.
    Term,
    /// `SIGKILL`: a crash, an out-of-memory kill. Nothing is closed politely.
    Kill,
}

impl StopSignal {
    /// `term` or `kill`, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "term",
            StopSignal::Kill => "kill",
        }
    }

    /// From `term` or `kill`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "term" => Some(StopSignal::Term),
            "kill" => Some(StopSignal::Kill),
            _ => None,
        }
    }
}

/// How long a server may take to end after `SIGTERM` before it is killed.
const TERM_TIMEOUT: Duration = Duration::from_secs(30);

impl ServerProcess {
    /// Stops the server at once.
    pub async fn kill(mut self) {
        self.child.kill().await.ok();
    }

    /// Sends `signal` and waits until the process has ended. A server still running
    /// [`TERM_TIMEOUT`] after `SIGTERM` is killed, and that is an error.
    pub async fn stop(mut self, signal: StopSignal) -> Result<(), String> {
        match signal {
            StopSignal::Kill => {
                self.child.kill().await.map_err(|error| error.to_string())?;
                Ok(())
            }
            StopSignal::Term => {
                // `kill(1)` rather than a crate for one system call.
                let sent = std::process::Command::new("kill")
                    .args(["-TERM", &self.pid.to_string()])
                    .status()
                    .map_err(|error| format!("cannot run kill: {error}"))?;
                if !sent.success() {
                    return Err(format!("kill -TERM {} failed ({sent})", self.pid));
                }
                match tokio::time::timeout(TERM_TIMEOUT, self.child.wait()).await {
                    Ok(ended) => ended.map(drop).map_err(|error| error.to_string()),
                    Err(_) => {
                        self.child.kill().await.ok();
                        Err(format!("still running {TERM_TIMEOUT:?} after SIGTERM"))
                    }
                }
            }
        }
    }
}

/// A server process that can be stopped and started again on the same port (the restart
/// scenario).
#[derive(Debug)]
pub struct ProcessServer {
    launcher: Launcher,
    port: u16,
    process: Option<ServerProcess>,
}

impl ProcessServer {
    /// Starts `launcher`'s server on a free port.
    pub async fn launch(launcher: Launcher) -> Result<Self, String> {
        let process = launcher.start().await?;
        Ok(ProcessServer {
            launcher,
            port: process.addr.port(),
            process: Some(process),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Stops it at once, if it runs.
    pub async fn kill(self) {
        if let Some(process) = self.process {
            process.kill().await;
        }
    }
}

impl crate::restart::Restart for ProcessServer {
    async fn stop(&mut self, signal: StopSignal) -> Result<(), String> {
        let process = self.process.take().ok_or("the server is not running")?;
        process.stop(signal).await
    }

    async fn start(&mut self) -> Result<(), String> {
        self.process = Some(self.launcher.start_on(self.port).await?);
        Ok(())
    }
}

/// The nodes of a cluster, for the node-kill scenario: `stop` stops the first node, for good;
/// the others carry on, and take its sockets when they reconnect.
#[derive(Debug)]
pub struct ClusterNodes {
    nodes: Vec<ServerProcess>,
    first: SocketAddr,
}

impl ClusterNodes {
    /// The cluster of `nodes` (started): at least two, or nobody is left to reconnect to.
    pub fn new(nodes: Vec<ServerProcess>) -> Result<Self, String> {
        match nodes.as_slice() {
            [first, _, ..] => Ok(ClusterNodes {
                first: first.addr,
                nodes,
            }),
            _ => Err("killing a node needs a cluster of two nodes or more".into()),
        }
    }

    /// Where the nodes listen, the one `stop` stops first.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        let others = self.nodes.iter().map(|node| node.addr);
        let others = others.filter(|addr| *addr != self.first);
        std::iter::once(self.first).chain(others).collect()
    }

    /// Stops every node still running, at once.
    pub async fn kill(self) {
        for node in self.nodes {
            node.kill().await;
        }
    }
}

impl crate::restart::Restart for ClusterNodes {
    async fn stop(&mut self, signal: StopSignal) -> Result<(), String> {
        let position = self.nodes.iter().position(|node| node.addr == self.first);
        let first = position.ok_or("the first node is already stopped")?;
        self.nodes.remove(first).stop(signal).await
    }

    async fn start(&mut self) -> Result<(), String> {
        Ok(()) // the survivors are already serving
    }

    fn stays_down(&self) -> Option<SocketAddr> {
        Some(self.first)
    }
}

/// A port the OS says is free. (Another process could take it before the server binds it; on
/// a test machine that is rare, and the start then fails with a clear message.)
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The binary `name` next to the running executable, or an error that says how to build it.
pub fn sibling_binary(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|error| format!("where am I? {error}"))?;
    let path = me.parent().unwrap_or(Path::new(".")).join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build it first with \
             `cargo build --release -p step05-chat -p chat-under-load -p scaling-with-redis \
             -p bench`",
            path.display()
        ))
    }
}

/// Makes sure the chat `binaries` (of [`Chat::binary`]) are next to this executable: if one is
/// missing and this process was started by `cargo run` (which sets `CARGO`), builds all the
/// chats, since `cargo run -p bench` builds only this package's binaries.
pub fn build_chats_if_missing(binaries: &[&str]) -> Result<(), String> {
    let all_there = || {
        binaries
            .iter()
            .try_for_each(|name| sibling_binary(name).map(drop))
    };
    if all_there().is_ok() {
        return Ok(());
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        return all_there();
    };
    let me = std::env::current_exe().map_err(|error| format!("where am I? {error}"))?;
    let release = me.parent().is_some_and(|dir| dir.ends_with("release"));
    let mut build = std::process::Command::new(cargo);
    // All four packages, as in the README: built alone, a package's dependencies would get
    // other features, and everything would be compiled again.
    build.args([
        "build",
        "-p",
        "step05-chat",
        "-p",
        "chat-under-load",
        "-p",
        "scaling-with-redis",
        "-p",
        "bench",
    ]);
    if release {
        build.arg("--release");
    }
    eprintln!("building the chat: {build:?}");
    let status = build
        .status()
        .map_err(|error| format!("cannot run cargo: {error}"))?;
    if !status.success() {
        return Err(format!("building the chat failed ({status})"));
    }
    all_there()
}
