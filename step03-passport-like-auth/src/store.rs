//! Where users live.
//!
//! Passport never talks to a database: you hand it functions that do. Here that
//! contract is the [`UserStore`] trait, three questions a login system has to
//! ask about users. This step answers them from memory ([`MemoryUserStore`]);
//! step05 answers the same three from SQLite, and nothing in
//! [`crate::Passport`] changes.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

// ANCHOR: user
/// A user as the rest of the application sees it: what `req.user` holds in
/// Express.
///
/// The password hash is deliberately not a field. A `User` is handed to
/// handlers, serialized into JSON answers and, in step05, sent to other chat
/// members; a hash that is not here cannot leak from there.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    /// The user's id, the only thing the session stores. An `i64` because it
    /// will be a SQLite rowid in step05.
    pub id: i64,
    /// The name the user logs in with and is shown as.
    pub username: String,
}
// ANCHOR_END: user

// ANCHOR: user_store
/// A user together with their password hash (a PHC string).
pub type UserWithHash = (User, String);

/// The three questions a login system asks about users (and, below, two that
/// let a user end their sessions).
///
/// Each method returns `impl Future + Send` rather than being an `async fn`: an
/// axum handler's future must be `Send` (tokio may move it between threads),
/// and this is how a trait promises that for every implementation.
///
/// Usernames are matched ignoring ASCII case, so `Alice` cannot register beside
/// `alice` and pass for her in a chat. (A SQLite store gets the same rule from
/// `COLLATE NOCASE`.)
///
/// Ids must never be reused: a session that outlives its user would otherwise
/// wake up as the next user to get the same id. (In SQLite: `INTEGER PRIMARY
/// KEY AUTOINCREMENT`.)
pub trait UserStore: Clone + Send + Sync + 'static {
    /// The user with this id, if it (still) exists: see `find_with_epoch`.
    fn find_by_id(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send {
        async move { Ok(self.find_with_epoch(id).await?.map(|(user, _)| user)) }
    }

    /// The user with this name together with their password hash (a PHC
    /// string), for the login strategy only.
    fn find_credentials(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<UserWithHash>, StoreError>> + Send;

    /// Stores a new user. Fails with [`CreateUserError::Taken`] if the name is
    /// in use: the store is the only place that can check that without a race.
    fn create(
        &self,
        username: &str,
        password_hash: &str,
    ) -> impl Future<Output = Result<User, CreateUserError>> + Send;
    // ANCHOR_END: user_store

    // ANCHOR: session_epoch
    /// [`UserStore::find_by_id`], with the user's session epoch: a counter
    /// that [`crate::Passport::login`] copies into the session, and that ends
    /// every session holding an older copy when it moves. Asked on every
    /// request by [`crate::Passport::deserialize`], so in one query.
    fn find_with_epoch(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<(User, i64)>, StoreError>> + Send;

    /// Moves the user's session epoch on, which ends every session of the
    /// user; with a `new_password_hash`, stores it too, both or neither (a
    /// password change). The new epoch, or `None` if there is no such user.
    fn end_sessions(
        &self,
        id: i64,
        new_password_hash: Option<&str>,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;
}
// ANCHOR_END: session_epoch

// ANCHOR: end_sessions_in_sqlite
/// [`UserStore::end_sessions`] over a SQLite `users` table with a
/// `session_epoch` column (step 5's, which the Node twin shares): one
/// statement, so the new hash and the new epoch are stored together or not
/// at all.
pub async fn end_sessions_in_sqlite(
    pool: &sqlx::SqlitePool,
    id: i64,
    new_password_hash: Option<&str>,
) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar(
        "UPDATE users SET session_epoch = session_epoch + 1, \
         password_hash = coalesce(?, password_hash) \
         WHERE id = ? RETURNING session_epoch",
    )
    .bind(new_password_hash)
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(StoreError::new)
}
// ANCHOR_END: end_sessions_in_sqlite

/// The user store itself failed: a lost database connection, a full disk. Not
/// the user's fault, so it ends up as a 500 (see [`crate::AuthError`]).
#[derive(Debug, thiserror::Error)]
#[error("user store failed: {0}")]
pub struct StoreError(Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    /// Wraps whatever error the backing store produced (a `sqlx::Error`, say).
    pub fn new(
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self(error.into())
    }
}

/// Why [`UserStore::create`] did not create a user.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Somebody already has this username (ignoring ASCII case).
    #[error("username is taken")]
    Taken,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

// ANCHOR: memory_store
/// A [`UserStore`] in a `HashMap`-like table inside the process: perfect for a
/// demo and for tests, gone when the process stops.
///
/// Cloning is cheap and every clone sees the same users (they share one `Arc`),
/// which is what axum's state needs: each request gets a clone.
#[derive(Clone, Debug, Default)]
pub struct MemoryUserStore {
    inner: Arc<RwLock<MemoryUsers>>,
}

#[derive(Debug, Default)]
struct MemoryUsers {
    /// The last id handed out. Only ever grows, so a deleted user's id is never
    /// reused.
    last_id: i64,
    /// id → (user, PHC password hash, session epoch)
    by_id: BTreeMap<i64, (User, String, i64)>,
}

impl MemoryUsers {
    fn find_by_name(&self, username: &str) -> Option<(User, String)> {
        self.by_id
            .values()
            .find(|(user, ..)| user.username.eq_ignore_ascii_case(username))
            .map(|(user, hash, _)| (user.clone(), hash.clone()))
    }
}
// ANCHOR_END: memory_store

impl MemoryUserStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deletes a user; returns whether there was one. Sessions that belong to
    /// the user stay in the session store, and [`crate::Passport::deserialize`]
    /// turns them into "not logged in".
    pub fn delete(&self, id: i64) -> bool {
        self.write().by_id.remove(&id).is_some()
    }

    // A lock is only poisoned if a thread panicked while holding it. Nothing in
    // here can panic half-way through a change, so the data is still consistent
    // and we keep using it.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, MemoryUsers> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, MemoryUsers> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

// ANCHOR: memory_store_impl
// A std (not tokio) lock is right here: it is held for a few nanoseconds and
// never across an `.await`, so nothing can be stuck waiting on it while holding
// up the runtime.
impl UserStore for MemoryUserStore {
    async fn find_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(User, String)>, StoreError> {
        Ok(self.read().find_by_name(username))
    }

    async fn create(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<User, CreateUserError> {
        // Check and insert under one write lock, so two registrations of the
        // same name cannot both pass the check.
        let mut users = self.write();
        if users.find_by_name(username).is_some() {
            return Err(CreateUserError::Taken);
        }
        users.last_id += 1;
        let user = User {
            id: users.last_id,
            username: username.to_owned(),
        };
        let account = (user.clone(), password_hash.to_owned(), 0);
        users.by_id.insert(user.id, account);
        Ok(user)
    }
    // ANCHOR_END: memory_store_impl

    async fn find_with_epoch(
        &self,
        id: i64,
    ) -> Result<Option<(User, i64)>, StoreError> {
        let users = self.read();
        let found = users.by_id.get(&id);
        Ok(found.map(|(user, _, epoch)| (user.clone(), *epoch)))
    }

    async fn end_sessions(
        &self,
        id: i64,
        new_password_hash: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        // Under one write lock: the new hash and the new epoch together.
        let mut users = self.write();
        Ok(users.by_id.get_mut(&id).map(|(_, hash, epoch)| {
            if let Some(new_hash) = new_password_hash {
                new_hash.clone_into(hash);
            }
            *epoch += 1;
            *epoch
        }))
    }
}
