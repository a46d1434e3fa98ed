//! Passport's moving parts, each under the name a Passport user knows it by.
//!
//! | Passport                      | here                          |
//! |-------------------------------|-------------------------------|
//! | `new LocalStrategy(verify)`   | [`Passport::authenticate`]    |
//! | `serializeUser`               | inside [`Passport::login`]    |
//! | `deserializeUser`             | [`Passport::deserialize`]     |
//! | `req.login(user)`             | [`Passport::login`]           |
//! | `req.logout()`                | [`Passport::logout`]          |
//! | (nothing built in)            | [`Passport::logout_everywhere`], [`Passport::change_password`] |
//!
//! A `Passport` is cheap to clone and holds no per-request data: the request's
//! data lives in its [`Session`]. That is why every method takes the session as
//! an argument.

use std::fmt;
use std::sync::Arc;

use argon2::Params;
use argon2::password_hash;
use tower_sessions::Session;
use tower_sessions::cookie::time::Duration;
use tower_sessions::session::Id;
use unicode_normalization::UnicodeNormalization;

use crate::hashing::HashPool;
use crate::limits::{AuthLimits, AuthThrottle};
use crate::store::{CreateUserError, StoreError, User, UserStore};

/// The session key under which [`Passport::login`] stores the user id.
/// Passport.js keeps it at `req.session.passport.user`; this is the same idea
/// under a flat key.
pub const SESSION_USER_ID_KEY: &str = "passport.user";

/// The session key holding the user's session epoch as it was at login (see
/// [`UserStore::find_with_epoch`]).
pub const SESSION_EPOCH_KEY: &str = "passport.epoch";

/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// The allowed length of a username, in characters.
pub const USERNAME_CHARS: std::ops::RangeInclusive<usize> = 3..=32;

// ANCHOR: passport
/// The object handlers use: the strategy, serialize/deserialize, login and
/// logout, over a user store `U`.
#[derive(Clone)]
pub struct Passport<U> {
    users: U,
    /// Argon2id with the cost every new hash gets, a few hashes at a time.
    hashes: HashPool,
    /// A hash of a password nobody knows, made with the same parameters. A
    /// login for an unknown username is checked against it, so that it takes as
    /// long as a wrong password.
    dummy_hash: Arc<str>,
    /// How many logins and registrations a client may try (see
    /// [`crate::limits`]).
    throttle: Arc<AuthThrottle>,
    logout_hooks: Vec<LogoutHook>,
    /// How long a login lasts, however active (step 2's
    /// `absolute_lifetime`).
    absolute_lifetime: Duration,
}

type LogoutHook = Arc<dyn Fn(&LogoutEvent) + Send + Sync>;

/// What an [`Passport::on_logout`] hook is told about a logout that is about to
/// happen.
#[derive(Clone, Debug)]
pub struct LogoutEvent {
    /// The id of the session being destroyed; `None` if the request had no
    /// stored session.
    pub session_id: Option<Id>,
    /// Who was logged in on it, if anyone.
    pub user: Option<User>,
    /// Which sessions end: this one, or the user's.
    pub scope: LogoutScope,
}
// ANCHOR_END: passport

/// Which sessions a [`LogoutEvent`] ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogoutScope {
    /// `session_id` only: a logout, or a login that replaces the session.
    ThisSession,
    /// Every session of `user`: `POST /logout-everywhere`.
    EveryUserSession,
    /// Every session of `user` but `session_id`, which goes on under the new
    /// id `kept_as`: a password change.
    OtherUserSessions {
        /// The id `session_id` was given, so that what belongs to the
        /// session (its sockets) can follow it.
        kept_as: Option<Id>,
    },
}

// ANCHOR: new
impl<U: UserStore> Passport<U> {
    /// A passport with the argon2 crate's default cost (Argon2id, 19 MiB, 2
    /// passes): the OWASP-recommended minimum. Hashes once, for the dummy hash,
    /// so call it at startup.
    pub fn new(users: U) -> Self {
        Self::with_hasher_params(users, Params::default())
    }

