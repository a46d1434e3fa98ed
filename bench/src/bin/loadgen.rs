//! `loadgen`: the same workload against the floor, step 5 and the chat under load (and
//! optionally step 5's Node.js twin, or a two-node cluster), one after the other, each server
//! in its own process.
//!
//! ```console
//! cargo run --release -p bench --bin loadgen     # 1,000 sockets, 200 messages/s
//! cargo run --release -p bench --bin loadgen -- --users 500 --senders 50 --rate 0.2 --messages 10
//! cargo run --release -p bench --bin loadgen -- --targets floor,step05,step05-1thread,node
//! cargo run --release -p bench --bin loadgen -- --targets floor,chat-under-load,cluster
//! ```
//!
//! Before the workload, each server's cold start (process start to its first accepted socket)
//! and its memory at idle are measured. After it, the results are printed as a Markdown table
//! and drawn as an SVG chart (`--chart PATH`; by default `loadgen.svg` in the target folder,
//! next to `release/`).
//!
//! The second line is the 10,000-socket case: 500 users × 20 tabs, 50 of them sending one
//! message every 5 s, 10 messages/s in all. Run from `cargo run`, a missing `step05-chat`,
//! `chat-under-load` or `scaling-with-redis` binary is built first.
//!
//! `--scenario restart` is the reconnect storm of [`bench::restart`]: each target is stopped
//! (`--signal term,kill`, once per signal) `--stop-after` seconds into the sending and started
//! again on the same port and database; the table says how long until every socket was back
//! and caught up, and what was lost or repeated:
//!
//! ```console
//! cargo run --release -p bench --bin loadgen -- --scenario restart --users 50 --tabs 20
//! ```

use std::path::PathBuf;
use std::time::Duration;

use bench::servers::{
    self, ChatSetup, ClusterNodes, Launcher, ProcessServer, ServerProcess, StopSignal,
};
use bench::{Report, RestartPlan, RestartReport, Target, Workload, chart, procfs, table};

const USAGE: &str = "usage: loadgen [--scenario load|restart] [--users N] [--tabs N] [--senders N] [--messages N] [--rate PER_SECOND] [--drain SECONDS] [--targets floor,step05,step05-1thread,chat-under-load,node,node-cluster,cluster,cluster-pg1,cluster-pg2,cluster-pg3] [--chart PATH]\n       restart only: [--signal term,kill] [--stop-after SECONDS] [--patience SECONDS] [--empty-offset zero|none]";

/// Every target this load generator knows: the floor (a bare socketioxide server), step 5's
/// chat, the chat under load (step 5 with the delivery machinery of the chapter of that name),
/// step 5's Node.js twin, and two nodes of the Redis cluster on one SQLite file.
/// `step05-1thread` is step 5 on one Tokio worker thread, beside the Node twin's one event
/// loop, and `node-cluster` is the twin on both cores (`WORKERS=2`: a primary and two
/// workers, memory and CPU counted over all three). `cluster-pgN` is N nodes (1, 2 or 3) on PostgreSQL: run the load generator beside
/// one (`bash scripts/with-postgres.sh cargo run ...`, or `TEST_POSTGRES_URL` set), each
/// target in a fresh database of its own.
const TARGETS: [&str; 10] = [
    "floor",
    "step05",
    "step05-1thread",
    "chat-under-load",
    "node",
    "node-cluster",
    "cluster",
    "cluster-pg1",
    "cluster-pg2",
    "cluster-pg3",
];

/// The targets run when `--targets` is not given: what the chapter on the chat under load
/// compares.
const DEFAULT_TARGETS: [&str; 3] = ["floor", "step05", "chat-under-load"];

/// How long a server is left alone after its first socket closed, before its memory at idle
/// is read.
const IDLE_SETTLE: Duration = Duration::from_secs(1);

/// Open files the load generator needs beyond one per socket (stdio, HTTP, the runtime...).
const SPARE_FILES: u64 = 256;

