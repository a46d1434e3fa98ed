//! Sessions a user can end: `POST /logout-everywhere`, `POST /password`, and
//! the absolute lifetime of a login. The real server on a free port, each
//! "device" a reqwest client with its own cookie jar.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use step03_passport_like_auth::passport::MIN_PASSWORD_CHARS;
use step03_passport_like_auth::{
    AuthLimits, DEMO_PASSWORD, INVALID_CREDENTIALS, LogoutEvent, LogoutScope,
    Passport, UserStore,
};
use support::{demo_passport, serve};

const NEW_PASSWORD: &str = "battery-staple-42";

struct TestApp {
    address: SocketAddr,
    /// Every logout the server performed, as its `on_logout` hook saw it.
    logouts: Arc<Mutex<Vec<LogoutEvent>>>,
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    async fn post(&self, client: &Client, path: &str, body: Value) -> Response {
        let request = client.post(self.url(path)).json(&body);
        request.send().await.expect("request")
    }

    /// Logs `username` in on `client`; returns the session cookie it set.
    async fn login(
        &self,
        client: &Client,
        username: &str,
        password: &str,
    ) -> Response {
        let body = json!({ "username": username, "password": password });
        self.post(client, "/login", body).await
    }

    async fn logged_in_device(&self, username: &str) -> Client {
        let device = device();
        let response = self.login(&device, username, DEMO_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK, "login {username}");
        device
    }

    async fn me(&self, client: &Client) -> StatusCode {
        let response = client.get(self.url("/me")).send().await;
        response.expect("request").status()
    }

    /// `GET /me` with only this cookie (`id=...`), as a copy of it would.
    async fn me_with_cookie(&self, cookie: &str) -> StatusCode {
        let request = Client::new().get(self.url("/me")).header(COOKIE, cookie);
        request.send().await.expect("request").status()
    }

    async fn change_password(
        &self,
        client: &Client,
        current: &str,
        new: &str,
    ) -> Response {
        let body = json!({ "currentPassword": current, "newPassword": new });
        self.post(client, "/password", body).await
    }

    /// The logouts the hook saw whose scope passes `wanted`.
    fn logouts(&self, wanted: fn(&LogoutScope) -> bool) -> Vec<LogoutEvent> {
        let logouts = self.logouts.lock().expect("logouts lock");
        logouts
            .iter()
            .filter(|e| wanted(&e.scope))
            .cloned()
            .collect()
    }
}

/// A browser: its own cookie jar.
fn device() -> Client {
    Client::builder()
        .cookie_store(true)
        .build()
        .expect("reqwest client")
}

fn session_cookie(response: &Response) -> Option<String> {
    let value = response.headers().get(SET_COOKIE)?.to_str().ok()?;
    Some(value.split(';').next()?.to_owned())
}

async fn spawn_app() -> TestApp {
    spawn_app_with(demo_passport(AuthLimits::default()).await).await
}

async fn spawn_app_with<U: UserStore>(passport: Passport<U>) -> TestApp {
    let logouts = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&logouts);
    let passport = passport.on_logout(move |event| {
        recorded.lock().expect("logouts lock").push(event.clone());
    });
    TestApp {
        address: serve(passport).await,
        logouts,
    }
}

async fn json_body(response: Response) -> Value {
    response.json().await.expect("a JSON body")
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_of_the_user_and_no_one_elses() {
    let app = spawn_app().await;
    let laptop = app.logged_in_device("alice").await;
    let phone = app.logged_in_device("alice").await;
    let bob = app.logged_in_device("bob").await;

    let response = app.post(&laptop, "/logout-everywhere", json!({})).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me(&laptop).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&phone).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&bob).await, StatusCode::OK, "bob is not alice");
    let [everywhere] =
        &app.logouts(|scope| *scope == LogoutScope::EveryUserSession)[..]
    else {
        panic!("the hook ran once for every session of alice");
    };
    let user = everywhere.user.as_ref().map(|user| user.username.as_str());
    assert_eq!(user, Some("alice"));
    // Ending sessions is not locking out: alice logs in again at once.
    let again = app.login(&phone, "alice", DEMO_PASSWORD).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(app.me(&phone).await, StatusCode::OK);
}

#[tokio::test]
async fn ending_sessions_needs_a_login_and_says_so_like_me() {
    let app = spawn_app().await;
    let nobody = device();

    for (path, body) in [
        ("/logout-everywhere", json!({})),
        (
            "/password",
            json!({ "currentPassword": "x", "newPassword": NEW_PASSWORD }),
        ),
    ] {
        let response = app.post(&nobody, path, body).await;

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body = json_body(response).await;
        assert_eq!(body, json!({ "error": "Unauthorized" }), "{path}");
    }
    assert!(app.logouts.lock().expect("logouts lock").is_empty());
}