    /// A passport with other Argon2 cost parameters. Tests use tiny ones,
    /// because a debug build of argon2 is slow; a real server should keep
    /// [`Passport::new`]'s defaults.
    ///
    /// Both start with [`AuthLimits::default`]; a binary passes the
    /// environment's settings to [`Passport::with_limits`].
    pub fn with_hasher_params(users: U, params: Params) -> Self {
        let limits = AuthLimits::default();
        let hashes =
            HashPool::new(params, limits.hash_workers, limits.hash_queue);
        let dummy_hash = hashes
            .hash_now("not the password of anyone")
            // Only bad parameters make hashing fail, and `Params` were checked
            // when built.
            .expect("hashing with validated Argon2 parameters cannot fail");
        Self {
            users,
            hashes,
            dummy_hash: dummy_hash.into(),
            throttle: Arc::new(AuthThrottle::new(limits)),
            logout_hooks: Vec::new(),
            absolute_lifetime: step02_sessions::DEFAULT_ABSOLUTE_LIFETIME,
        }
    }

    /// The same passport, logging out a session `lifetime` after its login
    /// however active it is: pass `SessionConfig::absolute_lifetime`.
    pub fn with_absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.absolute_lifetime = lifetime;
        self
    }
}
// ANCHOR_END: new

// ANCHOR: users_and_hooks
impl<U: UserStore> Passport<U> {
    /// The user store, for handlers that need more than this module offers.
    pub fn users(&self) -> &U {
        &self.users
    }

    /// Registers a hook that [`Passport::logout`] runs before it destroys the
    /// session. Step04 uses one to disconnect the sockets that were opened with
    /// that session.
    pub fn on_logout(
        mut self,
        hook: impl Fn(&LogoutEvent) + Send + Sync + 'static,
    ) -> Self {
        self.logout_hooks.push(Arc::new(hook));
        self
    }
}
// ANCHOR_END: users_and_hooks

// ANCHOR: with_limits
impl<U: UserStore> Passport<U> {
    /// The same passport with other throttles and Argon2 bounds, typically
    /// `AuthLimits::from_env()?`. Call it before the server starts: the
    /// counters start empty.
    pub fn with_limits(mut self, limits: AuthLimits) -> Self {
        self.hashes =
            self.hashes.resized(limits.hash_workers, limits.hash_queue);
        self.throttle = Arc::new(AuthThrottle::new(limits));
        self
    }

    /// The throttles' counters, for the routes.
    pub fn throttle(&self) -> &AuthThrottle {
        &self.throttle
    }

    /// The settings of the throttles and the Argon2 bound.
    pub fn limits(&self) -> &AuthLimits {
        self.throttle.limits()
    }

    /// The pool that runs Argon2, to see how busy it has been.
    pub fn hash_pool(&self) -> &HashPool {
        &self.hashes
    }
}
// ANCHOR_END: with_limits

