//! The console session of chapter 1's "Run it" (which the introduction shows too), the log
//! lines the chapter shows for a connection and a received event, and the security headers
//! of "Before it faces the Internet". Played against the
//! real binary and compared with the files the chapters include (`book/src/transcripts/`;
//! see `testkit::transcript`). `UPDATE_TRANSCRIPTS=1` rewrites them from what the program
//! prints.

use testkit::transcript::Session;

fn session() -> Session {
    Session::new(
        "step01-http-vs-socket",
        env!("CARGO_BIN_EXE_step01-http-vs-socket"),
    )
    .normalise(socket_id_as_in_the_book)
}

/// A socket's id changes with every connection: the book writes `sid=...`.
fn socket_id_as_in_the_book(line: &str) -> String {
    match line.find(" sid=") {
        Some(at) => {
            let start = at + " sid=".len();
            let end = line[start..]
                .find(' ')
                .map_or(line.len(), |end| start + end);
            format!("{}...{}", &line[..start], &line[end..])
        }
        None => line.to_string(),
    }
}

/// What the page's client does first, over long-polling, as curl: the Engine.IO handshake,
/// the Socket.IO CONNECT, and then a `ping` event with acknowledgement 0.
const CONNECT_AND_PING: &str = r#"
url='http://127.0.0.1:3000/socket.io/?EIO=4&transport=polling'
sid=$(curl -s "$url" | sed -E 's/.*"sid":"([^"]+)".*/\1/')
curl -s -X POST -H 'Content-Type: text/plain' -d '40' "$url&sid=$sid" >/dev/null
curl -s "$url&sid=$sid" >/dev/null
curl -s -X POST -H 'Content-Type: text/plain' \
     -d '420["ping",{"client_time_ms":1}]' "$url&sid=$sid" >/dev/null
"#;

#[test]
fn transcript_chapter_1_run_it() {
    session().play("step01/run-it.console");
}

#[test]
fn transcript_before_the_internet_what_to_try_the_security_headers() {
    let mut session = session();
    // "Start the server (`cargo run -p step01-http-vs-socket`), then:"
    session.start(&[]);
    session.play("before-the-internet/security-headers.console");
}

#[test]
fn transcript_chapter_1_each_connection_is_logged() {
    let mut session = session();
    session.start(&[]);
    session.send(CONNECT_AND_PING);
    session.check_log("step01/socket-connected.log", |line| {
        line.contains("socket connected")
    });
}

#[test]
fn transcript_chapter_1_debug_shows_each_packet_received() {
    let mut session = session();
    session.start(&[("RUST_LOG", "debug")]);
    session.send(CONNECT_AND_PING);
    session.check_log("step01/received-message.log", |line| {
        line.contains("received message") && line.contains("ping")
    });
}

#[test]
fn transcript_chapter_1_parser_trace_shows_both_directions() {
    let mut session = session().normalise(server_time_as_in_the_book);
    session.start(&[("RUST_LOG", "info,socketioxide::parser=trace")]);
    session.send(CONNECT_AND_PING);
    // The ping decoded and its acknowledgement encoded; the ticks, sent every
    // second, come before or after them, so they are left out of the file.
    session.check_log("step01/parser-trace.log", |line| {
        let step = ["payload decoded", "packet encoded"];
        step.iter().any(|step| line.contains(step))
            && line.contains("client_time_ms")
    });
}

/// The server's clock, in an acknowledgement: the book writes `...`.
fn server_time_as_in_the_book(line: &str) -> String {
    const KEY: &str = r#"server_time_ms\":"#;
    match line.find(KEY) {
        Some(at) => {
            let start = at + KEY.len();
            let digits = line[start..].chars().take_while(char::is_ascii_digit);
            let end = start + digits.count();
            format!("{}...{}", &line[..start], &line[end..])
        }
        None => line.to_string(),
    }
}
