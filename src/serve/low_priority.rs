//! A few threads at the lowest CPU priority (Linux's `SCHED_IDLE` policy, and nice 19 where that
//! is refused) for work that must never delay ordinary work when the CPU is short: the checks of
//! large reviews. On a busy machine the kernel's scheduler then gives them only what the
//! normal-priority threads leave, so a flood of the largest reviews cannot raise the latency of
//! ordinary ones. Jobs wait in a queue in arrival order; the
//! threads end when the last handle is dropped. Sets the threads' priority through the C library.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// The niceness of the threads: the lowest priority a thread may give itself.
const NICENESS: i32 = 19;

type Job = Box<dyn FnOnce() + Send>;

/// Why a job produced no result.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The job panicked, or the pool is gone.
    #[error("the background work failed unexpectedly")]
    Failed,
}

/// A handle to the pool; clones share its threads.
#[derive(Clone, Debug)]
pub struct LowPriority {
    jobs: Sender<Job>,
}

impl LowPriority {
    /// Starts `threads` threads (at least one) named `name-N`.
    pub fn start(name: &str, threads: usize) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || work_off(&queue))?;
        }
        Ok(LowPriority { jobs })
    }

    /// Runs `work` on one of the threads once they are free; its result, or why there is none.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JobError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(work));
            // Nobody waits any more when the caller gave up: the result is dropped.
            let _ = done.send(outcome.map_err(|_| JobError::Failed));
        });
        self.jobs.send(job).map_err(|_| JobError::Failed)?;
        result.await.map_err(|_| JobError::Failed)?
    }
}

/// One thread's life: lower its own priority, then run jobs until the pool is dropped.
fn work_off(queue: &Mutex<Receiver<Job>>) {
    lower_own_priority();
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Gives the calling thread the lowest CPU priority: the idle scheduling policy (it runs only when
/// no other thread wants the CPU) and the highest niceness (on Linux both are per thread).
/// Lowering is always allowed; if the system refuses anyway, the thread runs at normal priority.
pub fn lower_own_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: `setpriority` takes no pointer; `sched_setscheduler` reads the parameter block
    // initialised here; with pid 0 both change only the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, NICENESS);
        let idle = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle);
    }
}

/// The calling thread's niceness and scheduling policy, for tests.
#[cfg(all(test, target_os = "linux"))]
fn own_priority() -> (i32, i32) {
    // SAFETY: as in `lower_own_priority`; both calls only read.
    unsafe {
        (
            libc::getpriority(libc::PRIO_PROCESS, 0),
            libc::sched_getscheduler(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_off_the_caller_at_the_lowest_priority() {
        let pool = LowPriority::start("test-low", 1).unwrap();
        let caller = std::thread::current().id();
        let (ran_on, priority) = pool
            .run(|| (std::thread::current().id(), own_priority()))
            .await
            .unwrap();
        assert_ne!(ran_on, caller);
        assert_eq!(priority, (NICENESS, libc::SCHED_IDLE));
        let (niceness, policy) = own_priority();
        assert!(niceness < NICENESS, "the caller keeps its priority");
        assert_ne!(policy, libc::SCHED_IDLE);
    }

    #[tokio::test]
    async fn a_panic_is_reported_and_the_thread_lives_on() {
        let pool = LowPriority::start("test-low", 1).unwrap();
        let panicked = pool.run(|| panic!("boom")).await;
        assert_eq!(panicked, Err(JobError::Failed));
        assert_eq!(pool.run(|| 7).await, Ok(7));
    }
}