#[tokio::test]
async fn a_password_change_keeps_this_session_under_a_new_id_and_ends_the_others()
 {
    let app = spawn_app().await;
    let laptop = device();
    let login = app.login(&laptop, "alice", DEMO_PASSWORD).await;
    let old_cookie = session_cookie(&login).expect("a session cookie");
    let phone = app.logged_in_device("alice").await;

    let response = app
        .change_password(&laptop, DEMO_PASSWORD, NEW_PASSWORD)
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let new_cookie = session_cookie(&response).expect("a new session cookie");
    assert_ne!(new_cookie, old_cookie, "the session id is cycled");
    assert_eq!(app.me(&laptop).await, StatusCode::OK, "this one stays");
    assert_eq!(
        app.me_with_cookie(&old_cookie).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&phone).await, StatusCode::UNAUTHORIZED, "others end");
    let others = app.logouts(|scope| {
        matches!(scope, LogoutScope::OtherUserSessions { .. })
    });
    let [others] = &others[..] else {
        panic!("the hook ran once for the other sessions of alice");
    };
    let LogoutScope::OtherUserSessions { kept_as } = others.scope else {
        unreachable!("filtered above");
    };
    // Told where the session went, so that its sockets can follow it.
    assert!(
        others.session_id.is_some(),
        "the session whose sockets stay"
    );
    assert!(kept_as.is_some_and(|id| Some(id) != others.session_id));

    let old = app.login(&device(), "alice", DEMO_PASSWORD).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "the old password");
    let new = app.login(&device(), "alice", NEW_PASSWORD).await;
    assert_eq!(new.status(), StatusCode::OK, "the new password");
}

#[tokio::test]
async fn a_password_change_may_come_from_a_form() {
    let app = spawn_app().await;
    let laptop = app.logged_in_device("alice").await;
    let form = [
        ("currentPassword", DEMO_PASSWORD),
        ("newPassword", NEW_PASSWORD),
    ];

    let response = laptop.post(app.url("/password")).form(&form).send().await;

    let status = response.expect("request").status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let new = app.login(&device(), "alice", NEW_PASSWORD).await;
    assert_eq!(new.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_current_password_is_401_and_counts_toward_the_lock_out() {
    let app = spawn_app().await;
    let laptop = app.logged_in_device("alice").await;
    let phone = app.logged_in_device("alice").await;
    let allowed = AuthLimits::default().login_failures_per_username;

    for attempt in 1..=allowed {
        let response = app
            .change_password(&laptop, "a wrong guess", NEW_PASSWORD)
            .await;

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "#{attempt}");
        let body = json_body(response).await;
        assert_eq!(body, json!({ "error": INVALID_CREDENTIALS }));
    }
    // The same budget as a login's: the next try, right or wrong, is refused
    // before any password is checked, and so is a login from this address.
    let right = app
        .change_password(&laptop, DEMO_PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    let login = app.login(&device(), "alice", DEMO_PASSWORD).await;
    assert_eq!(login.status(), StatusCode::TOO_MANY_REQUESTS);
    // Nothing changed: both sessions are still in.
    assert_eq!(app.me(&laptop).await, StatusCode::OK);
    assert_eq!(app.me(&phone).await, StatusCode::OK);
}

#[tokio::test]
async fn a_new_password_that_breaks_the_rules_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let laptop = app.logged_in_device("alice").await;
    let phone = app.logged_in_device("alice").await;

    let response = app.change_password(&laptop, DEMO_PASSWORD, "short").await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = json_body(response).await;
    // Built from the rule, which exercise 1 changes: this test is about
    // what a refused change leaves alone.
    let message = format!(
        "Password must be at least {MIN_PASSWORD_CHARS} characters long"
    );
    assert_eq!(body, json!({ "error": message }));
    assert_eq!(app.me(&phone).await, StatusCode::OK);
    let old = app.login(&device(), "alice", DEMO_PASSWORD).await;
    assert_eq!(old.status(), StatusCode::OK, "the old password still works");
}

// ANCHOR: absolute_lifetime_test
#[tokio::test]
async fn a_session_in_constant_use_still_ends_at_its_absolute_lifetime() {
    let lifetime = Duration::from_secs(2);
    let passport = demo_passport(AuthLimits::default()).await;
    let lifetime_setting = lifetime.try_into().expect("a short lifetime");
    let app =
        spawn_app_with(passport.with_absolute_lifetime(lifetime_setting)).await;
    let laptop = device();
    let logged_in_at = Instant::now();
    let login = app.login(&laptop, "alice", DEMO_PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);

    // Busy all along (a request every 50 ms, far inside the 30-day idle
    // timeout), until the server says no, or for five times the lifetime.
    let mut answers = Vec::new();
    while logged_in_at.elapsed() < 5 * lifetime {
        let status = app.me(&laptop).await;
        answers.push(status);
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // pace, no sync
    }

    assert_eq!(answers.last(), Some(&StatusCode::UNAUTHORIZED), "it ended");
    assert!(answers.len() > 2, "it was in use before: {answers:?}");
    assert!(logged_in_at.elapsed() >= lifetime, "not before its time");
    let again = app.login(&laptop, "alice", DEMO_PASSWORD).await;
    assert_eq!(again.status(), StatusCode::OK, "a new login starts again");
    assert_eq!(app.me(&laptop).await, StatusCode::OK);
}
// ANCHOR_END: absolute_lifetime_test
