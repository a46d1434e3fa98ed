//! Keeps the teacher's guide's plans honest (issue 19): a plan may not give a chapter less
//! time than the chapter itself says it takes, nor give out more time than the plan has.
//!
//! A plan in `book/src/teachers-guide.md` is a section whose heading states its hours:
//!
//! ```text
//! ## Plan: five afternoons (5 × 3 hours in class, 8 hours at home)
//!
//! | When | Chapter | Assigned | Time |
//! | --- | --- | --- | --- |
//! | Before session 1 | [Chapter 1](step01-http-vs-socket.md) | reading | 1 hour |
//! | Session 1 | [Chapter 1](step01-http-vs-socket.md) | lecture | 30 minutes |
//! | Session 1 | [Chapter 1](step01-http-vs-socket.md) | exercises | 1 hour |
//! | Session 1 | — | break | 15 minutes |
//! ```
//!
//! - the heading ends with `(N × DURATION in class, DURATION at home)`; `N ×` may be left out
//!   for a single session;
//! - a row whose *When* starts with `Before` or `After` is done at home; any other row is in
//!   class, in the session its *When* names (`Session 2, ...`), or in the only session;
//! - *Chapter* links to the chapter's file, or is `—` (a break);
//! - *Assigned* says what is done, then, after a colon, how: `reading`, `exercises` or both
//!   before the colon count against the times the chapter states on its first line
//!   (`*Reading time: about 1 hour. Exercises: 1 to 2 hours.*`, a range counting as its upper
//!   bound); anything else (a lecture, a demo, a discussion) has no time stated by the book;
//! - *Time* is a duration in words: `45 minutes`, `1 hour 30 minutes`, `2 hours`.
//!
//! For every plan the test checks that (a) each row gives at least the time the chapter states
//! for what the row assigns; (b) the hours in the heading cover the sum of the stated times
//! the plan assigns, in each session and at home; (c) the rows of each session, and those at
//! home, add up to no more than the heading gives them; (d) every chapter linked exists. The
//! chapters' times are read when the test runs, so a chapter that grows fails the plans that
//! no longer fit it.
//!
//! The per-chapter pages (`teachers-guide/stepNN.md`) list under "What the lecture covers"
//! the chapter's sections a lecture goes through, as links to their headings; the test checks
//! that every one of those headings exists.

use std::path::{Path, PathBuf};

fn book_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../book/src")
}

// ---------------------------------------------------------------- durations

/// Minutes in a duration written in words: `about 1 hour 15 minutes`, `45 minutes`,
/// `2 hours`. A range (`1 to 2 hours`, `1 hour to 1 hour 30 minutes`) counts as its upper
/// bound: a plan must leave time for the slower half of the class too.
fn duration_minutes(text: &str) -> Option<f64> {
    let mut minutes = 0.0;
    let mut number = None;
    let mut found = false;
    for word in text.split_whitespace() {
        let word = word.trim_matches(|c: char| c == ',' || c == '*' || c == '(' || c == ')');
        if let Ok(n) = word.parse::<f64>() {
            number = Some(n);
        } else if word == "to" {
            // What came before was the lower bound of a range.
            minutes = 0.0;
            found = false;
        } else if word.starts_with("hour") {
            minutes += 60.0 * number.take()?;
            found = true;
        } else if word.starts_with("minute") {
            minutes += number.take()?;
            found = true;
        }
    }
    found.then_some(minutes)
}

/// What a chapter states on its line `*Reading time: about 1 hour. Exercises: about 45
/// minutes.*`, in minutes.
#[derive(Debug, Default, PartialEq)]
struct Stated {
    reading: Option<f64>,
    exercises: Option<f64>,
}

fn stated_times(chapter: &str) -> Stated {
    let Some(line) = chapter.lines().find(|l| l.starts_with("*Reading time:")) else {
        return Stated::default();
    };
    // "*Reading time: about 1 hour. Exercises: 1 to 2 hours.*": one sentence each.
    let mut stated = Stated::default();
    for sentence in line.trim_matches('*').split('.') {
        let sentence = sentence.trim();
        if let Some(time) = sentence.strip_prefix("Reading time:") {
            stated.reading = duration_minutes(time);
        } else if let Some(time) = sentence.strip_prefix("Exercises:") {
            stated.exercises = duration_minutes(time);
        }
    }
    stated
}

/// `95.0` as `1 h 35`, the way a teacher reads a timetable.
fn hm(minutes: f64) -> String {
    let minutes = minutes.round() as i64;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m:02}"),
    }
}

