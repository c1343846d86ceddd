//! The mutating half of the webhook: an IAMRole's defaults and the reconciler's finalizer as a
//! JSONPatch. Pure.
//!
//! The patch is idempotent: patching its own output yields an empty patch, so a second pass through
//! the API server (or a re-applied manifest) changes nothing.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, MoveOperation, Patch, PatchOperation, RemoveOperation};
use serde_json::{Map, Value};

use crate::api::FINALIZER;
use crate::guardrails::Config;
use crate::iam::DEFAULT_PATH;
use crate::iam::json::at;
use crate::iam::tags::defaults_not_set;

/// `spec.deletionPolicy` when the object has none.
pub const DEFAULT_DELETION_POLICY: &str = "Delete";

/// The JSONPatch giving an IAMRole object its defaults:
///
/// - the reconciler's [`FINALIZER`], so that the object is protected from the moment it exists and
///   the reconciler need not add it before creating the role (objects being deleted never reach
///   this function);
/// - `spec.path` → `/`, `spec.deletionPolicy` → `Delete`;
/// - `spec.maxSessionDuration` → the smallest the guardrails allow (3600, IAM's own default, unless
///   the platform team raised the minimum);
/// - every tag of `config.default_tags` whose key the object does not already have (compared ignoring
///   case, as IAM does: the user's tag wins);
/// - the singular `spec.inlinePolicy` moved into `spec.inlinePolicies` (appended, or replacing the
///   entry of the same `policyName`, so re-applying a manifest in the singular form is a no-op).
///
/// Fields holding `null` count as absent. An object whose `spec` is not a JSON object gets no patch
/// (the `schema` rule reports it), and neither does a field of the wrong type.
pub fn defaults_patch(object: &Value, stored: Option<&Value>, config: &Config) -> Patch {
    let Some(spec) = object.get("spec").and_then(Value::as_object) else {
        return Patch(Vec::new());
    };
    let mut ops = Vec::new();
    add_finalizer(object, &mut ops);
    let absent = |field: &str| spec.get(field).is_none_or(Value::is_null);
    if absent("path") {
        ops.push(add(&["path"], Value::from(DEFAULT_PATH)));
    }
    if absent("maxSessionDuration") {
        ops.push(add(
            &["maxSessionDuration"],
            Value::from(config.max_session_duration.min),
        ));
    }
    if absent("deletionPolicy") {
        ops.push(add(
            &["deletionPolicy"],
            Value::from(DEFAULT_DELETION_POLICY),
        ));
    }
    add_default_tags(spec, config, &mut ops);
    let stored_names: Vec<&Value> = stored
        .and_then(|o| at(o, &["spec", "inlinePolicies"]))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("policyName"))
        .collect();
    fold_inline_policy(spec, &stored_names, &mut ops);
    Patch(ops)
}

fn add_finalizer(object: &Value, ops: &mut Vec<PatchOperation>) {
    let finalizers = || PointerBuf::from_tokens(["metadata", "finalizers"].map(Token::new));
    match object.get("metadata") {
        // No metadata to add to (the API server always sends it; a crafted review may not).
        None | Some(Value::Null) => {
            ops.push(PatchOperation::Add(AddOperation {
                path: PointerBuf::from_tokens([Token::new("metadata")]),
                value: serde_json::json!({"finalizers": [FINALIZER]}),
            }));
            return;
        }
        Some(Value::Object(_)) => {}
        // Metadata that is not an object cannot take a finalizer; the schema rule refuses it.
        Some(_) => return,
    }
    match at(object, &["metadata", "finalizers"]) {
        None | Some(Value::Null) => ops.push(PatchOperation::Add(AddOperation {
            path: finalizers(),
            value: Value::Array(vec![Value::from(FINALIZER)]),
        })),
        Some(Value::Array(list)) if !list.iter().any(|f| f == FINALIZER) => {
            let mut path = finalizers();
            path.push_back("-");
            ops.push(PatchOperation::Add(AddOperation {
                path,
                value: Value::from(FINALIZER),
            }));
        }
        Some(_) => {}
    }
}

fn add_default_tags(spec: &Map<String, Value>, config: &Config, ops: &mut Vec<PatchOperation>) {
    if config.default_tags.is_empty() {
        return;
    }
    match spec.get("tags") {
        None | Some(Value::Null) => {
            let tags = config
                .default_tags
                .iter()
                .map(|(key, value)| (key.clone(), Value::from(value.as_str())))
                .collect();
            ops.push(add(&["tags"], Value::Object(tags)));
        }
        Some(Value::Object(own)) => {
            for (key, value) in
                defaults_not_set(&config.default_tags, own.keys().map(String::as_str))
            {
                ops.push(add(&["tags", key], Value::from(value.as_str())));
            }
        }
        Some(_) => {}
    }
}

