//! Per-object retry delays: exponential from [`BACKOFF_BASE`] to [`BACKOFF_MAX`], counted per
//! object, reset by a success and forgotten when the object leaves the watch cache. In memory
//! only.

use std::time::Duration;

use kube::Resource;
use kube::runtime::reflector::Store;

use super::per_object::PerObject;

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

/// Consecutive failures per object of one kind.
pub struct Backoff<K: Resource<DynamicType = ()>> {
    failures: PerObject<K, u32>,
}

impl<K: Resource<DynamicType = ()>> Default for Backoff<K> {
    fn default() -> Self {
        Backoff {
            failures: PerObject::default(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone> Backoff<K> {
    /// Counts one more failure of `object` and returns the delay before retrying it (`live`, the
    /// watch cache, bounds what is remembered).
    pub fn next(&self, object: &K, live: &Store<K>) -> Duration {
        let failures = self
            .failures
            .update(object, live, |count| *count = count.saturating_add(1));
        backoff(failures)
    }

    /// Forgets the failures of `object` (after a success, or once the object is gone).
    pub fn forget(&self, object: &K) {
        self.failures.forget(object);
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};

    use super::*;
    use crate::api::{IAMRole, IAMRoleSpec};

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
    fn failures_count_per_object_and_a_success_resets_them() {
        let (live, mut writer) = reflector::store::<IAMRole>();
        let backoff = Backoff::<IAMRole>::default();
        let mut a = IAMRole::new("a", IAMRoleSpec::default());
        a.metadata.namespace = Some("ns".to_owned());
        writer.apply_watcher_event(&watcher::Event::Apply(a.clone()));
        assert_eq!(backoff.next(&a, &live), BACKOFF_BASE);
        assert_eq!(backoff.next(&a, &live), BACKOFF_BASE * 2);
        backoff.forget(&a);
        assert_eq!(backoff.next(&a, &live), BACKOFF_BASE);
    }
}
