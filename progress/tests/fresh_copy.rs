//! The proof of the progress command (issue 21): on a fresh copy of the project every
//! exercise is "not yet" solved; with one reference patch applied, that exercise, and only
//! that one, is "solved".
//!
//! The copy is never the working tree: it is made in the target directory, from the files
//! git knows (tracked, and untracked unless ignored, as `scripts/check-exercises.sh` does),
//! with their modification times kept. It is slow the first time (it builds every crate's
//! checks for the copy) and about a minute and a half after that.
//!
//! Why the copy's `Cargo.toml` gets a profile override for each of its crates: cargo names
//! a workspace crate's build the same whichever folder the workspace is in, so the copy's
//! builds would overwrite the working tree's (and `testkit`, which compiles its own path
//! in, would be rebuilt back and forth). A `codegen-units` that differs from the default
//! changes nothing in the code but gives the copy's builds names of their own, while the
//! dependencies from crates.io stay shared and warm. The patched crate gets yet another
//! value, so that its patched build is never taken for the unpatched one.

#![cfg(unix)] // symlinks node_modules into the copy; the project's scripts are bash anyway

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use progress::book;

/// The reference patch applied: of a crate no other crate depends on, so that the patch
/// rebuilds only it, and of an exercise whose check has no deadline to miss on a busy
/// machine (a bearer header; exercise 1's token lives two seconds).
const PATCHED_CRATE: &str = "jwt-vs-session";
const PATCHED_EXERCISE: &str = "ex3";

fn real_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace folder")
}

/// The target directory this test was built in, so that the copy reuses its builds.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // <target>/debug/deps/fresh_copy-<hash>
    let exe = std::env::current_exe().expect("the test's own path");
    exe.ancestors()
        .nth(3)
        .expect("the target directory above debug/deps")
        .to_path_buf()
}

fn git(root: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("git")
        .current_dir(root)
        .args(args)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {output:?}");
    output.stdout
}

/// Copies the project's files to `copy`, keeping their modification times (so that cargo
/// sees the copy's sources as old as the builds made from them).
fn copy_project(real: &Path, copy: &Path) {
    if copy.exists() {
        fs::remove_dir_all(copy).expect("remove the previous copy");
    }
    let listed = git(
        real,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    );
    for path in listed
        .split(|&byte| byte == 0)
        .filter(|path| !path.is_empty())
    {
        let path = Path::new(std::str::from_utf8(path).expect("a UTF-8 path"));
        let from = real.join(path);
        let Ok(metadata) = fs::symlink_metadata(&from) else {
            continue; // deleted in the working tree
        };
        if !metadata.is_file() {
            continue;
        }
        let to = copy.join(path);
        fs::create_dir_all(to.parent().expect("a parent")).expect("create a folder");
        fs::copy(&from, &to).expect("copy a file");
        let modified = metadata.modified().expect("a modification time");
        fs::File::options()
            .write(true)
            .open(&to)
            .and_then(|file| file.set_modified(modified))
            .expect("keep the modification time");
    }
    // The official Socket.IO client's npm packages, which the checks drive.
    let node_modules = real.join("testkit/js/node_modules");
    if node_modules.exists() {
        std::os::unix::fs::symlink(&node_modules, copy.join("testkit/js/node_modules"))
            .expect("link node_modules");
    }
}

/// The workspace's crates, by name.
fn members(root: &Path) -> Vec<String> {
    let output = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata: {output:?}");
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|package| package["name"].as_str().map(str::to_string))
        .collect()
}

/// Gives every crate of the copy builds of its own (see the top of this file).
fn name_the_copys_builds(real: &Path, copy: &Path, patched: Option<&str>) {
    let mut manifest = fs::read_to_string(real.join("Cargo.toml")).expect("Cargo.toml");
    manifest.push_str("\n# Added by progress/tests/fresh_copy.rs: builds of the copy's own.\n");
    for member in members(real) {
        let units = if Some(member.as_str()) == patched {
            254
        } else {
            255
        };
        manifest.push_str(&format!(
            "[profile.dev.package.{member}]\ncodegen-units = {units}\n"
        ));
    }
    fs::write(copy.join("Cargo.toml"), manifest).expect("write the copy's Cargo.toml");
}

