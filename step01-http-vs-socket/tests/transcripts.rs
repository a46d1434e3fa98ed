//! The console session of chapter 1's "Run it" (which the introduction shows too).
//! Played against the real binary and compared with the files the chapters include
//! (`book/src/transcripts/`; see `testkit::transcript`). `UPDATE_TRANSCRIPTS=1` rewrites
//! them from what the program prints.

use testkit::transcript::Session;


#[test]
fn chapter_1_run_it() {
    let mut session = Session::new(
        "step01-http-vs-socket",
        env!("CARGO_BIN_EXE_step01-http-vs-socket"),
    );
    session.play("step01/run-it.console");
}
