//! Where reviews are checked, by the size of their body ([`Lane`]). A review of at most
//! [`INLINE_BODY_BYTES`] is checked at once on the async worker that received it: the engine's
//! caps bound such a check to a few milliseconds for the costliest body of that size (the
//! `inline-worst` group of `benches/guardrails.rs`), and an ordinary one costs less than handing
//! it to another thread and back would. Every other review is checked off the async workers
//! (which keep serving connections and other requests), at most a fixed number at once, each
//! within the review deadline. Small and large reviews have separate lanes, so large ones cannot
//! queue ahead of ordinary ones: small reviews on tokio's blocking threads, large ones on threads
//! of the lowest CPU priority ([`LowPriority`]), so that a flood of the largest reviews takes only
//! the CPU ordinary reviews leave. A review past its deadline is abandoned: its answer is not
//! awaited, and its thread keeps its slot until the work ends, so abandoned work still counts
//! against the limit. No I/O.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::limits::{INLINE_BODY_BYTES, SMALL_BODY_BYTES};
use crate::serve::low_priority::LowPriority;

/// Where a review is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// On the async worker, at once: bodies of at most [`INLINE_BODY_BYTES`].
    Inline,
    /// On a blocking thread, within the deadline: bodies of at most [`SMALL_BODY_BYTES`].
    Small,
    /// On a lowest-priority thread, within the deadline: larger bodies.
    Large,
}

impl Lane {
    /// The lane of a body of `length` bytes.
    pub fn of(length: usize) -> Lane {
        if length <= INLINE_BODY_BYTES {
            Lane::Inline
        } else if length <= SMALL_BODY_BYTES {
            Lane::Small
        } else {
            Lane::Large
        }
    }
}

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

    /// Runs `work` in `lane`: at once on this thread, or on a thread of the lane once a slot is
    /// free, giving up waiting when the deadline passes (the work, if started, runs on and keeps
    /// its slot until it ends). Off this thread, work that ends after the deadline is overdue even
    /// when its result arrives before the timer fires.
    pub async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CheckError> {
        if lane == Lane::Inline {
            return catch_unwind(AssertUnwindSafe(work)).map_err(|_| CheckError::Panicked);
        }
        let large = lane == Lane::Large;
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
        let started = Instant::now();
        let checked = tokio::time::timeout(self.deadline, checked)
            .await
            .unwrap_or(Err(CheckError::Overdue(self.deadline)));
        // The timer fires on a millisecond tick: a check that ended past the deadline before the
        // timer fired overran it all the same.
        match checked {
            Ok(_) if started.elapsed() > self.deadline => Err(CheckError::Overdue(self.deadline)),
            checked => checked,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn work_runs_off_the_async_thread_and_an_overrun_is_abandoned() {
        let checkers = Checkers::new(1, Duration::from_millis(100)).unwrap();
        let async_thread = std::thread::current().id();
        let ran_on = checkers
            .run(Lane::Small, || std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(ran_on, async_thread);

        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        let started = Instant::now();
        let slow = checkers
            .run(Lane::Small, move || {
                std::thread::sleep(Duration::from_millis(400));
                flag.store(true, Ordering::SeqCst);
            })
            .await;
        assert!(matches!(slow, Err(CheckError::Overdue(_))), "{slow:?}");
        assert!(started.elapsed() < Duration::from_millis(350));
        assert!(!finished.load(Ordering::SeqCst));
        // The abandoned work still holds the only slot: the next check cannot start in time.
        let queued = checkers.run(Lane::Small, || ()).await;
        assert!(matches!(queued, Err(CheckError::Overdue(_))), "{queued:?}");
        // The large lane is separate, and runs at the lowest priority.
        let large_thread = checkers
            .run(Lane::Large, || {
                std::thread::current().name().map(str::to_owned)
            })
            .await
            .unwrap();
        assert!(
            large_thread.is_some_and(|name| name.starts_with("large-review")),
            "large reviews run on the low-priority threads"
        );
    }

    #[tokio::test]
    async fn a_check_that_ends_past_the_deadline_is_overdue_before_the_timer_fires() {
        // No handed-off check can end within a deadline of zero, whatever the timer's tick.
        let checkers = Checkers::new(2, Duration::ZERO).unwrap();
        for lane in [Lane::Small, Lane::Large] {
            let quick = checkers.run(lane, || 7).await;
            assert!(matches!(quick, Err(CheckError::Overdue(_))), "{quick:?}");
        }
        // An inline check has no deadline.
        assert_eq!(checkers.run(Lane::Inline, || 7).await.unwrap(), 7);
    }

    #[test]
    fn the_lane_follows_the_body_size() {
        assert_eq!(Lane::of(0), Lane::Inline);
        assert_eq!(Lane::of(INLINE_BODY_BYTES), Lane::Inline);
        assert_eq!(Lane::of(INLINE_BODY_BYTES + 1), Lane::Small);
        assert_eq!(Lane::of(SMALL_BODY_BYTES), Lane::Small);
        assert_eq!(Lane::of(SMALL_BODY_BYTES + 1), Lane::Large);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn inline_work_runs_at_once_on_the_calling_thread_without_a_slot() {
        let checkers = Checkers::new(1, Duration::from_millis(100)).unwrap();
        // The only small slot is held by abandoned work...
        let held = checkers
            .run(Lane::Small, || {
                std::thread::sleep(Duration::from_millis(400))
            })
            .await;
        assert!(matches!(held, Err(CheckError::Overdue(_))), "{held:?}");
        // ...and an inline check still runs, here.
        let async_thread = std::thread::current().id();
        let ran_on = checkers
            .run(Lane::Inline, || std::thread::current().id())
            .await
            .unwrap();
        assert_eq!(ran_on, async_thread);
        let panicked = checkers.run(Lane::Inline, || panic!("boom")).await;
        assert!(matches!(panicked, Err(CheckError::Panicked)));
    }

    #[tokio::test]
    async fn a_panic_is_reported_not_propagated() {
        let checkers = Checkers::new(2, Duration::from_secs(5)).unwrap();
        let panicked = checkers.run(Lane::Small, || panic!("boom")).await;
        assert!(matches!(panicked, Err(CheckError::Panicked)));
        let panicked = checkers.run(Lane::Large, || panic!("boom")).await;
        assert!(matches!(panicked, Err(CheckError::Panicked)));
        assert!(
            checkers.run(Lane::Large, || ()).await.is_ok(),
            "the large lane lives on"
        );
    }
}
