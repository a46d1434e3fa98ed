//! Runs every exercise check and records what each one says: solved, not yet, or the
//! crate does not compile. Each crate's check file is built once
//! (`cargo test --no-run`), then every built check binary runs its checks, all binaries
//! at the same time: the checks mostly wait (for a tick, a timeout), so they share two
//! cores well, and the whole list takes as long as its slowest crate.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::book::{self, Chapter, Check, Exercise};

/// Where an exercise stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its check passes.
    Solved,
    /// Its check fails: the starter as shipped, or work in progress.
    NotYet,
    /// Its crate (or the check file) does not compile, so the check cannot run.
    DoesNotCompile,
    /// The book names a check that its crate does not have (a bug in the book).
    NoSuchCheck,
    /// The book gives this exercise no check command.
    NoCheck,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Solved => "solved",
            State::NotYet => "not yet",
            State::DoesNotCompile => "does not compile",
            State::NoSuchCheck => "no such check",
            State::NoCheck => "no check",
        }
    }
}

/// A check file (`<crate>/tests/<target>.rs`) that did not compile, and the first error.
#[derive(Debug, Clone)]
pub struct BuildFailure {
    pub crate_name: String,
    pub target: String,
    /// The compiler's first error, two lines (what and where), when cargo gave one.
    pub first_error: Option<String>,
}

impl BuildFailure {
    /// The command that shows every error.
    pub fn command(&self) -> String {
        format!(
            "cargo test -p {} --test {} --no-run",
            self.crate_name, self.target
        )
    }
}

/// Every exercise with its state.
#[derive(Debug)]
pub struct Survey {
    /// The book's chapters with exercises, then (if any) one group per check file for the
    /// checks no chapter names, titled "Not in the book: ...".
    pub chapters: Vec<Chapter>,
    states: HashMap<Check, State>,
    pub build_failures: Vec<BuildFailure>,
    pub elapsed: Duration,
}

impl Survey {
    /// A survey with the given states, as if the checks had run (for the report's tests).
    #[cfg(test)]
    pub(crate) fn with_states(chapters: Vec<Chapter>, states: &[(Check, State)]) -> Survey {
        Survey {
            chapters,
            states: states
                .iter()
                .map(|(check, state)| (check.clone(), *state))
                .collect(),
            build_failures: Vec::new(),
            elapsed: Duration::from_secs(12),
        }
    }

    /// The state of an exercise.
    pub fn state(&self, exercise: &Exercise) -> State {
        match &exercise.check {
            None => State::NoCheck,
            Some(check) => self
                .states
                .get(check)
                .copied()
                .unwrap_or(State::NoSuchCheck),
        }
    }

    /// Every exercise, in the book's order, with its chapter.
    pub fn exercises(&self) -> impl Iterator<Item = (&Chapter, &Exercise)> {
        self.chapters.iter().flat_map(|chapter| {
            chapter
                .exercises
                .iter()
                .map(move |exercise| (chapter, exercise))
        })
    }

    /// The first exercise, in the book's order, that has a check and is not solved.
    pub fn next(&self) -> Option<(&Chapter, &Exercise)> {
        self.exercises().find(|(_, exercise)| {
            matches!(self.state(exercise), State::NotYet | State::DoesNotCompile)
        })
    }
}

/// A check file: (crate, target), `("jwt-vs-session", "exercises")`.
type CheckFile = (String, String);

/// Test name → whether it passed.
type TestResults = BTreeMap<String, bool>;

/// What happened to one check file.
enum Outcome {
    Ran(TestResults),
    DidNotCompile(Option<String>),
}

