//! Sessions a user can end, the contract (chapter "Before it faces the
//! Internet: the login"): `POST /logout-everywhere`, `POST /password` and the
//! absolute lifetime of a login, over HTTP and over the sockets. Runs against
//! step 5, `chat-under-load` and the Node twin (`CHAT_SERVER`).

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use step03_passport_like_auth::passport::MIN_PASSWORD_CHARS;
use support::{
    Options, PASSWORD, TestApp, assert_silent, eventually, session_cookie,
    spawn_app, spawn_app_with,
};
use testkit::JsSocket;

const NEW_PASSWORD: &str = "another long enough password";

impl TestApp {
    /// The status of `GET /me` with `cookie`.
    async fn me_status(&self, cookie: &str) -> u16 {
        let request = self.http.get(self.url("/me")).header("cookie", cookie);
        request.send().await.expect("GET /me").status().as_u16()
    }

    async fn change_password(
        &self,
        cookie: &str,
        current: &str,
        new: &str,
    ) -> reqwest::Response {
        let body = json!({ "currentPassword": current, "newPassword": new });
        self.post_json("/password", Some(cookie), body).await
    }

    /// The status of a login of `username` with `password`.
    async fn login_status(&self, username: &str, password: &str) -> u16 {
        let body = json!({ "username": username, "password": password });
        let response = self.post_json("/login", None, body).await;
        response.status().as_u16()
    }
}

/// Waits (at most 5 s) for the server to disconnect `socket`.
async fn assert_disconnected_by_the_server(socket: &JsSocket, who: &str) {
    let event = socket
        .try_next_named("disconnect", Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("{who}: no disconnect within 5 s"));
    assert_eq!(event.raw["reason"], "io server disconnect", "{who}");
}

