//! Step 3, seen from a browser's point of view: the real server on a free port,
//! driven over HTTP by reqwest clients that keep cookies like a browser does.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::serve;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use step02_sessions::{MemoryStore, SessionConfig};
use step03_passport_like_auth::argon2::Params;
use step03_passport_like_auth::{
    CreateUserError, Credentials, DEMO_PASSWORD, INVALID_CREDENTIALS,
    LogoutEvent, MemoryUserStore, Passport, StoreError, User, UserStore, app,
    seed_demo_users,
};
use tower_sessions::cookie::Key;

/// The server under test, on a port the OS picked.
struct TestApp {
    address: SocketAddr,
    /// The same store the server uses, so a test can change users behind its
    /// back.
    users: MemoryUserStore,
    /// Every logout the server performed, as its `on_logout` hook saw it.
    logouts: Arc<Mutex<Vec<LogoutEvent>>>,
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    async fn post_json(
        &self,
        client: &Client,
        path: &str,
        body: Value,
    ) -> Response {
        client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    async fn login(
        &self,
        client: &Client,
        username: &str,
        password: &str,
    ) -> Response {
        let body = json!({ "username": username, "password": password });
        self.post_json(client, "/login", body).await
    }

    async fn get(&self, client: &Client, path: &str) -> Response {
        client.get(self.url(path)).send().await.expect("request")
    }

    /// `GET /me` with only this raw cookie value: what an attacker holding a
    /// copy could do.
    async fn me_with_cookie(&self, cookie_value: &str) -> StatusCode {
        browser()
            .get(self.url("/me"))
            .header(COOKIE, format!("id={cookie_value}"))
            .send()
            .await
            .expect("request")
            .status()
    }
}

// ANCHOR: spawn_app
/// Argon2 at its cheapest: a debug build would otherwise spend about a second
/// per hash.
fn cheap_params() -> Params {
    Params::new(8, 1, 1, None).expect("valid Argon2 parameters")
}

async fn spawn_app() -> TestApp {
    spawn_app_with_params(cheap_params()).await
}

async fn spawn_app_with_params(params: Params) -> TestApp {
    let users = MemoryUserStore::new();
    let logouts = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&logouts);
    let passport = Passport::with_hasher_params(users.clone(), params)
        .on_logout(move |event| {
            recorded.lock().expect("logouts lock").push(event.clone());
        });
    seed_demo_users(&passport).await.expect("seed demo users");
    let address = serve(passport).await;
    TestApp {
        address,
        users,
        logouts,
    }
}
// ANCHOR_END: spawn_app

/// A client that keeps cookies, like a browser, but shows us redirects instead
/// of following.
fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

/// The value of the `id` cookie this response sets, if it sets one.
fn session_cookie(response: &Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next()?.strip_prefix("id="))
        .map(str::to_owned)
        .next()
}

async fn json_body(response: Response) -> Value {
    response.json().await.expect("a JSON body")
}

