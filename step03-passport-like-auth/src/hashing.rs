//! Argon2, bounded: at most a few hashes at a time, each in memory that is
//! reused.
//!
//! Argon2 is slow and memory-hungry on purpose (19 MiB and tens of milliseconds
//! per hash with the default cost). Left alone, 150 simultaneous logins run 150
//! hashes at once: 2.7 GiB of memory, and every login waits seconds for a CPU.
//! So a [`HashPool`] runs at most `workers` hashes at a time (about one per
//! core), lets `queue` more wait, and refuses the rest at once with
//! [`AuthError::Busy`] (a `503` with `Retry-After: 1`).
//!
//! Each running hash borrows a [`Workspace`]: its 19 MiB of Argon2 blocks,
//! allocated once and reused. Allocating them per hash looks harmless, but
//! glibc keeps freed blocks of that size in per-thread arenas instead of giving
//! them back, so the memory of a flood stayed with the process long after it
//! ended.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{
    self, Output, ParamsString, PasswordHash, Salt, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::passport::AuthError;

// ANCHOR: pool
/// Runs Argon2 on tokio's blocking threads, `workers` at a time, with `queue`
/// more waiting. Cheap to clone: clones share the same limits and workspaces.
#[derive(Clone)]
pub struct HashPool {
    inner: Arc<Pool>,
}

struct Pool {
    /// Argon2id with the cost that every new hash gets.
    hasher: Argon2<'static>,
    /// `workers + queue` permits: a request that gets none is refused (503).
    admitted: Arc<Semaphore>,
    /// `workers` permits: the hashes that run right now.
    running: Arc<Semaphore>,
    /// The Argon2 memory of the hashes not running: never more than `workers`
    /// of them.
    workspaces: Mutex<Vec<Workspace>>,
    workers: usize,
    /// How many hashes run right now, and the most there ever were (see
    /// [`HashPool::peak`]).
    busy: AtomicUsize,
    peak: AtomicUsize,
}

/// One hash's Argon2 memory (`m_cost` blocks of 1 KiB), kept for the next hash.
#[derive(Default)]
struct Workspace {
    blocks: Vec<Block>,
}
// ANCHOR_END: pool

impl HashPool {
    /// A pool for Argon2id with `params`, running at most `workers` hashes at a
    /// time and letting at most `queue` more wait.
    pub fn new(params: Params, workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self {
            inner: Arc::new(Pool {
                hasher: Argon2::new(
                    Algorithm::Argon2id,
                    Version::V0x13,
                    params,
                ),
                admitted: Arc::new(Semaphore::new(workers + queue)),
                running: Arc::new(Semaphore::new(workers)),
                workspaces: Mutex::new(Vec::new()),
                workers,
                busy: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
        }
    }

    /// A new pool with the same cost and other bounds.
    pub fn resized(&self, workers: usize, queue: usize) -> Self {
        Self::new(self.inner.hasher.params().clone(), workers, queue)
    }

    /// The most hashes that have ever run at the same time: never more than the
    /// workers.
    pub fn peak(&self) -> usize {
        self.inner.peak.load(Ordering::Relaxed)
    }

    /// How many hashes may run at the same time.
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    /// Hashes `password` with a fresh salt into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let password = password.to_owned();
        self.run(move |hasher, workspace| workspace.hash(hasher, &password))
            .await
    }

    /// Checks `password` against a PHC string: `Ok(false)` for a wrong
    /// password.
    pub async fn verify(
        &self,
        password: &str,
        phc_hash: &str,
    ) -> Result<bool, AuthError> {
        let (password, phc_hash) = (password.to_owned(), phc_hash.to_owned());
        self.run(move |_, workspace| workspace.verify(&password, &phc_hash))
            .await
    }

    /// [`HashPool::hash`] on the current thread, outside the limits: for the
    /// one hash a server makes at startup, before there is a runtime to wait
    /// on.
    pub fn hash_now(
        &self,
        password: &str,
    ) -> Result<String, password_hash::Error> {
        Workspace::default().hash(&self.inner.hasher, password)
    }

    // ANCHOR: run
    /// Waits for a turn (or refuses at once when the queue is full), then runs
    /// `job` with a workspace on a blocking thread.
    async fn run<T, F>(&self, job: F) -> Result<T, AuthError>
    where
        T: Send + 'static,
        F: FnOnce(
            &Argon2<'static>,
            &mut Workspace,
        ) -> Result<T, password_hash::Error>,
        F: Send + 'static,
    {
        let pool = Arc::clone(&self.inner);
        let admitted = Arc::clone(&pool.admitted)
            .try_acquire_owned()
            .map_err(|_| AuthError::Busy)?;
        let running = acquire(&pool.running).await?;
        // The permits move into the blocking task: if the request is dropped
        // half-way, the hash still counts against the limit until it really
        // ends.
        let outcome = tokio::task::spawn_blocking(move || {
            let _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit) =
                (admitted, running);
            let mut workspace = pool.take_workspace();
            let outcome = job(&pool.hasher, &mut workspace);
            pool.return_workspace(workspace);
            outcome
        })
        .await?;
        Ok(outcome?)
    }
    // ANCHOR_END: run
}

