//! Per-object retry delays: exponential from [`BACKOFF_BASE`] to [`BACKOFF_MAX`], counted per
//! object, reset by a success and forgotten when the object leaves the watch cache — the map
//! never holds many more than the objects that exist. In memory only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

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
    failures: Mutex<HashMap<ObjectRef<K>, u32>>,
}

impl<K: Resource<DynamicType = ()>> Default for Backoff<K> {
    fn default() -> Self {
        Backoff {
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone> Backoff<K> {
    /// Counts one more failure of `object` and returns the delay before retrying it. Objects no
    /// longer in `live` (the watch cache) are forgotten first once more are counted than live.
    pub fn next(&self, object: &K, live: &Store<K>) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return backoff(1);
        };
        let live_objects = live.state();
        if failures.len() > live_objects.len() {
            failures.retain(|key, _| live.get(key).is_some());
        }
        let count = failures.entry(ObjectRef::from_obj(object)).or_insert(0);
        *count = count.saturating_add(1);
        backoff(*count)
    }

    /// Forgets the failures of `object` (after a success, or once the object is gone).
    pub fn forget(&self, object: &K) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&ObjectRef::from_obj(object));
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};

    use super::*;
    use crate::api::{IAMRole, IAMRoleSpec};

    fn counted(backoff: &Backoff<IAMRole>) -> usize {
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

    fn role(name: &str) -> IAMRole {
        let mut role = IAMRole::new(name, IAMRoleSpec::default());
        role.metadata.namespace = Some("ns".to_owned());
        role
    }

    #[test]
    fn failures_count_per_object_reset_and_deleted_objects_are_forgotten() {
        let (live, mut writer) = reflector::store::<IAMRole>();
        let backoff = Backoff::<IAMRole>::default();
        let a = role("a");
        writer.apply_watcher_event(&watcher::Event::Apply(a.clone()));
        assert_eq!(backoff.next(&a, &live), BACKOFF_BASE);
        assert_eq!(backoff.next(&a, &live), BACKOFF_BASE * 2);
        backoff.forget(&a);
        assert_eq!(backoff.next(&a, &live), BACKOFF_BASE);
        // Only "a" is in the cache: deleted objects never pile up.
        for name in ["b", "c", "d", "e"] {
            backoff.next(&role(name), &live);
            assert_eq!(counted(&backoff), 2, "{name}");
        }
        backoff.next(&a, &live);
        assert_eq!(counted(&backoff), 1);
        assert_eq!(
            backoff.next(&a, &live),
            BACKOFF_BASE * 4,
            "a kept its count"
        );
    }
}