// ---------------------------------------------------------------- plans

#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    Session(u32),
    Home,
}

#[derive(Debug)]
struct Row {
    when: String,
    /// The chapter's file, relative to `book/src`, without an `#anchor`.
    chapter: Option<String>,
    assigned: String,
    minutes: f64,
    place: Place,
}

#[derive(Debug)]
struct Plan {
    title: String,
    sessions: u32,
    session_minutes: f64,
    home_minutes: f64,
    rows: Vec<Row>,
}

/// `"5 × 3 hours in class, 8 hours at home"` from `## Plan: name (5 × 3 hours in class, 8
/// hours at home)`: (sessions, minutes each, minutes at home).
fn plan_hours(heading: &str) -> Result<(u32, f64, f64), String> {
    let open = heading
        .rfind('(')
        .ok_or("no (hours) at the end of the heading")?;
    let inside = heading[open + 1..].trim_end().trim_end_matches(')');
    let (mut class, mut home) = (None, None);
    for part in inside.split(',').map(str::trim) {
        if let Some(time) = part.strip_suffix("in class") {
            let (count, each) = match time.split_once('×') {
                Some((count, each)) => (count.trim().parse::<u32>().ok(), each),
                None => (Some(1), time),
            };
            class = count.zip(duration_minutes(each));
        } else if let Some(time) = part.strip_suffix("at home") {
            home = duration_minutes(time);
        }
    }
    match (class, home) {
        (Some((sessions, each)), Some(home)) if sessions > 0 => Ok((sessions, each, home)),
        _ => Err(format!(
            "the heading must end with (N × DURATION in class, DURATION at home), \
             not ({inside})"
        )),
    }
}

fn cells(line: &str) -> Vec<String> {
    let line = line.trim().trim_start_matches('|').trim_end_matches('|');
    line.split('|').map(|c| c.trim().to_owned()).collect()
}

/// The target of the first Markdown link in `cell`, without its `#anchor`.
fn link_target(cell: &str) -> Option<String> {
    let start = cell.find("](")? + 2;
    let end = start + cell[start..].find(')')?;
    let target = &cell[start..end];
    Some(target.split('#').next().unwrap_or(target).to_owned())
}

fn place(when: &str, sessions: u32) -> Result<Place, String> {
    // The first word, so that an "Afternoon" stays in class.
    let first = when.split(|c: char| !c.is_alphanumeric()).next();
    if matches!(first, Some("Before" | "After")) {
        return Ok(Place::Home);
    }
    let number = when.strip_prefix("Session ").map(|rest| {
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap_or("")
    });
    match number {
        Some(n) => match n.parse::<u32>() {
            Ok(n) if (1..=sessions).contains(&n) => Ok(Place::Session(n)),
            _ => Err(format!("\"{when}\": the plan has sessions 1 to {sessions}")),
        },
        None if sessions == 1 => Ok(Place::Session(1)),
        None => Err(format!(
            "\"{when}\": say which session (\"Session 2, ...\"), or \"Before ...\" / \
             \"After ...\" for time at home"
        )),
    }
}

/// Every `## Plan:` section of the guide, or what keeps one from being read.
fn parse_plans(guide: &str) -> Result<Vec<Plan>, Vec<String>> {
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    let mut sections = guide.split("\n## ").skip(1);
    for section in sections.by_ref() {
        let Some(heading) = section.strip_prefix("Plan:") else {
            continue;
        };
        let heading_line = heading.lines().next().unwrap_or_default().trim();
        let title = heading_line
            .split('(')
            .next()
            .unwrap_or(heading_line)
            .trim()
            .to_owned();
        let (sessions, session_minutes, home_minutes) = match plan_hours(heading_line) {
            Ok(hours) => hours,
            Err(problem) => {
                problems.push(format!("plan \"{title}\": {problem}"));
                continue;
            }
        };
        let mut table = section.lines().filter(|l| l.trim_start().starts_with('|'));
        let header = cells(table.next().unwrap_or_default());
        let column = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
        let (Some(when_at), Some(chapter_at), Some(assigned_at), Some(time_at)) = (
            column("When"),
            column("Chapter"),
            column("Assigned"),
            column("Time"),
        ) else {
            problems.push(format!(
                "plan \"{title}\": its table needs the columns When, Chapter, Assigned, Time"
            ));
            continue;
        };
        let mut rows = Vec::new();
        for line in table.filter(|l| !l.contains("---")) {
            let row = cells(line);
            let cell = |at: usize| row.get(at).map(String::as_str).unwrap_or_default();
            let when = cell(when_at).to_owned();
            let minutes = duration_minutes(cell(time_at));
            let place = place(&when, sessions);
            match (minutes, place) {
                (Some(minutes), Ok(place)) => rows.push(Row {
                    chapter: link_target(cell(chapter_at)),
                    assigned: cell(assigned_at).to_lowercase(),
                    when,
                    minutes,
                    place,
                }),
                (None, _) => problems.push(format!(
                    "plan \"{title}\", {when}: \"{}\" is not a duration in words",
                    cell(time_at)
                )),
                (_, Err(problem)) => problems.push(format!("plan \"{title}\", {problem}")),
            }
        }
        if rows.is_empty() {
            problems.push(format!("plan \"{title}\" assigns nothing"));
        }
        plans.push(Plan {
            title,
            sessions,
            session_minutes,
            home_minutes,
            rows,
        });
    }
    if problems.is_empty() {
        Ok(plans)
    } else {
        Err(problems)
    }
}

