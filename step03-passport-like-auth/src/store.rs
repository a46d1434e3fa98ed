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

/// The three questions a login system asks about users.
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
    /// The user with this id, if it (still) exists. Used on every request by
    /// [`crate::Passport::deserialize`].
    fn find_by_id(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

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
}
// ANCHOR_END: user_store

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
    /// id → (user, PHC password hash)
    by_id: BTreeMap<i64, (User, String)>,
}

impl MemoryUsers {
    fn find_by_name(&self, username: &str) -> Option<&(User, String)> {
        self.by_id
            .values()
            .find(|(user, _)| user.username.eq_ignore_ascii_case(username))
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
    async fn find_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        Ok(self.read().by_id.get(&id).map(|(user, _)| user.clone()))
    }

    async fn find_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(User, String)>, StoreError> {
        Ok(self.read().find_by_name(username).cloned())
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
        users
            .by_id
            .insert(user.id, (user.clone(), password_hash.to_owned()));
        Ok(user)
    }
}
// ANCHOR_END: memory_store_impl