async fn error_body(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_and_socket_of_the_user_only() {
    let app = spawn_app().await;
    let laptop = app.register("alice").await;
    let phone = app.login("alice").await;
    let bob = app.register("bob").await;
    let (laptop_socket, _) = app.connected(&laptop).await;
    let (phone_socket, _) = app.connected(&phone).await;
    let (bob_socket, _) = app.connected(&bob).await;

    let response = app
        .post_json("/logout-everywhere", Some(&laptop), json!({}))
        .await;

    assert_eq!(response.status(), 204);
    assert_disconnected_by_the_server(&laptop_socket, "laptop").await;
    assert_disconnected_by_the_server(&phone_socket, "phone").await;
    assert_eq!(app.me_status(&phone).await, 401, "the other session");
    assert_eq!(app.me_status(&laptop).await, 401, "this session");
    let again = app.socket(Some(&phone), json!({})).await;
    again.expect_connect_error().await;
    // Bob is somebody else: nothing of his ends.
    assert_eq!(app.me_status(&bob).await, 200);
    assert_silent(&bob_socket, "disconnect").await;
}

#[tokio::test]
async fn logout_everywhere_and_password_need_a_login() {
    let app = spawn_app().await;
    let change = json!({ "currentPassword": PASSWORD, "newPassword": "x" });

    for (path, body) in
        [("/logout-everywhere", json!({})), ("/password", change)]
    {
        let response = app.post_json(path, None, body).await;

        assert_eq!(response.status(), 401, "{path}");
        let body = error_body(response).await;
        assert_eq!(body, json!({ "error": "Unauthorized" }), "{path}");
    }
}

#[tokio::test]
async fn a_password_change_keeps_this_session_and_ends_the_others() {
    // Sessions re-read often: the kept socket must survive its session's
    // change of id.
    let app = spawn_app_with(Options {
        session_recheck: Some(Duration::from_millis(100)),
        ..Options::default()
    })
    .await;
    let laptop = app.register("alice").await;
    let phone = app.login("alice").await;
    let (laptop_socket, _) = app.connected(&laptop).await;
    let (phone_socket, _) = app.connected(&phone).await;

    let response = app.change_password(&laptop, PASSWORD, NEW_PASSWORD).await;

    assert_eq!(response.status(), 204);
    let renewed = session_cookie(&response).expect("a new session cookie");
    assert_ne!(renewed, laptop, "the session id is cycled");
    assert_eq!(app.me_status(&renewed).await, 200, "this session stays");
    assert_disconnected_by_the_server(&phone_socket, "phone").await;
    assert_eq!(app.me_status(&phone).await, 401, "the other session ends");
    let ended = (laptop_socket)
        .try_next_named("disconnect", Duration::from_secs(1))
        .await;
    assert!(
        ended.is_none(),
        "this session's socket was closed: {ended:?}"
    );
    assert_eq!(app.login_status("alice", PASSWORD).await, 401, "old one");
    assert_eq!(app.login_status("alice", NEW_PASSWORD).await, 200, "new");
    // The socket follows its session: a logout with the new cookie closes it.
    let logout = app.post_json("/logout", Some(&renewed), json!({})).await;
    assert_eq!(logout.status(), 204);
    assert_disconnected_by_the_server(&laptop_socket, "laptop").await;
}

#[tokio::test]
async fn a_wrong_current_password_is_401_and_counts_toward_the_lock_out() {
    let app = spawn_app().await;
    let laptop = app.register("alice").await;
    let phone = app.login("alice").await;

    // Five failures in a row is the login's allowance (step 3's default).
    for attempt in 1..=5 {
        let response = app
            .change_password(&laptop, "a wrong guess", NEW_PASSWORD)
            .await;

        assert_eq!(response.status(), 401, "attempt {attempt}");
        let body = error_body(response).await;
        let message = "Invalid username or password";
        assert_eq!(body, json!({ "error": message }), "attempt {attempt}");
    }
    // Spent: the right password is refused before it is checked, on this
    // route and at the login, from this address.
    let right = app.change_password(&laptop, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(right.status(), 429);
    assert_eq!(app.login_status("alice", PASSWORD).await, 429);
    assert_eq!(app.me_status(&phone).await, 200, "nothing was changed");
}

#[tokio::test]
async fn a_new_password_that_breaks_the_rules_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let laptop = app.register("alice").await;
    let phone = app.login("alice").await;

    let response = app.change_password(&laptop, PASSWORD, "short").await;

    assert_eq!(response.status(), 400);
    // Built from step 3's rule, which the chapter's exercise 1 changes.
    let message = format!(
        "Password must be at least {MIN_PASSWORD_CHARS} characters long"
    );
    assert_eq!(error_body(response).await, json!({ "error": message }));
    assert_eq!(app.me_status(&phone).await, 200);
    assert_eq!(app.login_status("alice", PASSWORD).await, 200);
}

#[tokio::test]
async fn a_session_in_constant_use_ends_at_its_absolute_lifetime() {
    let lifetime = Duration::from_secs(2);
    let app = spawn_app_with(Options {
        absolute_lifetime_secs: Some(2),
        ..Options::default()
    })
    .await;
    let logged_in_at = Instant::now();
    let cookie = app.register("alice").await;
    assert_eq!(app.me_status(&cookie).await, 200);

    // `eventually` asks every 20 ms: far busier than any idle timeout.
    let ended = eventually(|| async { app.me_status(&cookie).await == 401 });

    assert!(ended.await, "still logged in 10 s after a 2 s lifetime");
    assert!(logged_in_at.elapsed() >= lifetime, "ended before its time");
    let socket = app.socket(Some(&cookie), json!({})).await;
    socket.expect_connect_error().await;
}

/// A socket makes no HTTP request once it is open, so no request ends its
/// session at the lifetime: the session watch must, at its next look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_open_past_the_absolute_lifetime_is_disconnected() {
    let app = spawn_app_with(Options {
        absolute_lifetime_secs: Some(2),
        session_recheck: Some(Duration::from_millis(100)),
        ..Options::default()
    })
    .await;
    let cookie = app.register("alice").await;
    let socket = app.socket(Some(&cookie), json!({})).await;
    socket.expect_connect().await;

    let ended = socket
        .try_next_named("session ended", Duration::from_secs(10))
        .await;
    assert!(ended.is_some(), "the socket outlived a 2 s login by 8 s");
    assert_disconnected_by_the_server(&socket, "past its lifetime").await;
    assert_eq!(app.me_status(&cookie).await, 401);
}
