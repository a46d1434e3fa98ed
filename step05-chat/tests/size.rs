//! Step 5 is the lesson: the complete chat, small enough to read in a sitting.
//! Hardening and scale go to the chapters after it (and their crates), so this
//! test keeps the lesson's code within the size the book promises.

use std::path::Path;

/// Lines of step 5's code, tests left out (everything from `#[cfg(test)]` on).
const MOST_LINES: usize = 1_500;

#[test]
fn the_lesson_stays_within_its_size() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut counted = Vec::new();
    count(&src, &mut counted);
    let total: usize = counted.iter().map(|(_, lines)| lines).sum();
    assert!(
        total <= MOST_LINES,
        "step05-chat/src has {total} lines outside #[cfg(test)], more than \
         {MOST_LINES}: move what is not the lesson to step 4's library or to a \
         chapter's crate. By file: {counted:?}"
    );
}

fn count(dir: &Path, counted: &mut Vec<(String, usize)>) {
    let entries = std::fs::read_dir(dir).expect("read step05-chat/src");
    for entry in entries.map(|entry| entry.expect("a directory entry")) {
        let path = entry.path();
        if path.is_dir() {
            count(&path, counted);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let text = std::fs::read_to_string(&path).expect("read a source");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            counted.push((path.display().to_string(), code.lines().count()));
        }
    }
}
