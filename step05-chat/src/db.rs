//! One SQLite file for everything that must survive a restart: users, messages
//! and sessions, through one connection pool and three stores
//! ([`crate::users::SqliteUserStore`], [`crate::messages::MessageStore`] and
//! tower-sessions' [`SqliteStore`]). One file is one thing to back up.

use sqlx::SqlitePool;
use tower_sessions_sqlx_store::SqliteStore;

// ANCHOR: open_database
/// Opens (or creates) the database at `database_url` with step 2's settings,
/// and brings its tables up to date. Safe on every start: migrations that
/// already ran are skipped.
pub async fn open_database(
    database_url: &str,
) -> Result<SqlitePool, sqlx::Error> {
    let pool = step02_sessions::open_sqlite(database_url).await?;
    // The SQL files are compiled into the binary: it carries its own schema.
    sqlx::migrate!("./migrations").run(&pool).await?;
    session_store(&pool).migrate().await?;
    Ok(pool)
}

/// The tower-sessions store for this database ([`open_database`] makes it).
pub fn session_store(pool: &SqlitePool) -> SqliteStore {
    SqliteStore::new(pool.clone())
}
// ANCHOR_END: open_database

/// Now, in milliseconds since 1970, as JavaScript's `Date.now()`.
pub(crate) fn now_millis() -> i64 {
    i64::try_from(step01_http_vs_socket::now_ms()).unwrap_or(i64::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh database in its own temporary directory, deleted when the
    /// returned guard is dropped: keep it alive as long as the pool.
    pub(crate) async fn open_temp_database() -> (tempfile::TempDir, SqlitePool)
    {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let pool = open_database(&temp_database_url(&dir))
            .await
            .expect("open a fresh database");
        (dir, pool)
    }

    pub(crate) fn temp_database_url(dir: &tempfile::TempDir) -> String {
        format!("sqlite://{}", dir.path().join("chat.db").display())
    }

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

    /// The durability both servers promise (the Node twin's test/db.test.js
    /// asserts the same): write-ahead log, and every commit synced to disk
    /// (`synchronous` 2 is FULL). A per-connection setting, so it is read
    /// from the server's own pool, not from a connection of the test's.
    #[tokio::test]
    async fn every_commit_is_on_disk_before_it_is_acknowledged() {
        let (_dir, pool) = open_temp_database().await;

        let mut connection = pool.acquire().await.expect("a connection");
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *connection)
            .await
            .expect("read synchronous");
        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *connection)
            .await
            .expect("read journal mode");

        assert_eq!((synchronous, journal_mode.as_str()), (2, "wal"));
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
        assert!((1_577_836_800_000..4_102_444_800_000).contains(&now), "{now}");
    }
}