/// What the restart scenario can restart: one process, or, for a cluster, kill one node of
/// (the node-kill scenario: the node stays down, its sockets move to the others).
const RESTART_TARGETS: [&str; 8] = [
    "floor",
    "step05",
    "step05-1thread",
    "chat-under-load",
    "node",
    "cluster",
    "cluster-pg2",
    "cluster-pg3",
];

/// The restart scenario's senders, unless `--senders` says otherwise: 10 users sending 20
/// messages at 2 a second, so the sending goes on through the storm without drowning it.
const RESTART_SENDERS: usize = 10;
const RESTART_MESSAGES: usize = 20;
const RESTART_RATE: f64 = 2.0;

#[derive(Debug)]
struct Args {
    workload: Workload,
    targets: Vec<String>,
    /// Where the SVG chart is written.
    chart: PathBuf,
    /// `None`: the normal run. `Some`: the restart scenario, once per signal.
    restart: Option<Restart>,
}

/// The restart scenario's settings.
#[derive(Debug)]
struct Restart {
    signals: Vec<StopSignal>,
    stop_after: Duration,
    patience: Duration,
    /// See [`RestartPlan::zero_offset`].
    zero_offset: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut workload = Workload::default();
    let (mut senders, mut messages, mut rate) = (None, None, None);
    let mut targets: Vec<String> = DEFAULT_TARGETS.map(str::to_owned).to_vec();
    let mut chart = None;
    let mut scenario = "load".to_owned();
    let mut signals = vec![StopSignal::Term, StopSignal::Kill];
    let (mut stop_after, mut patience) = (None, None);
    let mut zero_offset = true;
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = words
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let whole = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag} takes a whole number, got {value:?}"))
        };
        let decimal = || {
            value
                .parse::<f64>()
                .map_err(|_| format!("{flag} takes a number, got {value:?}"))
        };
        match flag.as_str() {
            "--users" => workload.users = whole()?,
            "--tabs" => workload.tabs = whole()?,
            "--senders" => senders = Some(whole()?),
            "--messages" => messages = Some(whole()?),
            "--rate" => rate = Some(decimal()?),
            "--drain" => workload.drain = Duration::from_secs_f64(decimal()?.max(0.0)),
            "--targets" => targets = value.split(',').map(str::to_owned).collect(),
            "--chart" => chart = Some(PathBuf::from(value)),
            "--scenario" => scenario = value,
            "--signal" => {
                signals = value
                    .split(',')
                    .map(|name| {
                        StopSignal::parse(name)
                            .ok_or_else(|| "--signal takes term, kill or term,kill".to_owned())
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--stop-after" => stop_after = Some(Duration::from_secs_f64(decimal()?.max(0.0))),
            "--patience" => patience = Some(Duration::from_secs_f64(decimal()?.max(0.0))),
            "--empty-offset" => {
                zero_offset = match value.as_str() {
                    "zero" => true,
                    "none" => false,
                    _ => return Err("--empty-offset takes zero or none".to_owned()),
                };
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    let restart = match scenario.as_str() {
        "load" => None,
        "restart" => {
            let defaults = RestartPlan::new(StopSignal::Term);
            Some(Restart {
                signals,
                stop_after: stop_after.unwrap_or(defaults.stop_after),
                patience: patience.unwrap_or(defaults.patience),
                zero_offset,
            })
        }
        _ => return Err(format!("--scenario takes load or restart\n{USAGE}")),
    };
    if restart.is_some() {
        workload.messages = messages.unwrap_or(RESTART_MESSAGES);
        workload.rate = rate.unwrap_or(RESTART_RATE);
        workload.senders = senders.unwrap_or(RESTART_SENDERS.min(workload.users));
        if let Some(other) = targets
            .iter()
            .find(|target| !RESTART_TARGETS.contains(&target.as_str()))
        {
            return Err(format!(
                "the restart scenario restarts one process or kills a node of two or more: {other:?} is not one of {}",
                RESTART_TARGETS.join(", ")
            ));
        }
    } else {
        workload.messages = messages.unwrap_or(workload.messages);
        workload.rate = rate.unwrap_or(workload.rate);
        // Every user sends unless told otherwise.
        workload.senders = senders.unwrap_or(workload.users);
    }
    workload.validate()?;
    if let Some(unknown) = targets
        .iter()
        .find(|target| !TARGETS.contains(&target.as_str()))
    {
        return Err(format!(
            "unknown target {unknown:?}: use {}",
            TARGETS.join(", ")
        ));
    }
    Ok(Args {
        workload,
        targets,
        chart: chart.unwrap_or_else(default_chart_path),
        restart,
    })
}

/// `loadgen.svg` in the target folder: `target/loadgen.svg` for `target/release/loadgen`.
fn default_chart_path() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    let target_dir = me.parent().and_then(|dir| dir.parent());
    target_dir.map_or_else(
        || PathBuf::from("loadgen.svg"),
        |dir| dir.join("loadgen.svg"),
    )
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    check_open_files(&args.workload)?;
    check_binaries(&args.targets)?;

    let command_line: Vec<String> = std::env::args().collect();
    let workload = &args.workload;
    println!("command: {}", command_line.join(" "));
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        procfs::cpu_model().unwrap_or_else(|| "unknown CPU".into())
    );
    println!(
        "workload: {} users × {} tabs = {} sockets in `general`; {} senders × {} messages at {}/s each ({:.0} messages/s, {:.0} deliveries/s)",
        workload.users,
        workload.tabs,
        workload.sockets(),
        workload.senders,
        workload.messages,
        workload.rate,
        workload.senders as f64 * workload.rate,
        workload.senders as f64 * workload.rate * workload.sockets() as f64,
    );

    if args.targets.iter().any(|target| target.starts_with("node")) {
        let version = servers::node_version().unwrap_or_else(|| "unknown".into());
        println!("node: {version}, NODE_ENV=production");
    }
    println!(
        "load average before: {}",
        procfs::load_average().unwrap_or_else(|| "unknown".into())
    );

    if let Some(restart) = &args.restart {
        return run_restarts(&args.targets, workload, restart).await;
    }

    let mut reports = Vec::new();
    for target in &args.targets {
        eprintln!("running {target}...");
        let report = measure(target, workload).await?;
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|error| error.to_string())?
        );
        reports.push(report);
    }

    println!();
    println!("{}", table::header());
    for report in &reports {
        println!("{}", table::row(report));
    }
    println!();
    for report in &reports {
        println!(
            "{}: {} TCP segments sent per 1,000 deliveries; load average {}",
            report.target,
            report
                .segments_per_thousand
                .map_or("n/a".into(), |n| format!("{n:.0}")),
            report.load_average.as_deref().unwrap_or("unknown"),
        );
    }
    if let Some(floor) = reports.iter().find(|report| report.target == "floor") {
        println!();
        for report in reports.iter().filter(|report| report.target != "floor") {
            println!("{}", table::versus_floor(report, floor));
        }
    }
    let named = |name: &str| reports.iter().find(|report| report.target == name);
    if let (Some(step05), Some(node)) = (named("step05"), named("node")) {
        println!("{}", table::versus(step05, node));
    }
    if let (Some(one_thread), Some(node)) = (named("step05-1thread"), named("node")) {
        println!("{}", table::versus(one_thread, node));
    }
    if let (Some(step05), Some(node)) = (named("step05"), named("node-cluster")) {
        println!("{}", table::versus(step05, node));
    }
    if let (Some(under_load), Some(step05)) = (named("chat-under-load"), named("step05")) {
        println!("{}", table::versus(under_load, step05));
    }

    let messages_per_sec = workload.senders as f64 * workload.rate;
    let title = format!(
        "{} sockets, {} messages/s, {} deliveries/s",
        thousands(workload.sockets() as f64),
        thousands(messages_per_sec),
        thousands(messages_per_sec * workload.sockets() as f64),
    );
    write_chart(&args.chart, &chart::svg(&title, &reports))?;
    println!();
    println!("chart: {}", args.chart.display());
    Ok(())
}