/// Moves `spec.inlinePolicy` into `spec.inlinePolicies`. An entry of the same name is replaced only
/// when the stored object already had it (a re-applied manifest in the singular form, possibly with an
/// edited document); on CREATE two different policies of one name are both kept, so that validation
/// refuses the duplicate instead of one silently replacing the other.
///
/// The policy is moved with a `move` operation rather than copied into the patch, so the patch stays
/// small however large the policy document is.
fn fold_inline_policy(
    spec: &Map<String, Value>,
    stored_names: &[&Value],
    ops: &mut Vec<PatchOperation>,
) {
    let Some(single) = spec.get("inlinePolicy") else {
        return;
    };
    let move_to = |index: &str| {
        PatchOperation::Move(MoveOperation {
            from: pointer(&["inlinePolicy"]),
            path: pointer(&["inlinePolicies", index]),
        })
    };
    let remove = |under_spec: &[&str]| {
        PatchOperation::Remove(RemoveOperation {
            path: pointer(under_spec),
        })
    };
    if single.is_null() {
        ops.push(remove(&["inlinePolicy"]));
        return;
    }
    match spec.get("inlinePolicies") {
        None | Some(Value::Null) => {
            ops.push(add(&["inlinePolicies"], Value::Array(Vec::new())));
            ops.push(move_to("-"));
        }
        Some(Value::Array(list)) => {
            let name = single.get("policyName");
            let same_name =
                name.and_then(|name| list.iter().position(|p| p.get("policyName") == Some(name)));
            match same_name {
                Some(i) if list.get(i) == Some(single) => ops.push(remove(&["inlinePolicy"])),
                Some(i) if name.is_some_and(|n| stored_names.contains(&n)) => {
                    let index = i.to_string();
                    ops.push(remove(&["inlinePolicies", &index]));
                    ops.push(move_to(&index));
                }
                _ => ops.push(move_to("-")),
            }
        }
        Some(_) => {}
    }
}

fn add(under_spec: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: pointer(under_spec),
        value,
    })
}

