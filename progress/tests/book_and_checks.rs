//! The two halves the progress list is made of agree: every check the book's exercises
//! name exists in its crate's check file, and every check of those files is named by an
//! exercise of the book. (Fast: reads files, builds nothing.)

use std::fs;
use std::path::{Path, PathBuf};

use progress::book;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `exN_...` test functions of a check file, read from its source.
fn checks_in(root: &Path, crate_name: &str, target: &str) -> Vec<String> {
    let path = root
        .join(crate_name)
        .join("tests")
        .join(format!("{target}.rs"));
    let source = fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path:?}: {error}"));
    source
        .lines()
        .filter_map(|line| {
            let name = line.trim_start().split("fn ").nth(1)?;
            let name = name.split('(').next()?.trim();
            let number = name.strip_prefix("ex")?.split('_').next()?;
            (!number.is_empty() && number.bytes().all(|byte| byte.is_ascii_digit()))
                .then(|| name.to_string())
        })
        .collect()
}

#[test]
fn every_check_the_book_names_exists_and_every_check_is_in_the_book() {
    let root = root();
    let chapters = book::chapters(&root).expect("the book's chapters");
    let files = book::check_files(&root).expect("the check files");
    assert!(!files.is_empty(), "no <crate>/tests/*exercises.rs found");

    let mut problems = Vec::new();
    let mut named = Vec::new();
    for chapter in &chapters {
        for exercise in &chapter.exercises {
            let Some(check) = &exercise.check else {
                problems.push(format!(
                    "{} exercise {} has no check command",
                    chapter.file, exercise.number
                ));
                continue;
            };
            let file = (check.crate_name.clone(), check.target.clone());
            let tests = if files.contains(&file) {
                checks_in(&root, &check.crate_name, &check.target)
            } else {
                Vec::new()
            };
            let matching = tests.iter().filter(|name| check.is_test(name)).count();
            if matching != 1 {
                problems.push(format!(
                    "{} exercise {}: `{}` runs {matching} checks, not one",
                    chapter.file,
                    exercise.number,
                    check.command()
                ));
            }
            named.push(check.clone());
        }
    }
    for (crate_name, target) in &files {
        for test in checks_in(&root, crate_name, target) {
            let in_book = named.iter().any(|check| {
                &check.crate_name == crate_name && &check.target == target && check.is_test(&test)
            });
            if !in_book {
                problems.push(format!(
                    "{crate_name}/tests/{target}.rs: {test} is the check of no exercise in the book"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
