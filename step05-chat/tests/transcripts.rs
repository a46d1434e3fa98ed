//! The console session at the top of chapter 5.
//! Played against the real binary and compared with the files the chapters include
//! (`book/src/transcripts/`; see `testkit::transcript`). `UPDATE_TRANSCRIPTS=1` rewrites
//! them from what the program prints.

use testkit::transcript::Session;

#[test]
fn transcript_chapter_5_starts_the_chat() {
    Session::new("step05-chat", env!("CARGO_BIN_EXE_step05-chat"))
        .play("step05/run-it.console");
}
