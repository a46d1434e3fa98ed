//! The book's console sessions, played against the real program.
//!
//! A "Run it" block of the book is a file under `book/src/transcripts/`, which the chapter
//! shows with `{{#include}}` (as the Rust Book shows its generated output listings). A file is
//! a console session: lines that start with `$ ` are commands (continued by a trailing `\`, or
//! until a `for ... do` reaches its `done`), and the lines after a command are what it prints.
//!
//! [`Session::play`] runs each command for real and compares what it prints with the file:
//! - `$ [NAME=value ...] cargo run -p CRATE` starts the crate's binary (built by the same
//!   `cargo test`) on a free port, with only the environment the command names, and its output
//!   is what the server printed at startup (stdout and stderr in the order they came);
//! - any other command runs in `bash`, in a scratch folder of its own (for `jar.txt`), with the
//!   book's port replaced by the server's; its output is what it writes to stdout.
//!
//! Values that change from run to run are replaced before the comparison by the ones the book
//! shows: the port, the log's timestamps, cookie values, HTTP dates (and whatever a test adds
//! with [`Session::normalise`]). Anything else that differs fails the test with both versions;
//! `UPDATE_TRANSCRIPTS=1` rewrites the file instead, for a change the book should follow (read
//! the prose around it afterwards: the file is only the block).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The port the book's transcripts show when the command sets none.
pub const BOOK_PORT: u16 = 3000;

/// How long a command or a server's startup may take before the test gives up on it.
const DEADLINE: Duration = Duration::from_secs(60);

/// The folder of the transcripts: `book/src/transcripts`.
pub fn transcripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../book/src/transcripts")
}

/// Whether this run rewrites the transcripts instead of comparing them.
fn updating() -> bool {
    std::env::var("UPDATE_TRANSCRIPTS").is_ok_and(|value| value == "1")
}

/// One command of a transcript and the lines it printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The command as the book shows it, continuation lines included, without the `$ `.
    pub command: String,
    /// Its output, one entry a line.
    pub output: Vec<String>,
}

/// Reads a console session: see the module's documentation.
pub fn parse(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut open_command = false;
    for line in text.lines() {
        if open_command {
            let step = steps.last_mut().expect("a command is open");
            step.command.push('\n');
            step.command.push_str(line);
            open_command = continues(&step.command);
        } else if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_string(),
                output: Vec::new(),
            });
            open_command = continues(command);
        } else if let Some(step) = steps.last_mut() {
            step.output.push(line.to_string());
        }
    }
    steps
}

/// Whether a command goes on to the next line: a trailing `\`, or a loop not yet closed.
fn continues(command: &str) -> bool {
    let words = || command.split(|c: char| c.is_whitespace() || c == ';');
    let opened = words().filter(|word| *word == "do").count();
    let closed = words().filter(|word| *word == "done").count();
    command.trim_end().ends_with('\\') || opened > closed
}