impl<U: UserStore> Passport<U> {
    // ANCHOR: authenticate
    /// The local strategy: `Ok(Some(user))` if the username exists and the
    /// password matches its hash, `Ok(None)` otherwise. Which of the two was
    /// wrong is not said, on purpose.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<User>, AuthError> {
        let username = canonical_username(username);
        let (user, hash) = match self.users.find_credentials(&username).await? {
            Some((user, hash)) => (Some(user), hash),
            // Without this, "no such user" would answer in microseconds and
            // "wrong password" only after a full Argon2 run: an attacker could
            // tell which usernames exist just by timing the 401s.
            None => (None, self.dummy_hash.to_string()),
        };
        // Argon2 is tens of milliseconds of pure CPU, on purpose. The pool runs
        // it on tokio's blocking threads (`spawn_blocking`), never on a runtime
        // worker thread, where it would freeze every other request and socket
        // scheduled there.
        let matches = self.hashes.verify(password, &hash).await?;
        Ok(user.filter(|_| matches))
    }
    // ANCHOR_END: authenticate

    // ANCHOR: login
    /// `req.login(user)`: makes `session` belong to `user`.
    pub async fn login(
        &self,
        session: &Session,
        user: &User,
    ) -> Result<(), AuthError> {
        // Whoever was logged in on this session before is logged out everywhere
        // first: step04's hook closes the sockets opened with the old id, which
        // is about to vanish.
        let before = self.deserialize(session).await?;
        // Read after `deserialize`: loading the session drops an id the store
        // does not know.
        if let Some(old_id) = session.id() {
            self.run_logout_hooks(&LogoutEvent {
                session_id: Some(old_id),
                user: before,
                scope: LogoutScope::ThisSession,
            });
        }
        // Session fixation: if an attacker planted a session id in the victim's
        // browser before the login, keeping that id would hand the attacker a
        // logged-in session. A new id makes the old one worthless. (The layer
        // sends the new cookie.)
        session.cycle_id().await?;
        // serializeUser: only the id goes into the session. Everything else
        // about the user is loaded fresh on each request, so a rename or a
        // deletion is seen at once.
        session.insert(SESSION_USER_ID_KEY, user.id).await?;
        // The user's session epoch today: moving it on later ends this session.
        let epoch = self.users.find_with_epoch(user.id).await?;
        let epoch = epoch.map_or(0, |(_, epoch)| epoch);
        session.insert(SESSION_EPOCH_KEY, epoch).await?;
        // The absolute lifetime counts from here; activity keeps the session
        // alive until then (`passport_session` touches it).
        step02_sessions::start(session).await?;
        step02_sessions::renew(session).await?;
        Ok(())
    }
    // ANCHOR_END: login

    // ANCHOR: deserialize
    /// `deserializeUser`: who is logged in on this session, if anyone.
    ///
    /// A session whose user no longer exists is "not logged in" (and forgets
    /// the id), not an error: deleting an account must not turn its open
    /// sessions into 500 pages. So is a session that the user ended from
    /// elsewhere, or that outlived its absolute lifetime: it is destroyed.
    pub async fn deserialize(
        &self,
        session: &Session,
    ) -> Result<Option<User>, AuthError> {
        let Some(user_id) = session.get::<i64>(SESSION_USER_ID_KEY).await?
        else {
            return Ok(None);
        };
        match self.users.find_with_epoch(user_id).await? {
            Some((user, epoch)) => {
                if self.still_valid(session, epoch).await? {
                    return Ok(Some(user));
                }
                tracing::info!(user_id, "session ended or too old");
                self.end(session, Some(user), LogoutScope::ThisSession)
                    .await?;
                Ok(None)
            }
            None => {
                tracing::info!(
                    user_id,
                    "session belongs to a deleted user; logging it out"
                );
                session.remove::<i64>(SESSION_USER_ID_KEY).await?;
                Ok(None)
            }
        }
    }
    // ANCHOR_END: deserialize

    // ANCHOR: still_valid
    /// Whether a logged-in session still counts: its copy of the session
    /// epoch is the user's `epoch` (no logout everywhere, no password change
    /// since its login), and its login is younger than the absolute lifetime.
    async fn still_valid(
        &self,
        session: &Session,
        epoch: i64,
    ) -> Result<bool, AuthError> {
        let copy = session.get::<i64>(SESSION_EPOCH_KEY).await?;
        let lifetime = self.absolute_lifetime;
        Ok(copy.unwrap_or(0) == epoch
            && !step02_sessions::outlived(session, lifetime).await?)
    }
    // ANCHOR_END: still_valid

    // ANCHOR: logout
    /// `req.logout()`: runs the [`Passport::on_logout`] hooks, then destroys
    /// the session in the store. The layer then tells the browser to delete the
    /// cookie.
    pub async fn logout(&self, session: &Session) -> Result<(), AuthError> {
        // Who is logging out is only news for the hooks; failing to find out
        // must not stop the logout itself.
        let user = self.deserialize(session).await.unwrap_or_else(|error| {
            tracing::warn!(
                %error,
                "could not load the user who is logging out"
            );
            None
        });
        self.end(session, user, LogoutScope::ThisSession).await
    }

    /// Runs the hooks for `scope`, then destroys `session`.
    async fn end(
        &self,
        session: &Session,
        user: Option<User>,
        scope: LogoutScope,
    ) -> Result<(), AuthError> {
        // Read after `deserialize`: loading the session drops an id the store
        // does not know.
        let session_id = session.id();
        self.run_logout_hooks(&LogoutEvent {
            session_id,
            user,
            scope,
        });
        // Not just removing the user id: anything else the session held (a
        // cart, a flash message) was the logged-in user's too.
        session.flush().await?;
        Ok(())
    }
    // ANCHOR_END: logout

    // ANCHOR: logout_everywhere
    /// "Log out everywhere": ends every session of `user`, this one too.
    /// Moving the epoch on makes every other session, wherever it is stored,
    /// log out when next read; the hooks close the sockets now.
    pub async fn logout_everywhere(
        &self,
        session: &Session,
        user: &User,
    ) -> Result<(), AuthError> {
        self.users.end_sessions(user.id, None).await?;
        let scope = LogoutScope::EveryUserSession;
        self.end(session, Some(user.clone()), scope).await
    }
    // ANCHOR_END: logout_everywhere

    // ANCHOR: change_password
    /// Gives `user` a new password (the caller checked the current one),
    /// keeps this session logged in under a new id, and ends every other
    /// session of the user: whoever learnt the old password, or stole a
    /// cookie, is out. `Ok(false)` if the user no longer exists.
    pub async fn change_password(
        &self,
        session: &Session,
        user: &User,
        new_password: &str,
    ) -> Result<bool, RegisterError> {
        validate_password(new_password)?;
        let hash = self.hashes.hash(new_password).await?;
        let users = &self.users;
        let ended = users.end_sessions(user.id, Some(&hash)).await;
        let Some(epoch) = ended.map_err(AuthError::from)? else {
            return Ok(false);
        };
        // A change of privilege, like a login: a new id (OWASP), saved now so
        // that the hooks can tell this session's sockets where it went.
        let old_id = session.id();
        session.cycle_id().await.map_err(AuthError::from)?;
        let epoch_copy = session.insert(SESSION_EPOCH_KEY, epoch).await;
        epoch_copy.map_err(AuthError::from)?;
        session.save().await.map_err(AuthError::from)?;
        self.run_logout_hooks(&LogoutEvent {
            session_id: old_id,
            user: Some(user.clone()),
            scope: LogoutScope::OtherUserSessions {
                kept_as: session.id(),
            },
        });
        Ok(true)
    }
    // ANCHOR_END: change_password

    fn run_logout_hooks(&self, event: &LogoutEvent) {
        for hook in &self.logout_hooks {
            hook(event);
        }
    }

    // ANCHOR: register
    /// Creates an account: checks the input, hashes the password, stores the
    /// user. It does not log the user in; the `/register` route does that with
    /// [`Passport::login`].
    pub async fn register(
        &self,
        username: &str,
        password: &str,
    ) -> Result<User, RegisterError> {
        // The canonical form is what is stored, shown and compared: `ALICE` and
        // the fullwidth `ａｌｉｃｅ` are both `alice`, and so taken if she exists.
        let username = canonical_username(username);
        validate_username(&username)?;
        validate_password(password)?;
        let hash = self.hashes.hash(password).await?;
        match self.users.create(&username, &hash).await {
            Ok(user) => Ok(user),
            Err(CreateUserError::Taken) => Err(RegisterError::Taken),
            Err(CreateUserError::Store(error)) => {
                Err(AuthError::from(error).into())
            }
        }
    }
    // ANCHOR_END: register
}

