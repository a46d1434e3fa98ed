//! `cargo run -p progress [-- watch | --tsv]`: see the crate's documentation (`src/lib.rs`).

use std::path::Path;
use std::process::ExitCode;

use progress::{find_root, report, survey, watch};

const USAGE: &str = "\
Where you stand in the book's exercises.

  cargo run -p progress            list every exercise by chapter, and the next one to do
  cargo run -p progress -- watch   run the next exercise's check again on every save
  cargo run -p progress -- --tsv   the list as tab-separated values (for a spreadsheet)

Run it from anywhere inside the project. The first run builds every crate's checks
(minutes, once); after `bash scripts/test.sh`, the list takes well under a minute.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => Mode::List,
        ["watch"] => Mode::Watch,
        ["--tsv"] => Mode::Tsv,
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("error: unexpected arguments {args:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // `cargo run` runs us in the folder it was started from; the compile-time path is the
    // fallback for a binary started from elsewhere.
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let start = std::env::current_dir().unwrap_or_else(|_| fallback.clone());
    let Some(root) = find_root(&start).or_else(|| find_root(&fallback)) else {
        eprintln!("error: not inside the project (no book/src/SUMMARY.md above {start:?})");
        return ExitCode::FAILURE;
    };
    let result = match mode {
        Mode::List | Mode::Tsv => {
            survey::survey(&root, &|line| eprintln!("{line}")).map(|survey| match mode {
                Mode::Tsv => print!("{}", report::tsv(&survey)),
                _ => print!("{}", report::table(&survey)),
            })
        }
        Mode::Watch => watch::watch(&root),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    List,
    Watch,
    Tsv,
}
