//! Per-object retry delays: exponential from [`BACKOFF_BASE`] to [`BACKOFF_MAX`], counted per
//! object, reset by a success and forgotten when the object goes — the map never holds more than
//! the objects that are failing now. In memory only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// First delay after a failure that is worth retrying soon.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Longest delay between retries of a failing object.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The delay before retry number `failures` (1 for the first failure): [`BACKOFF_BASE`] doubled
/// each time, at most [`BACKOFF_MAX`].
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << exponent).min(BACKOFF_MAX)
}

/// Consecutive failures per object (`Kind/namespace/name`).
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts one more failure of `key` and returns the delay before retrying it. Before counting,
    /// objects for which `exists` is false are forgotten once the map holds more than
    /// `live_objects` entries (deleted objects never pile up).
    pub fn next(&self, key: &str, live_objects: usize, exists: impl Fn(&str) -> bool) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return backoff(1);
        };
        if failures.len() > live_objects {
            failures.retain(|key, _| exists(key));
        }
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        backoff(*count)
    }

    /// Forgets the failures of `key` (after a success, or once the object is gone).
    pub fn forget(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(backoff: &Backoff) -> usize {
        backoff.failures.lock().map_or(0, |failures| failures.len())
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        assert_eq!(backoff(0), BACKOFF_BASE);
        assert_eq!(backoff(1), BACKOFF_BASE);
        assert_eq!(backoff(2), BACKOFF_BASE * 2);
        assert_eq!(backoff(3), BACKOFF_BASE * 4);
        assert_eq!(backoff(10), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn failures_count_per_object_reset_and_deleted_objects_are_forgotten() {
        let backoff = Backoff::default();
        let all = |_: &str| true;
        assert_eq!(backoff.next("a", 10, all), BACKOFF_BASE);
        assert_eq!(backoff.next("a", 10, all), BACKOFF_BASE * 2);
        backoff.forget("a");
        assert_eq!(backoff.next("a", 10, all), BACKOFF_BASE);
        for key in ["b", "c", "d"] {
            backoff.next(key, 10, all);
        }
        assert_eq!(counted(&backoff), 4);
        // Only "d" is still alive: the others go as soon as the map outgrows the live objects.
        backoff.next("d", 1, |key| key == "d");
        assert_eq!(counted(&backoff), 1);
    }
}
