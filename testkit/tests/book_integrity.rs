//! Keeps the book honest. mdbook only *logs* an include whose file or anchor is missing and
//! still exits 0, so a renamed function would silently leave a chapter with an empty listing.
//! These tests fail instead:
//! - every chapter linked from `SUMMARY.md` exists;
//! - every `{{#include path:anchor}}` / `{{#rustdoc_include ...}}` points at an existing file,
//!   and a named anchor exists in it and holds at least one non-blank line;
//! - every image a chapter shows (`![...](img/...)` or `<img src="...">`) exists, and every
//!   diagram in `book/src/img/` is shown by some chapter (none left behind after an edit);
//! - every SVG a chapter shows is drawn at most 750 px wide (the book's column, so it is
//!   never scaled down) with no text under 13 px (issue 21);
//! - in the chapters of `CHAPTERS_WITH_THE_LISTING_RULE`, no listing is longer than 40 lines
//!   or wider than the book's 80-column code block (issue 12);
//! - every stated reading time is close to a careful read's, and every chapter beyond the
//!   chat (`SUMMARY.md`'s part of that name) reads in 90 minutes at most (issue 19);
//! - every console session that shows what a command prints is a transcript under
//!   `transcripts/`, which a crate's `tests/transcripts.rs` plays against the program, or is
//!   in `NOT_PLAYED` with the reason no test can play it (issue 21).

use std::path::{Path, PathBuf};

fn book_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../book/src")
}

fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read book/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files.extend(markdown_files(&path));
        } else if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The `{{#include ...}}` and `{{#rustdoc_include ...}}` directives of a Markdown text,
/// as their argument (`path:anchor`, `path:10:20`, or `path`).
fn include_directives(markdown: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find("{{#") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else { break };
        let directive = after[..end].trim();
        for keyword in ["include ", "rustdoc_include "] {
            if let Some(argument) = directive.strip_prefix(keyword) {
                found.push(argument.trim().to_owned());
            }
        }
        rest = &after[end..];
    }
    found
}

/// Lines of `source` between `ANCHOR: name` and `ANCHOR_END: name`, without anchor lines.
fn anchor_body(source: &str, name: &str) -> Option<Vec<String>> {
    let is_marker = |line: &str, kind: &str| {
        line.split_once(kind)
            .is_some_and(|(_, rest)| rest.split_whitespace().next() == Some(name))
    };
    let mut lines = source.lines();
    lines.by_ref().find(|l| is_marker(l, "ANCHOR:"))?;
    let mut body = Vec::new();
    for line in lines {
        if is_marker(line, "ANCHOR_END:") {
            return Some(body);
        }
        if !line.contains("ANCHOR:") && !line.contains("ANCHOR_END:") {
            body.push(line.to_owned());
        }
    }
    None // opened, never closed
}