/// `value` rounded, with a comma every three digits: 200,000.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Writes `svg` to `path`, creating its folder if needed.
fn write_chart(path: &std::path::Path, svg: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    }
    std::fs::write(path, svg).map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// Starts `target`'s server(s), runs the workload, stops them.
async fn measure(target: &str, workload: &Workload) -> Result<Report, String> {
    let setup = ChatSetup::new().map_err(|error| format!("temporary folder: {error}"))?;
    // Kept until the end of the run: dropping it stops Redis.
    let mut redis = None;
    let processes: Vec<ServerProcess> = match target {
        "floor" => vec![servers::start_floor().await?],
        "step05" => vec![servers::start_chat(&setup, servers::Chat::Step05).await?],
        "step05-1thread" => {
            vec![servers::start_chat(&setup, servers::Chat::Step05OneThread).await?]
        }
        "chat-under-load" => vec![servers::start_chat(&setup, servers::Chat::UnderLoad).await?],
        "node" => vec![servers::start_node(&setup).await?],
        // The twin on every core: a primary and two workers (compare/node-chat, `WORKERS`).
        "node-cluster" => {
            let twin = Launcher::node(&setup).with_env("WORKERS", "2");
            vec![twin.start().await?]
        }
        cluster => start_cluster(cluster, &setup, &mut redis).await?,
    };
    let login = target != "floor";
    // Each process, and those it started (the twin's workers, which a primary that listens
    // first may start after the port is open: read once a socket has been served).
    let pids = || -> Vec<u32> {
        let pids = processes.iter().map(|process| process.pid);
        pids.flat_map(procfs::with_children).collect()
    };
    // One process: its cold start and its memory at idle. (Not for a cluster's two.)
    let mut cold = None;
    if let [process] = processes.as_slice() {
        bench::workload::first_socket(process.addr, login)
            .await
            .map_err(|error| format!("{target}: cold start: {error}"))?;
        let cold_start_ms = process.started.elapsed().as_secs_f64() * 1000.0;
        tokio::time::sleep(IDLE_SETTLE).await;
        let idle_mib = procfs::rss_kib(&pids()).map(|kib| kib as f64 / 1024.0);
        cold = Some((cold_start_ms, idle_mib));
    }
    let report = bench::run(
        workload,
        &Target {
            name: target.to_owned(),
            nodes: processes.iter().map(|process| process.addr).collect(),
            login,
            pids: pids(),
        },
    )
    .await
    .map(|mut report| {
        if let Some((cold_start_ms, idle_mib)) = cold {
            report.cold_start_ms = Some(cold_start_ms);
            report.idle_rss_mib = idle_mib;
        }
        report
    })
    .map_err(|error| format!("{target}: {error}"));
    for process in processes {
        process.kill().await;
    }
    drop(redis);
    report
}