#[tokio::test]
async fn login_with_the_right_password_returns_the_user_and_a_session_cookie() {
    let app = spawn_app().await;
    let client = browser();

    let response = app.login(&client, "alice", DEMO_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = session_cookie(&response).expect("a session cookie");
    assert!(!cookie.is_empty());
    assert_eq!(
        json_body(response).await,
        json!({ "id": 1, "username": "alice" })
    );

    let me = app.get(&client, "/me").await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(json_body(me).await, json!({ "id": 1, "username": "alice" }));
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    let client = browser();

    let wrong_password = app.login(&client, "alice", "not-her-password").await;
    let unknown_user = app.login(&client, "mallory", "whatever-password").await;

    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_user.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        session_cookie(&wrong_password),
        None,
        "no session for a failure"
    );
    let wrong_password = wrong_password.text().await.expect("body");
    let unknown_user = unknown_user.text().await.expect("body");
    assert_eq!(wrong_password, unknown_user, "the bodies must not differ");
    let body: Value = serde_json::from_str(&wrong_password).expect("JSON");
    assert_eq!(body, json!({ "error": INVALID_CREDENTIALS }));
    assert_eq!(
        app.get(&client, "/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn unknown_user_takes_as_long_to_reject_as_a_wrong_password() {
    // Costly enough (1 MiB) that a skipped hash would stand out even in a debug
    // build.
    let params =
        Params::new(1024, 1, 1, None).expect("valid Argon2 parameters");
    let app = spawn_app_with_params(params).await;
    let client = browser();
    let mut wrong_password = Vec::new();
    let mut unknown_user = Vec::new();
    // Interleaved, so that a busy machine slows both kinds alike.
    for _ in 0..5 {
        let started = Instant::now();
        app.login(&client, "alice", "not-her-password").await;
        wrong_password.push(started.elapsed());
        let started = Instant::now();
        app.login(&client, "mallory", "not-her-password").await;
        unknown_user.push(started.elapsed());
    }
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (wrong_password, unknown_user) =
        (median(wrong_password), median(unknown_user));
    // Without the dummy hash the unknown user is answered dozens of times
    // faster.
    assert!(
        unknown_user * 3 >= wrong_password,
        "unknown user answered in {unknown_user:?}, wrong password in \
         {wrong_password:?}"
    );
}

#[tokio::test]
async fn me_is_401_with_a_json_error_when_nobody_is_logged_in() {
    let app = spawn_app().await;

    let response = app.get(&browser(), "/me").await;

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        json_body(response).await,
        json!({ "error": "Unauthorized" })
    );
}

// ANCHOR: new_id_test
#[tokio::test]
async fn login_gives_the_session_a_new_id() {
    let app = spawn_app().await;
    let client = browser();
    // A session that exists before the login: the one an attacker could have
    // planted.
    let first = app.login(&client, "bob", DEMO_PASSWORD).await;
    let before =
        session_cookie(&first).expect("a cookie after the first login");

    let second = app.login(&client, "alice", DEMO_PASSWORD).await;
    let after =
        session_cookie(&second).expect("a new cookie after the second login");

    assert_ne!(before, after, "the session id must change at login");
    assert_eq!(app.me_with_cookie(&before).await, StatusCode::UNAUTHORIZED);
    let me = json_body(app.get(&client, "/me").await).await;
    assert_eq!(me["username"], "alice");
}
// ANCHOR_END: new_id_test

#[tokio::test]
async fn logout_destroys_the_session_and_the_old_cookie_is_useless() {
    let app = spawn_app().await;
    let client = browser();
    let login = app.login(&client, "alice", DEMO_PASSWORD).await;
    let cookie = session_cookie(&login).expect("a session cookie");
    assert_eq!(app.me_with_cookie(&cookie).await, StatusCode::OK);

    let logout = client
        .post(app.url("/logout"))
        .send()
        .await
        .expect("request");

    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    // The layer tells the browser to drop the cookie: an empty value that
    // expires now.
    assert_eq!(session_cookie(&logout).as_deref(), Some(""));
    assert_eq!(
        app.get(&client, "/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A copy of the cookie taken before the logout opens nothing either.
    assert_eq!(app.me_with_cookie(&cookie).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_tells_the_hooks_which_session_and_user_ended() {
    let app = spawn_app().await;
    let client = browser();
    let login = app.login(&client, "bob", DEMO_PASSWORD).await;
    let cookie = session_cookie(&login).expect("a session cookie");

    client
        .post(app.url("/logout"))
        .send()
        .await
        .expect("request");

    let logouts = app.logouts.lock().expect("logouts lock").clone();
    assert_eq!(logouts.len(), 1);
    let user = logouts[0].user.as_ref().expect("the user who logged out");
    assert_eq!(user.username, "bob");
    let session_id = logouts[0].session_id.expect("the session that ended");
    // The signed cookie is the signature followed by the session id.
    assert!(
        cookie.ends_with(&session_id.to_string()),
        "cookie {cookie} does not carry session {session_id}"
    );
}

#[tokio::test]
async fn register_creates_the_user_and_logs_them_in() {
    let app = spawn_app().await;
    let client = browser();

    let response = app
        .post_json(
            &client,
            "/register",
            json!({ "username": "carol_99", "password": "long enough" }),
        )
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(session_cookie(&response).is_some(), "registering logs in");
    let user: User = response.json().await.expect("a user");
    assert_eq!(user.username, "carol_99");
    let me: User = app.get(&client, "/me").await.json().await.expect("a user");
    assert_eq!(me, user);
    // And the password works for a later login, from another browser.
    let again = app.login(&browser(), "carol_99", "long enough").await;
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn register_refuses_a_taken_username_even_in_another_case() {
    let app = spawn_app().await;

    for username in ["alice", "ALICE"] {
        let body = json!({ "username": username, "password": "long enough" });
        let response = app.post_json(&browser(), "/register", body).await;

        assert_eq!(response.status(), StatusCode::CONFLICT, "{username}");
        assert_eq!(
            json_body(response).await,
            json!({ "error": "Username is already taken" })
        );
    }
}

#[tokio::test]
async fn register_refuses_invalid_usernames_and_weak_passwords_with_a_clear_400()
 {
    let app = spawn_app().await;
    let cases = [
        ("ab", "long enough", "Username must be 3 to 32"),
        ("has space", "long enough", "Username must be 3 to 32"),
        ("<script>", "long enough", "Username must be 3 to 32"),
        (&"x".repeat(33), "long enough", "Username must be 3 to 32"),
        ("dave", "short", "Password must be at least 8"),
        ("dave", "", "Password must be at least 8"),
    ];
    for (username, password, expected) in cases {
        let client = browser();
        let body = json!({ "username": username, "password": password });
        let response = app.post_json(&client, "/register", body).await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{username:?}");
        let error = json_body(response).await["error"].to_string();
        assert!(error.contains(expected), "{username:?}: {error}");
        assert_eq!(
            app.get(&client, "/me").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn malformed_or_incomplete_bodies_get_a_json_400() {
    let app = spawn_app().await;
    let client = browser();
    let json_bodies = [
        r#"{"username": "alice""#,             // cut off
        r#"{"username": "alice"}"#,            // no password
        r#""alice:correct-horse""#,            // not an object
        r#"{"username": 1, "password": "x"}"#, // wrong type
    ];
    for path in ["/login", "/register"] {
        for body in json_bodies {
            let response = client
                .post(app.url(path))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("request");
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{path} {body}"
            );
            let error = json_body(response).await;
            assert!(error["error"].is_string(), "{path} {body}: {error}");
        }
        let incomplete_form = client
            .post(app.url(path))
            .form(&[("username", "alice")])
            .send()
            .await
            .expect("request");
        assert_eq!(incomplete_form.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(json_body(incomplete_form).await["error"].is_string());
    }
}

#[tokio::test]
async fn a_body_that_is_neither_json_nor_a_form_gets_a_json_415() {
    let app = spawn_app().await;

    let response = browser()
        .post(app.url("/login"))
        .header("content-type", "text/plain")
        .body("alice:correct-horse")
        .send()
        .await
        .expect("request");

    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(json_body(response).await["error"].is_string());
}

#[tokio::test]
async fn login_and_register_accept_urlencoded_forms() {
    let app = spawn_app().await;

    let login = browser()
        .post(app.url("/login"))
        .form(&[("username", "alice"), ("password", DEMO_PASSWORD)])
        .send()
        .await
        .expect("request");
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(json_body(login).await["username"], "alice");

    let register = browser()
        .post(app.url("/register"))
        .form(&[("username", "erin"), ("password", "formfilled")])
        .send()
        .await
        .expect("request");
    assert_eq!(register.status(), StatusCode::CREATED);
    assert_eq!(json_body(register).await["username"], "erin");
}

#[tokio::test]
async fn the_private_page_redirects_anonymous_visitors_to_the_login_page() {
    let app = spawn_app().await;
    let client = browser();

    let anonymous = app.get(&client, "/private").await;
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(anonymous.headers()[LOCATION], "/login");

    app.login(&client, "alice", DEMO_PASSWORD).await;
    let logged_in = app.get(&client, "/private").await;
    assert_eq!(logged_in.status(), StatusCode::OK);
    assert!(logged_in.text().await.expect("body").contains("/logout"));
}

#[tokio::test]
async fn the_login_page_is_served_and_the_root_leads_to_it() {
    let app = spawn_app().await;
    let client = browser();

    let root = app.get(&client, "/").await;
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(root.headers()[LOCATION], "/login");

    // Logged in, the root leads to the private page instead.
    let other = browser();
    app.login(&other, "alice", DEMO_PASSWORD).await;
    let root = app.get(&other, "/").await;
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(root.headers()[LOCATION], "/private");

    let page = app.get(&client, "/login").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("body");
    assert!(html.contains(r#"<form id="login-form""#));
    assert!(
        !html.contains(".innerHTML"),
        "pages render data with textContent only"
    );
}

#[tokio::test]
async fn a_user_deleted_after_login_is_simply_logged_out() {
    let app = spawn_app().await;
    let client = browser();
    let user: User = app
        .login(&client, "bob", DEMO_PASSWORD)
        .await
        .json()
        .await
        .expect("a user");

    assert!(app.users.delete(user.id));

    let me = app.get(&client, "/me").await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(me).await, json!({ "error": "Unauthorized" }));
    let page = app.get(&client, "/private").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
}

/// A user store whose database is always down.
#[derive(Clone, Debug)]
struct BrokenStore;

impl UserStore for BrokenStore {
    async fn find_credentials(
        &self,
        _: &str,
    ) -> Result<Option<(User, String)>, StoreError> {
        Err(StoreError::new("database is down"))
    }
    async fn create(&self, _: &str, _: &str) -> Result<User, CreateUserError> {
        Err(StoreError::new("database is down").into())
    }
    async fn find_with_epoch(
        &self,
        _: i64,
    ) -> Result<Option<(User, i64)>, StoreError> {
        Err(StoreError::new("database is down"))
    }
    async fn end_sessions(
        &self,
        _: i64,
        _: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        Err(StoreError::new("database is down"))
    }
}

#[tokio::test]
async fn a_failing_user_store_is_a_json_500_not_a_crash() {
    let address =
        serve(Passport::with_hasher_params(BrokenStore, cheap_params())).await;
    let client = browser();
    let credentials = json!({ "username": "alice", "password": DEMO_PASSWORD });

    for path in ["/login", "/register"] {
        let response = client
            .post(format!("http://{address}{path}"))
            .json(&credentials)
            .send()
            .await
            .expect("request");

        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}"
        );
        assert_eq!(
            json_body(response).await,
            json!({ "error": "internal error" })
        );
    }
}

#[test]
fn credentials_never_print_the_password() {
    let credentials: Credentials = serde_json::from_value(
        json!({ "username": "alice", "password": "s3cret-horse" }),
    )
    .expect("credentials");

    let printed = format!("{credentials:?}");

    assert!(printed.contains("alice"));
    assert!(!printed.contains("s3cret-horse"), "{printed}");
}

#[tokio::test]
async fn an_active_user_stays_logged_in_past_max_age_and_an_idle_one_does_not()
{
    use tower_sessions::cookie::time::Duration as CookieDuration;
    // Sessions of 3 s, so a renewal is due every 100 ms (a thirtieth, as one
    // day of 30).
    let passport =
        Passport::with_hasher_params(MemoryUserStore::new(), cheap_params());
    seed_demo_users(&passport).await.expect("seed demo users");
    let session_layer = SessionConfig::with_key(Key::generate())
        .max_age(CookieDuration::seconds(3))
        .layer(MemoryStore::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let url = format!("http://{}/me", listener.local_addr().expect("address"));
    tokio::spawn(step01_http_vs_socket::serve(
        listener,
        app(passport, session_layer),
        std::future::pending(),
    ));
    let login = |client: Client, username: &'static str| {
        let url = url.replace("/me", "/login");
        async move {
            let body =
                json!({ "username": username, "password": DEMO_PASSWORD });
            let response =
                client.post(url).json(&body).send().await.expect("login");
            assert_eq!(response.status(), StatusCode::OK);
        }
    };
    let (alice, bob) = (browser(), browser());
    login(alice.clone(), "alice").await;
    login(bob.clone(), "bob").await;

    // alice does something every second, for longer than max_age.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let response = alice.get(&url).send().await.expect("GET /me");
        assert_eq!(response.status(), StatusCode::OK, "alice was logged out");
        assert!(
            session_cookie(&response).is_some(),
            "each request renewed the session and sent the cookie again"
        );
    }
    // bob did nothing since his login, 5 s ago.
    let response = bob.get(&url).send().await.expect("GET /me");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
