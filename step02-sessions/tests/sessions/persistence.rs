//! How long a session lives, and where.

use std::time::Duration as StdDuration;

use step02_sessions::{MemoryStore, SessionConfig, open_sqlite_store};
use time::Duration;
use tower_sessions::cookie::Key;

use crate::helpers::{fixed_key, spawn_app, test_config};

#[tokio::test]
async fn a_session_expires_after_max_age_without_writes() {
    let app = spawn_app(
        &test_config().max_age(Duration::seconds(1)),
        MemoryStore::default(),
    )
    .await;
    let cookie = app.new_session_cookie().await;
    assert_eq!(app.session_with_cookie(&cookie).await.visits, 1);

    // A browser would have dropped the cookie (Max-Age=1) by now; this client
    // replays it anyway, to show that the server does not rely on the browser's
    // honesty.
    tokio::time::sleep(StdDuration::from_millis(2000)).await;
    let session = app.session_with_cookie(&cookie).await;

    assert_eq!(session.visits, 0);
    assert_eq!(session.session_id, None);
}

#[tokio::test]
async fn each_write_restarts_the_inactivity_clock() {
    let app = spawn_app(
        &test_config().max_age(Duration::seconds(4)),
        MemoryStore::default(),
    )
    .await;

    app.visit().await;
    tokio::time::sleep(StdDuration::from_millis(2500)).await;
    app.visit().await;
    tokio::time::sleep(StdDuration::from_millis(2500)).await;
    let session = app.session().await;

    // 5 s since the first write, more than max_age, but only 2.5 s since the
    // last one.
    assert_eq!(session.visits, 2);
}

#[tokio::test]
async fn a_sqlite_session_survives_a_server_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let database_url = format!("sqlite://{}/sessions.db", dir.path().display());
    let config = SessionConfig::with_key(fixed_key());

    let before = spawn_app(
        &config,
        open_sqlite_store(&database_url).await.expect("open"),
    )
    .await;
    let cookie = before.new_session_cookie().await;
    let original = before.session_with_cookie(&cookie).await;
    before.stop().await;

    // A new server (new port, new store handle on the same file), same key.
    let after = spawn_app(
        &config,
        open_sqlite_store(&database_url).await.expect("reopen"),
    )
    .await;
    let restored = after.session_with_cookie(&cookie).await;

    assert_eq!(restored.visits, 1);
    assert!(restored.session_id.is_some());
    assert_eq!(restored.session_id, original.session_id);
}

#[tokio::test]
async fn a_restart_with_a_new_key_logs_everyone_out() {
    // What happens when SESSION_SECRET is unset and a key is generated at each
    // start.
    let dir = tempfile::tempdir().expect("temporary directory");
    let database_url = format!("sqlite://{}/sessions.db", dir.path().display());

    let before = spawn_app(
        &SessionConfig::with_key(Key::generate()),
        open_sqlite_store(&database_url).await.expect("open"),
    )
    .await;
    let cookie = before.new_session_cookie().await;
    before.stop().await;
    let after = spawn_app(
        &SessionConfig::with_key(Key::generate()),
        open_sqlite_store(&database_url).await.expect("reopen"),
    )
    .await;

    let session = after.session_with_cookie(&cookie).await;

    assert_eq!(
        session.visits, 0,
        "the row is still there, but the cookie fails its check"
    );
    assert_eq!(session.session_id, None);
}

#[tokio::test]
async fn opening_the_sqlite_store_creates_the_directory_and_the_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("not").join("yet").join("there.db");
    let database_url = format!("sqlite://{}", file.display());

    open_sqlite_store(&database_url).await.expect("open");

    assert!(file.is_file(), "{} was not created", file.display());
}