/// The restart scenario: each target, once per signal, each on a fresh database; then the
/// table, and each chat against the floor restarted with the same signal.
async fn run_restarts(
    targets: &[String],
    workload: &Workload,
    restart: &Restart,
) -> Result<(), String> {
    let plan = RestartPlan {
        stop_after: restart.stop_after,
        patience: restart.patience,
        zero_offset: restart.zero_offset,
        ..RestartPlan::new(StopSignal::Term)
    };
    println!(
        "restart: stopped {:.1} s after the first send, then started again on the same port and database (a cluster: its first node stopped for good, its sockets reconnecting to the next node, the others staying); sockets reconnect with socket.io-client's back-off ({:?} doubling to {:?}, ± {:.0} %), at most {} handshakes in flight; a message is sent again after {:?} without an acknowledgement; the run ends when every message is acknowledged and every socket is back with every acknowledged message, or {:?} after the server listens again (or after the last send, if later)",
        plan.stop_after.as_secs_f64(),
        plan.backoff.first,
        plan.backoff.max,
        plan.backoff.jitter * 100.0,
        bench::workload::CONNECTS_IN_FLIGHT,
        plan.ack_timeout,
        plan.patience,
    );
    println!(
        "a socket that has seen no message reconnects with {}",
        match plan.zero_offset {
            true => "serverOffset 0, as the page does (--empty-offset zero)",
            false => "no serverOffset, as the page did before (--empty-offset none)",
        }
    );
    let mut reports = Vec::new();
    for target in targets {
        for signal in &restart.signals {
            eprintln!("restarting {target} with {}...", signal.name());
            let plan = RestartPlan {
                signal: *signal,
                ..plan.clone()
            };
            let report = measure_restart(target, workload, &plan).await?;
            println!(
                "{}",
                serde_json::to_string(&report).map_err(|error| error.to_string())?
            );
            reports.push(report);
        }
    }
    println!();
    println!("{}", table::restart_header());
    for report in &reports {
        println!("{}", table::restart_row(report));
    }
    println!();
    for report in reports.iter().filter(|report| report.target != "floor") {
        let floor = reports
            .iter()
            .find(|floor| floor.target == "floor" && floor.signal == report.signal);
        if let Some(floor) = floor {
            println!("{}", table::restart_versus_floor(report, floor));
        }
    }
    Ok(())
}

