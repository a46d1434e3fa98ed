//! The console sessions of chapter 3 and of "Before it faces the Internet: the login",
//! played against the real binary in the order a reader follows them, and compared with the
//! files the chapters include (`book/src/transcripts/`; see `testkit::transcript`).
//! `UPDATE_TRANSCRIPTS=1` rewrites them from what the program prints.

use testkit::transcript::Session;

const PACKAGE: &str = "step03-passport-like-auth";

/// The headers chapter 3 says its `curl -i` outputs leave out ("abridged to the headers this
/// chapter is about"); every other header the server sends is shown.
const LEFT_OUT: &[&str] = &[
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "content-length",
    "date",
];

/// The time a throttled login is told to wait, rounded up to the second, depends on how long
/// the five failures took (60 after a quick loop, 59 on a slow machine): shown as 60.
fn retry_after_as_after_a_quick_loop(line: &str) -> String {
    for (before, after) in
        [("retry-after: ", ""), ("try again in ", " seconds")]
    {
        if let Some(at) = line.find(before) {
            let start = at + before.len();
            let digits = line[start..]
                .chars()
                .take_while(char::is_ascii_digit)
                .count();
            let rest = &line[start + digits..];
            let seconds: u32 = line[start..start + digits].parse().unwrap_or(0);
            if (55..=60).contains(&seconds) && rest.starts_with(after) {
                return format!("{}60{rest}", &line[..start]);
            }
        }
    }
    line.to_string()
}

fn session() -> Session {
    Session::new(PACKAGE, env!("CARGO_BIN_EXE_step03-passport-like-auth"))
        .omit_headers(LEFT_OUT)
        .normalise(retry_after_as_after_a_quick_loop)
}

#[test]
fn transcript_chapter_3_run_it() {
    let mut session = session();
    session.play("step03/run-it.console");
    session.play("step03/login.console");
    session.play("step03/failures.console");
    session.play("step03/logout.console");

    // The login chapter's claim about this very server: "On the server of chapter 3's
    // "Run it", the same loop prints `401 401 401 401 429`" (its wrong password for alice
    // was the first failure of the five).
    let throttle_loop = testkit::transcript::parse(
        &std::fs::read_to_string(
            testkit::transcript::transcripts_dir()
                .join("before-the-internet-login/throttle.console"),
        )
        .expect("the throttle transcript"),
    );
    assert_eq!(
        session.send(&throttle_loop[0].command),
        ["401 401 401 401 429"]
    );
}

#[test]
fn transcript_the_login_chapter_what_to_try_the_throttle_and_the_body_limit() {
    let mut session = session();
    // "Start chapter 3's server afresh".
    session.start(&[]);
    session.play("before-the-internet-login/throttle.console");
    session.play("before-the-internet-login/body-limit.console");
}

#[test]
fn transcript_the_login_chapter_what_to_try_a_trusted_proxy() {
    let mut session = session();
    session.play("before-the-internet-login/trusted-proxy.console");
    // "Restart with `TRUSTED_PROXY=127.0.0.1` alone".
    session.start(&[("TRUSTED_PROXY", "127.0.0.1")]);
    session.play("before-the-internet-login/pair.console");
}
