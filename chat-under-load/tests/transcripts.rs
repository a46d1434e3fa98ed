//! The console session of the chapter's "Run it". Played against the real binary and
//! compared with the file the chapter includes (`book/src/transcripts/`; see
//! `testkit::transcript`). `UPDATE_TRANSCRIPTS=1` rewrites it from what the program prints.

use testkit::transcript::Session;

#[test]
fn transcript_the_chat_under_load_run_it() {
    Session::new("chat-under-load", env!("CARGO_BIN_EXE_chat-under-load"))
        .play("chat-under-load/run-it.console");
}
