//! One SQLite file for everything that must survive a restart: users, messages
//! and sessions.
//!
//! Until now users and sessions lived in memory and a restart logged everybody
//! out. Here a single connection pool serves three stores:
//! [`crate::users::SqliteUserStore`], [`crate::messages::MessageStore`] and
//! tower-sessions' [`SqliteStore`]. One file is one thing to back up, and one
//! pool means one set of connection settings to get right.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use tower_sessions_sqlx_store::SqliteStore;

// ANCHOR: open_database
/// Opens (creating if needed) the database at `database_url`, e.g.
/// `sqlite://data/chat.db`, and brings its tables up to date.
///
/// Safe to call on every start: migrations that already ran are skipped, and
/// the session table is created only if it is missing.
pub async fn open_database(
    database_url: &str,
) -> Result<SqlitePool, sqlx::Error> {
    let options = connect_options(database_url)?;

    // `create_if_missing` makes the file, not the directory it goes in.
    if let Some(parent) = options.get_filename().parent()
        && !parent.as_os_str().is_empty()
    {
        tokio::fs::create_dir_all(parent).await?;
    }

    let pool = SqlitePool::connect_with(options).await?;

    // The SQL files are embedded into the binary at compile time, so the
    // program carries its own schema and needs no migrations directory at run
    // time.
    sqlx::migrate!("./migrations").run(&pool).await?;
    session_store(&pool).migrate().await?;

    Ok(pool)
}

/// The tower-sessions store for this database. Its table (`tower_sessions`) is
/// created by [`open_database`].
pub fn session_store(pool: &SqlitePool) -> SqliteStore {
    // Cloning a pool is cheap: it is a handle to the same connections.
    SqliteStore::new(pool.clone())
}
// ANCHOR_END: open_database

// ANCHOR: connect_options
/// How every connection of the pool to `database_url` is opened.
fn connect_options(
    database_url: &str,
) -> Result<SqliteConnectOptions, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(database_url)?
        // A fresh checkout has no database yet; make one rather than fail on
        // first run.
        .create_if_missing(true)
        // Write-ahead logging lets readers (history for a joining user) carry
        // on while a writer (a new message) commits, instead of queueing behind
        // it.
        .journal_mode(SqliteJournalMode::Wal)
        // SQLite allows one writer at a time. Under a burst of messages, wait
        // for the lock rather than failing at once with "database is locked".
        .busy_timeout(Duration::from_secs(5))
        // SQLite ignores REFERENCES unless asked, per connection. sqlx already
        // turns this on; saying so here keeps `messages.user_id` honest even if
        // that default changes.
        .foreign_keys(true);
    Ok(options)
}
// ANCHOR_END: connect_options

/// Now, in milliseconds since the Unix epoch: the unit of every timestamp in
/// the database, and the one JavaScript's `Date.now()` and `new Date(ms)` use,
/// so the browser needs no conversion. Step 1's clock, as SQLite's integer
/// type.
pub(crate) fn now_millis() -> i64 {
    // An i64 of milliseconds lasts until the year 292 million; saturate rather
    // than panic.
    i64::try_from(step01_http_vs_socket::now_ms()).unwrap_or(i64::MAX)
}

/// A fresh database in its own temporary directory, for tests. The directory is
/// deleted when the returned guard is dropped, so keep it alive as long as the
/// pool.
#[cfg(test)]
pub(crate) async fn open_temp_database() -> (tempfile::TempDir, SqlitePool) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let pool = open_database(&temp_database_url(&dir))
        .await
        .expect("open a fresh database");
    (dir, pool)
}

#[cfg(test)]
pub(crate) fn temp_database_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("chat.db").display())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn table_names(pool: &SqlitePool) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        )
        .fetch_all(pool)
        .await
        .expect("list tables")
    }

    #[tokio::test]
    async fn creates_the_file_and_missing_parent_directories() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("data").join("nested").join("chat.db");
        assert!(!path.exists());

        let pool = open_database(&format!("sqlite://{}", path.display()))
            .await
            .expect("open database");

        assert!(path.is_file());
        pool.close().await;
    }

    #[tokio::test]
    async fn creates_chat_and_session_tables() {
        let (_dir, pool) = open_temp_database().await;

        let tables = table_names(&pool).await;

        for expected in ["messages", "tower_sessions", "users"] {
            assert!(
                tables.iter().any(|name| name == expected),
                "missing table {expected} in {tables:?}"
            );
        }
    }

    #[tokio::test]
    async fn opening_an_existing_database_again_succeeds() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = temp_database_url(&dir);
        open_database(&url).await.expect("first open").close().await;

        let pool = open_database(&url).await.expect("second open");

        assert!(table_names(&pool).await.contains(&"users".to_owned()));
    }

    #[tokio::test]
    async fn uses_write_ahead_logging_and_enforces_foreign_keys() {
        let (_dir, pool) = open_temp_database().await;

        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .expect("read journal mode");
        assert_eq!(journal_mode, "wal");

        let orphan = sqlx::query(
            "INSERT INTO messages (room, user_id, text, ts) \
             VALUES (?, ?, ?, ?)",
        )
        .bind("general")
        .bind(999_i64)
        .bind("from nobody")
        .bind(0_i64)
        .execute(&pool)
        .await;
        let refused = matches!(
            orphan,
            Err(sqlx::Error::Database(ref e)) if e.is_foreign_key_violation()
        );
        assert!(
            refused,
            "a message from a user who does not exist must be refused, \
             got {orphan:?}"
        );
    }

    #[tokio::test]
    async fn rejects_an_invalid_url_without_creating_anything() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("data").join("chat.db");

        let result = open_database(&format!(
            "sqlite://{}?mode=nonsense",
            path.display()
        ))
        .await;

        assert!(result.is_err());
        assert!(!dir.path().join("data").exists());
    }

    #[tokio::test]
    async fn opens_an_in_memory_database() {
        let pool = open_database("sqlite::memory:")
            .await
            .expect("open in-memory database");

        assert!(table_names(&pool).await.contains(&"messages".to_owned()));
    }

    #[test]
    fn now_millis_is_in_milliseconds() {
        // 2020-01-01 in ms and 2100-01-01 in ms: seconds or nanoseconds would
        // fall outside.
        let now = now_millis();
        assert!(
            (1_577_836_800_000..4_102_444_800_000).contains(&now),
            "{now}"
        );
    }
}
