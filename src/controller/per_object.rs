//! A small in-memory map from object to what the reconciler remembers of it between reconciles
//! (a failure count, a name found taken), forgotten once the object leaves the watch cache: it
//! never holds many more entries than the objects that exist. No I/O.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

/// One value per object of kind `K`.
pub struct PerObject<K: Resource<DynamicType = ()>, V> {
    entries: Mutex<HashMap<ObjectRef<K>, V>>,
}

impl<K: Resource<DynamicType = ()>, V> Default for PerObject<K, V> {
    fn default() -> Self {
        PerObject {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, V> PerObject<K, V>
where
    K: Resource<DynamicType = ()> + Clone,
    ObjectRef<K>: Hash + Eq,
    V: Default + Clone,
{
    /// Changes the value of `object` with `change` and returns the new value. Objects no longer
    /// in `live` (the watch cache) are forgotten first once twice as many are held as live (so
    /// the scan runs rarely, and a burst of failures stays linear).
    pub fn update(&self, object: &K, live: &Store<K>, change: impl FnOnce(&mut V)) -> V {
        let Ok(mut entries) = self.entries.lock() else {
            let mut value = V::default();
            change(&mut value);
            return value;
        };
        if entries.len() > 2 * live.len() + 1 {
            entries.retain(|key, _| live.get(key).is_some());
        }
        let value = entries.entry(ObjectRef::from_obj(object)).or_default();
        change(value);
        value.clone()
    }

    /// The value of `object`, if any.
    pub fn get(&self, object: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries.get(&ObjectRef::from_obj(object)).cloned()
    }

    /// Forgets `object`.
    pub fn forget(&self, object: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&ObjectRef::from_obj(object));
        }
    }

    /// How many objects are held.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.len())
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};

    use super::*;
    use crate::api::{IAMRole, IAMRoleSpec};

    fn role(name: &str) -> IAMRole {
        let mut role = IAMRole::new(name, IAMRoleSpec::default());
        role.metadata.namespace = Some("ns".to_owned());
        role
    }

    #[test]
    fn values_are_kept_per_object_and_deleted_objects_are_forgotten() {
        let (live, mut writer) = reflector::store::<IAMRole>();
        let memory = PerObject::<IAMRole, u32>::default();
        let a = role("a");
        writer.apply_watcher_event(&watcher::Event::Apply(a.clone()));
        assert_eq!(memory.update(&a, &live, |n| *n += 1), 1);
        assert_eq!(memory.update(&a, &live, |n| *n += 1), 2);
        assert_eq!(memory.get(&a), Some(2));
        // Only "a" is in the cache: objects that are gone never pile up.
        for name in ["b", "c", "d", "e"] {
            memory.update(&role(name), &live, |n| *n += 1);
            assert!(memory.held() <= 4, "{name}");
        }
        assert_eq!(memory.get(&a), Some(2), "a live object keeps its value");
        memory.forget(&a);
        assert_eq!(memory.get(&a), None);
    }
}