/// Runs `progress --tsv` in the copy: (chapter file, exercise number, state) per row.
fn progress_rows(copy: &Path) -> Vec<(String, u32, String)> {
    let output = Command::new(env!("CARGO_BIN_EXE_progress"))
        .arg("--tsv")
        .current_dir(copy)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("progress runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "progress failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 6, "a row of six fields: {line:?}");
            let number = fields[2].parse().expect("an exercise number");
            (fields[1].to_string(), number, fields[4].to_string())
        })
        .collect()
}

// Ignored by a plain `cargo test`: its copy's builds replace the workspace's
// binaries in `target/debug` for a while, which tests that start those
// binaries must not see. `scripts/test.sh` runs it alone, after the others.
#[test]
#[ignore = "run alone by scripts/test.sh"]
fn a_fresh_copy_has_nothing_solved_and_one_reference_patch_solves_its_exercise() {
    let real = real_root();
    let copy = target_dir().join("progress-fresh-copy/workspace");
    copy_project(&real, &copy);
    name_the_copys_builds(&real, &copy, None);

    let rows = progress_rows(&copy);
    let chapters = book::chapters(&real).expect("the book's chapters");
    let exercises: usize = chapters.iter().map(|chapter| chapter.exercises.len()).sum();
    assert_eq!(
        rows.len(),
        exercises,
        "one row per exercise of the book: {rows:?}"
    );
    let not_not_yet: Vec<_> = rows.iter().filter(|row| row.2 != "not yet").collect();
    assert!(
        not_not_yet.is_empty(),
        "on a fresh copy every exercise is \"not yet\"; these are not: {not_not_yet:?}"
    );

    // solutions/ex3-....patch, the reference solution of the exercise checked by `ex3`.
    let patches: Vec<PathBuf> = fs::read_dir(real.join(PATCHED_CRATE).join("solutions"))
        .expect("the solutions folder")
        .map(|entry| entry.expect("a solution").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    name.starts_with(&format!("{PATCHED_EXERCISE}-")) && name.ends_with(".patch")
                })
        })
        .collect();
    let [patch] = &patches[..] else {
        panic!("not exactly one {PATCHED_CRATE}/solutions/{PATCHED_EXERCISE}-*.patch: {patches:?}");
    };
    let filter = PATCHED_EXERCISE;
    name_the_copys_builds(&real, &copy, Some(PATCHED_CRATE));
    // No repository above the copy (the target directory may sit in the working tree) may
    // take `git apply` for its own.
    let applied = Command::new("git")
        .current_dir(&copy)
        .env("GIT_CEILING_DIRECTORIES", copy.parent().expect("a parent"))
        .arg("apply")
        .arg(patch)
        .status()
        .expect("git apply runs");
    assert!(applied.success(), "{patch:?} does not apply to the copy");

    // The rows whose check is that patch's: the exercise, wherever the book asks for it.
    let solved_by_patch: Vec<(String, u32)> = chapters
        .iter()
        .flat_map(|chapter| {
            chapter.exercises.iter().filter_map(|exercise| {
                let check = exercise.check.as_ref()?;
                (check.crate_name == PATCHED_CRATE && check.filter == filter)
                    .then(|| (chapter.file.clone(), exercise.number))
            })
        })
        .collect();
    assert!(
        !solved_by_patch.is_empty(),
        "no exercise of the book checks {filter}"
    );

    let rows = progress_rows(&copy);
    for (file, number, state) in &rows {
        let expected = if solved_by_patch.contains(&(file.clone(), *number)) {
            "solved"
        } else {
            "not yet"
        };
        assert_eq!(
            state, expected,
            "{file} exercise {number} with {patch:?} applied"
        );
    }
}
