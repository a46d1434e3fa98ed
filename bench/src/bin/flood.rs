//! `flood`: what a flood costs the chat's memory, and how much of it is given back.
//!
//! ```console
//! cargo build --release -p step05-chat -p chat-under-load -p bench
//! target/release/flood                                 # every flood, both chats, 1,000 connections
//! target/release/flood --floods catch-up --targets step05 --trim
//! MALLOC_ARENA_MAX=2 target/release/flood --floods catch-up
//! target/release/flood --floods catch-up --rounds 3   # the same flood again on the same server
//! ```
//!
//! Each target and flood gets a fresh server process (every throttle off, as for `loadgen`).
//! Its resident memory is read before the flood, at its peak, and `--settle` seconds (30 by
//! default) after the last connection closed. `--trim` then has the server call glibc's
//! `malloc_trim(0)` (`bench/trim/trim_on_signal.c`, compiled with `cc` and preloaded) and reads
//! it again: if that takes the memory back down, what had stayed was free memory the allocator
//! kept, not the chat's data. The server inherits this command's environment, so glibc's
//! `MALLOC_*` settings apply to it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bench::flood::{Flood, FloodReport, Trim, run_flood};
use bench::servers::{self, Chat, ChatSetup, Launcher};

const USAGE: &str = "usage: flood [--targets step05,chat-under-load] [--floods headers,catch-up,rooms] [--connections N] [--settle SECONDS] [--rounds N] [--trim]";

/// The glibc settings that change what `free` gives back: shown with the results.
const MALLOC_SETTINGS: [&str; 3] = [
    "MALLOC_ARENA_MAX",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
];

struct Args {
    targets: Vec<(String, Chat<'static>)>,
    floods: Vec<Flood>,
    connections: usize,
    settle: Duration,
    rounds: usize,
    trim: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        targets: vec![
            ("step05".into(), Chat::Step05),
            ("chat-under-load".into(), Chat::UnderLoad),
        ],
        floods: vec![Flood::Headers, Flood::CatchUp, Flood::Rooms],
        connections: 1_000,
        settle: Duration::from_secs(30),
        rounds: 1,
        trim: false,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        if flag == "--trim" {
            args.trim = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = words
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag} takes a whole number, got {value:?}"))
        };
        match flag.as_str() {
            "--targets" => {
                args.targets = value
                    .split(',')
                    .map(|name| match name {
                        "step05" => Ok((name.to_owned(), Chat::Step05)),
                        "chat-under-load" => Ok((name.to_owned(), Chat::UnderLoad)),
                        _ => Err(format!(
                            "unknown target {name:?}: step05 or chat-under-load"
                        )),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--floods" => {
                args.floods = value
                    .split(',')
                    .map(|name| {
                        Flood::parse(name).ok_or_else(|| format!("unknown flood {name:?}\n{USAGE}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--connections" => args.connections = number()? as usize,
            "--settle" => args.settle = Duration::from_secs(number()?),
            "--rounds" => args.rounds = number()?.max(1) as usize,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(args)
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
    let binaries: Vec<&str> = args.targets.iter().map(|(_, chat)| chat.binary()).collect();
    servers::build_chats_if_missing(&binaries)?;
    let command_line: Vec<String> = std::env::args().collect();
    println!("command: {}", command_line.join(" "));
    let settings: Vec<String> = MALLOC_SETTINGS
        .iter()
        .filter_map(|name| Some(format!("{name}={}", std::env::var(name).ok()?)))
        .collect();
    println!("glibc settings: {}", none_if_empty(&settings.join(" ")));
    // Kept until the end: the preloaded library and the file it signals with live in it.
    let scratch = tempfile::tempdir().map_err(|error| error.to_string())?;
    let preload = match args.trim {
        true => Some(compile_trim_library(scratch.path())?),
        false => None,
    };
    let trim = Trim {
        done: scratch.path().join("trimmed"),
    };
    println!();
    println!(
        "| Server | Flood | Round | Before | Peak | {} s after | Kept | After malloc_trim | Completed |",
        args.settle.as_secs()
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, chat) in &args.targets {
        for flood in &args.floods {
            eprintln!("{name}: {} flood...", flood.name());
            let setup = ChatSetup::new().map_err(|error| error.to_string())?;
            let mut launcher = Launcher::chat(&setup, *chat)?;
            if let Some(library) = &preload {
                launcher = launcher
                    .with_env("LD_PRELOAD", library)
                    .with_env("TRIM_DONE_FILE", &trim.done);
            }
            let server = launcher.start().await?;
            let trim = preload.as_ref().map(|_| &trim);
            let reports = run_flood(
                server.addr,
                server.pid,
                *flood,
                args.connections,
                args.settle,
                args.rounds,
                trim,
            )
            .await;
            server.kill().await;
            for (round, report) in (1..).zip(&reports?) {
                println!("{}", row(name, *flood, round, args.connections, report));
            }
        }
    }
    Ok(())
}

/// `bench/trim/trim_on_signal.c` compiled into `dir`, for `LD_PRELOAD`.
fn compile_trim_library(dir: &Path) -> Result<PathBuf, String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("trim/trim_on_signal.c");
    let library = dir.join("libtrim_on_signal.so");
    let status = std::process::Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-pthread", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .map_err(|error| format!("--trim needs a C compiler (cc): {error}"))?;
    match status.success() {
        true => Ok(library),
        false => Err(format!("cc could not compile {}", source.display())),
    }
}

fn none_if_empty(text: &str) -> &str {
    if text.is_empty() {
        "none (the defaults)"
    } else {
        text
    }
}

/// One line of the table, memory in MB (10^6 bytes, as `ps` and the issue count).
fn row(name: &str, flood: Flood, round: usize, connections: usize, report: &FloodReport) -> String {
    let mb = |kib: u64| format!("{:.0} MB", kib as f64 * 1024.0 / 1e6);
    let kept = report.after_kib.saturating_sub(report.before_kib);
    format!(
        "| {name} | {} | {round} | {} | {} | {} | +{} | {} | {} of {connections} in {:.1} s |",
        flood.name(),
        mb(report.before_kib),
        mb(report.peak_kib),
        mb(report.after_kib),
        mb(kept),
        report.trimmed_kib.map_or("not asked".into(), mb),
        report.completed,
        report.took.as_secs_f64(),
    )
}