// ANCHOR: validation
/// The one form of a username: Unicode NFKC (`ﬁ` → `fi`, fullwidth `ａ` → `a`),
/// then lower case. Registration stores it, login looks it up, the throttles
/// count by it.
pub fn canonical_username(username: &str) -> String {
    username.nfkc().collect::<String>().to_ascii_lowercase()
}

/// After [`canonical_username`]: 3 to 32 of `a-z 0-9 _ -`. ASCII only, so no
/// Cyrillic `а` can pass for a Latin `a`; lower case only, so no `I` can pass
/// for an `l`.
fn validate_username(username: &str) -> Result<(), RegisterError> {
    let allowed = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
    };
    if USERNAME_CHARS.contains(&username.chars().count())
        && username.chars().all(allowed)
    {
        Ok(())
    } else {
        Err(RegisterError::InvalidUsername)
    }
}

fn validate_password(password: &str) -> Result<(), RegisterError> {
    // Characters, not bytes: "pässwörd" is 8 characters but 10 bytes.
    if password.chars().count() >= MIN_PASSWORD_CHARS {
        Ok(())
    } else {
        Err(RegisterError::WeakPassword)
    }
}
// ANCHOR_END: validation

impl<U: fmt::Debug> fmt::Debug for Passport<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hooks are closures and cannot be printed; say how many there are.
        f.debug_struct("Passport")
            .field("users", &self.users)
            .field("hashes", &self.hashes)
            .field("throttle", &self.throttle)
            .field("logout_hooks", &self.logout_hooks.len())
            .field("absolute_lifetime", &self.absolute_lifetime)
            .finish_non_exhaustive()
    }
}