/// Starts the nodes of `cluster` (`cluster`: two on one SQLite file; `cluster-pgN`: N on
/// PostgreSQL), beside a Redis of their own, kept in `redis` (dropping it stops Redis).
async fn start_cluster(
    cluster: &str,
    setup: &ChatSetup,
    redis: &mut Option<testkit::RedisServer>,
) -> Result<Vec<ServerProcess>, String> {
    let server = redis.insert(testkit::RedisServer::start().await);
    let (nodes, database_url) = match cluster.strip_prefix("cluster-pg") {
        Some(nodes) => {
            let nodes = nodes
                .parse()
                .map_err(|_| format!("{cluster}: no such target"))?;
            (nodes, Some(fresh_postgres_database(cluster)?))
        }
        None => (2, None),
    };
    let node = servers::Chat::ClusterNode {
        redis_url: &server.url,
        database_url: database_url.as_deref(),
    };
    let mut processes = Vec::with_capacity(nodes);
    for _ in 0..nodes {
        let process = servers::start_chat(setup, node).await?;
        // A node listens before it has run its migrations; the next one, started
        // meanwhile on the same SQLite file, would run them too, and fail
        // ("table users already exists"). SQLite's migrations take no lock
        // (PostgreSQL's do).
        servers::wait_until_serving(process.addr).await?;
        processes.push(process);
    }
    Ok(processes)
}

/// Starts `target`'s server, runs the restart scenario, stops it.
async fn measure_restart(
    target: &str,
    workload: &Workload,
    plan: &RestartPlan,
) -> Result<RestartReport, String> {
    let setup = ChatSetup::new().map_err(|error| format!("temporary folder: {error}"))?;
    if target.starts_with("cluster") {
        let mut redis = None;
        let mut cluster = ClusterNodes::new(start_cluster(target, &setup, &mut redis).await?)?;
        let report = bench::run_restart(
            workload,
            plan,
            &Target {
                name: target.to_owned(),
                nodes: cluster.addrs(),
                login: true,
                pids: Vec::new(),
            },
            &mut cluster,
        )
        .await
        .map_err(|error| format!("{target}: {error}"));
        cluster.kill().await;
        return report;
    }
    let launcher = match target {
        "floor" => Launcher::floor()?,
        "step05" => Launcher::chat(&setup, servers::Chat::Step05)?,
        "step05-1thread" => Launcher::chat(&setup, servers::Chat::Step05OneThread)?,
        "chat-under-load" => Launcher::chat(&setup, servers::Chat::UnderLoad)?,
        _ => Launcher::node(&setup),
    };
    let mut server = ProcessServer::launch(launcher).await?;
    let report = bench::run_restart(
        workload,
        plan,
        &Target {
            name: target.to_owned(),
            nodes: vec![server.addr()],
            login: target != "floor",
            pids: Vec::new(),
        },
        &mut server,
    )
    .await
    .map_err(|error| format!("{target}: {error}"));
    server.kill().await;
    report
}

