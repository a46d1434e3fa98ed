//! `progress watch`: the next exercise's check, run again each time a file of its crate is
//! saved, as rustlings' watch mode does. Once it passes, on to the next exercise.

use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use crate::book::Check;
use crate::report;
use crate::survey::{self, State, Survey};

/// An editor saves a file in several writes (and renames); wait this long after the last
/// one before running the check.
const SETTLE: Duration = Duration::from_millis(300);

enum Message {
    /// A source file changed (its path).
    Changed(PathBuf),
    /// A line typed on the terminal.
    Typed(String),
    /// The watcher itself failed.
    WatchError(notify::Error),
}

/// One exercise to work on: where it is in the book, and its check.
struct Current {
    describe: String,
    check: Check,
}

/// Lists every exercise once, then watches the first one not solved.
pub fn watch(root: &Path) -> io::Result<()> {
    let survey = survey::survey(root, &|line| eprintln!("{line}"))?;
    print!("{}", report::table(&survey));
    let mut queue = to_do(&survey).into_iter();
    let Some(mut current) = queue.next() else {
        return Ok(());
    };

    let (sender, messages) = mpsc::channel();
    let changes = sender.clone();
    let workspace = root.to_path_buf();
    let mut watcher = RecommendedWatcher::new(
        move |event: notify::Result<notify::Event>| {
            let message = match event {
                Ok(event) if is_an_edit(&event.kind) => {
                    match event
                        .paths
                        .into_iter()
                        .find(|path| is_source(&workspace, path))
                    {
                        Some(path) => Message::Changed(path),
                        None => return,
                    }
                }
                Ok(_) => return,
                Err(error) => Message::WatchError(error),
            };
            let _ = changes.send(message);
        },
        notify::Config::default(),
    )
    .map_err(io::Error::other)?;
    thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if sender
                .send(Message::Typed(line.trim().to_string()))
                .is_err()
            {
                break;
            }
        }
    });

    let mut watched = root.join(&current.check.crate_name);
    watcher
        .watch(&watched, RecursiveMode::Recursive)
        .map_err(io::Error::other)?;
    let mut run_now = true;
    loop {
        if run_now {
            run_now = false;
            introduce(&current, root);
            if run_check(root, &current)? == State::Solved {
                println!("\nSolved: {}", current.describe);
                match queue.next() {
                    Some(next) => current = next,
                    None => {
                        println!("Every exercise with a check is solved. Well done!");
                        return Ok(());
                    }
                }
                run_now = true;
            } else {
                println!(
                    "\nWatching {}/ : save a file there to run the check again. \
                     Type n (next exercise), l (list all), r (run again) or q (quit), then Enter.",
                    current.check.crate_name
                );
            }
            let crate_dir = root.join(&current.check.crate_name);
            if crate_dir != watched {
                let _ = watcher.unwatch(&watched);
                watcher
                    .watch(&crate_dir, RecursiveMode::Recursive)
                    .map_err(io::Error::other)?;
                watched = crate_dir;
            }
            // What changed while the check ran (the learner saved again) counts once.
            run_now |= settle(&messages);
            continue;
        }
        let Ok(message) = messages.recv() else {
            return Ok(());
        };
        match message {
            Message::Changed(path) => {
                settle(&messages);
                println!(
                    "\n{} changed.",
                    path.strip_prefix(root).unwrap_or(&path).display()
                );
                run_now = true;
            }
            Message::Typed(line) => match line.as_str() {
                "q" | "quit" => return Ok(()),
                "r" | "" => run_now = true,
                "n" | "next" => match queue.next() {
                    Some(next) => {
                        current = next;
                        run_now = true;
                    }
                    None => println!("That was the last exercise not yet solved."),
                },
                "l" | "list" => {
                    let survey = survey::survey(root, &|line| eprintln!("{line}"))?;
                    print!("{}", report::table(&survey));
                }
                other => println!("Unknown command {other:?}: n, l, r or q, then Enter."),
            },
            Message::WatchError(error) => return Err(io::Error::other(error)),
        }
    }
}

/// The exercises to do, in the book's order, each check once.
fn to_do(survey: &Survey) -> Vec<Current> {
    let mut seen = Vec::new();
    let mut to_do = Vec::new();
    for (chapter, exercise) in survey.exercises() {
        let Some(check) = &exercise.check else {
            continue;
        };
        if seen.contains(check)
            || !matches!(
                survey.state(exercise),
                State::NotYet | State::DoesNotCompile
            )
        {
            continue;
        }
        seen.push(check.clone());
        to_do.push(Current {
            describe: report::describe(chapter, exercise),
            check: check.clone(),
        });
    }
    to_do
}