/// Checks one directive argument, relative to the chapter's folder. Returns a problem, if any.
fn check_include(chapter_dir: &Path, argument: &str) -> Option<String> {
    let mut parts = argument.splitn(2, ':');
    let path = parts.next().unwrap_or_default();
    let selector = parts.next();
    let file = chapter_dir.join(path);
    let Ok(source) = std::fs::read_to_string(&file) else {
        return Some(format!("missing file {path}"));
    };
    let Some(selector) = selector else {
        return None; // the whole file
    };
    // Line ranges (`10`, `10:20`, `:20`, `10:`) are numbers; anything else is an anchor name.
    if selector
        .split(':')
        .all(|n| n.is_empty() || n.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    match anchor_body(&source, selector) {
        None => Some(format!(
            "no anchor `{selector}` (or no ANCHOR_END) in {path}"
        )),
        Some(body) if body.iter().all(|l| l.trim().is_empty()) => {
            Some(format!("anchor `{selector}` in {path} is empty"))
        }
        Some(_) => None,
    }
}

/// The chapters whose listings fit the book's code column: at most
/// `MAX_LISTING_LINES` lines, none wider than `MAX_LISTING_WIDTH` characters.
/// The five steps, and the two chapters that read steps 1 and 3 again for
/// their hardening (it was taught in those chapters, under the same rule).
const CHAPTERS_WITH_THE_LISTING_RULE: [&str; 7] = [
    "step01-http-vs-socket.md",
    "step02-sessions.md",
    "step03-passport-like-auth.md",
    "step04-socket-middleware.md",
    "step05-chat.md",
    "before-the-internet.md",
    "before-the-internet-login.md",
];

/// The longest listing a reader takes in at once; longer ones are split, with
/// prose between the pieces, or folded into `<details>`.
const MAX_LISTING_LINES: usize = 40;

/// The width of the book's code column: a wider line scrolls sideways.
const MAX_LISTING_WIDTH: usize = 80;

/// Listings whose lines keep their width: a SQL migration that a database has
/// run must never change, not even in a comment (sqlx stores its checksum and
/// refuses to start when the file differs), so its lines stay as released.
/// Chapter 5 says so where it shows them.
/// And the console sessions under `transcripts/`: what a program prints, as it
/// prints it (a log line, a cookie), compared with the program by its crate's
/// `tests/transcripts.rs`; wrapped, they would no longer be what the reader's
/// terminal shows.
fn keeps_its_width(path: &str) -> bool {
    (path.contains("/migrations/") && path.ends_with(".sql")) || path.starts_with("transcripts/")
}

/// The lines mdBook shows for a selector of `source`, as mdBook 0.5 takes them:
/// `None` is the whole file (anchor comments included, as mdBook leaves them);
/// `10` is line 10 only, `10:20` lines 10 to 20, `:20` up to line 20, `10:`
/// from line 10; any other selector is an anchor, shown without the lines that
/// open or close an anchor. `None` if the anchor does not exist.
fn listed_lines(source: &str, selector: Option<&str>) -> Option<Vec<String>> {
    let Some(selector) = selector else {
        return Some(source.lines().map(str::to_owned).collect());
    };
    let mut bounds = selector.splitn(2, ':');
    let first = bounds.next().unwrap_or_default();
    let start = match first.parse::<usize>() {
        Ok(line) => line.saturating_sub(1),
        Err(_) if first.is_empty() => 0,
        Err(_) => return anchor_body(source, selector),
    };
    let end = match bounds.next() {
        None if !first.is_empty() => start + 1,
        None => usize::MAX,
        Some(last) => last.parse::<usize>().unwrap_or(usize::MAX),
    };
    let lines = source.lines().skip(start).take(end.saturating_sub(start));
    Some(lines.map(str::to_owned).collect())
}

/// What breaks the listing rule in one directive argument, relative to the
/// chapter's folder: too many lines, and each line too wide (counted in
/// characters, as the reader sees them, not in bytes).
fn listing_problems(chapter_dir: &Path, argument: &str) -> Vec<String> {
    let (path, selector) = match argument.split_once(':') {
        Some((path, selector)) => (path, Some(selector)),
        None => (argument, None),
    };
    let Ok(source) = std::fs::read_to_string(chapter_dir.join(path)) else {
        return Vec::new(); // `every_include_resolves_...` reports it
    };
    let Some(lines) = listed_lines(&source, selector) else {
        return Vec::new(); // likewise
    };
    let mut problems = Vec::new();
    if lines.len() > MAX_LISTING_LINES {
        problems.push(format!(
            "{} lines, more than {MAX_LISTING_LINES}: split it, with prose \
             between the pieces, or fold plumbing into <details>",
            lines.len()
        ));
    }
    for (number, line) in lines.iter().enumerate() {
        if keeps_its_width(path) {
            break;
        }
        let width = line.chars().count();
        if width > MAX_LISTING_WIDTH {
            problems.push(format!(
                "listed line {} is {width} characters wide, more than \
                 {MAX_LISTING_WIDTH}: {line}",
                number + 1
            ));
        }
    }
    problems
}

#[test]
fn no_listing_of_the_first_chapters_is_over_40_lines_or_80_columns() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for name in CHAPTERS_WITH_THE_LISTING_RULE {
        let chapter = book_src().join(name);
        let text = std::fs::read_to_string(&chapter).expect("read chapter");
        let dir = chapter.parent().expect("chapter folder");
        for argument in include_directives(&text) {
            checked += 1;
            for problem in listing_problems(dir, &argument) {
                problems.push(format!("{name}: {{{{#include {argument}}}}}: {problem}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "listings that do not fit the book's code column:\n{}",
        problems.join("\n")
    );
    assert!(
        checked > 20,
        "only {checked} listings in the chapters of the rule"
    );
}

#[test]
fn every_include_resolves_to_a_file_and_a_non_empty_anchor() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for chapter in markdown_files(&book_src()) {
        let text = std::fs::read_to_string(&chapter).expect("read chapter");
        let dir = chapter.parent().expect("chapter folder");
        for argument in include_directives(&text) {
            checked += 1;
            if let Some(problem) = check_include(dir, &argument) {
                problems.push(format!(
                    "{}: {{{{#include {argument}}}}}: {problem}",
                    chapter.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken includes:\n{}",
        problems.join("\n")
    );
    assert!(
        checked > 0,
        "the book includes no code at all: is book/src where we think?"
    );
}

#[test]
fn every_chapter_in_the_summary_exists() {
    let summary = std::fs::read_to_string(book_src().join("SUMMARY.md")).expect("SUMMARY.md");
    let mut missing = Vec::new();
    let mut chapters = 0;
    // Links look like `[Title](path.md)`; a draft chapter `[Title]()` has no file by design.
    for rest in summary.split("](").skip(1) {
        let Some(end) = rest.find(')') else { continue };
        let target = &rest[..end];
        if target.is_empty() {
            continue;
        }
        chapters += 1;
        if !book_src().join(target).is_file() {
            missing.push(target.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "SUMMARY.md links to missing chapters: {missing:?}"
    );
    assert!(chapters >= 6, "SUMMARY.md lists only {chapters} chapters");
}

/// The images a Markdown text shows: the targets of `![alt](target)` and of `<img src="...">`.
fn image_references(markdown: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (opening, closing) in [("](", ')'), ("<img src=\"", '"')] {
        let mut rest = markdown;
        while let Some(start) = rest.find(opening) {
            let before = &rest[..start];
            let after = &rest[start + opening.len()..];
            rest = after;
            // `](` is any link; only `![alt](...)`, an image, counts.
            if opening == "]("
                && !before
                    .rfind('[')
                    .is_some_and(|i| before[..i].ends_with('!'))
            {
                continue;
            }
            if let Some(end) = after.find(closing) {
                // `![alt](path "title")`: the path ends at the first space.
                let target = after[..end].split_whitespace().next().unwrap_or_default();
                found.push(target.to_owned());
            }
        }
    }
    found
}

/// Problems with the images of the chapters in `src`: a missing file, or a file in
/// `src/img/` that no chapter shows.
fn image_problems(src: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut shown = std::collections::BTreeSet::new();
    for chapter in markdown_files(src) {
        let text = std::fs::read_to_string(&chapter).expect("read chapter");
        let dir = chapter.parent().expect("chapter folder");
        for target in image_references(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                problems.push(format!(
                    "{}: {target}: images must be files in the book, not loaded from elsewhere",
                    chapter.display()
                ));
                continue;
            }
            let file = dir.join(&target);
            match file.canonicalize() {
                Ok(file) => {
                    shown.insert(file);
                }
                Err(_) => problems.push(format!("{}: missing image {target}", chapter.display())),
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(src.join("img")) {
        for entry in entries {
            let path = entry.expect("dir entry").path();
            let canonical = path.canonicalize().expect("canonical path");
            if !shown.contains(&canonical) {
                problems.push(format!("{} is shown by no chapter", path.display()));
            }
        }
    }
    problems
}

#[test]
fn every_image_exists_and_every_diagram_is_shown() {
    let problems = image_problems(&book_src());
    assert!(
        problems.is_empty(),
        "image problems:\n{}",
        problems.join("\n")
    );
    let diagrams = std::fs::read_dir(book_src().join("img")).map_or(0, |dir| dir.count());
    assert!(diagrams >= 5, "the book draws only {diagrams} diagrams");
}

#[test]
fn the_checker_catches_what_it_should() {
    // The checks above only mean something if they can fail; prove it on a scratch folder.
    let dir = std::env::temp_dir().join(format!("book-integrity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    std::fs::write(
        dir.join("code.rs"),
        "// ANCHOR: full\nfn main() {}\n// ANCHOR_END: full\n// ANCHOR: empty\n\n// ANCHOR_END: empty\n",
    )
    .expect("write scratch file");
    assert_eq!(check_include(&dir, "code.rs:full"), None);
    assert_eq!(check_include(&dir, "code.rs:3:5"), None);
    assert!(check_include(&dir, "code.rs:nope").is_some());
    assert!(check_include(&dir, "code.rs:empty").is_some());
    assert!(check_include(&dir, "gone.rs:full").is_some());
    assert_eq!(
        include_directives("a {{#include x.rs:a}} b {{#rustdoc_include y.rs}} {{#title t}}"),
        vec!["x.rs:a".to_owned(), "y.rs".to_owned()]
    );
    std::fs::remove_dir_all(&dir).ok();

    assert_eq!(
        image_references(
            "see [a link](x.md), ![flow](img/a.svg \"t\") and <img src=\"img/b.svg\" alt=\"\">"
        ),
        vec!["img/a.svg".to_owned(), "img/b.svg".to_owned()]
    );
    let book = std::env::temp_dir().join(format!("book-images-{}", std::process::id()));
    std::fs::create_dir_all(book.join("img")).expect("scratch book");
    std::fs::write(book.join("img/used.svg"), "<svg/>").expect("write");
    std::fs::write(book.join("img/unused.svg"), "<svg/>").expect("write");
    std::fs::write(
        book.join("chapter.md"),
        "![a](img/used.svg) ![b](img/gone.svg) ![c](https://cdn.example/x.svg)",
    )
    .expect("write");
    let problems = image_problems(&book).join("\n");
    assert!(
        problems.contains("missing image img/gone.svg"),
        "{problems}"
    );
    assert!(
        problems.contains("unused.svg is shown by no chapter"),
        "{problems}"
    );
    assert!(problems.contains("not loaded from elsewhere"), "{problems}");
    assert!(!problems.contains("/used.svg is shown"), "{problems}");
    std::fs::remove_dir_all(&book).ok();
}

#[test]
fn the_listing_rule_catches_a_41_line_listing_and_an_81_character_line() {
    let dir = std::env::temp_dir().join(format!("book-listings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let forty = "x\n".repeat(40);
    let forty_one = "x\n".repeat(41);
    let eighty = "é".repeat(80); // 80 characters, 160 bytes: fits
    let eighty_one = "x".repeat(81);
    std::fs::write(
        dir.join("code.rs"),
        format!(
            "// ANCHOR: forty\n{forty}// ANCHOR_END: forty\n\
             // ANCHOR: forty_one\n{forty_one}// ANCHOR_END: forty_one\n\
             // ANCHOR: outer\n{eighty}\n// ANCHOR: inner\n{forty}\
             // ANCHOR_END: inner\n// ANCHOR_END: outer\n\
             // ANCHOR: wide\n{eighty_one}\n// ANCHOR_END: wide\n"
        ),
    )
    .expect("write scratch file");
    std::fs::write(dir.join("whole.js"), &forty_one).expect("write");

    // The nested anchor's marker lines are not shown, so not counted: 41 shown
    // lines in `outer`.
    assert!(listing_problems(&dir, "code.rs:forty").is_empty());
    let long = listing_problems(&dir, "code.rs:forty_one").join("\n");
    assert!(long.contains("41 lines, more than 40"), "{long}");
    let outer = listing_problems(&dir, "code.rs:outer").join("\n");
    assert!(outer.contains("41 lines"), "{outer}");
    assert!(
        !outer.contains("wide"),
        "counts characters, not bytes: {outer}"
    );
    let wide = listing_problems(&dir, "code.rs:wide").join("\n");
    assert!(
        wide.contains("listed line 1 is 81 characters wide"),
        "{wide}"
    );
    // Whole files and line ranges, as mdBook reads them.
    let whole = listing_problems(&dir, "whole.js").join("\n");
    assert!(whole.contains("41 lines"), "{whole}");
    assert!(listing_problems(&dir, "whole.js:2:41").is_empty());
    assert!(!listing_problems(&dir, "whole.js:1:41").is_empty());
    assert!(listing_problems(&dir, "whole.js::40").is_empty());
    assert!(!listing_problems(&dir, "whole.js:1:").is_empty());
    assert!(listing_problems(&dir, "whole.js:2:").is_empty());
    assert_eq!(
        listed_lines("a\nb\nc\n", Some("2")),
        Some(vec!["b".to_owned()])
    );
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------- diagrams

/// The width of the book's text column in CSS pixels: a wider image is scaled down to fit,
/// and its text with it (issue 21: 11 px labels in an 880 px drawing rendered at 9.5 px).
const MAX_DIAGRAM_WIDTH: f64 = 750.0;

/// The smallest text a diagram may draw, in px at its own scale (1:1 in the column).
const MIN_DIAGRAM_FONT_SIZE: f64 = 13.0;

/// The SVG files that some chapter shows, each once.
fn shown_svgs(src: &Path) -> std::collections::BTreeSet<PathBuf> {
    let mut svgs = std::collections::BTreeSet::new();
    for chapter in markdown_files(src) {
        let text = std::fs::read_to_string(&chapter).expect("read chapter");
        let dir = chapter.parent().expect("chapter folder");
        for target in image_references(&text) {
            if target.ends_with(".svg")
                && !target.contains("://")
                && let Ok(file) = dir.join(&target).canonicalize()
            {
                svgs.insert(file);
            }
        }
    }
    svgs
}

/// The value of attribute `name` in the attribute text of one tag, if present.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag;
    while let Some(at) = rest.find(name) {
        let before = rest[..at].chars().last();
        let after = rest[at + name.len()..].trim_start();
        rest = &rest[at + name.len()..];
        // `width` must not match `stroke-width`, nor `viewBox` a longer name.
        if before.is_some_and(|c| !c.is_whitespace()) {
            continue;
        }
        let Some(value) = after.strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        let quote = value.chars().next()?;
        if quote != '"' && quote != '\'' {
            continue;
        }
        let value = &value[1..];
        return value.find(quote).map(|end| &value[..end]);
    }
    None
}

/// A length in px: `13`, `13px`, `13.5` (no unit means user units, px at 1:1). Other units
/// (`em`, `%`, `pt`) are refused rather than guessed, so the check stays exact.
fn px(value: &str) -> Result<f64, String> {
    let value = value.trim();
    let number_end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(number_end);
    match (number.parse::<f64>(), unit.trim()) {
        (Ok(n), "" | "px") => Ok(n),
        _ => Err(format!("`{value}` is not a length in px")),
    }
}

/// What keeps the SVG `text` of the file `name` from being shown at 1:1 in the book's
/// column with text of `MIN_DIAGRAM_FONT_SIZE` or more: the root's `width` or `viewBox`
/// width over `MAX_DIAGRAM_WIDTH` (or the two differing, which scales the drawing), and
/// every `font-size` below the minimum, whether an attribute (`font-size="11"`) or CSS
/// (`font-size: 11px` in a `style`), or in a unit the check cannot compare.
fn svg_problems(name: &str, svg: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let root = svg.find("<svg").and_then(|start| {
        svg[start..]
            .find('>')
            .map(|end| &svg[start + 4..start + end])
    });
    let Some(root) = root else {
        return vec![format!("{name}: no <svg> root element")];
    };
    let view_box_width = attribute(root, "viewBox").map(|view_box| {
        let numbers: Vec<&str> = view_box
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|part| !part.is_empty())
            .collect();
        match numbers.get(2).map(|width| width.parse::<f64>()) {
            Some(Ok(width)) if numbers.len() == 4 => Ok(width),
            _ => Err(format!("viewBox=\"{view_box}\" is not four numbers")),
        }
    });
    let width = attribute(root, "width").map(px);
    match (&view_box_width, &width) {
        (None, _) => problems.push(format!(
            "{name}: the root <svg> has no viewBox, so the check cannot know its width"
        )),
        (Some(Err(e)), _) | (_, Some(Err(e))) => problems.push(format!("{name}: {e}")),
        (Some(Ok(view_box)), width) => {
            if *view_box > MAX_DIAGRAM_WIDTH {
                problems.push(format!(
                    "{name}: viewBox width {view_box} is over {MAX_DIAGRAM_WIDTH}: the book \
                     scales it down, and its text with it"
                ));
            }
            if let Some(Ok(width)) = width {
                if *width > MAX_DIAGRAM_WIDTH {
                    problems.push(format!(
                        "{name}: width=\"{width}\" is over {MAX_DIAGRAM_WIDTH}"
                    ));
                }
                if (width - view_box).abs() > 0.5 {
                    problems.push(format!(
                        "{name}: width=\"{width}\" differs from the viewBox width {view_box}: \
                         the drawing is scaled, and its font sizes with it"
                    ));
                }
            }
        }
    }
    // Each offending value once per file, with how often it occurs.
    let mut sizes: Vec<(String, usize)> = Vec::new();
    let mut rest = svg;
    while let Some(at) = rest.find("font-size") {
        rest = &rest[at + "font-size".len()..];
        let after = rest.trim_start();
        let Some(value) = after.strip_prefix(['=', ':']) else {
            continue;
        };
        let value = value.trim_start().trim_start_matches(['"', '\'']);
        let end = value
            .find(['"', '\'', ';', '}', '<', '>', '\n', '!'])
            .unwrap_or(value.len());
        let problem = match px(&value[..end]) {
            Ok(size) if size < MIN_DIAGRAM_FONT_SIZE => {
                format!("{name}: font-size {size} px is under {MIN_DIAGRAM_FONT_SIZE} px")
            }
            Ok(_) => continue,
            Err(e) => format!("{name}: font-size {e}"),
        };
        match sizes.iter_mut().find(|(seen, _)| *seen == problem) {
            Some((_, count)) => *count += 1,
            None => sizes.push((problem, 1)),
        }
    }
    problems.extend(sizes.into_iter().map(|(problem, count)| match count {
        1 => problem,
        _ => format!("{problem} ({count} times)"),
    }));
    if svg.contains("font:") {
        problems.push(format!(
            "{name}: a CSS `font:` shorthand: write `font-size`, which this check reads"
        ));
    }
    problems
}

#[test]
fn every_diagram_fits_the_column_with_text_of_13_px_or_more() {
    let src = book_src();
    let svgs = shown_svgs(&src);
    assert!(svgs.len() >= 5, "the book shows only {} SVGs", svgs.len());
    let mut problems = Vec::new();
    for svg in &svgs {
        let text = std::fs::read_to_string(svg).expect("read SVG");
        let name = svg
            .strip_prefix(src.canonicalize().expect("book/src"))
            .unwrap_or(svg);
        problems.extend(svg_problems(&name.display().to_string(), &text));
    }
    assert!(
        problems.is_empty(),
        "diagrams the book's column would shrink, or with text too small to read on a \
         phone:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_diagram_rule_catches_a_wide_drawing_and_small_text() {
    let good = r#"<svg xmlns="http://www.w3.org/2000/svg" width="750" height="90"
        viewBox="0 0 750 90"><style>text { font-size: 13px; }</style>
        <rect stroke-width="1.2" width="800"/><text font-size="14">a</text></svg>"#;
    assert_eq!(svg_problems("good.svg", good), Vec::<String>::new());
    let wide = r#"<svg width="880" viewBox="0 0 880 600"><text font-size="13">a</text></svg>"#;
    let wide = svg_problems("wide.svg", wide).join("\n");
    assert!(
        wide.contains("wide.svg: viewBox width 880 is over 750"),
        "{wide}"
    );
    assert!(
        wide.contains("wide.svg: width=\"880\" is over 750"),
        "{wide}"
    );
    let scaled = svg_problems("s.svg", r#"<svg width="700" viewBox="0 0 1400 100"></svg>"#);
    assert_eq!(scaled.len(), 2, "{scaled:?}");
    let small = r#"<svg viewBox="0,0,700,100"><style>.note { font-size:11.5px }</style>
        <text font-size="12">a</text><text style="fill: red; font-size: 9px">b</text>
        <text font-size="1em">c</text></svg>"#;
    let small = svg_problems("small.svg", small).join("\n");
    for expected in [
        "small.svg: font-size 11.5 px is under 13 px",
        "small.svg: font-size 12 px is under 13 px",
        "small.svg: font-size 9 px is under 13 px",
        "small.svg: font-size `1em` is not a length in px",
    ] {
        assert!(small.contains(expected), "{expected} not in:\n{small}");
    }
    let no_view_box = svg_problems("n.svg", r#"<svg width="300"></svg>"#).join("\n");
    assert!(no_view_box.contains("no viewBox"), "{no_view_box}");
}

// ---------------------------------------------------------------- reading times

/// Prose a careful first read gets through in a minute.
const WORDS_PER_MINUTE: f64 = 200.0;

/// Lines of code a careful first read gets through in a minute: each line, and
/// its comment, read until it is understood.
const CODE_LINES_PER_MINUTE: f64 = 8.0;

/// `text` without its `<details>` blocks (folded plumbing and reference
/// solutions: not part of a first read).
fn without_details(text: &str) -> String {
    let mut kept = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<details>") {
        kept.push_str(&rest[..start]);
        match rest[start..].find("</details>") {
            Some(end) => rest = &rest[start + end + "</details>".len()..],
            None => return kept,
        }
    }
    kept.push_str(rest);
    kept
}

/// The minutes a careful first read of a chapter takes: its prose and its code
/// (listed or written in the chapter) up to its exercises, without what is
/// folded away. The exercises have times of their own.
fn reading_minutes(chapter: &Path) -> f64 {
    let text = std::fs::read_to_string(chapter).expect("read chapter");
    let dir = chapter.parent().expect("chapter folder");
    let before_exercises = text.split("\n## Exercises").next().unwrap_or_default();
    let (mut words, mut code) = (0, 0);
    let mut in_code = false;
    for line in without_details(before_exercises).lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if in_code && line.contains("{{#") {
            for argument in include_directives(line) {
                let (path, selector) = match argument.split_once(':') {
                    Some((path, selector)) => (path, Some(selector)),
                    None => (argument.as_str(), None),
                };
                let source = std::fs::read_to_string(dir.join(path)).unwrap_or_default();
                let lines = listed_lines(&source, selector).unwrap_or_default();
                code += lines.iter().filter(|l| !l.trim().is_empty()).count();
            }
        } else if in_code {
            code += usize::from(!line.trim().is_empty());
        } else {
            let is_word_char = |c: char| c.is_ascii_alphanumeric() || c == '\'' || c == '’';
            words += line
                .split(|c| !is_word_char(c))
                .filter(|w| !w.is_empty())
                .count();
        }
    }
    words as f64 / WORDS_PER_MINUTE + code as f64 / CODE_LINES_PER_MINUTE
}

/// The reading time a chapter states on its line `*Reading time: about 1 hour
/// 15 minutes. ...*`, in minutes.
fn stated_reading_minutes(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("*Reading time:"))?;
    let stated = line["*Reading time:".len()..].split('.').next()?;
    let mut minutes = 0.0;
    let mut number = None;
    for word in stated.split_whitespace() {
        if let Ok(n) = word.parse::<f64>() {
            number = Some(n);
        } else if word.starts_with("hour") {
            minutes += 60.0 * number.take()?;
        } else if word.starts_with("minute") {
            minutes += number.take()?;
        }
    }
    (minutes > 0.0).then_some(minutes)
}

#[test]
fn every_stated_reading_time_is_within_a_quarter_of_a_careful_read() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for chapter in markdown_files(&book_src()) {
        let text = std::fs::read_to_string(&chapter).expect("read chapter");
        let Some(stated) = stated_reading_minutes(&text) else {
            continue;
        };
        checked += 1;
        let measured = reading_minutes(&chapter);
        // A quarter either way, and never closer than 5 minutes for short pages.
        let allowed = (measured * 0.25).max(5.0);
        if (stated - measured).abs() > allowed {
            let name = chapter.file_name().unwrap_or_default().to_string_lossy();
            problems.push(format!(
                "{name}: says {stated:.0} minutes, a careful read takes about {measured:.0} \
                 ({WORDS_PER_MINUTE} words and {CODE_LINES_PER_MINUTE} lines of code a minute)"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "reading times to update:\n{}",
        problems.join("\n")
    );
    assert!(
        checked >= 10,
        "only {checked} chapters state a reading time"
    );
}

/// The longest a chapter beyond the chat may take to read (issue 19): one
/// sitting of a class.
const MAX_BEYOND_THE_CHAT_MINUTES: f64 = 90.0;

/// The chapters `SUMMARY.md` lists under its heading `# {part}`, in order.
fn chapters_of_part(summary: &str, part: &str) -> Vec<String> {
    let heading = format!("# {part}");
    summary
        .lines()
        .skip_while(|line| line.trim() != heading)
        .skip(1)
        .take_while(|line| !line.starts_with("# "))
        .filter_map(|line| {
            let start = line.find("](")? + 2;
            let end = start + line[start..].find(')')?;
            Some(line[start..end].to_owned()).filter(|target| !target.is_empty())
        })
        .collect()
}

#[test]
fn every_chapter_beyond_the_chat_reads_in_an_hour_and_a_half_at_most() {
    let summary = std::fs::read_to_string(book_src().join("SUMMARY.md")).expect("SUMMARY.md");
    let chapters = chapters_of_part(&summary, "Beyond the chat");
    assert!(
        chapters
            .iter()
            .any(|chapter| chapter == "chat-under-load.md"),
        "SUMMARY.md's part \"Beyond the chat\" lists: {chapters:?}"
    );
    let mut too_long = Vec::new();
    for chapter in &chapters {
        let path = book_src().join(chapter);
        let text = std::fs::read_to_string(&path).expect("read chapter");
        let measured = reading_minutes(&path);
        let stated = stated_reading_minutes(&text).unwrap_or(f64::INFINITY);
        if measured > MAX_BEYOND_THE_CHAT_MINUTES || stated > MAX_BEYOND_THE_CHAT_MINUTES {
            too_long.push(format!(
                "{chapter}: says {stated:.0} minutes, measures {measured:.0}"
            ));
        }
    }
    assert!(
        too_long.is_empty(),
        "chapters beyond the chat over {MAX_BEYOND_THE_CHAT_MINUTES} minutes:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn reading_times_are_read_and_measured_as_a_reader_would() {
    let stated = |line: &str| stated_reading_minutes(&format!("# T\n\n{line}\n"));
    assert_eq!(
        stated("*Reading time: about 20 minutes. Exercises: 1 hour.*"),
        Some(20.0)
    );
    assert_eq!(
        stated("*Reading time: about 1 hour 15 minutes.*"),
        Some(75.0)
    );
    assert_eq!(stated("*Reading time: 2 hours.*"), Some(120.0));
    assert_eq!(
        stated("Reading time: 5 minutes."),
        None,
        "only the chapter's own line"
    );

    let dir = std::env::temp_dir().join(format!("reading-time-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("code.rs"),
        "// ANCHOR: a\nfn a() {}\n\nfn b() {}\n// ANCHOR_END: a\n",
    )
    .expect("write code");
    let chapter = dir.join("chapter.md");
    let mut text = String::from("*Reading time: about 1 minute.*\n\n");
    text.push_str(&"word ".repeat(200));
    text.push_str("\n\n```rust\n{{#include code.rs:a}}\nlet x = 1;\n```\n\n");
    text.push_str("<details><summary>folded</summary>\n\n```rust\nhidden();\n```\n</details>\n");
    text.push_str("\n## Exercises\n\nMany words here are not counted.\n");
    std::fs::write(&chapter, text).expect("write chapter");
    // 5 + 200 words ("Reading time about 1 minute", then "word"s), and 3 lines
    // of code (two of the anchor's, one written in the chapter).
    let expected = 205.0 / WORDS_PER_MINUTE + 3.0 / CODE_LINES_PER_MINUTE;
    let measured = reading_minutes(&chapter);
    std::fs::remove_dir_all(&dir).ok();
    assert!((measured - expected).abs() < 1e-9, "{measured} minutes");
}

// ---------------------------------------------------------------- transcripts

/// Console sessions that show output and are not played by a test, each with the reason:
/// (chapter, the block's first line, why). Everything else a `console` block shows a command
/// print is a file under `transcripts/`.
const NOT_PLAYED: &[(&str, &str, &str)] = &[
    (
        "before-the-internet.md",
        "$ (cd testkit/js && npm ci)",
        "installs from npm (the Internet); the line it shows is played in step01/run-it",
    ),
    (
        "before-the-internet.md",
        "$ bash -c 'ulimit -n 1024; cargo run -p step01-http-vs-socket'",
        "an 11-second flood of 1,100 connections whose figures are timings",
    ),
    (
        "rust-for-node-developers.md",
        "$ cargo build -p step01-http-vs-socket --example primer",
        "compiler errors of a handler broken on purpose (abridged, as the text says)",
    ),
    (
        "step02-sessions.md",
        "$ sqlite3 data/step02.db 'select id, expiry_date from tower_sessions'",
        "needs the sqlite3 tool, which the tests do not",
    ),
    (
        "rust-and-node.md",
        "$ cargo test -p step05-chat --test twin -- --include-ignored",
        "the outcome of a test run: that test itself is what it shows",
    ),
    (
        "teachers-guide.md",
        "$ HOST=0.0.0.0 cargo run -p step05-chat",
        "a teacher's note, abridged to the one line it is about",
    ),
    (
        "teachers-guide/step05.md",
        "$ curl -s -w ' HTTP %{http_code}\\n' -H 'content-type: application/json' \\",
        "the output of the chat with a line removed on purpose (a teacher's demonstration)",
    ),
];

/// The `console` blocks of a Markdown text that show output: their first line, if any of
/// their lines is neither a `$ ` command, nor the continuation of one, nor an include.
fn console_blocks_with_output(markdown: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```console" {
            continue;
        }
        let block: Vec<&str> = lines
            .by_ref()
            .take_while(|line| !line.trim().starts_with("```"))
            .map(str::trim)
            .collect();
        let has_commands = block.iter().any(|line| line.starts_with("$ "));
        let mut continued = false;
        let mut open_loops = 0_i32; // `do`s not yet `done` in the current command
        let mut shows_output = false;
        for line in &block {
            if line.starts_with("$ ") {
                open_loops = 0;
            }
            let is_command = line.starts_with("$ ") || continued;
            for word in line.split(|c: char| c.is_whitespace() || c == ';') {
                match word {
                    "do" => open_loops += 1,
                    "done" => open_loops -= 1,
                    _ => {}
                }
            }
            continued = is_command && (line.ends_with('\\') || open_loops > 0);
            if !is_command && !line.is_empty() && !line.starts_with("{{#include") {
                shows_output = true;
            }
        }
        if has_commands && shows_output {
            found.push(block.first().copied().unwrap_or_default().to_string());
        }
    }
    found
}

#[test]
fn every_console_session_that_shows_output_is_a_played_transcript() {
    let src = book_src();
    let mut problems = Vec::new();
    let mut not_played_seen = Vec::new();
    for chapter in markdown_files(&src) {
        let name = chapter
            .strip_prefix(&src)
            .expect("under book/src")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&chapter).expect("read chapter");
        for first_line in console_blocks_with_output(&text) {
            match NOT_PLAYED
                .iter()
                .find(|(file, line, _)| *file == name && first_line.starts_with(line))
            {
                Some(entry) => not_played_seen.push(entry),
                None => problems.push(format!(
                    "{name}: the console block that starts `{first_line}` shows output that no \
                     test compares with the program: move it to book/src/transcripts/ and play \
                     it in the crate's tests/transcripts.rs (or add it to NOT_PLAYED, with why)"
                )),
            }
        }
    }
    for entry in NOT_PLAYED {
        if !not_played_seen.contains(&entry) {
            problems.push(format!(
                "NOT_PLAYED lists `{}` in {}, which no longer shows it",
                entry.1, entry.0
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_console_block_with_output_is_found_and_one_with_commands_only_is_not() {
    let markdown = "```console\n$ curl -i \\\n    http://x\nHTTP/1.1 200 OK\n```\n\n\
                    ```console\n$ for i in 1 2; do\n  curl x\ndone\n```\n\n\
                    ```console\n{{#include transcripts/a.console}}\n```\n\n\
                    ```console\ncargo test -p x\n```\n";
    assert_eq!(console_blocks_with_output(markdown), ["$ curl -i \\"]);
}
