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
    let mut command = Command::new(sibling_binary("floor")?);
    command.env("RUST_LOG", "warn");
    start(command).await
}

/// The Rust chats, which all read the same settings.
#[derive(Debug, Clone, Copy)]
pub enum Chat<'a> {
    /// Step 5's chat, `step05-chat`.
    Step05,
    /// Step 5 with the delivery machinery of "The chat under load", `chat-under-load`.
    UnderLoad,
    /// One node of a cluster sharing `redis_url`, `scaling-with-redis`.
    ClusterNode {
        /// The Redis server every node of the cluster uses.
        redis_url: &'a str,
    },
}

impl Chat<'_> {
    /// Its binary's name.
    pub fn binary(self) -> &'static str {
        match self {
            Chat::Step05 => "step05-chat",
            Chat::UnderLoad => "chat-under-load",
            Chat::ClusterNode { .. } => "scaling-with-redis",
        }
    }
}

/// Starts `chat` (its binary next to this executable) over `setup`'s database, with every
/// throttle off.
pub async fn start_chat(setup: &ChatSetup, chat: Chat<'_>) -> Result<ServerProcess, String> {
    let database = setup.data.path().join("chat.db");
    let mut command = Command::new(sibling_binary(chat.binary())?);
    command
        .env("DATABASE_URL", format!("sqlite://{}", database.display()))
        .env("SESSION_SECRET", &setup.session_secret)
        .env("RATE_LIMITS", "off")
        // `SERVER_RUST_LOG=step05_chat=info loadgen ...` shows the server's log (on stderr).
        .env("RUST_LOG", server_log_filter())
        .env("HOST", "127.0.0.1")
        // The chat loads `.env` from the directory it runs in: run it where there is none.
        .current_dir(setup.data.path());
    match chat {
        Chat::ClusterNode { redis_url } => command.env("REDIS_URL", redis_url),
        Chat::Step05 | Chat::UnderLoad => command.env_remove("REDIS_URL"),
    };
    start(command).await
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
    let database = setup.data.path().join("chat.db");
    let mut command = Command::new("node");
    command
        .arg(node_chat_dir().join("server.js"))
        .env("DATABASE_URL", format!("sqlite://{}", database.display()))
        .env("SESSION_SECRET", &setup.session_secret)
        .env("RATE_LIMITS", "off")
        .env("RUST_LOG", server_log_filter())
        .env("HOST", "127.0.0.1")
        .env_remove("REDIS_URL")
        .current_dir(setup.data.path());
    start(command).await
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

/// Runs `command` with `PORT` set to a free port, and waits until that port accepts.
async fn start(mut command: Command) -> Result<ServerProcess, String> {
    let port = free_port().map_err(|error| format!("no free port: {error}"))?;
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

impl ServerProcess {
    /// Stops the server at once.
    pub async fn kill(mut self) {
        self.child.kill().await.ok();
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