// ANCHOR: auth_error
/// Something failed that is not the user's fault. Every variant becomes the
/// same 500 answer (see its `IntoResponse` in `routes.rs`); the details go to
/// the log only.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The user store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session store failed.
    #[error("session store failed: {0}")]
    Session(#[from] tower_sessions::session::Error),
    /// A stored password hash could not be parsed or computed.
    #[error("password hashing failed: {0}")]
    PasswordHash(#[from] password_hash::Error),
    /// The blocking task that hashes passwords panicked or was cancelled.
    #[error("password hashing task failed: {0}")]
    Blocking(#[from] tokio::task::JoinError),
    /// Too many passwords are being checked already: try again in a second (a
    /// `503`).
    #[error("too many password checks at once")]
    Busy,
}
// ANCHOR_END: auth_error

// ANCHOR: register_error
/// Why [`Passport::register`] did not create an account. The messages are shown
/// to users.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The username breaks the rules: 3 to 32 of `a-z 0-9 _ -` (after NFKC and
    /// lower case).
    #[error(
        "Username must be 3 to 32 characters long and use only letters, \
         digits, _ and -"
    )]
    InvalidUsername,
    /// The password is too short.
    #[error("Password must be at least {} characters long", MIN_PASSWORD_CHARS)]
    WeakPassword,
    /// Somebody already has this username.
    #[error("Username is already taken")]
    Taken,
    /// Not the user's fault: see [`AuthError`].
    #[error(transparent)]
    Internal(#[from] AuthError),
}
// ANCHOR_END: register_error

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_documented_rules() {
        for good in
            ["abc", "alice", "Bob_the-2nd", "ａｌｉｃｅ", &"x".repeat(32)]
        {
            assert!(
                validate_username(&canonical_username(good)).is_ok(),
                "{good:?} should be allowed"
            );
        }
        for bad in [
            "",
            "ab",
            &"x".repeat(33),
            "al ice",
            "alice!",
            "élodie",
            "<b>x</b>",
            "\u{430}lice", // a Cyrillic а
            "al\u{200b}ice",
        ] {
            let canonical = canonical_username(bad);
            assert!(
                validate_username(&canonical).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn usernames_that_look_alike_have_one_canonical_form() {
        assert_eq!(canonical_username("ALICE"), "alice");
        assert_eq!(canonical_username("ａｌｉｃｅ"), "alice");
        // `aIice` (capital i) is no longer confusable once shown in lower case:
        // `aiice`.
        assert_eq!(canonical_username("aIice"), "aiice");
    }

    #[test]
    fn password_length_counts_characters_not_bytes() {
        // 8 characters, 10 bytes
        assert!(validate_password("pässwörd").is_ok());
        assert!(validate_password("1234567").is_err());
    }
}