/// What is wrong with `plan`, reading each chapter's text with `chapter` (a path relative
/// to `book/src`; `None` if there is no such file).
fn plan_problems(plan: &Plan, chapter: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let title = &plan.title;
    // (time given, time the book states) per place.
    let mut spent: Vec<(Place, f64, f64)> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for row in &plan.rows {
        let mut required = 0.0;
        if let Some(file) = &row.chapter {
            let Some(text) = chapter(file) else {
                // (d) once per chapter, however many rows name it.
                if !missing.contains(file) {
                    problems.push(format!(
                        "plan \"{title}\", {}: links to {file}, which does not exist",
                        row.when
                    ));
                    missing.push(file.clone());
                }
                continue;
            };
            let stated = stated_times(&text);
            // "lecture: questions on the reading" assigns a lecture, not the reading.
            let kind = row.assigned.split(':').next().unwrap_or_default();
            let mut parts = Vec::new();
            if kind.contains("reading") {
                match stated.reading {
                    Some(reading) => parts.push(("reading", reading)),
                    None => problems.push(format!(
                        "plan \"{title}\", {}: assigns the reading of {file}, which states no \
                         reading time",
                        row.when
                    )),
                }
            }
            if kind.contains("exercises") {
                match stated.exercises {
                    Some(exercises) => parts.push(("exercises", exercises)),
                    None => problems.push(format!(
                        "plan \"{title}\", {}: assigns the exercises of {file}, which states \
                         no exercise time",
                        row.when
                    )),
                }
            }
            required = parts.iter().map(|(_, m)| m).sum();
            // (a) the row gives at least what the chapter states for what it assigns.
            if row.minutes < required {
                let states: Vec<String> = parts
                    .iter()
                    .map(|(what, m)| format!("{} of {what}", hm(*m)))
                    .collect();
                problems.push(format!(
                    "plan \"{title}\", {}: gives {file} {} for {}, the chapter states {}",
                    row.when,
                    hm(row.minutes),
                    row.assigned,
                    states.join(" + ")
                ));
            }
        }
        match spent.iter_mut().find(|(place, ..)| *place == row.place) {
            Some((_, given, stated)) => {
                *given += row.minutes;
                *stated += required;
            }
            None => spent.push((row.place, row.minutes, required)),
        }
    }
    let mut total_stated = 0.0;
    for (place, given, stated) in &spent {
        total_stated += stated;
        let (name, has) = match place {
            Place::Session(_) if plan.sessions == 1 => {
                ("in class".to_owned(), plan.session_minutes)
            }
            Place::Session(n) => (format!("session {n}"), plan.session_minutes),
            Place::Home => ("at home".to_owned(), plan.home_minutes),
        };
        // (b) the hours cover what the book states for what is assigned there.
        if *stated > has {
            problems.push(format!(
                "plan \"{title}\", {name}: the book states {} for what is assigned, the \
                 heading gives {}",
                hm(*stated),
                hm(has)
            ));
        }
        // (c) no more is given out than the plan has.
        if *given > has {
            problems.push(format!(
                "plan \"{title}\", {name}: the rows add up to {}, the heading gives {}",
                hm(*given),
                hm(has)
            ));
        }
    }
    // (b), over the whole plan.
    let total = f64::from(plan.sessions) * plan.session_minutes + plan.home_minutes;
    if total_stated > total {
        problems.push(format!(
            "plan \"{title}\": the book states {} for what is assigned, the heading gives {} in all",
            hm(total_stated),
            hm(total)
        ));
    }
    problems
}

