//! Where reviews are checked: never on the async workers (which keep serving connections and other
//! requests), at most a fixed number at once, each within the review deadline. Small and large
//! reviews have separate lanes, so large ones cannot queue ahead of ordinary ones: small reviews
//! on tokio's blocking threads, large ones on threads of the lowest CPU priority
//! ([`LowPriority`]), so that a flood of the largest reviews takes only the CPU ordinary reviews
//! leave. A review past its deadline is abandoned: its answer is not awaited, and its thread keeps
//! its slot until the work ends, so abandoned work still counts against the limit. No I/O.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::serve::low_priority::LowPriority;

/// Why a check produced no result.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The deadline passed before the check finished (or before a slot was free).
    #[error("not finished within {} ms", .0.as_millis())]
    Overdue(Duration),
    /// The check panicked.
    #[error("the check failed unexpectedly")]
    Panicked,
}

/// Runs checks off the async workers, bounded in number and time.
#[derive(Clone, Debug)]
pub struct Checkers {
    small: Arc<Semaphore>,
    large: Arc<Semaphore>,
    background: LowPriority,
    deadline: Duration,
}

impl Checkers {
    /// `concurrent` checks at once (large ones at most half of them, at least one, on as many
    /// low-priority threads), each within `deadline`.
    pub fn new(concurrent: usize, deadline: Duration) -> std::io::Result<Self> {
        let concurrent = concurrent.max(1);
        let large = (concurrent / 2).max(1);
        Ok(Checkers {
            small: Arc::new(Semaphore::new(concurrent)),
            large: Arc::new(Semaphore::new(large)),
            background: LowPriority::start("large-review", large)?,
            deadline,
        })
    }

    /// Runs `work` at the lowest CPU priority, with no slot and no deadline: for what only a large
    /// review needs once its check is abandoned (reading its uid to refuse it). The queue this
    /// adds to is bounded by the body memory: each such job holds its large body until it ends.
    pub async fn in_background<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CheckError> {
        self.background
            .run(work)
            .await
            .map_err(|_| CheckError::Panicked)
    }

    /// The deadline of each check.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Runs `work` on a thread of its lane once a slot is free; gives up waiting when the deadline
    /// passes (the work, if started, runs on and keeps its slot until it ends).
    pub async fn run<T: Send + 'static>(
        &self,
        large: bool,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CheckError> {
        let lane = Arc::clone(if large { &self.large } else { &self.small });
        let background = large.then(|| self.background.clone());
        let checked = async move {
            let slot = lane
                .acquire_owned()
                .await
                .map_err(|_| CheckError::Panicked)?;
            let work = move || {
                let _slot = slot;
                work()
            };
            match background {
                Some(background) => background.run(work).await.map_err(|_| CheckError::Panicked),
                None => tokio::task::spawn_blocking(work)
                    .await
                    .map_err(|_| CheckError::Panicked),
            }
        };
        tokio::time::timeout(self.deadline, checked)
            .await
            .unwrap_or(Err(CheckError::Overdue(self.deadline)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn work_runs_off_the_async_thread_and_an_overrun_is_abandoned() {
        let checkers = Checkers::new(1, Duration::from_millis(100)).unwrap();
        let async_thread = std::thread::current().id();
        let ran_on = checkers
            .run(false, || std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(ran_on, async_thread);

        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        let started = Instant::now();
        let slow = checkers
            .run(false, move || {
                std::thread::sleep(Duration::from_millis(400));
                flag.store(true, Ordering::SeqCst);
            })
            .await;
        assert!(matches!(slow, Err(CheckError::Overdue(_))), "{slow:?}");
        assert!(started.elapsed() < Duration::from_millis(350));
        assert!(!finished.load(Ordering::SeqCst));
        // The abandoned work still holds the only slot: the next check cannot start in time.
        let queued = checkers.run(false, || ()).await;
        assert!(matches!(queued, Err(CheckError::Overdue(_))), "{queued:?}");
        // The large lane is separate, and runs at the lowest priority.
        let large_thread = checkers
            .run(true, || std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(
            large_thread.is_some_and(|name| name.starts_with("large-review")),
            "large reviews run on the low-priority threads"
        );
    }

    #[tokio::test]
    async fn a_panic_is_reported_not_propagated() {
        let checkers = Checkers::new(2, Duration::from_secs(5)).unwrap();
        let panicked = checkers.run(false, || panic!("boom")).await;
        assert!(matches!(panicked, Err(CheckError::Panicked)));
        let panicked = checkers.run(true, || panic!("boom")).await;
        assert!(matches!(panicked, Err(CheckError::Panicked)));
        assert!(
            checkers.run(true, || ()).await.is_ok(),
            "the large lane lives on"
        );
    }
}
