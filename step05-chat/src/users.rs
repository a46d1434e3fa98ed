//! Users in SQLite: step 3's [`UserStore`], answered from a table instead of a
//! map: registration, login and `req.user` now survive a restart.

use sqlx::SqlitePool;
use step03_passport_like_auth::end_sessions_in_sqlite;
use step03_passport_like_auth::{CreateUserError, StoreError, User, UserStore};

use crate::db::now_millis;

/// A [`UserStore`] backed by the `users` table. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqliteUserStore {
    pool: SqlitePool,
}

impl SqliteUserStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

// ANCHOR: sqlite_user_store
// `async fn` meets the trait's `impl Future + Send`: the compiler checks it.
impl UserStore for SqliteUserStore {
    async fn find_with_epoch(
        &self,
        id: i64,
    ) -> Result<Option<(User, i64)>, StoreError> {
        let row: Option<(i64, String, i64)> = sqlx::query_as(
            "SELECT id, username, session_epoch FROM users WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(row.map(|(id, username, epoch)| (User { id, username }, epoch)))
    }

    async fn find_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(User, String)>, StoreError> {
        // No `lower(...)`: the column is COLLATE NOCASE, `=` ignores case.
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT id, username, password_hash FROM users WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(row.map(|(id, username, hash)| (User { id, username }, hash)))
    }
    // ANCHOR_END: sqlite_user_store

    // ANCHOR: create_user
    async fn create(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<User, CreateUserError> {
        // No "SELECT first, then INSERT": two registrations could both pass the
        // SELECT. The UNIQUE constraint makes the database decide, atomically.
        let inserted = sqlx::query_scalar(
            "INSERT INTO users (username, password_hash, created_at) \
             VALUES (?, ?, ?) RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now_millis())
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(id) => Ok(User { id, username: username.to_owned() }),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(CreateUserError::Taken)
            }
            Err(e) => Err(StoreError::new(e).into()),
        }
    }
    // ANCHOR_END: create_user

    async fn end_sessions(
        &self,
        id: i64,
        new_hash: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        end_sessions_in_sqlite(&self.pool, id, new_hash).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::open_database;
    use crate::db::tests::{open_temp_database, temp_database_url};

    const HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

    #[tokio::test]
    async fn a_created_user_can_be_found_by_id_and_by_name() {
        let (_dir, pool) = open_temp_database().await;
        let store = SqliteUserStore::new(pool);

        let alice = store.create("alice", HASH).await.expect("create alice");

        assert_eq!(alice.username, "alice");
        let by_id = store.find_by_id(alice.id).await.expect("find by id");
        assert_eq!(by_id, Some(alice.clone()));
        let by_name =
            store.find_credentials("alice").await.expect("find by name");
        assert_eq!(by_name, Some((alice, HASH.to_owned())));
    }

    #[tokio::test]
    async fn unknown_users_are_none_not_errors() {
        let (_dir, pool) = open_temp_database().await;
        let store = SqliteUserStore::new(pool);

        assert_eq!(store.find_by_id(42).await.expect("find by id"), None);
        assert_eq!(
            store.find_credentials("nobody").await.expect("find by name"),
            None
        );
    }

    #[tokio::test]
    async fn a_name_taken_in_any_case_is_refused() {
        let (_dir, pool) = open_temp_database().await;
        let store = SqliteUserStore::new(pool);
        store.create("alice", HASH).await.expect("create alice");

        for name in ["alice", "Alice", "ALICE"] {
            let result = store.create(name, HASH).await;
            assert!(
                matches!(result, Err(CreateUserError::Taken)),
                "{name}: expected Taken, got {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn login_names_match_ignoring_case_and_keep_the_registered_spelling()
    {
        let (_dir, pool) = open_temp_database().await;
        let store = SqliteUserStore::new(pool);
        let alice = store.create("Alice", HASH).await.expect("create Alice");

        let found =
            store.find_credentials("aLICE").await.expect("find by name");

        assert_eq!(found.map(|(user, _)| user), Some(alice));
    }

    #[tokio::test]
    async fn ids_are_not_reused_after_a_user_is_deleted() {
        let (_dir, pool) = open_temp_database().await;
        let store = SqliteUserStore::new(pool.clone());
        let alice = store.create("alice", HASH).await.expect("create alice");
        sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(alice.id)
            .execute(&pool)
            .await
            .expect("delete alice");

        let bob = store.create("bob", HASH).await.expect("create bob");

        assert!(
            bob.id > alice.id,
            "bob got id {} after alice's {}",
            bob.id,
            alice.id
        );
        assert_eq!(store.find_by_id(alice.id).await.expect("find by id"), None);
    }

    #[tokio::test]
    async fn users_survive_reopening_the_database() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = temp_database_url(&dir);
        let pool = open_database(&url).await.expect("first open");
        let alice = SqliteUserStore::new(pool.clone())
            .create("alice", HASH)
            .await
            .expect("create alice");
        pool.close().await;

        let store = SqliteUserStore::new(
            open_database(&url).await.expect("second open"),
        );

        assert_eq!(
            store.find_by_id(alice.id).await.expect("find"),
            Some(alice)
        );
    }

    #[tokio::test]
    async fn a_failing_database_is_a_store_error_not_taken() {
        let (_dir, pool) = open_temp_database().await;
        let store = SqliteUserStore::new(pool.clone());
        pool.close().await;

        let result = store.create("alice", HASH).await;

        assert!(
            matches!(result, Err(CreateUserError::Store(_))),
            "expected a store error, got {result:?}"
        );
        assert!(store.find_by_id(1).await.is_err());
    }
}
