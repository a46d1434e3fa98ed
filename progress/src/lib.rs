//! Where a learner stands in the book's exercises, in the spirit of rustlings' list:
//!
//! ```console
//! cargo run -p progress            # every exercise by chapter: solved, not yet, does not compile
//! cargo run -p progress -- watch   # the next exercise's check, run again on every save
//! cargo run -p progress -- --tsv   # the same list, one tab-separated line per exercise
//! ```
//!
//! The list comes from the book (each chapter's "Exercises" section: numbers, titles, the
//! "Check it" commands) and from the crates' `tests/*exercises.rs`, the same files
//! `scripts/check-exercises.sh` proves; an exercise is solved when its check passes.

pub mod book;
pub mod report;
pub mod survey;
pub mod watch;

use std::path::{Path, PathBuf};

/// The workspace to report on: the first folder, from `start` up, that has the book and a
/// `Cargo.toml` (so `cargo run -p progress` works from any folder of the project).
pub fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.toml").is_file() && dir.join("book/src/SUMMARY.md").is_file())
        .map(Path::to_path_buf)
}
