//! A byte rate shared by every large request body: reading a large body waits for its turn, so
//! however many large bodies arrive at once, receiving them (TLS decryption, copies) takes a
//! bounded share of the async workers and ordinary reviews keep theirs. The sender is held back by
//! TCP flow control while a body waits. No I/O.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How far ahead of the rate a quiet pace lets bytes through at once: a tenth of a second's worth.
const BURST: Duration = Duration::from_millis(100);

/// A rate in bytes per second shared by its users, as a schedule: each take is given the time at
/// which its bytes fit in the rate after every earlier take (a virtual-clock token bucket).
#[derive(Debug)]
pub struct Pace {
    bytes_per_second: u64,
    /// When the bytes taken so far have all fitted in the rate (it may be in the past).
    caught_up: Mutex<Instant>,
}

/// The bytes of a take do not fit in the rate before the caller's deadline.
#[derive(Debug, PartialEq, Eq)]
pub struct Late;

impl Pace {
    /// A pace of `bytes_per_second` (at least 1).
    pub fn new(bytes_per_second: u64) -> Self {
        Pace {
            bytes_per_second: bytes_per_second.max(1),
            caught_up: Mutex::new(Instant::now()),
        }
    }

    /// Waits until `bytes` fit in the rate, or fails at once when they would not before `deadline`
    /// (nothing is then taken).
    pub async fn take(&self, bytes: usize, deadline: Instant) -> Result<(), Late> {
        let start = self.schedule(bytes, Instant::now(), deadline)?;
        tokio::time::sleep_until(start).await;
        Ok(())
    }

    /// Whether `bytes` taken now would fit in the rate before `deadline`; nothing is taken.
    pub fn fits(&self, bytes: usize, deadline: Instant) -> bool {
        let caught_up = *self.caught_up.lock().unwrap_or_else(|p| p.into_inner());
        self.slot(caught_up, bytes, Instant::now())
            .is_ok_and(|(_, start)| start <= deadline)
    }

    /// The time from which `bytes` may be read, taken at `now` by a caller that gives up at
    /// `deadline`.
    fn schedule(&self, bytes: usize, now: Instant, deadline: Instant) -> Result<Instant, Late> {
        let mut caught_up = self.caught_up.lock().unwrap_or_else(|p| p.into_inner());
        let (paid, start) = self.slot(*caught_up, bytes, now)?;
        if start > deadline {
            return Err(Late);
        }
        *caught_up = paid;
        Ok(start)
    }

    /// When `bytes` taken at `now` after the takes `caught_up` accounts for would be paid for, and
    /// from when they may be read.
    fn slot(
        &self,
        caught_up: Instant,
        bytes: usize,
        now: Instant,
    ) -> Result<(Instant, Instant), Late> {
        let cost = Duration::try_from_secs_f64(bytes as f64 / self.bytes_per_second as f64)
            .map_err(|_| Late)?;
        let paid = caught_up.max(now).checked_add(cost).ok_or(Late)?;
        Ok((paid, paid.checked_sub(BURST).unwrap_or(now).max(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    /// Asserts `actual` is `expected` within a millisecond (rates are computed in floating point).
    fn assert_near(actual: Instant, expected: Instant) {
        let apart = actual
            .checked_duration_since(expected)
            .unwrap_or_else(|| expected - actual);
        assert!(apart < Duration::from_millis(1), "{apart:?} apart");
    }

    #[test]
    fn a_quiet_pace_lets_a_burst_through_at_once() {
        let pace = Pace::new(MIB as u64);
        let now = Instant::now() + Duration::from_secs(1);
        let far = now + Duration::from_secs(60);
        // A tenth of a second's worth passes without waiting.
        assert_eq!(pace.schedule(MIB / 10, now, far), Ok(now));
        // What follows waits for the rate.
        let next = pace.schedule(MIB / 2, now, far).unwrap();
        assert_near(next, now + Duration::from_millis(500));
    }

    #[test]
    fn takes_are_spread_over_time_at_the_rate_whoever_makes_them() {
        let pace = Pace::new(MIB as u64);
        let now = Instant::now() + Duration::from_secs(1);
        let far = now + Duration::from_secs(60);
        let mut last = now;
        for _ in 0..40 {
            last = pace.schedule(MIB / 4, now, far).unwrap();
        }
        // 10 MiB at 1 MiB/s: the last quarter may be read once all ten are paid for, less the burst.
        assert_near(last, now + Duration::from_secs(10) - BURST);
    }

    #[test]
    fn a_take_that_cannot_fit_before_the_deadline_fails_and_takes_nothing() {
        let pace = Pace::new(MIB as u64);
        let now = Instant::now() + Duration::from_secs(1);
        let soon = now + Duration::from_secs(1);
        assert_eq!(pace.schedule(3 * MIB, now, soon), Err(Late));
        // Nothing was taken: a take within the burst still passes at once.
        assert_eq!(pace.schedule(MIB / 10, now, soon), Ok(now));
    }

    #[tokio::test(start_paused = true)]
    async fn whether_a_take_fits_is_told_without_taking_it() {
        let pace = Pace::new(MIB as u64);
        let now = Instant::now();
        let soon = now + Duration::from_secs(1);
        assert!(pace.fits(MIB, soon));
        assert!(!pace.fits(2 * MIB, soon));
        // Asking took nothing: the whole second's worth is still there to take.
        assert!(pace.take(MIB, soon).await.is_ok());
        assert!(!pace.fits(MIB, soon));
    }

    #[test]
    fn a_take_too_large_for_any_clock_fails_without_panicking() {
        let pace = Pace::new(1);
        let now = Instant::now();
        assert_eq!(pace.schedule(usize::MAX, now, now), Err(Late));
        assert_eq!(pace.schedule(0, now, now), Ok(now));
    }

    #[test]
    fn time_not_used_is_not_saved_up_beyond_the_burst() {
        let pace = Pace::new(MIB as u64);
        let now = Instant::now() + Duration::from_secs(1);
        let later = now + Duration::from_secs(30);
        let far = later + Duration::from_secs(60);
        pace.schedule(MIB / 10, now, far).unwrap();
        // Thirty quiet seconds later, only a burst's worth passes at once again.
        assert_eq!(pace.schedule(MIB / 10, later, far), Ok(later));
        let next = pace.schedule(MIB, later, far).unwrap();
        assert_near(next, later + Duration::from_secs(1));
    }
}