fn read_chapter(file: &str) -> Option<String> {
    std::fs::read_to_string(book_src().join(file)).ok()
}

#[test]
fn every_plan_of_the_teachers_guide_gives_the_time_the_book_states() {
    let guide = read_chapter("teachers-guide.md").expect("read book/src/teachers-guide.md");
    let plans = parse_plans(&guide)
        .unwrap_or_else(|problems| panic!("plans that cannot be read:\n{}", problems.join("\n")));
    assert!(
        plans.len() >= 3,
        "the guide has {} plans; it should have a one-day, a multi-session and an extended one",
        plans.len()
    );
    let problems: Vec<String> = plans
        .iter()
        .flat_map(|plan| plan_problems(plan, &read_chapter))
        .collect();
    assert!(
        problems.is_empty(),
        "plans that do not fit the book's stated times:\n{}",
        problems.join("\n")
    );
}

#[test]
fn stated_times_are_read_with_the_upper_bound_of_a_range() {
    let stated = |line: &str| stated_times(&format!("# T\n\n{line}\n"));
    assert_eq!(
        stated("*Reading time: about 1 hour 15 minutes. Exercises: about 45 minutes.*"),
        Stated {
            reading: Some(75.0),
            exercises: Some(45.0)
        }
    );
    assert_eq!(
        stated("*Reading time: about 1 hour 30 minutes. Exercises: 1 to 2 hours.*"),
        Stated {
            reading: Some(90.0),
            exercises: Some(120.0)
        }
    );
    assert_eq!(
        stated("*Reading time: about 30 minutes.*"),
        Stated {
            reading: Some(30.0),
            exercises: None
        }
    );
    assert_eq!(duration_minutes("1 hour to 1 hour 30 minutes"), Some(90.0));
    assert_eq!(duration_minutes("2 hours"), Some(120.0));
    assert_eq!(duration_minutes("soon"), None);
    assert_eq!(stated("Reading time: 5 minutes."), Stated::default());
}

/// A made-up book: a 90-minute chapter with 45 minutes of exercises, and a primer.
fn made_up_chapter(file: &str) -> Option<String> {
    match file {
        "long.md" => Some(
            "# Long\n\n*Reading time: about 1 hour 30 minutes. Exercises: 30 to 45 minutes.*\n"
                .to_owned(),
        ),
        "primer.md" => Some("# Primer\n\n*Reading time: about 20 minutes.*\n".to_owned()),
        _ => None,
    }
}

fn problems_of(guide: &str) -> Vec<String> {
    let plans = parse_plans(guide).unwrap_or_else(|problems| panic!("{problems:?}"));
    assert_eq!(plans.len(), 1, "{plans:?}");
    plan_problems(&plans[0], &made_up_chapter)
}

#[test]
fn a_plan_that_gives_less_than_the_book_states_is_caught() {
    let table = "| When | Chapter | Assigned | Time |\n| --- | --- | --- | --- |\n";
    let fits = format!(
        "# Guide\n\n## Plan: fits (2 × 1 hour in class, 2 hours at home)\n\n{table}\
         | Before session 1 | [Primer](primer.md) | reading | 30 minutes |\n\
         | Before session 1 | [Long](long.md) | reading | 1 hour 30 minutes |\n\
         | Session 1, first half | [Long](long.md#why) | lecture: questions on the reading | 15 minutes |\n\
         | Session 1 | [Long](long.md) | exercises | 45 minutes |\n\
         | Session 2 | — | a class chat | 1 hour |\n\n## Something else\n"
    );
    assert_eq!(problems_of(&fits), Vec::<String>::new());

    // (a) 60 minutes for a 90-minute chapter.
    let short = fits.replace("reading | 1 hour 30 minutes", "reading | 1 hour");
    let problems = problems_of(&short);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("gives long.md 1 h for reading, the chapter states 1 h 30 of reading"),
        "{problems:?}"
    );

    // (a) a range counts as its upper bound: 30 minutes is not enough for "30 to 45".
    let problems = problems_of(&fits.replace("exercises | 45 minutes", "exercises | 30 minutes"));
    assert!(
        problems.iter().any(|p| p.contains("45 min of exercises")),
        "{problems:?}"
    );

    // (b) and (c): the heading's hours at home are fewer than the rows and the stated times.
    let problems = problems_of(&fits.replace("2 hours at home", "1 hour at home"));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("at home: the book states 1 h 50 for what is assigned")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("at home: the rows add up to 2 h, the heading gives 1 h")),
        "{problems:?}"
    );

    // (c) a session given more than it has, though every row fits its chapter.
    let problems = problems_of(&fits.replace("a class chat | 1 hour", "a class chat | 2 hours"));
    assert_eq!(
        problems,
        vec!["plan \"fits\", session 2: the rows add up to 2 h, the heading gives 1 h".to_owned()]
    );

    // (d) a chapter that does not exist, and exercises a chapter does not have.
    let problems = problems_of(
        &fits
            .replace("[Long](long.md#why)", "[Gone](gone.md)")
            .replace(
                "[Primer](primer.md) | reading",
                "[Primer](primer.md) | exercises",
            ),
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("links to gone.md, which does not exist")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("primer.md, which states no exercise time")),
        "{problems:?}"
    );

    // A plan that cannot be read is an error, not a plan that passes.
    let unreadable = fits
        .replace("2 hours at home", "a weekend")
        .replace("| Session 2 |", "| Later |");
    assert!(parse_plans(&unreadable).is_err());
    let bad_row = fits.replace("| Session 2 |", "| Session 3 |");
    let problems = parse_plans(&bad_row).expect_err("session 3 of 2");
    assert!(problems[0].contains("sessions 1 to 2"), "{problems:?}");
}

