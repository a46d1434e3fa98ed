//! The self-checks of the chapter's exercises. Each one fails on the code as
//! shipped and passes once the exercise is done. They are `#[ignore]`d so that
//! `cargo test` stays green while you work; run one with `cargo test -p
//! step03-passport-like-auth --test exercises ex1 -- --ignored`.

mod support;

use std::net::SocketAddr;
use support::serve;

use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use step03_passport_like_auth::argon2::Params;
use step03_passport_like_auth::{
    AuthLimits, DEMO_PASSWORD, MemoryUserStore, Passport, seed_demo_users,
};

/// The app under test, on a free port, with the demo users `alice` and `bob`.
struct TestApp {
    address: SocketAddr,
}

async fn spawn_app() -> TestApp {
    // Argon2 at its cheapest: the checks log in dozens of times.
    let params = Params::new(8, 1, 1, None).expect("valid Argon2 parameters");
    // The crate's own throttles let every login through here: exercise 3
    // builds a lock-out by hand, and the checks must see yours, not the
    // built-in one ("Before it faces the Internet: the login", "Throttles").
    // Raised out of the way rather than off: `RATE_LIMITS=off`
    // (`AuthLimits::disabled()`) turns a lock-out off too.
    let limits = AuthLimits {
        login_per_address_per_minute: 1_000,
        login_failures_per_username: 1_000,
        login_failures_per_username_any_address: 1_000,
        registrations_per_address_per_hour: 1_000,
        ..AuthLimits::default()
    };
    let passport = Passport::with_hasher_params(MemoryUserStore::new(), params)
        .with_limits(limits);
    seed_demo_users(&passport).await.expect("seed demo users");
    let address = serve(passport).await;
    TestApp { address }
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    async fn post_json(&self, path: &str, body: Value) -> Response {
        browser()
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    async fn login(&self, username: &str, password: &str) -> Response {
        let body = json!({ "username": username, "password": password });
        self.post_json("/login", body).await
    }
}

/// A client without a cookie jar that shows redirects instead of following
/// them.
fn browser() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

/// The whole `Set-Cookie` header of the session cookie, attributes included.
fn session_set_cookie(response: &Response) -> String {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("id="))
        .expect("the response sets the session cookie")
        .to_owned()
}