async fn acquire(
    semaphore: &Arc<Semaphore>,
) -> Result<OwnedSemaphorePermit, AuthError> {
    // Only a closed semaphore fails, and nothing closes these.
    Arc::clone(semaphore)
        .acquire_owned()
        .await
        .map_err(|_| AuthError::Busy)
}

impl Pool {
    fn take_workspace(&self) -> Workspace {
        let now = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.lock().pop().unwrap_or_default()
    }

    fn return_workspace(&self, workspace: Workspace) {
        self.lock().push(workspace);
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }

    // A poisoned lock only means a hash panicked; the list of workspaces is
    // still a list.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Workspace>> {
        self.workspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Workspace {
    // ANCHOR: hashing
    /// Hashes `password` with a fresh random salt into a PHC string such as
    /// `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`. The string carries the
    /// algorithm, the cost and the salt, so verifying needs nothing else, even
    /// after the defaults change.
    fn hash(
        &mut self,
        hasher: &Argon2<'_>,
        password: &str,
    ) -> Result<String, password_hash::Error> {
        let salt = SaltString::generate(&mut OsRng);
        let params = hasher.params();
        let length = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let output = self.compute(hasher, password, salt.as_salt(), length)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(params)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }
    // ANCHOR_END: hashing

    // ANCHOR: verifying
    /// `Ok(false)` for a wrong password; `Err` only if `phc_hash` is not a
    /// valid PHC string. The cost comes from the string, not from today's
    /// defaults.
    fn verify(
        &mut self,
        password: &str,
        phc_hash: &str,
    ) -> Result<bool, password_hash::Error> {
        let parsed = PasswordHash::new(phc_hash)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(password_hash::Error::PhcStringField);
        };
        let version = parsed.version.map(Version::try_from).transpose()?;
        let hasher = Argon2::new(
            Algorithm::try_from(parsed.algorithm)?,
            version.unwrap_or_default(),
            Params::try_from(&parsed)?,
        );
        let computed = self.compute(&hasher, password, salt, expected.len())?;
        // `Output`'s `==` takes the same time however many bytes match.
        Ok(computed == expected)
    }
    // ANCHOR_END: verifying

    /// Argon2 into this workspace's blocks, grown once to the size the cost
    /// asks for.
    fn compute(
        &mut self,
        hasher: &Argon2<'_>,
        password: &str,
        salt: Salt<'_>,
        length: usize,
    ) -> Result<Output, password_hash::Error> {
        let mut salt_bytes = [0; Salt::MAX_LENGTH];
        let salt = salt.decode_b64(&mut salt_bytes)?;
        let needed = hasher.params().block_count();
        if self.blocks.len() < needed {
            self.blocks.resize(needed, Block::default());
        }
        let blocks = &mut self.blocks[..needed];
        Output::init_with(length, |out| {
            Ok(hasher.hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                out,
                &mut *blocks,
            )?)
        })
    }
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("params", self.inner.hasher.params())
            .field("workers", &self.inner.workers)
            .field("peak", &self.peak())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Params {
        Params::new(8, 1, 1, None).expect("valid test params")
    }

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, tiny());
        let mut workspace = Workspace::default();
        let hash = workspace.hash(&hasher, "correct-horse").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{hash}");
        assert_eq!(workspace.verify("correct-horse", &hash).ok(), Some(true));
        assert_eq!(workspace.verify("wrong-horse", &hash).ok(), Some(false));
        assert!(workspace.verify("correct-horse", "not a hash").is_err());
    }

    #[test]
    fn hashes_agree_with_the_argon2_crate_both_ways() {
        use argon2::PasswordHasher as _;
        use argon2::PasswordVerifier as _;
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, tiny());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = hasher
            .hash_password(b"correct-horse", &salt)
            .expect("hash")
            .to_string();
        let mut workspace = Workspace::default();
        assert_eq!(workspace.verify("correct-horse", &theirs).ok(), Some(true));

        let ours = workspace.hash(&hasher, "correct-horse").expect("hash");
        let parsed = PasswordHash::new(&ours).expect("a PHC string");
        assert!(hasher.verify_password(b"correct-horse", &parsed).is_ok());
    }

    #[test]
    fn a_hash_made_with_another_cost_still_verifies() {
        let old = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 2, 1, None).expect("valid params"),
        );
        let hash = Workspace::default().hash(&old, "pw-123456").expect("hash");
        // A workspace sized for the cheaper cost grows for this one.
        let mut workspace = Workspace::default();
        let new = Argon2::new(Algorithm::Argon2id, Version::V0x13, tiny());
        workspace.hash(&new, "x").expect("hash");
        assert_eq!(workspace.verify("pw-123456", &hash).ok(), Some(true));
    }
}
