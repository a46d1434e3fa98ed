//! What the learner reads: a table by chapter, then the next exercise and its command.

use std::fmt::Write as _;

use crate::book::{Chapter, Exercise};
use crate::survey::{State, Survey};

/// The table of every exercise by chapter, the count, and the next one to do.
pub fn table(survey: &Survey) -> String {
    let mut out = String::new();
    let width = State::DoesNotCompile.label().len() + 2;
    for chapter in &survey.chapters {
        let _ = writeln!(out, "{}", chapter_heading(chapter));
        for exercise in &chapter.exercises {
            let state = survey.state(exercise).label();
            let _ = writeln!(
                out,
                "  {state:<width$}{:>2}. {}",
                exercise.number, exercise.title
            );
        }
        out.push('\n');
    }
    let (solved, total) = count(survey);
    let _ = writeln!(
        out,
        "Solved: {solved} of {total} (checked in {} s).",
        survey.elapsed.as_secs()
    );
    for failure in &survey.build_failures {
        let _ = writeln!(
            out,
            "Does not compile: {} (tests/{}.rs); see every error with: {}",
            failure.crate_name,
            failure.target,
            failure.command()
        );
        if let Some(error) = &failure.first_error {
            let _ = writeln!(out, "  first error: {error}");
        }
    }
    let _ = writeln!(out, "{}", next_line(survey));
    out
}

/// `Next: <chapter> exercise N — <title>; check: <command>`, or that all are done.
pub fn next_line(survey: &Survey) -> String {
    match survey.next() {
        Some((chapter, exercise)) => format!("Next: {}", describe(chapter, exercise)),
        None => "Next: nothing, every exercise with a check is solved.".to_string(),
    }
}

/// `<chapter> exercise N — <title>; check: <command>`.
pub fn describe(chapter: &Chapter, exercise: &Exercise) -> String {
    let command = exercise
        .check
        .as_ref()
        .map_or_else(|| "(none)".to_string(), |check| check.command());
    format!(
        "{} exercise {} — {}; check: {command}",
        chapter.title, exercise.number, exercise.title
    )
}

/// One line per exercise, tab-separated, with a header: for a spreadsheet (a teacher
/// collecting a class's progress) or a script.
pub fn tsv(survey: &Survey) -> String {
    let mut out = String::from("chapter\tfile\texercise\ttitle\tstate\tcheck\n");
    for (chapter, exercise) in survey.exercises() {
        let command = exercise
            .check
            .as_ref()
            .map(|check| check.command())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{command}",
            chapter.title,
            chapter.file,
            exercise.number,
            exercise.title,
            survey.state(exercise).label()
        );
    }
    out
}

/// Solved exercises, and exercises, counting each row of the table.
pub fn count(survey: &Survey) -> (usize, usize) {
    let solved = survey
        .exercises()
        .filter(|(_, exercise)| survey.state(exercise) == State::Solved)
        .count();
    (solved, survey.exercises().count())
}

/// The chapter's title, and its crate when the title does not already say it.
fn chapter_heading(chapter: &Chapter) -> String {
    let mut crates: Vec<&str> = chapter
        .exercises
        .iter()
        .filter_map(|exercise| exercise.check.as_ref())
        .map(|check| check.crate_name.as_str())
        .collect();
    crates.dedup();
    if crates.is_empty() || crates.iter().all(|name| chapter.title.contains(name)) {
        chapter.title.clone()
    } else {
        format!("{} ({})", chapter.title, crates.join(", "))
    }
}