#[test]
fn when_says_in_which_session_or_at_home() {
    assert_eq!(place("Before session 2", 3), Ok(Place::Home));
    assert_eq!(place("After the day", 1), Ok(Place::Home));
    assert_eq!(place("Afternoon", 1), Ok(Place::Session(1)));
    assert_eq!(
        place("Session 3, after the break", 3),
        Ok(Place::Session(3))
    );
    assert!(place("Afternoon", 2).is_err(), "which of the two sessions?");
    assert!(place("Session 4", 3).is_err());
}

// ---------------------------------------------------------------- lectures

/// The id mdbook gives a heading: lower case, spaces to `-`, punctuation dropped.
fn heading_id(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_ascii_lowercase())
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The links (`file#anchor`) of the section "What the lecture covers" of a teacher's page.
fn lecture_links(page: &str) -> Option<Vec<String>> {
    let section = page.split("\n## What the lecture covers").nth(1)?;
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut links = Vec::new();
    let mut rest = section;
    while let Some(start) = rest.find("](") {
        rest = &rest[start + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        links.push(rest[..end].to_owned());
        rest = &rest[end..];
    }
    Some(links)
}

#[test]
fn every_section_a_lecture_covers_is_a_heading_of_its_chapter() {
    let guide_dir = book_src().join("teachers-guide");
    let mut problems = Vec::new();
    for step in 1..=5 {
        let name = format!("step{step:02}.md");
        let page = std::fs::read_to_string(guide_dir.join(&name)).expect("read teacher's page");
        let Some(links) = lecture_links(&page) else {
            problems.push(format!("{name}: no section \"What the lecture covers\""));
            continue;
        };
        let sections: Vec<&String> = links.iter().filter(|l| l.contains('#')).collect();
        if sections.len() < 3 {
            problems.push(format!(
                "{name}: \"What the lecture covers\" links to {} sections of the chapter",
                sections.len()
            ));
        }
        for link in sections {
            let (file, anchor) = link.split_once('#').unwrap_or((link, ""));
            let Ok(chapter) = std::fs::read_to_string(guide_dir.join(file)) else {
                problems.push(format!("{name}: {file} does not exist"));
                continue;
            };
            let found = chapter
                .lines()
                .filter_map(|l| l.strip_prefix('#'))
                .map(|l| l.trim_start_matches('#'))
                .any(|heading| heading_id(heading) == anchor);
            if !found {
                problems.push(format!("{name}: {file} has no heading #{anchor}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "lecture sections to update:\n{}",
        problems.join("\n")
    );
}

#[test]
fn heading_ids_are_the_ones_mdbook_gives() {
    assert_eq!(
        heading_id(" `serializeUser` and `req.login`"),
        "serializeuser-and-reqlogin"
    );
    assert_eq!(heading_id(" Why: two ways to talk"), "why-two-ways-to-talk");
    assert_eq!(
        lecture_links(
            "# P\n\n## What the lecture covers\n\n- [Run it](../a.md#run-it)\n\n## Next\n\n[x](y.md#z)\n"
        ),
        Some(vec!["../a.md#run-it".to_owned()])
    );
}
