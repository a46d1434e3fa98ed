//! The list of exercises, read from where it already lives: the book says which chapters
//! have exercises, their numbers, titles and check commands (each exercise's "Check it"),
//! and the crates' `tests/*exercises.rs` files hold the checks themselves (the layout
//! `scripts/check-exercises.sh` reads too). Nothing here is a second, hand-kept list.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

/// One exercise check, as a "Check it" command names it:
/// `cargo test -p <crate> --test <target> <filter> -- --ignored`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Check {
    pub crate_name: String,
    /// The test file, without `.rs`: `exercises` for `tests/exercises.rs`.
    pub target: String,
    /// `ex2`: picks the test `ex2_...` of that file.
    pub filter: String,
}

impl Check {
    /// The command the book prints, which the learner runs by hand.
    pub fn command(&self) -> String {
        format!(
            "cargo test -p {} --test {} {} -- --ignored",
            self.crate_name, self.target, self.filter
        )
    }

    /// Whether the test called `name` is this check (`ex2` is `ex2_second_pushed_event`,
    /// not `ex20_...`).
    pub fn is_test(&self, name: &str) -> bool {
        name == self.filter
            || name
                .strip_prefix(&self.filter)
                .is_some_and(|rest| rest.starts_with('_'))
    }

    /// Reads a "Check it" line, with or without a `$ ` prompt.
    pub fn parse(line: &str) -> Option<Check> {
        let line = line.trim();
        let line = line.strip_prefix("$ ").unwrap_or(line);
        let mut words = line.split_whitespace();
        if words.next() != Some("cargo") || words.next() != Some("test") {
            return None;
        }
        let (mut crate_name, mut target, mut filter) = (None, None, None);
        let mut ignored = false;
        while let Some(word) = words.next() {
            match word {
                "-p" | "--package" => crate_name = words.next(),
                "--test" => target = words.next(),
                "--" => ignored = words.any(|word| word == "--ignored"),
                _ if filter.is_none() && !word.starts_with('-') => filter = Some(word),
                _ => {}
            }
        }
        if !ignored {
            return None;
        }
        Some(Check {
            crate_name: crate_name?.to_string(),
            target: target?.to_string(),
            filter: filter?.to_string(),
        })
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.crate_name, self.filter)
    }
}

/// An exercise as the book numbers and titles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exercise {
    pub number: u32,
    pub title: String,
    /// `None` when its section has no "Check it" command (then there is nothing to run).
    pub check: Option<Check>,
}

/// A chapter of the book with an "Exercises" section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chapter {
    /// As the table of contents names it.
    pub title: String,
    /// Its file under `book/src/`.
    pub file: String,
    pub exercises: Vec<Exercise>,
}

/// The chapters with exercises, in the order of the book's table of contents.
pub fn chapters(root: &Path) -> io::Result<Vec<Chapter>> {
    let src = root.join("book/src");
    let summary = fs::read_to_string(src.join("SUMMARY.md"))?;
    let mut chapters = Vec::new();
    for (title, file) in summary_entries(&summary) {
        let text = fs::read_to_string(src.join(&file))?;
        let exercises = exercises(&text);
        if !exercises.is_empty() {
            chapters.push(Chapter {
                title,
                file,
                exercises,
            });
        }
    }
    Ok(chapters)
}

/// The `[Title](file.md)` entries of `SUMMARY.md`, in order.
pub fn summary_entries(summary: &str) -> Vec<(String, String)> {
    summary
        .lines()
        .filter_map(|line| {
            let line = line.trim_start().trim_start_matches("- ");
            let rest = line.strip_prefix('[')?;
            let (title, rest) = rest.split_once("](")?;
            let (file, _) = rest.split_once(')')?;
            let file = file.split('#').next().unwrap_or(file);
            (!file.is_empty()).then(|| (title.replace('`', ""), file.to_string()))
        })
        .collect()
}

/// The exercises of one chapter: each `### Exercise N: Title` of its `## Exercises`
/// section, with the first check command between that heading and the next one.
pub fn exercises(chapter: &str) -> Vec<Exercise> {
    let mut found: Vec<Exercise> = Vec::new();
    let mut in_section = false;
    let mut in_exercise = false;
    let mut in_fence = false;
    for line in chapter.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if !in_fence {
            if let Some(heading) = line.strip_prefix("## ") {
                in_section = heading.trim() == "Exercises";
                in_exercise = false;
                continue;
            }
            if let Some(heading) = line.strip_prefix("### ") {
                in_exercise = false;
                if in_section && let Some(exercise) = exercise_heading(heading) {
                    found.push(exercise);
                    in_exercise = true;
                }
                continue;
            }
        }
        if in_exercise
            && let Some(last) = found.last_mut()
            && last.check.is_none()
        {
            last.check = Check::parse(line);
        }
    }
    found
}