/// One file per socket: stop now, with the fix, rather than fail half-way.
fn check_open_files(workload: &Workload) -> Result<(), String> {
    let needed = workload.sockets() as u64 + SPARE_FILES;
    match procfs::open_files_limit() {
        Some(limit) if limit < needed => Err(format!(
            "{} sockets need about {needed} open files, but the limit is {limit}: \
             run `ulimit -n {needed}` in this shell first",
            workload.sockets()
        )),
        _ => Ok(()),
    }
}

/// A database of its own for `target` on the PostgreSQL at `TEST_POSTGRES_URL` (made with
/// `psql`, which comes with PostgreSQL): its URL.
fn fresh_postgres_database(target: &str) -> Result<String, String> {
    let server = std::env::var("TEST_POSTGRES_URL")
        .map_err(|_| format!("{target} needs TEST_POSTGRES_URL"))?;
    let name = format!(
        "loadgen_{}_{}",
        std::process::id(),
        target.replace('-', "_")
    );
    let created = std::process::Command::new("psql")
        .args(["-X", "-q", "-d", &format!("{server}/postgres")])
        .args(["-c", &format!("CREATE DATABASE {name}")])
        .output()
        .map_err(|error| format!("{target}: cannot run psql: {error}"))?;
    if !created.status.success() {
        let error = String::from_utf8_lossy(&created.stderr);
        return Err(format!("{target}: CREATE DATABASE {name}: {error}"));
    }
    Ok(format!("{server}/{name}"))
}

/// The binary that serves `target`, if it is a Rust chat.
fn chat_binary(target: &str) -> Option<&'static str> {
    match target {
        "step05" | "step05-1thread" => Some(servers::Chat::Step05.binary()),
        "chat-under-load" => Some(servers::Chat::UnderLoad.binary()),
        cluster if cluster.starts_with("cluster") => {
            let node = servers::Chat::ClusterNode {
                redis_url: "",
                database_url: None,
            };
            Some(node.binary())
        }
        _ => None,
    }
}

fn check_binaries(targets: &[String]) -> Result<(), String> {
    let chats: Vec<&str> = targets
        .iter()
        .filter_map(|target| chat_binary(target))
        .collect();
    if !chats.is_empty() {
        servers::build_chats_if_missing(&chats)?;
    }
    for target in targets {
        let binary = match target.as_str() {
            "floor" => "floor",
            "node" | "node-cluster" => {
                servers::check_node_chat()?;
                continue;
            }
            chat => chat_binary(chat).unwrap_or(chat),
        };
        servers::sibling_binary(binary)?;
        if target.starts_with("cluster-pg") && std::env::var_os("TEST_POSTGRES_URL").is_none() {
            return Err(format!(
                "{target} needs a PostgreSQL: run `bash scripts/with-postgres.sh cargo run \
                 --release -p bench --bin loadgen -- ...`, or set TEST_POSTGRES_URL"
            ));
        }
        if target.starts_with("cluster")
            && std::process::Command::new("redis-server")
                .arg("--version")
                .output()
                .is_err()
        {
            return Err(
                "the cluster target needs `redis-server` (bash scripts/test.sh installs it)".into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn big_numbers_get_a_comma_every_three_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(thousands(200_000.0), "200,000");
        assert_eq!(thousands(12_345_678.0), "12,345,678");
    }
}