/// The value of one cookie attribute (`Max-Age`, say), if the `Set-Cookie` line
/// has it.
fn cookie_attribute<'a>(set_cookie: &'a str, name: &str) -> Option<&'a str> {
    set_cookie.split(';').skip(1).find_map(|attribute| {
        let (key, value) = attribute.split_once('=').unwrap_or((attribute, ""));
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

async fn error_message(response: Response) -> String {
    let body: Value = response.json().await.expect("a JSON body");
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no \"error\" string in {body}"))
        .to_owned()
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex1_min_password_length() {
    let app = spawn_app().await;

    let nine = json!({ "username": "dave", "password": "ninechars" });
    let refused = app.post_json("/register", nine).await;
    assert_eq!(
        refused.status(),
        StatusCode::BAD_REQUEST,
        "a 9-character password must be refused"
    );
    let message = error_message(refused).await;
    assert!(
        message.contains("at least 10 characters"),
        "the message should name the new minimum: {message:?}"
    );

    let ten = json!({ "username": "dave", "password": "tenchars!!" });
    let accepted = app.post_json("/register", ten).await;
    assert_eq!(
        accepted.status(),
        StatusCode::CREATED,
        "a 10-character password is enough"
    );
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex2_remember_me() {
    let app = spawn_app().await;
    let thirty_days = 30 * 24 * 60 * 60;

    // Not ticked, or not sent at all: a browser-session cookie, without Max-Age
    // or Expires.
    for remember in [json!(false), Value::Null] {
        let mut body =
            json!({ "username": "alice", "password": DEMO_PASSWORD });
        if !remember.is_null() {
            body["remember"] = remember.clone();
        }
        let response = app.post_json("/login", body).await;
        assert_eq!(response.status(), StatusCode::OK, "remember: {remember}");
        let set_cookie = session_set_cookie(&response);
        assert_eq!(
            (
                cookie_attribute(&set_cookie, "Max-Age"),
                cookie_attribute(&set_cookie, "Expires")
            ),
            (None, None),
            "without \"Remember me\" the cookie must die with the browser: \
             {set_cookie}"
        );
        // It is still a working session.
        let cookie = set_cookie.split(';').next().unwrap_or_default();
        let me = browser()
            .get(app.url("/me"))
            .header("cookie", cookie)
            .send()
            .await
            .expect("GET /me");
        assert_eq!(me.status(), StatusCode::OK, "the session must still work");
    }

    // Ticked, as JSON from the page's script, and as `remember=on` from a plain
    // HTML form.
    let json_login = app
        .post_json(
            "/login",
            json!({
                "username": "alice",
                "password": DEMO_PASSWORD,
                "remember": true
            }),
        )
        .await;
    let form_login = browser()
        .post(app.url("/login"))
        .form(&[
            ("username", "alice"),
            ("password", DEMO_PASSWORD),
            ("remember", "on"),
        ])
        .send()
        .await
        .expect("POST /login as a form");
    for (how, response) in [("JSON", json_login), ("form", form_login)] {
        assert_eq!(response.status(), StatusCode::OK, "{how}");
        let set_cookie = session_set_cookie(&response);
        let max_age: i64 = cookie_attribute(&set_cookie, "Max-Age")
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| {
                panic!("{how}: \"Remember me\" needs a Max-Age: {set_cookie}")
            });
        assert!(
            (thirty_days - 60..=thirty_days).contains(&max_age),
            "{how}: \"Remember me\" should last 30 days: {set_cookie}"
        );
    }
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex3_lock_after_five_failures() {
    let app = spawn_app().await;

    for attempt in 1..=5 {
        let response = app.login("alice", "not-her-password").await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    let locked = app.login("alice", DEMO_PASSWORD).await;
    assert_eq!(
        locked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the 6th attempt must be refused, even with the right password"
    );
    let locked_message = error_message(locked).await;

    // The lock is per username: bob is not affected.
    assert_eq!(
        app.login("bob", DEMO_PASSWORD).await.status(),
        StatusCode::OK
    );

    // Unknown usernames lock the same way, or the 429 would tell which names
    // exist.
    for _ in 1..=5 {
        app.login("mallory", "whatever-password").await;
    }
    let unknown = app.login("mallory", "whatever-password").await;
    assert_eq!(
        unknown.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "unknown usernames must be locked too"
    );
    assert_eq!(error_message(unknown).await, locked_message);

    // A successful login starts the count again: 4 failures, a success, 4 more
    // failures.
    for round in 1..=2 {
        for _ in 1..=4 {
            let response = app.login("bob", "not-his-password").await;
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "round {round}: a success must reset the count of failures"
            );
        }
        assert_eq!(
            app.login("bob", DEMO_PASSWORD).await.status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex4_back_to_the_page_you_came_from() {
    let app = spawn_app().await;

    // The guard tells the login page where the visitor was going.
    let anonymous = browser()
        .get(app.url("/private"))
        .send()
        .await
        .expect("GET /private");
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    let location = anonymous.headers()[LOCATION].to_str().unwrap_or_default();
    assert!(
        ["/login?next=%2Fprivate", "/login?next=/private"].contains(&location),
        "expected a redirect to /login?next=%2Fprivate, got {location:?}"
    );

    // In a real browser: the page goes to `next` after the login when it is a
    // page of this site (here `/me`, whose JSON shows the user)...
    let base = format!("http://localhost:{}", app.address.port());
    let log_in_from = |next: &str, then: Value| {
        json!([
            { "goto": format!("{base}/login?next={next}") },
            { "fill": "input[name=username]", "value": "alice" },
            { "fill": "input[name=password]", "value": DEMO_PASSWORD },
            { "click": "button[value=login]" },
            then,
        ])
    };
    println!("Logging in from /login?next=%2Fme must lead to /me.");
    // Chromium shows a JSON answer in a <pre>; the private page has none.
    let report = testkit::browser_run(log_in_from(
        "%2Fme",
        json!({ "waitText": "pre", "text": "alice" }),
    ))
    .await;
    assert_eq!(report["errors"], json!([]), "page errors: {report}");

    // ...and to /private when it is anywhere else: no open redirect.
    for (foreign, encoded) in [
        ("//evil.example", "%2F%2Fevil.example"),
        ("https://evil.example", "https%3A%2F%2Fevil.example"),
        ("/\\evil.example", "%2F%5Cevil.example"),
    ] {
        println!(
            "Logging in with next={foreign} must lead to /private, not to \
             evil.example."
        );
        let private_page = json!({ "waitText": "#username", "text": "alice" });
        let report =
            testkit::browser_run(log_in_from(encoded, private_page)).await;
        assert_eq!(report["errors"], json!([]), "page errors: {report}");
    }
}

#[tokio::test]
#[ignore = "exercise check: run it with --ignored, see the chapter"]
async fn ex5_longest_password() {
    let app = spawn_app().await;

    // 257 characters: about 290 bytes of JSON, far inside the 4 KiB body
    // limit, one character over the 256 asked for.
    let long = json!({ "username": "dave", "password": "x".repeat(257) });
    let refused = app.post_json("/register", long).await;
    assert_eq!(
        refused.status(),
        StatusCode::BAD_REQUEST,
        "a 257-character password must be refused"
    );
    let message = error_message(refused).await;
    assert!(
        message.contains("at most 256 characters"),
        "the message should name the maximum: {message:?}"
    );

    // Characters, not bytes: 256 keys are 1,024 bytes, and allowed.
    let password = "\u{1F511}".repeat(256);
    let longest = json!({ "username": "dave", "password": password });
    let accepted = app.post_json("/register", longest).await;
    assert_eq!(
        accepted.status(),
        StatusCode::CREATED,
        "256 characters are allowed"
    );
    let normal = app.login("alice", DEMO_PASSWORD).await;
    assert_eq!(normal.status(), StatusCode::OK, "an ordinary login works");
}