fn introduce(current: &Current, root: &Path) {
    println!("\n{}", "─".repeat(78));
    println!("Exercise: {}", current.describe);
    println!("(in {})\n", root.join(&current.check.crate_name).display());
}

/// Builds the check (showing the compiler's errors), then runs it (showing its output).
fn run_check(root: &Path, current: &Current) -> io::Result<State> {
    let check = &current.check;
    let built = Command::new(survey::cargo())
        .current_dir(root)
        .args(["test", "-q", "--no-run", "-p", &check.crate_name])
        .args(["--test", &check.target])
        .stdin(Stdio::null())
        .status()?;
    if !built.success() {
        println!("\nDoes not compile yet: the errors are above.");
        return Ok(State::DoesNotCompile);
    }
    // The check's full name, so that `--exact` runs it alone (`ex1` would also pick `ex10_`).
    let listed = Command::new(survey::cargo())
        .current_dir(root)
        .args(["test", "-q", "-p", &check.crate_name])
        .args(["--test", &check.target, "--", "--ignored", "--list"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    let listed = String::from_utf8_lossy(&listed.stdout);
    let Some(test_name) = listed
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .find(|name| check.is_test(name))
    else {
        println!(
            "\n{}/tests/{}.rs has no check {}: is the book out of date?",
            check.crate_name, check.target, check.filter
        );
        return Ok(State::NoSuchCheck);
    };
    let passed = Command::new(survey::cargo())
        .current_dir(root)
        .args(["test", "-q", "-p", &check.crate_name])
        .args(["--test", &check.target, test_name])
        .args(["--", "--ignored", "--exact"])
        .stdin(Stdio::null())
        .status()?
        .success();
    if passed {
        Ok(State::Solved)
    } else {
        println!("\nNot yet: the check's message is above.");
        Ok(State::NotYet)
    }
}

/// Waits until no file has changed for `SETTLE`; whether any did.
fn settle(messages: &mpsc::Receiver<Message>) -> bool {
    let mut changed = false;
    while let Ok(message) = messages.recv_timeout(SETTLE) {
        // A line typed meanwhile is dropped: the check is about to run anyway.
        changed |= matches!(message, Message::Changed(_));
    }
    changed
}

/// A write, a new file, a rename or a removal; not a read or a change of permissions.
fn is_an_edit(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

/// A file an exercise is solved in: code, a page, a migration; not an editor's swap file,
/// a test's database, or a build.
pub fn is_source(root: &Path, path: &Path) -> bool {
    // Only the part inside the workspace: the workspace itself may sit in a hidden folder.
    let path = path.strip_prefix(root).unwrap_or(path);
    let built_or_hidden = path.components().any(|part| {
        let part = part.as_os_str().to_string_lossy();
        part == "target" || part == "node_modules" || part.starts_with('.')
    });
    let extension = path.extension().and_then(|ext| ext.to_str()).unwrap_or("");
    !built_or_hidden
        && matches!(
            extension,
            "rs" | "toml" | "html" | "css" | "js" | "mjs" | "sql" | "json"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_pages_count_as_sources_and_swap_files_and_builds_do_not() {
        for path in [
            "/home/.me/w/step01-http-vs-socket/src/lib.rs",
            "/home/.me/w/step01-http-vs-socket/static/index.html",
            "/home/.me/w/step03-passport-like-auth/migrations/0001_users.sql",
            "/home/.me/w/step02-sessions/Cargo.toml",
        ] {
            assert!(
                is_source(Path::new("/home/.me/w"), Path::new(path)),
                "{path}"
            );
        }
        for path in [
            "/home/.me/w/step01-http-vs-socket/src/.lib.rs.swp",
            "/home/.me/w/step01-http-vs-socket/src/lib.rs~",
            "/home/.me/w/step01-http-vs-socket/src/4913",
            "/home/.me/w/step05-chat/chat.db",
            "/home/.me/w/target/debug/build/x/out/lib.rs",
        ] {
            assert!(
                !is_source(Path::new("/home/.me/w"), Path::new(path)),
                "{path}"
            );
        }
    }
}