/// Builds and runs every check; `say` hears what is going on (for a terminal's stderr).
pub fn survey(root: &Path, say: &dyn Fn(&str)) -> io::Result<Survey> {
    let started = Instant::now();
    let mut chapters = book::chapters(root)?;
    let files = book::check_files(root)?;

    // Build one file at a time: cargo would wait for its lock anyway.
    let mut built = Vec::new();
    let mut outcomes: BTreeMap<CheckFile, Outcome> = BTreeMap::new();
    for (index, (crate_name, target)) in files.iter().enumerate() {
        say(&format!(
            "[{}/{}] building the checks of {crate_name} (tests/{target}.rs)",
            index + 1,
            files.len()
        ));
        match build(root, crate_name, target)? {
            Ok(executable) => built.push((crate_name.clone(), target.clone(), executable)),
            Err(first_error) => {
                outcomes.insert(
                    (crate_name.clone(), target.clone()),
                    Outcome::DidNotCompile(first_error),
                );
            }
        }
    }

    say(&format!(
        "running the checks of {} crate(s), {} at a time",
        built.len(),
        side_by_side()
    ));
    let ran = run_side_by_side(root, &built)?;
    for (key, results) in ran {
        outcomes.insert(key, Outcome::Ran(results));
    }

    // Every book check gets a state; every check no chapter names gets a row of its own.
    let mut states = HashMap::new();
    let named: Vec<Check> = chapters
        .iter()
        .flat_map(|chapter| &chapter.exercises)
        .filter_map(|exercise| exercise.check.clone())
        .collect();
    for check in &named {
        let key = (check.crate_name.clone(), check.target.clone());
        let state = match outcomes.get(&key) {
            None => State::NoSuchCheck,
            Some(Outcome::DidNotCompile(_)) => State::DoesNotCompile,
            Some(Outcome::Ran(results)) => {
                match results.iter().find(|(name, _)| check.is_test(name)) {
                    None => State::NoSuchCheck,
                    Some((_, true)) => State::Solved,
                    Some((_, false)) => State::NotYet,
                }
            }
        };
        states.insert(check.clone(), state);
    }
    let mut build_failures = Vec::new();
    for ((crate_name, target), outcome) in &outcomes {
        match outcome {
            Outcome::DidNotCompile(first_error) => build_failures.push(BuildFailure {
                crate_name: crate_name.clone(),
                target: target.clone(),
                first_error: first_error.clone(),
            }),
            Outcome::Ran(results) => {
                let mut orphans = Vec::new();
                for (name, passed) in results {
                    let check = Check {
                        crate_name: crate_name.clone(),
                        target: target.clone(),
                        filter: name.split('_').next().unwrap_or(name).to_string(),
                    };
                    let in_book = named.iter().any(|named| {
                        named.crate_name == *crate_name
                            && named.target == *target
                            && named.is_test(name)
                    });
                    if in_book {
                        continue;
                    }
                    let state = if *passed {
                        State::Solved
                    } else {
                        State::NotYet
                    };
                    states.insert(check.clone(), state);
                    orphans.push(Exercise {
                        number: check.filter.trim_start_matches("ex").parse().unwrap_or(0),
                        title: name.clone(),
                        check: Some(check),
                    });
                }
                if !orphans.is_empty() {
                    chapters.push(Chapter {
                        title: format!("Not in the book: {crate_name}/tests/{target}.rs"),
                        file: String::new(),
                        exercises: orphans,
                    });
                }
            }
        }
    }
    Ok(Survey {
        chapters,
        states,
        build_failures,
        elapsed: started.elapsed(),
    })
}

/// How many check binaries run at the same time. Most checks wait (for a tick, for a
/// timeout), but each starts a server and a Node.js client, some a browser: all of them at
/// once on two cores made a check whose token lives two seconds miss its own deadline.
fn side_by_side() -> usize {
    thread::available_parallelism()
        .map_or(2, |cores| cores.get())
        .clamp(3, 8)
}

