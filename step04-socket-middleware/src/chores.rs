//! Work that a handler notices and should not do itself: "this room has grown
//! past its cap" is noticed while a message is sent, but deleting old messages
//! would make the sender wait. [`Chores`] takes the note on the hot path (a
//! set insert), and a background task does each noted chore once, however
//! often it was noted, a pass at a time.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use step02_sessions::BackgroundTasks;
use tokio::sync::Notify;

/// The rest between two passes: a key noted a thousand times meanwhile is
/// done once.
pub const PASS_EVERY: Duration = Duration::from_secs(1);

// ANCHOR: chores
/// Keys (rooms, say) due for a chore. Cheap to clone: clones share the list.
#[derive(Clone, Debug, Default)]
pub struct Chores {
    due: Arc<Mutex<HashSet<String>>>,
    wake: Arc<Notify>,
}

impl Chores {
    /// Chores done by `chore`, in a task of `tasks`, a pass every
    /// [`PASS_EVERY`] at most.
    pub fn start<F, Fut>(tasks: &BackgroundTasks, chore: F) -> Self
    where
        F: FnMut(String) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let chores = Chores::default();
        tasks.spawn(chores.clone().run(PASS_EVERY, chore));
        chores
    }

    /// Notes that `key` is due; costs a set insert, never waits.
    pub fn note(&self, key: &str) {
        let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        if !due.contains(key) && due.insert(key.to_owned()) {
            self.wake.notify_one();
        }
    }

    /// Does `chore` for each key noted, one at a time, then rests `pause`
    /// before the next pass: a key noted a thousand times meanwhile is done
    /// once. Runs until its task is stopped.
    pub async fn run<F, Fut>(self, pause: Duration, mut chore: F)
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            self.wake.notified().await;
            let keys = std::mem::take(
                &mut *self.due.lock().unwrap_or_else(PoisonError::into_inner),
            );
            for key in keys {
                chore(key).await;
            }
            tokio::time::sleep(pause).await;
        }
    }
}
// ANCHOR_END: chores

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_noted_many_times_is_done_once_a_pass() {
        let chores = Chores::default();
        for _ in 0..1000 {
            chores.note("general");
        }
        chores.note("rust");
        let (done, mut told) = tokio::sync::mpsc::unbounded_channel();
        let worker = tokio::spawn(chores.clone().run(
            Duration::from_secs(3600), // one pass in this test
            move |key| {
                let done = done.clone();
                async move { done.send(key).ok().unwrap_or_default() }
            },
        ));
        let mut keys = vec![told.recv().await, told.recv().await];
        keys.sort();
        let rust = Some("rust".to_owned());
        assert_eq!(keys, [Some("general".to_owned()), rust]);
        assert!(told.try_recv().is_err(), "nothing more: each key once");
        worker.abort();
    }
}
