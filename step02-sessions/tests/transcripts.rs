//! The console sessions of chapter 2's "Run it", in the order a reader follows them.
//! Played against the real binary and compared with the files the chapters include
//! (`book/src/transcripts/`; see `testkit::transcript`). `UPDATE_TRANSCRIPTS=1` rewrites
//! them from what the program prints.

use testkit::transcript::Session;

/// The headers chapter 2 says its `curl -i` outputs leave out: chapter 1's security headers.
const LEFT_OUT: &[&str] = &[
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
];

fn session() -> Session {
    Session::new("step02-sessions", env!("CARGO_BIN_EXE_step02-sessions"))
        .omit_headers(LEFT_OUT)
}

#[test]
fn transcript_chapter_2_run_it() {
    let mut session = session();
    session.play("step02/run-it.console");
    session.play("step02/visit.console");
    session.play("step02/dead-cookie.console");
}

#[test]
fn transcript_chapter_2_a_bad_configuration() {
    session().play("step02/bad-secret.console");
}
