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

/// The chapter's title, and the crate to edit when the title does not already say it.
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
        let folders: Vec<String> = crates.iter().map(|name| format!("{name}/")).collect();
        format!("{}, in {}", chapter.title, folders.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::Check;

    fn exercise(number: u32, title: &str, filter: &str) -> Exercise {
        Exercise {
            number,
            title: title.to_string(),
            check: Check::parse(&format!(
                "cargo test -p step01-http-vs-socket --test exercises {filter} -- --ignored"
            )),
        }
    }

    #[test]
    fn the_table_lists_each_state_and_names_the_first_exercise_not_solved() {
        let chapter = Chapter {
            title: "HTTP vs a persistent socket".to_string(),
            file: "step01-http-vs-socket.md".to_string(),
            exercises: vec![
                exercise(1, "Faster ticks", "ex1"),
                exercise(2, "A second pushed event", "ex2"),
                exercise(3, "Stop the ticks", "ex3"),
            ],
        };
        let check = |number: u32| chapter.exercises[number as usize - 1].check.clone();
        let states = [
            (check(1).expect("a check"), State::Solved),
            (check(2).expect("a check"), State::DoesNotCompile),
            (check(3).expect("a check"), State::NotYet),
        ];
        let survey = Survey::with_states(vec![chapter.clone()], &states);
        assert_eq!(
            table(&survey),
            "HTTP vs a persistent socket, in step01-http-vs-socket/\n\
             \x20 solved             1. Faster ticks\n\
             \x20 does not compile   2. A second pushed event\n\
             \x20 not yet            3. Stop the ticks\n\
             \n\
             Solved: 1 of 3 (checked in 12 s).\n\
             Next: HTTP vs a persistent socket exercise 2 — A second pushed event; check: \
             cargo test -p step01-http-vs-socket --test exercises ex2 -- --ignored\n"
        );
        assert_eq!(
            tsv(&survey).lines().nth(1),
            Some(
                "HTTP vs a persistent socket\tstep01-http-vs-socket.md\t1\tFaster ticks\t\
                 solved\tcargo test -p step01-http-vs-socket --test exercises ex1 -- --ignored"
            )
        );
    }
}
