//! The jobs a server runs beside its requests: deleting expired sessions
//! here, forgetting idle rate-limit buckets in step 5.
//!
//! A task spawned with `tokio::spawn` and its handle dropped runs until the
//! process exits. That is fine for `main`, and wrong everywhere else: a test
//! that starts and stops twenty servers would leave twenty cleanup loops
//! behind, each holding its database pool open. So every background job is
//! spawned through a [`BackgroundTasks`], which the server's owner stops when
//! the server stops.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinSet;

// ANCHOR: background_tasks
/// The background jobs of one server. Clones share the same set of jobs.
#[derive(Debug, Clone, Default)]
pub struct BackgroundTasks {
    jobs: Arc<Mutex<JoinSet<()>>>,
}

impl BackgroundTasks {
    /// Runs `job` in the background until it ends or [`Self::stop`] is
    /// called.
    pub fn spawn(&self, job: impl Future<Output = ()> + Send + 'static) {
        self.lock().spawn(job);
    }

    /// Stops every job at its next `.await`, and waits until each one has.
    /// Our jobs are loops that wait, then tidy up, so stopping one while it
    /// waits loses nothing. Call it after the server has stopped serving.
    pub async fn stop(&self) {
        let mut jobs = std::mem::take(&mut *self.lock());
        jobs.shutdown().await;
    }
}
// ANCHOR_END: background_tasks

impl BackgroundTasks {
    /// [`Self::spawn`], on the runtime of `handle` (step 5 runs its rooms'
    /// tasks on a thread of their own).
    pub fn spawn_on(
        &self,
        job: impl Future<Output = ()> + Send + 'static,
        handle: &tokio::runtime::Handle,
    ) {
        self.lock().spawn_on(job, handle);
    }

    /// How many jobs are still running.
    pub fn running(&self) -> usize {
        self.lock().len()
    }

    /// The set, without the jobs that have ended (so that it does not grow
    /// with every job ever spawned).
    fn lock(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        // Nothing panics while holding it, so a poisoned set is still sound.
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        while jobs.try_join_next().is_some() {}
        jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn stop_ends_every_job_and_waits_for_it() {
        let tasks = BackgroundTasks::default();
        let (dropped, mut gone) = tokio::sync::mpsc::channel::<()>(1);
        tasks.spawn(async move {
            let _dropped_when_the_job_ends = dropped;
            std::future::pending::<()>().await;
        });
        tasks.spawn(async {}); // ends by itself
        tokio::task::yield_now().await;
        assert_eq!(tasks.running(), 1);

        tasks.stop().await;
        assert_eq!(tasks.running(), 0);
        // The job's captures were dropped: the channel has no sender left.
        let closed = tokio::time::timeout(Duration::from_secs(1), gone.recv());
        assert_eq!(closed.await, Ok(None));
    }
}
