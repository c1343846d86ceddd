//! Writing a computed status through the status subresource: a JSON merge patch of the whole status
//! in which every field the previous status had and the new one lacks is set to `null` (in nested
//! objects too, which a merge patch merges rather than replaces), so that fields are removed as
//! well as set. [`merge_patch`] is pure; [`write_status`] talks to the
//! Kubernetes API.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// The merge patch `{"status": …}` turning the status `old` (as stored) into `new`.
pub fn merge_patch(old: Option<&Value>, new: &Value) -> Value {
    let mut status = new.as_object().cloned().unwrap_or_else(Map::new);
    if let Some(old) = old.and_then(Value::as_object) {
        null_removed(old, &mut status);
    }
    json!({ "status": status })
}

/// Sets to `null` in `new` every field of `old` it lacks, in nested objects too.
fn null_removed(old: &Map<String, Value>, new: &mut Map<String, Value>) {
    for (key, old_value) in old {
        match (new.get_mut(key), old_value) {
            (None, _) => {
                new.insert(key.clone(), Value::Null);
            }
            (Some(Value::Object(new_value)), Value::Object(old_value)) => {
                null_removed(old_value, new_value);
            }
            (Some(_), _) => {}
        }
    }
}

/// Patches the status of the object `name` from `old` to `new`.
pub async fn write_status<K, S>(
    api: &Api<K>,
    name: &str,
    old: Option<&S>,
    new: &S,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let old = old
        .map(serde_json::to_value)
        .transpose()
        .map_err(kube::Error::SerdeError)?;
    let new = serde_json::to_value(new).map_err(kube::Error::SerdeError)?;
    let patch = merge_patch(old.as_ref(), &new);
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_gone_from_the_new_status_are_nulled() {
        let old = json!({"ready": true, "roleArn": "arn", "attachedPolicyArns": ["a"]});
        let new = json!({"ready": false, "conditions": []});
        assert_eq!(
            merge_patch(Some(&old), &new),
            json!({"status": {
                "ready": false,
                "conditions": [],
                "roleArn": null,
                "attachedPolicyArns": null,
            }})
        );
    }

    #[test]
    fn fields_gone_from_a_nested_object_are_nulled_too() {
        let old = json!({"workloadIdentity": {"annotationMessage": "x", "hash": "a"}});
        let new = json!({"workloadIdentity": {"hash": "b"}});
        assert_eq!(
            merge_patch(Some(&old), &new),
            json!({"status": {"workloadIdentity": {"hash": "b", "annotationMessage": null}}})
        );
    }

    #[test]
    fn without_an_old_status_the_new_one_is_written_as_is() {
        let new = json!({"ready": true});
        assert_eq!(merge_patch(None, &new), json!({"status": {"ready": true}}));
    }
}