/// A JSON pointer below `/spec`; `~` and `/` in the tokens are escaped.
fn pointer(under_spec: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(
        std::iter::once("spec")
            .chain(under_spec.iter().copied())
            .map(Token::new),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn config_with_tags(tags: &[(&str, &str)]) -> Config {
        Config {
            default_tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            ..Config::default()
        }
    }

    fn apply(object: &Value, patch: &Patch) -> Value {
        let mut out = object.clone();
        json_patch::patch(&mut out, patch).unwrap();
        out
    }

    fn role(spec: Value) -> Value {
        json!({"apiVersion": "aws-infra-operator.runner.codes/v1alpha1", "kind": "IAMRole",
               "metadata": {"name": "r", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn fills_every_default_and_is_idempotent() {
        let config = config_with_tags(&[("cost-center", "platform"), ("a/b~c", "x")]);
        let object = role(
            json!({"roleName": "r", "providerRef": {"name": "p"}, "assumeRolePolicyDocument": "{}"}),
        );
        let patch = defaults_patch(&object, None, &config);
        let patched = apply(&object, &patch);
        assert_eq!(patched["spec"]["path"], "/");
        assert_eq!(patched["spec"]["maxSessionDuration"], 3600);
        assert_eq!(patched["spec"]["deletionPolicy"], "Delete");
        assert_eq!(
            patched["spec"]["tags"],
            json!({"cost-center": "platform", "a/b~c": "x"})
        );
        assert!(defaults_patch(&patched, None, &config).is_empty());
    }

    #[test]
    fn an_object_without_metadata_gets_a_patch_that_applies() {
        let config = Config::default();
        let object = json!({"spec": {}});
        let patch = defaults_patch(&object, None, &config);
        let patched = apply(&object, &patch);
        assert_eq!(patched["metadata"]["finalizers"], json!([FINALIZER]));
        assert!(defaults_patch(&patched, None, &config).is_empty());
        let scalar = json!({"metadata": "x", "spec": {}});
        let patched = apply(&scalar, &defaults_patch(&scalar, None, &config));
        assert_eq!(patched["metadata"], "x");
    }

    #[test]
    fn adds_the_finalizer_once_beside_other_finalizers() {
        let config = Config::default();
        let bare = role(json!({}));
        let patched = apply(&bare, &defaults_patch(&bare, None, &config));
        assert_eq!(patched["metadata"]["finalizers"], json!([FINALIZER]));
        assert!(defaults_patch(&patched, None, &config).is_empty());

        let mut other = role(json!({}));
        other["metadata"]["finalizers"] = json!(["example.com/keep"]);
        let patched = apply(&other, &defaults_patch(&other, None, &config));
        assert_eq!(
            patched["metadata"]["finalizers"],
            json!(["example.com/keep", FINALIZER])
        );
        assert!(defaults_patch(&patched, None, &config).is_empty());
    }

    #[test]
    fn keeps_what_the_user_set_and_escapes_tag_keys() {
        let config = config_with_tags(&[("team", "platform"), ("a/b~c", "x")]);
        let spec = json!({"path": "/svc/", "maxSessionDuration": 7200, "deletionPolicy": "Retain",
                          "tags": {"Team": "payments"}});
        let object = role(spec.clone());
        let patch = defaults_patch(&object, None, &config);
        let text = serde_json::to_string(&patch).unwrap();
        assert!(text.contains("/spec/tags/a~1b~0c"), "{text}");
        let patched = apply(&object, &patch);
        assert_eq!(
            patched["spec"]["tags"],
            json!({"Team": "payments", "a/b~c": "x"})
        );
        assert_eq!(patched["spec"]["path"], spec["path"]);
        assert_eq!(patched["spec"]["maxSessionDuration"], 7200);
        assert_eq!(patched["spec"]["deletionPolicy"], "Retain");
    }

    #[test]
    fn session_default_follows_a_raised_minimum() {
        let mut config = Config::default();
        config.max_session_duration.min = 7200;
        let patched = apply(
            &role(json!({})),
            &defaults_patch(&role(json!({})), None, &config),
        );
        assert_eq!(patched["spec"]["maxSessionDuration"], 7200);
    }

    #[test]
    fn folds_the_singular_inline_policy() {
        let single = json!({"policyName": "Dynamo", "policyDocument": "{}"});
        let config = Config::default();

        let created = role(json!({"inlinePolicy": single}));
        let patched = apply(&created, &defaults_patch(&created, None, &config));
        assert_eq!(patched["spec"]["inlinePolicies"], json!([single]));
        assert!(patched["spec"].get("inlinePolicy").is_none());
        assert!(defaults_patch(&patched, None, &config).is_empty());

        let other = json!({"policyName": "S3", "policyDocument": "{}"});
        let appended = role(json!({"inlinePolicies": [other], "inlinePolicy": single}));
        let patched = apply(&appended, &defaults_patch(&appended, None, &config));
        assert_eq!(patched["spec"]["inlinePolicies"], json!([other, single]));

        // The document travels by `move`, never inside the patch.
        let large = json!({"policyName": "Large", "policyDocument": "x".repeat(100_000)});
        let patch = defaults_patch(&role(json!({"inlinePolicy": large})), None, &config);
        assert!(serde_json::to_vec(&patch).unwrap().len() < 1_000);

        let changed =
            json!({"policyName": "Dynamo", "policyDocument": "{\"Version\":\"2012-10-17\"}"});
        // Re-applying an edited singular policy replaces the stored entry of its name ...
        let stored = role(json!({"inlinePolicies": [other, single]}));
        let reapplied = role(json!({"inlinePolicies": [other, single], "inlinePolicy": changed}));
        let patched = apply(
            &reapplied,
            &defaults_patch(&reapplied, Some(&stored), &config),
        );
        assert_eq!(patched["spec"]["inlinePolicies"], json!([other, changed]));
        assert!(patched["spec"].get("inlinePolicy").is_none());
        // ... but two different policies of one name in a new object are both kept, for validation
        // to refuse, instead of one silently replacing the other.
        let patched = apply(&reapplied, &defaults_patch(&reapplied, None, &config));
        assert_eq!(
            patched["spec"]["inlinePolicies"],
            json!([other, single, changed])
        );
    }

    #[test]
    fn leaves_malformed_objects_to_validation() {
        let config = config_with_tags(&[("team", "platform")]);
        for object in [
            json!({}),
            json!({"spec": "x"}),
            json!({"spec": [1]}),
            json!(null),
            json!(7),
        ] {
            assert!(
                defaults_patch(&object, None, &config).is_empty(),
                "{object}"
            );
        }
        let mut odd = role(
            json!({"path": "/", "maxSessionDuration": 3600, "deletionPolicy": "Delete",
                              "tags": "x", "inlinePolicies": "x", "inlinePolicy": {"policyName": "p"}}),
        );
        odd["metadata"]["finalizers"] = json!("x");
        assert!(defaults_patch(&odd, None, &config).is_empty());
    }
}