/// `Exercise 2: "Remember me"` → 2 and `"Remember me"`.
fn exercise_heading(heading: &str) -> Option<Exercise> {
    let rest = heading.trim().strip_prefix("Exercise ")?;
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let number = rest[..digits].parse().ok()?;
    let title = rest[digits..]
        .trim_start_matches([':', '.', ' ', '—', '-'])
        .trim();
    Some(Exercise {
        number,
        title: title.to_string(),
        check: None,
    })
}

/// The check files, as `scripts/check-exercises.sh` finds them: every
/// `<crate>/tests/*exercises.rs`, as (crate, target), sorted.
pub fn check_files(root: &Path) -> io::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(root)? {
        let crate_dir = entry?.path();
        let Ok(tests) = fs::read_dir(crate_dir.join("tests")) else {
            continue;
        };
        let Some(crate_name) = crate_dir.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        for test in tests {
            let path = test?.path();
            let Some(stem) = path.file_stem().and_then(|stem| stem.to_str()) else {
                continue;
            };
            if stem.ends_with("exercises") && path.extension().is_some_and(|ext| ext == "rs") {
                files.push((crate_name.to_string(), stem.to_string()));
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_command_is_read_with_or_without_a_prompt() {
        let expected = Check {
            crate_name: "jwt-vs-session".into(),
            target: "exercises".into(),
            filter: "ex2".into(),
        };
        for line in [
            "cargo test -p jwt-vs-session --test exercises ex2 -- --ignored",
            "$ cargo test -p jwt-vs-session --test exercises ex2 -- --ignored",
        ] {
            assert_eq!(Check::parse(line), Some(expected.clone()), "{line}");
        }
        assert_eq!(Check::parse("cargo test -p jwt-vs-session"), None);
        assert_eq!(
            expected.command(),
            "cargo test -p jwt-vs-session --test exercises ex2 -- --ignored"
        );
    }

    #[test]
    fn a_filter_names_its_test_and_no_longer_one() {
        let check = Check::parse("cargo test -p a --test exercises ex1 -- --ignored")
            .expect("a check command");
        assert!(check.is_test("ex1_faster_ticks"));
        assert!(check.is_test("ex1"));
        assert!(!check.is_test("ex10_more"));
        assert!(!check.is_test("ex2_other"));
    }

    #[test]
    fn exercises_are_read_from_the_exercises_section_only() {
        let chapter = "# Title\n\n### Exercise 9: not in the section\n\n\
            ## Exercises\n\nRun them like this:\n\n```console\n\
            $ cargo test -p a --test exercises ex1 -- --ignored\n```\n\n\
            ### Exercise 1: faster ticks\n\nText.\n\n```console\n\
            cargo test -p a --test exercises ex1 -- --ignored\n```\n\n\
            ### Exercise 2: \"Remember me\"\n\n```rust\n## not a heading\n```\n\n\
            ```console\n$ cargo test -p a --test exercises ex2 -- --ignored\n```\n\n\
            ### More to try\n\n```console\ncargo test -p a --test exercises ex3 -- --ignored\n```\n\n\
            ## Check your understanding\n\n### Exercise 3: not either\n";
        let found = exercises(chapter);
        let summary: Vec<_> = found
            .iter()
            .map(|exercise| {
                let filter = exercise.check.as_ref().map(|check| check.filter.as_str());
                (exercise.number, exercise.title.as_str(), filter)
            })
            .collect();
        assert_eq!(
            summary,
            [
                (1, "faster ticks", Some("ex1")),
                (2, "\"Remember me\"", Some("ex2"))
            ]
        );
    }

    #[test]
    fn the_summary_gives_titles_and_files_in_order() {
        let summary = "# Summary\n\n[Introduction](introduction.md)\n\n# Part\n\n\
            - [The chat under load (`chat-under-load`)](chat-under-load.md)\n\
            - [Teacher's guide](teachers-guide.md)\n    - [Chapter 1](teachers-guide/step01.md)\n";
        assert_eq!(
            summary_entries(summary),
            [
                ("Introduction".to_string(), "introduction.md".to_string()),
                (
                    "The chat under load (chat-under-load)".to_string(),
                    "chat-under-load.md".to_string()
                ),
                (
                    "Teacher's guide".to_string(),
                    "teachers-guide.md".to_string()
                ),
                (
                    "Chapter 1".to_string(),
                    "teachers-guide/step01.md".to_string()
                ),
            ]
        );
    }
}
