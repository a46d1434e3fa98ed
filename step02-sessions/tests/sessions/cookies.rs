//! What the browser is sent, and what the server makes of what it sends back.

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use step02_sessions::{MemoryStore, SessionConfig};
use tower_sessions::cookie::Key;

use crate::helpers::{set_cookies, spawn_app, spawn_memory_app, test_config};

#[tokio::test]
async fn a_visitor_who_only_reads_gets_no_cookie() {
    let app = spawn_memory_app().await;

    for path in ["/", "/api/session"] {
        let response = app.raw.get(app.url(path)).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(set_cookies(&response), Vec::<String>::new(), "{path}");
    }
    let session = app.session_with_cookie("").await;
    assert_eq!(session.visits, 0);
    assert_eq!(session.session_id, None);
}

#[tokio::test]
async fn the_page_is_served() {
    let app = spawn_memory_app().await;

    let response = app.raw.get(app.url("/")).send().await.expect("GET /");

    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.expect("body");
    assert!(
        body.contains("/api/session"),
        "the page fetches the session"
    );
}

#[tokio::test]
async fn writing_the_session_sets_a_signed_http_only_lax_cookie() {
    let app = spawn_memory_app().await;

    let response = app
        .raw
        .post(app.url("/api/visit"))
        .send()
        .await
        .expect("POST /api/visit");

    let set_cookie = set_cookies(&response);
    assert_eq!(set_cookie.len(), 1, "{set_cookie:?}");
    let cookie = &set_cookie[0];
    assert!(cookie.starts_with("id="), "{cookie}");
    // A signed value is the signature (44 base64 characters) followed by the
    // 22-character id.
    let value = cookie["id=".len()..].split(';').next().unwrap_or_default();
    assert_eq!(value.len(), 44 + 22, "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(
            cookie.contains(attribute),
            "{attribute} missing in {cookie}"
        );
    }
    // 30 days. An expiry set as a fixed instant (the chapter's exercise 2) is a
    // little closer by the time the cookie is written, and rounds down to a
    // second or so less.
    let max_age = cookie
        .split(';')
        .filter_map(|attribute| attribute.trim().strip_prefix("Max-Age="))
        .find_map(|seconds| seconds.parse::<i64>().ok());
    assert!(
        matches!(max_age, Some(2_591_990..=2_592_000)),
        "Max-Age of 30 days expected in {cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "Secure is off by default: {cookie}"
    );
}

#[tokio::test]
async fn a_secure_config_marks_the_cookie_secure() {
    let app =
        spawn_app(&test_config().secure(true), MemoryStore::default()).await;

    let response = app
        .raw
        .post(app.url("/api/visit"))
        .send()
        .await
        .expect("POST /api/visit");

    let set_cookie = set_cookies(&response).join("\n");
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
}

#[tokio::test]
async fn a_written_session_round_trips() {
    let app = spawn_memory_app().await;

    app.visit().await;
    let first = app.session().await;
    app.visit().await;
    let second = app.session().await;

    assert_eq!(first.visits, 1);
    assert_eq!(second.visits, 2);
    assert!(first.session_id.is_some());
    assert_eq!(
        first.session_id, second.session_id,
        "same visitor, same session"
    );
}

#[tokio::test]
async fn two_visitors_have_separate_sessions() {
    let app = spawn_memory_app().await;
    let alice = app.new_session_cookie().await;
    let bob = app.new_session_cookie().await;

    let alice_session = app.session_with_cookie(&alice).await;
    let bob_session = app.session_with_cookie(&bob).await;

    assert_eq!(alice_session.visits, 1);
    assert_eq!(bob_session.visits, 1);
    assert_ne!(alice_session.session_id, bob_session.session_id);
}

#[tokio::test]
async fn clearing_the_session_deletes_it_and_removes_the_cookie() {
    let app = spawn_memory_app().await;
    let cookie = app.new_session_cookie().await;

    let response = app
        .raw
        .post(app.url("/api/clear"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("POST /api/clear");

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let removal = set_cookies(&response).join("\n");
    assert!(removal.starts_with("id=;"), "an emptied cookie: {removal}");
    assert!(removal.contains("Max-Age=0"), "that expires now: {removal}");
    // Even a client that ignores the removal and replays the old cookie has no
    // session now.
    let replayed = app.session_with_cookie(&cookie).await;
    assert_eq!(replayed.visits, 0);
    assert_eq!(replayed.session_id, None);
}

#[tokio::test]
async fn a_tampered_cookie_is_treated_as_no_session() {
    let app = spawn_memory_app().await;
    let cookie = app.new_session_cookie().await;
    let genuine = app.session_with_cookie(&cookie).await;
    // Change the last character of the session id: the signature no longer
    // matches.
    let last = cookie.chars().last().expect("a non-empty cookie");
    let replacement = if last == 'A' { 'B' } else { 'A' };
    let tampered = format!("{}{replacement}", &cookie[..cookie.len() - 1]);

    for forged in [tampered.as_str(), "id=not-a-signed-value", "id="] {
        let session = app.session_with_cookie(forged).await;
        assert_eq!(session.visits, 0, "{forged}");
        assert_eq!(session.session_id, None, "{forged}");
    }
    // Writing with a forged cookie starts a fresh session; it cannot pick the
    // id.
    let response = app
        .raw
        .post(app.url("/api/visit"))
        .header(COOKIE, &tampered)
        .send()
        .await
        .expect("POST /api/visit");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let fresh = crate::helpers::cookie_pair(&set_cookies(&response)[0]);
    let fresh_session = app.session_with_cookie(&fresh).await;
    assert_eq!(fresh_session.visits, 1);
    assert_ne!(fresh_session.session_id, genuine.session_id);
    // The genuine visitor is unaffected.
    assert_eq!(app.session_with_cookie(&cookie).await.visits, 1);
}

#[tokio::test]
async fn a_cookie_signed_with_another_key_is_ignored() {
    // Two servers sharing one store but not one key: the mistake of two
    // different secrets.
    let store = MemoryStore::default();
    let issuer = spawn_app(&test_config(), store.clone()).await;
    let other =
        spawn_app(&SessionConfig::with_key(Key::generate()), store).await;
    let cookie = issuer.new_session_cookie().await;

    let session = other.session_with_cookie(&cookie).await;

    assert_eq!(session.visits, 0);
    assert_eq!(session.session_id, None);
}

#[tokio::test]
async fn clearing_without_a_session_is_harmless() {
    let app = spawn_memory_app().await;

    let response = app
        .raw
        .post(app.url("/api/clear"))
        .send()
        .await
        .expect("POST /api/clear");

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(set_cookies(&response), Vec::<String>::new());
}