/// Runs the built check binaries, a few at a time: (crate, target) → test results.
fn run_side_by_side(
    root: &Path,
    built: &[(String, String, PathBuf)],
) -> io::Result<Vec<(CheckFile, TestResults)>> {
    let queue = Mutex::new(built.iter());
    let results = Mutex::new(Vec::new());
    thread::scope(|scope| {
        let workers: Vec<_> = (0..side_by_side())
            .map(|_| {
                scope.spawn(|| -> io::Result<()> {
                    loop {
                        let next = queue.lock().map_err(|_| poisoned())?.next();
                        let Some((crate_name, target, executable)) = next else {
                            return Ok(());
                        };
                        let ran = run_checks(executable, &root.join(crate_name), crate_name)?;
                        let key = (crate_name.clone(), target.clone());
                        results.lock().map_err(|_| poisoned())?.push((key, ran));
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a check runner panicked")))
        })
    })?;
    results.into_inner().map_err(|_| poisoned())
}

fn poisoned() -> io::Error {
    io::Error::other("a check runner panicked")
}

/// `cargo test --no-run` for one check file: the test binary, or the first error.
fn build(
    root: &Path,
    crate_name: &str,
    target: &str,
) -> io::Result<Result<PathBuf, Option<String>>> {
    let output = Command::new(cargo())
        .current_dir(root)
        .args([
            "test",
            "--no-run",
            "--message-format=json",
            "-p",
            crate_name,
        ])
        .args(["--test", target])
        .stdin(Stdio::null())
        .output()?;
    let mut executable = None;
    let mut first_error = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match message["reason"].as_str() {
            Some("compiler-artifact")
                if message["target"]["name"] == target && message["profile"]["test"] == true =>
            {
                executable = message["executable"].as_str().map(PathBuf::from);
            }
            Some("compiler-message")
                if first_error.is_none() && message["message"]["level"] == "error" =>
            {
                first_error = message["message"]["rendered"].as_str().map(|rendered| {
                    rendered
                        .lines()
                        .filter(|line| line.starts_with("error") || line.contains("--> "))
                        .take(2)
                        .map(str::trim)
                        .collect::<Vec<_>>()
                        .join(" ")
                });
            }
            _ => {}
        }
    }
    Ok(match executable {
        Some(executable) if output.status.success() => Ok(executable),
        _ => Err(first_error.or_else(|| {
            // Not the compiler: cargo itself (a bad manifest, a locked registry).
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .find(|line| line.starts_with("error"))
                .map(str::to_string)
        })),
    })
}

/// Runs every `#[ignore]`d test of a check binary (the checks), as `cargo test` would:
/// from the crate's folder, with the crate's `CARGO_MANIFEST_DIR`.
fn run_checks(executable: &Path, crate_dir: &Path, crate_name: &str) -> io::Result<TestResults> {
    let output = Command::new(executable)
        .args(["--ignored", "--color", "never"])
        .current_dir(crate_dir)
        .env("CARGO_MANIFEST_DIR", crate_dir)
        .env("CARGO_PKG_NAME", crate_name)
        .stdin(Stdio::null())
        .output()?;
    Ok(test_results(&String::from_utf8_lossy(&output.stdout)))
}

/// The `test NAME ... ok` / `... FAILED` lines of a test binary's output.
pub fn test_results(stdout: &str) -> TestResults {
    stdout
        .lines()
        .filter_map(|line| {
            let (name, result) = line.strip_prefix("test ")?.split_once(" ... ")?;
            match result.trim() {
                "ok" => Some((name.to_string(), true)),
                "FAILED" => Some((name.to_string(), false)),
                _ => None,
            }
        })
        .collect()
}

/// The cargo that runs us (`cargo run` sets `CARGO`), else the one on the `PATH`.
pub fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_results_are_read_from_the_harness_output() {
        let stdout = "\nrunning 3 tests\ntest ex2_b ... FAILED\ntest ex1_a ... ok\n\
            test ex3_c ... ignored\n\nfailures:\n\n---- ex2_b stdout ----\n\
            test inside a message ... ok but not a result\n";
        let results = test_results(stdout);
        assert_eq!(
            results.into_iter().collect::<Vec<_>>(),
            [("ex1_a".to_string(), true), ("ex2_b".to_string(), false)]
        );
    }
}
