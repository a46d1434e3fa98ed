//! The console sessions of the JWT chapter's "Run it", in the order a reader follows them.
//! Played against the real binary and compared with the files the chapter includes
//! (`book/src/transcripts/`; see `testkit::transcript`). `UPDATE_TRANSCRIPTS=1` rewrites
//! them from what the program prints.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use testkit::transcript::Session;

/// The headers the chapter says its `curl -i` outputs leave out.
const LEFT_OUT: &[&str] = &[
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "content-length",
    "date",
];

/// The times the chapter's decoded token shows (`iat`, and `exp` five minutes later).
const BOOK_IAT: u64 = 1_795_678_572;

/// A token's signature as the chapter shows it: the real one changes with every token.
const BOOK_SIGNATURE: &str = "3bQ1mS8hOq0pXk3wJ4zV7yN2cR6tL9aF5eG0uH1iD2o";

/// A token issued now, made the chapter's: its `iat` and `exp` moved to the chapter's times
/// (the lifetime kept), its signature the chapter's.
fn token_as_in_the_chapter(line: &str) -> String {
    let Some(start) = line.find("\"token\":\"").map(|at| at + 9) else {
        return line.to_string();
    };
    let Some(end) = line[start..].find('"').map(|at| start + at) else {
        return line.to_string();
    };
    let parts: Vec<&str> = line[start..end].split('.').collect();
    let [header, payload, _signature] = parts[..] else {
        return line.to_string();
    };
    let Some(claims) = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|json| String::from_utf8(json).ok())
    else {
        return line.to_string();
    };
    // Replaced in the text, so that the claims keep their order.
    let number = |name: &str| -> Option<u64> {
        let value = serde_json::from_str::<serde_json::Value>(&claims).ok()?;
        value[name].as_u64()
    };
    let (Some(iat), Some(exp)) = (number("iat"), number("exp")) else {
        return line.to_string();
    };
    let claims = claims
        .replace(&format!("\"iat\":{iat}"), &format!("\"iat\":{BOOK_IAT}"))
        .replace(
            &format!("\"exp\":{exp}"),
            &format!("\"exp\":{}", BOOK_IAT + (exp - iat)),
        );
    let payload = URL_SAFE_NO_PAD.encode(claims);
    format!(
        "{}{header}.{payload}.{BOOK_SIGNATURE}{}",
        &line[..start],
        &line[end..]
    )
}

/// The payload of the token `POST /token` answers in the chapter's "Run it".
fn payload_of_the_run_its_token() -> String {
    let path = testkit::transcript::transcripts_dir()
        .join("jwt-vs-session/token.console");
    let text = std::fs::read_to_string(&path).expect("the token transcript");
    let token = text
        .split("\"token\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a token in the transcript");
    token.split('.').nth(1).expect("a payload").to_string()
}

/// "What a JWT is" decodes the middle part of a token: the very one "Run it" shows (its
/// claims are the program's, in the program's order), decoded by `base64 -d`.
#[test]
fn transcript_the_jwt_chapter_decodes_the_claims_of_its_own_token() {
    let text = std::fs::read_to_string(
        testkit::transcript::transcripts_dir()
            .join("jwt-vs-session/decode-claims.console"),
    )
    .expect("the decoding transcript");
    assert!(
        text.contains(&format!("echo {}== |", payload_of_the_run_its_token())),
        "the decoded token is not the one \"Run it\" shows:\n{text}"
    );
    Session::new("jwt-vs-session", env!("CARGO_BIN_EXE_jwt-vs-session"))
        .play("jwt-vs-session/decode-claims.console");
}

#[test]
fn transcript_the_jwt_chapter_run_it() {
    let mut session =
        Session::new("jwt-vs-session", env!("CARGO_BIN_EXE_jwt-vs-session"))
            .omit_headers(LEFT_OUT)
            .normalise(token_as_in_the_chapter);
    session.play("jwt-vs-session/run-it.console");
    session.play("jwt-vs-session/token.console");
}
