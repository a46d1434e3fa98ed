//! The console sessions of chapter 4: its "Run it", and exercise 4's registration.
//! Played against the real binary and compared with the files the chapters include
//! (`book/src/transcripts/`; see `testkit::transcript`). `UPDATE_TRANSCRIPTS=1` rewrites
//! them from what the program prints.

use testkit::transcript::Session;

fn session() -> Session {
    Session::new(
        "step04-socket-middleware",
        env!("CARGO_BIN_EXE_step04-socket-middleware"),
    )
}

#[test]
fn transcript_chapter_4_run_it() {
    session().play("step04/run-it.console");
}

#[test]
fn transcript_chapter_4_exercise_4_registers_mallory() {
    let mut session = session();
    // "Register her with curl", on the server of "Run it".
    session.start(&[]);
    session.play("step04/register-mallory.console");
}