/// Writes a session in the form [`parse`] reads.
pub fn render(steps: &[Step]) -> String {
    let mut text = String::new();
    for step in steps {
        text.push_str("$ ");
        text.push_str(&step.command);
        text.push('\n');
        for line in &step.output {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// A line-by-line replacement applied to what the program printed.
type Normaliser = Box<dyn Fn(&str) -> String>;

/// A server started the way a transcript says, and the commands played against it.
pub struct Session {
    /// `(package, binary)`: what `cargo run -p package` runs.
    binaries: Vec<(String, PathBuf)>,
    normalisers: Vec<Normaliser>,
    /// Header names (lower case) that the commands' outputs leave out, as the book says.
    omitted_headers: Vec<String>,
    /// `NAME=value` words every `cargo run` of the session gets, as `export` gives them.
    exported: String,
    server: Option<Server>,
    /// Servers started with a trailing `&`, which keep running while the next one starts.
    background: Vec<Server>,
    /// The scratch folder the commands run in (and the server, so that no `.env` is read).
    dir: PathBuf,
}

struct Server {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// The port it listens on, and the one the book shows for it.
    port: u16,
    shown_port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The child is ours; a failed kill means it has already exited.
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Session {
    /// A session whose `cargo run -p package` runs `binary` (pass
    /// `env!("CARGO_BIN_EXE_name")`).
    pub fn new(package: &str, binary: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "transcript-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Self {
            binaries: vec![(package.to_string(), PathBuf::from(binary))],
            normalisers: Vec::new(),
            omitted_headers: Vec::new(),
            exported: String::new(),
            server: None,
            background: Vec::new(),
            dir,
        }
    }

    /// Also replaces, in every line the program prints, what `normalise` replaces: for a value
    /// of the test's own that changes from run to run.
    pub fn normalise(mut self, normalise: impl Fn(&str) -> String + 'static) -> Self {
        self.normalisers.push(Box::new(normalise));
        self
    }

    /// Gives every server of the session the environment `env`, as `export NAME=value`
    /// commands earlier in the chapter do.
    pub fn export(mut self, env: &[(&str, &str)]) -> Self {
        for (name, value) in env {
            self.exported.push_str(&format!(" {name}='{value}'"));
        }
        self
    }

    /// Leaves the response headers `names` out of what `curl -i` prints, as the chapter says it
    /// does ("abridged to ..."): every other header is shown, so a new one shows up.
    pub fn omit_headers(mut self, names: &[&str]) -> Self {
        self.omitted_headers = names.iter().map(|name| name.to_lowercase()).collect();
        self
    }

    /// Starts the server as `cargo run` would with `env` (as the prose asks, without a
    /// transcript of its own), and waits until it has said where it listens.
    pub fn start(&mut self, env: &[(&str, &str)]) {
        let package = self.binaries[0].0.clone();
        let prefix: Vec<String> = env
            .iter()
            .map(|(name, value)| format!("{name}='{value}'"))
            .collect();
        self.start_server(&package, &prefix.join(" "), None);
    }

    /// Plays the transcript `name` (relative to `book/src/transcripts`) and compares what the
    /// program printed with it, or rewrites it with `UPDATE_TRANSCRIPTS=1`.
    pub fn play(&mut self, name: &str) {
        let path = transcripts_dir().join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (a transcript the book shows)", path.display()));
        let expected = parse(&text);
        assert!(
            !expected.is_empty(),
            "{}: no `$ ` command in it",
            path.display()
        );
        let mut actual = Vec::new();
        for step in &expected {
            let output = match cargo_run(&step.command) {
                Some((package, env_prefix)) => {
                    if step.command.trim_end().ends_with('&') {
                        // `... &`: the server before it runs on (a second node, say); the
                        // commands after it talk to the new one.
                        self.background.extend(self.server.take());
                        self.start_server(&package, &env_prefix, Some(step.output.len()))
                    } else {
                        self.start_server(&package, &env_prefix, Some(step.output.len()))
                    }
                }
                None => self.run(&step.command),
            };
            actual.push(Step {
                command: step.command.clone(),
                output,
            });
        }
        let actual_text = render(&actual);
        if actual_text == text {
            return;
        }
        if updating() {
            std::fs::write(&path, &actual_text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            eprintln!("rewrote {}", path.display());
            return;
        }
        panic!(
            "{} is not what the program prints.\n--- the book shows:\n{text}\n--- the program \
             printed:\n{actual_text}\n(If the program is right, `UPDATE_TRANSCRIPTS=1 cargo test` \
             rewrites the file; then read the chapter's text around it.)",
            path.display()
        );
    }

    fn start_server(
        &mut self,
        package: &str,
        env_prefix: &str,
        expected_lines: Option<usize>,
    ) -> Vec<String> {
        self.server = None;
        let binary = self
            .binaries
            .iter()
            .find(|(name, _)| name == package)
            .map(|(_, binary)| binary.clone())
            .unwrap_or_else(|| panic!("this session cannot run `cargo run -p {package}`"));
        let shown_port = env_prefix
            .split_whitespace()
            .find_map(|word| word.strip_prefix("PORT="))
            .and_then(|port| port.parse().ok())
            .unwrap_or(BOOK_PORT);
        let (reader, writer) = std::io::pipe().expect("a pipe for the server's output");
        // bash reads the command's own `NAME=value` words (quotes, `$(...)`), then becomes
        // the binary (`exec`), so that killing the child stops the server. Only the
        // environment the command names reaches it, and a port the OS picks.
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(format!("{} {env_prefix} PORT=0 exec \"$0\"", self.exported))
            .arg(&binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().expect("a second end of the pipe"))
            .stderr(writer);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        // The parent's copies of the writing end went with `command`: once the child exits,
        // the reader sees the end of the output.
        drop(command);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(AtomicBool::new(false));
        let (collected, reader_ended) = (Arc::clone(&lines), Arc::clone(&ended));
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines().map_while(Result::ok) {
                collected
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
            reader_ended.store(true, Ordering::SeqCst);
        });
        let printed = |lines: &Arc<Mutex<Vec<String>>>| {
            lines.lock().unwrap_or_else(PoisonError::into_inner).clone()
        };
        let started = Instant::now();
        // The startup is complete once it has said where it listens, has printed as many lines
        // as the book shows (if the book shows it), and has then been quiet for half a second,
        // so that a line more than the book shows is seen too; or once the program has ended
        // (a configuration it refuses).
        let mut quiet_since = (Instant::now(), 0);
        loop {
            let has_ended = ended.load(Ordering::SeqCst);
            let now = printed(&lines);
            if now.len() != quiet_since.1 {
                quiet_since = (Instant::now(), now.len());
            }
            let has_port = now
                .iter()
                .any(|line| listening_port(&strip_ansi(line)).is_some());
            let complete = match expected_lines {
                Some(count) if !updating() => now.len() >= count,
                _ => true,
            };
            let done = has_port && complete && quiet_since.0.elapsed() > Duration::from_millis(500);
            if done || has_ended || started.elapsed() > DEADLINE {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = printed(&lines);
        let port = output
            .iter()
            .find_map(|line| listening_port(&strip_ansi(line)));
        let mut server = Server {
            child,
            lines,
            port: port.unwrap_or(0),
            shown_port,
        };
        match port {
            Some(_) => self.server = Some(server),
            None => {
                // It stopped (or never said where it listens): nothing to send requests to.
                server.child.kill().ok();
                server.child.wait().ok();
            }
        }
        output.iter().map(|line| self.normalised(line)).collect()
    }

    /// Runs a shell command (against the server, if one runs) and returns what it printed.
    fn run(&self, command: &str) -> Vec<String> {
        // Without a server (a command that needs none), the command runs as it is.
        let mut command = command.to_string();
        if let Some(server) = &self.server {
            for host in ["127.0.0.1", "localhost"] {
                command = command.replace(
                    &format!("{host}:{}", server.shown_port),
                    &format!("{host}:{}", server.port),
                );
            }
        }
        let stdout = run_with_deadline(&command, &self.dir);
        // What the terminal shows: CRLF as a line break, a last line without its newline
        // (curl's bodies) on a line of its own, no spaces at the ends of lines.
        String::from_utf8_lossy(&stdout)
            .replace("\r\n", "\n")
            .lines()
            .filter(|line| !self.is_omitted_header(line))
            .map(|line| self.normalised(line.trim_end()))
            .collect()
    }

    fn is_omitted_header(&self, line: &str) -> bool {
        line.split_once(':')
            .is_some_and(|(name, _)| self.omitted_headers.contains(&name.to_lowercase()))
    }

    /// Runs `command` in bash against the server, as a reader would in another terminal,
    /// without showing it in any transcript (to make the server log what a log excerpt
    /// shows); returns what it printed.
    pub fn send(&self, command: &str) -> Vec<String> {
        self.run(command)
    }

    /// Compares the log excerpt `name` (relative to `book/src/transcripts`: log lines as the
    /// book shows them, without a command) with the lines the server has printed that
    /// `is_shown` picks, normalised, waiting until it has printed as many as the file has.
    /// `UPDATE_TRANSCRIPTS=1` rewrites the file with the first line picked (or as many as the
    /// file had).
    pub fn check_log(&self, name: &str, is_shown: impl Fn(&str) -> bool) {
        let path = transcripts_dir().join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let wanted = text.lines().count().max(1);
        let server = self.server.as_ref().expect("a started server");
        let started = Instant::now();
        let picked = loop {
            let picked: Vec<String> = {
                let lines = server.lines.lock().unwrap_or_else(PoisonError::into_inner);
                lines
                    .iter()
                    .map(|line| self.normalised(line))
                    .filter(|line| is_shown(line))
                    .take(wanted)
                    .collect()
            };
            if picked.len() >= wanted || started.elapsed() > DEADLINE {
                break picked;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let actual: String = picked.iter().map(|line| format!("{line}\n")).collect();
        if actual == text {
            return;
        }
        if updating() && !actual.is_empty() {
            std::fs::write(&path, &actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            return;
        }
        panic!(
            "{} is not what the server logs.\n--- the book shows:\n{text}\n--- the server \
             logged:\n{actual}\n(If the program is right, `UPDATE_TRANSCRIPTS=1 cargo test` \
             rewrites the file; then read the chapter's text around it.)",
            path.display()
        );
    }

    fn normalised(&self, line: &str) -> String {
        let mut line = without_timestamp(&strip_ansi(line));
        if let Some(server) = &self.server {
            for host in ["127.0.0.1", "localhost"] {
                line = line.replace(
                    &format!("{host}:{}", server.port),
                    &format!("{host}:{}", server.shown_port),
                );
            }
        }
        line = http_dates(&line);
        line = session_cookies(&line);
        for normalise in &self.normalisers {
            line = normalise(&line);
        }
        line
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("binaries", &self.binaries)
            .field("omitted_headers", &self.omitted_headers)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.server = None;
        self.background.clear();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// What `command` writes to stdout, run by bash in `dir`. A command still running after
/// `DEADLINE` (a request the server never answers) is killed, with its children (its own
/// process group), and fails the test rather than hanging it.
fn run_with_deadline(command: &str, dir: &Path) -> Vec<u8> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("bash: {e}"));
    let mut stdout = child.stdout.take().expect("a piped stdout");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).ok();
        bytes
    });
    let started = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if started.elapsed() > DEADLINE {
            Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status()
                .ok();
            child.wait().ok();
            panic!("`{command}` still ran after {DEADLINE:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    reader.join().unwrap_or_default()
}

/// `[NAME=value ...] cargo run -p PACKAGE`: the package, and the words before `cargo`.
fn cargo_run(command: &str) -> Option<(String, String)> {
    let at = command.find("cargo run -p ")?;
    let (prefix, rest) = command.split_at(at);
    let package = rest.strip_prefix("cargo run -p ")?.trim();
    let package = package.strip_suffix('&').unwrap_or(package).trim();
    let is_plain = !prefix.contains(['|', ';', '&', '\n'])
        && !package.is_empty()
        && package
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    is_plain.then(|| (package.to_string(), prefix.trim().to_string()))
}

/// The port of the first `http://host:port` in a line.
fn listening_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("http://")? + "http://".len()..];
    let authority = rest.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

/// The line without its colour codes (`ESC [ ... letter`).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A log line without the timestamp `tracing` starts it with (`2026-12-06T12:40:00.123456Z `),
/// as the book shows log lines.
fn without_timestamp(line: &str) -> String {
    let bytes = line.as_bytes();
    let looks_like_one = bytes.len() > 21
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[10] == b'T';
    match (looks_like_one, line.find("Z ")) {
        (true, Some(end)) if end < 32 => line[end + 2..].to_string(),
        _ => line.to_string(),
    }
}

/// The date the book shows wherever HTTP shows a date (`Wed, 26 Nov 2025 07:11:20 GMT`).
pub const BOOK_HTTP_DATE: &str = "Wed, 26 Nov 2025 07:11:20 GMT";

/// Every HTTP date of the line (`Sun, 06 Dec 2026 12:40:00 GMT`) replaced by the book's.
fn http_dates(line: &str) -> String {
    const DAYS: [&str; 7] = [
        "Mon, ", "Tue, ", "Wed, ", "Thu, ", "Fri, ", "Sat, ", "Sun, ",
    ];
    let mut out = line.to_string();
    let mut from = 0;
    while let Some((at, _)) = DAYS
        .iter()
        .filter_map(|day| out[from..].find(day).map(|at| (from + at, day)))
        .min()
    {
        let end = at + BOOK_HTTP_DATE.len();
        let is_date = out.get(at..end).is_some_and(|date| {
            date.ends_with(" GMT") && date.as_bytes()[7] == b' ' && date.as_bytes()[19] == b':'
        });
        if is_date {
            out.replace_range(at..end, BOOK_HTTP_DATE);
        }
        from = at + 1;
    }
    out
}

/// The session cookie's value the book shows: a signature (base64, with its `=`) followed by
/// the session id (22 characters of URL-safe base64).
pub const BOOK_SESSION_COOKIE: &str =
    "LSojAaDYh+o0yId2yQXBpaPZ5IoHGZ/rJIrq/C9E/Qo=DJhQCDgSjBDYJwzofKf9NQ";

/// A signed session cookie `id=<signature>=<id>` replaced by the book's, when it has the shape
/// of one (anything else stays, so that a change of shape shows).
fn session_cookies(line: &str) -> String {
    let Some(start) = line.find("id=").map(|at| at + 3) else {
        return line.to_string();
    };
    let end = line[start..]
        .find([';', ' ', '\t'])
        .map_or(line.len(), |at| start + at);
    let value = &line[start..end];
    let is_signed_id = value.len() == BOOK_SESSION_COOKIE.len()
        && value.as_bytes()[43] == b'='
        && value[..43]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
        && value[44..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    match is_signed_id {
        true => format!("{}{BOOK_SESSION_COOKIE}{}", &line[..start], &line[end..]),
        false => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_read_as_commands_and_their_output() {
        let text = "$ cargo run -p step03\nstep03 is running\n$ curl -i \\\n  -d x http://a\n\
                    HTTP/1.1 200 OK\n\n{}\n$ for i in 1 2; do\n  curl x\ndone\n401 401\n";
        let steps = parse(text);
        assert_eq!(
            steps.iter().map(|s| s.command.as_str()).collect::<Vec<_>>(),
            [
                "cargo run -p step03",
                "curl -i \\\n  -d x http://a",
                "for i in 1 2; do\n  curl x\ndone"
            ]
        );
        assert_eq!(steps[1].output, ["HTTP/1.1 200 OK", "", "{}"]);
        assert_eq!(render(&steps), text);
    }

    #[test]
    fn cargo_run_is_recognised_with_its_environment() {
        assert_eq!(
            cargo_run("RATE_LIMITS=off cargo run -p step03-passport-like-auth"),
            Some((
                "step03-passport-like-auth".to_string(),
                "RATE_LIMITS=off".to_string()
            ))
        );
        assert_eq!(cargo_run("curl http://127.0.0.1:3000/"), None);
        assert_eq!(
            cargo_run("bash -c 'ulimit -n 1024; cargo run -p step01-http-vs-socket'"),
            None
        );
    }

    #[test]
    fn run_to_run_values_become_the_books() {
        assert_eq!(
            without_timestamp(&strip_ansi(
                "\u{1b}[2m2026-12-06T12:40:00.123456Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x: y"
            )),
            " WARN x: y"
        );
        assert_eq!(
            http_dates("set-cookie: id=; Path=/; Max-Age=0; Expires=Sun, 06 Dec 2026 12:40:00 GMT"),
            format!("set-cookie: id=; Path=/; Max-Age=0; Expires={BOOK_HTTP_DATE}")
        );
        let cookie = format!(
            "set-cookie: id={}={}; HttpOnly",
            "a+/".repeat(14) + "b",
            "c-_".repeat(7) + "d"
        );
        assert_eq!(
            session_cookies(&cookie),
            format!("set-cookie: id={BOOK_SESSION_COOKIE}; HttpOnly")
        );
        assert_eq!(
            session_cookies("set-cookie: id=short; x"),
            "set-cookie: id=short; x"
        );
        assert_eq!(
            listening_port("open http://127.0.0.1:41234/login"),
            Some(41234)
        );
    }
}
