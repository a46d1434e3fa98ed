//! The chapter "Rust for Node.js developers" shows, after each piece of the
//! `primer` example, what that piece prints. This test runs the example and
//! compares: the chapter's `text` blocks, in order, must be the example's
//! sections, in order, line for line. A changed `println!` or a section moved
//! in `main` fails here until the chapter follows.
//!
//! `cargo test` builds the examples before it runs the tests, so the binary is
//! next to this test's own, in `target/<profile>/examples/`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The chapter, as mdBook reads it.
fn chapter() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../book/src/rust-for-node-developers.md");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The example's binary, built by the same `cargo test` as this test, and
/// newer than its source (a stale binary would compare the old output).
fn primer_binary() -> PathBuf {
    let test = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/primer-<hash> → target/<profile>/examples/primer
    let profile_dir = test
        .parent()
        .and_then(Path::parent)
        .expect("the test binary sits in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("primer{}", std::env::consts::EXE_SUFFIX));
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/primer.rs");
    let modified =
        |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let rebuild = "build it with `cargo test -p step01-http-vs-socket` (which builds the \
                   examples) or `cargo build -p step01-http-vs-socket --example primer`";
    let (Some(built), Some(written)) = (modified(&binary), modified(&source))
    else {
        panic!("no example binary at {}: {rebuild}", binary.display());
    };
    assert!(
        built >= written,
        "{} is older than examples/primer.rs: {rebuild}",
        binary.display()
    );
    binary
}

/// The lines of each ```` ```text ```` block of `markdown`, in order.
fn text_blocks(markdown: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in markdown.lines() {
        let fence = line.trim_start();
        match current.as_mut() {
            None if fence == "```text" => current = Some(Vec::new()),
            None => {}
            Some(_) if fence.starts_with("```") => {
                blocks.extend(current.take())
            }
            Some(block) => block.push(line.to_owned()),
        }
    }
    blocks
}

/// The example's output cut at its section headings (the lines that are not
/// indented): the lines of each section, in order.
fn sections(output: &str) -> Vec<Vec<String>> {
    let mut sections: Vec<Vec<String>> = Vec::new();
    for line in output.lines() {
        if line.starts_with(' ') {
            match sections.last_mut() {
                Some(section) => section.push(line.to_owned()),
                None => panic!("output before the first heading: {line}"),
            }
        } else {
            sections.push(Vec::new());
        }
    }
    sections
}

#[test]
fn the_primer_prints_what_its_chapter_shows_in_the_order_it_shows_it() {
    let output = Command::new(primer_binary())
        .output()
        .expect("run the primer example");
    assert!(output.status.success(), "the primer failed: {output:?}");
    let printed = sections(&String::from_utf8_lossy(&output.stdout));
    let shown = text_blocks(&chapter());
    assert!(
        printed.len() >= 10,
        "only {} sections printed",
        printed.len()
    );
    for (number, (shown, printed)) in shown.iter().zip(&printed).enumerate() {
        assert_eq!(
            shown,
            printed,
            "the chapter's text block {} is not what section {} prints",
            number + 1,
            number + 1
        );
    }
    assert_eq!(
        shown.len(),
        printed.len(),
        "the chapter shows {} outputs, the example prints {} sections",
        shown.len(),
        printed.len()
    );
}

#[test]
fn the_comparison_reads_blocks_and_sections_as_they_are_written() {
    let markdown = "intro\n\n```rust\nlet a = 1;\n```\n\n```text\n   one\n   two\n```\n\n\
                    ```console\n$ cargo build\n```\n\n```text\n   three\n```\n";
    assert_eq!(
        text_blocks(markdown),
        vec![vec!["   one", "   two"], vec!["   three"]]
    );
    let output = "1. first\n   one\n   two\n2. second\n   three\n";
    assert_eq!(
        sections(output),
        vec![vec!["   one", "   two"], vec!["   three"]]
    );
}
