//! The difference between an existing role and its desired state, as the IAM writes that remove it
//! (the part of the planner that converges a role this object owns). Pure, no I/O.
//!
//! Only what differs is written, so a resync of an unchanged role plans nothing. The changes come in
//! a fixed order, chosen so that the role never holds more permissions than either its old or its new
//! state allows, and never loses a permission both states grant:
//!
//! 1. `UpdateRole` (description, maximum session duration);
//! 2. `UpdateTrustPolicy`;
//! 3. `PutBoundary` — a new boundary narrows the role before anything is granted;
//! 4. `AttachPolicy`, ARNs in order;
//! 5. `PutInlinePolicy`, names in order — before any inline policy is deleted, so a policy renamed
//!    in the spec is never missing in between;
//! 6. `DeleteInlinePolicy`, names in order;
//! 7. `DetachPolicy`, ARNs in order;
//! 8. `DeleteBoundary` — the boundary goes only after permissions were taken away;
//! 9. `TagRole`, then 10. `UntagRole`.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::PlanError;
use crate::iam::tags::{is_aws_tag, tag_value};
use crate::iam::{Change, DesiredRole, ObservedRole, policies_equal};

/// The changes that make `observed` match `desired`, in the order of the module documentation.
///
/// `previously_managed` holds the managed policy ARNs this object attached before: only those are
/// ever detached, never a policy someone else attached. Every inline policy of the role is this
/// object's, so inline policies it does not declare are deleted. Tags whose key starts with `aws:`
/// (any case) are ignored on both sides, and tag keys compare ignoring case, as in IAM.
pub fn changes(
    desired: &DesiredRole,
    observed: &ObservedRole,
    previously_managed: &BTreeSet<String>,
) -> Result<Vec<Change>, PlanError> {
    if desired.path != observed.path {
        return Err(PlanError::PathMismatch {
            desired: desired.path.clone(),
            observed: observed.path.clone(),
        });
    }
    let mut changes = Vec::new();
    changes.extend(update_role(desired, observed));
    if !policies_equal(&desired.trust_policy, &observed.trust_policy) {
        changes.push(Change::UpdateTrustPolicy {
            document: desired.trust_policy.clone(),
        });
    }
    let boundary_change = boundary(desired, observed);
    if let Some(put @ Change::PutBoundary { .. }) = &boundary_change {
        changes.push(put.clone());
    }
    changes.extend(
        desired
            .managed_policies
            .difference(&observed.managed_policies)
            .map(|arn| Change::AttachPolicy { arn: arn.clone() }),
    );
    changes.extend(
        desired
            .inline_policies
            .iter()
            .filter_map(|(name, document)| {
                let unchanged = observed
                    .inline_policies
                    .get(name)
                    .is_some_and(|current| policies_equal(document, current));
                (!unchanged).then(|| Change::PutInlinePolicy {
                    name: name.clone(),
                    document: document.clone(),
                })
            }),
    );
    changes.extend(
        observed
            .inline_policies
            .keys()
            .filter(|name| !desired.inline_policies.contains_key(*name))
            .map(|name| Change::DeleteInlinePolicy { name: name.clone() }),
    );
    changes.extend(
        observed
            .managed_policies
            .iter()
            .filter(|arn| previously_managed.contains(*arn))
            .filter(|arn| !desired.managed_policies.contains(*arn))
            .map(|arn| Change::DetachPolicy { arn: arn.clone() }),
    );
    if let Some(Change::DeleteBoundary) = boundary_change {
        changes.push(Change::DeleteBoundary);
    }
    changes.extend(tags(&desired.tags, &observed.tags));
    Ok(changes)
}

/// `UpdateRole` when the description or the maximum session duration differ. A description the
/// spec drops is cleared explicitly (`Some("")`).
fn update_role(desired: &DesiredRole, observed: &ObservedRole) -> Option<Change> {
    let observed_description = observed.description.as_deref().filter(|d| !d.is_empty());
    let same = desired.description.as_deref() == observed_description
        && desired.max_session_duration == observed.max_session_duration;
    if same {
        return None;
    }
    let description = match (&desired.description, observed_description) {
        (None, Some(_)) => Some(String::new()),
        (wanted, _) => wanted.clone(),
    };
    Some(Change::UpdateRole {
        description,
        max_session_duration: desired.max_session_duration,
    })
}

/// `PutBoundary` or `DeleteBoundary` when the boundary differs.
fn boundary(desired: &DesiredRole, observed: &ObservedRole) -> Option<Change> {
    match (
        &desired.permissions_boundary,
        &observed.permissions_boundary,
    ) {
        (Some(wanted), current) if current.as_ref() != Some(wanted) => Some(Change::PutBoundary {
            arn: wanted.clone(),
        }),
        (None, Some(_)) => Some(Change::DeleteBoundary),
        _ => None,
    }
}

/// `TagRole` for keys missing or holding another value, `UntagRole` for keys no longer desired.
fn tags(desired: &BTreeMap<String, String>, observed: &BTreeMap<String, String>) -> Vec<Change> {
    let find = |tags: &BTreeMap<String, String>, key: &str| tag_value(tags, key).cloned();
    let to_set: BTreeMap<String, String> = desired
        .iter()
        .filter(|(key, _)| !is_aws_tag(key))
        .filter(|(key, value)| find(observed, key).as_ref() != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let to_remove: Vec<String> = observed
        .keys()
        .filter(|key| !is_aws_tag(key) && find(desired, key).is_none())
        .cloned()
        .collect();
    let mut changes = Vec::new();
    if !to_set.is_empty() {
        changes.push(Change::TagRole { tags: to_set });
    }
    if !to_remove.is_empty() {
        changes.push(Change::UntagRole { keys: to_remove });
    }
    changes
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde::Deserialize;
    use serde_json::Value;

    use super::*;
    use crate::api::{AWSProvider, IAMRole};
    use crate::iam::policy_eq::tests::reformat;
    use crate::iam::workload_identity::{ProviderFacts, effective_trust_policy};
    use crate::iam::{OWNER_TAG_KEY, Ownership, owner_value, ownership};

    const OWNER: &str = "team-a/app";
    const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    const READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}"#;
    const WRITE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"}]}"#;
    const S3: &str = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
    const LOGS: &str = "arn:aws:iam::aws:policy/CloudWatchLogsFullAccess";
    const FOREIGN: &str = "arn:aws:iam::123456789012:policy/AttachedByHand";
    const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/Boundary";

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The operations `changes` plans, in order (none when it refuses).
    fn operations(
        desired: &DesiredRole,
        observed: &ObservedRole,
        attached: &BTreeSet<String>,
    ) -> Vec<&'static str> {
        changes(desired, observed, attached)
            .unwrap_or_default()
            .iter()
            .map(Change::operation)
            .collect()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn desired() -> DesiredRole {
        DesiredRole {
            name: "app".to_owned(),
            path: "/".to_owned(),
            description: Some("application role".to_owned()),
            max_session_duration: 3600,
            trust_policy: TRUST.to_owned(),
            managed_policies: set(&[S3, LOGS]),
            inline_policies: map(&[("read", READ)]),
            permissions_boundary: Some(BOUNDARY.to_owned()),
            tags: map(&[("Team", "platform"), (OWNER_TAG_KEY, OWNER)]),
        }
    }

    /// `desired` as IAM returns it: documents reformatted, plus the fields only IAM knows.
    fn as_iam_returns(desired: &DesiredRole, seed: u64) -> ObservedRole {
        ObservedRole {
            arn: format!(
                "arn:aws:iam::123456789012:role{}{}",
                desired.path, desired.name
            ),
            role_id: "AROAEXAMPLE".to_owned(),
            create_date: "2024-01-01T00:00:00Z".to_owned(),
            path: desired.path.clone(),
            description: desired.description.clone(),
            max_session_duration: desired.max_session_duration,
            trust_policy: reformat(&desired.trust_policy, seed),
            permissions_boundary: desired.permissions_boundary.clone(),
            tags: desired
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain([("aws:cloudformation:stack-name".to_owned(), "s".to_owned())])
                .collect(),
            managed_policies: desired.managed_policies.clone(),
            inline_policies: desired
                .inline_policies
                .iter()
                .map(|(name, doc)| (name.clone(), reformat(doc, seed.wrapping_add(1))))
                .collect(),
        }
    }

    fn planned(desired: &DesiredRole, observed: &ObservedRole) -> Vec<Change> {
        changes(desired, observed, &set(&[S3, LOGS])).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_unchanged_role_plans_nothing() {
        for seed in 0..16 {
            let desired = desired();
            assert_eq!(planned(&desired, &as_iam_returns(&desired, seed)), []);
        }
    }

    #[test]
    fn description_and_session_duration_changes_update_the_role() {
        let desired = desired();
        let mut observed = as_iam_returns(&desired, 0);
        observed.description = Some("old".to_owned());
        assert_eq!(
            planned(&desired, &observed),
            [Change::UpdateRole {
                description: Some("application role".to_owned()),
                max_session_duration: 3600,
            }]
        );
        let mut observed = as_iam_returns(&desired, 0);
        observed.max_session_duration = 7200;
        assert_eq!(
            planned(&desired, &observed),
            [Change::UpdateRole {
                description: Some("application role".to_owned()),
                max_session_duration: 3600,
            }]
        );
    }

    #[test]
    fn a_dropped_description_is_cleared_and_an_empty_one_equals_none() {
        let desired = DesiredRole {
            description: None,
            ..desired()
        };
        let mut observed = as_iam_returns(&desired, 0);
        observed.description = Some("old".to_owned());
        assert_eq!(
            planned(&desired, &observed),
            [Change::UpdateRole {
                description: Some(String::new()),
                max_session_duration: 3600,
            }]
        );
        observed.description = Some(String::new());
        assert_eq!(planned(&desired, &observed), []);
        observed.description = None;
        observed.max_session_duration = 7200;
        assert_eq!(
            planned(&desired, &observed),
            [Change::UpdateRole {
                description: None,
                max_session_duration: 3600,
            }]
        );
    }

    #[test]
    fn a_changed_trust_policy_is_updated_but_a_reformatted_one_is_not() {
        let desired = desired();
        let mut observed = as_iam_returns(&desired, 3);
        observed.trust_policy =
            serde_json::to_string_pretty(&serde_json::from_str::<Value>(TRUST).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(planned(&desired, &observed), []);
        observed.trust_policy = TRUST.replace("ec2.amazonaws.com", "lambda.amazonaws.com");
        assert_eq!(
            planned(&desired, &observed),
            [Change::UpdateTrustPolicy {
                document: TRUST.to_owned()
            }]
        );
    }

    #[test]
    fn missing_managed_policies_are_attached() {
        let desired = desired();
        let mut observed = as_iam_returns(&desired, 0);
        observed.managed_policies = set(&[]);
        assert_eq!(
            planned(&desired, &observed),
            [
                Change::AttachPolicy { arn: S3.to_owned() },
                Change::AttachPolicy {
                    arn: LOGS.to_owned()
                },
            ]
        );
    }

    #[test]
    fn only_managed_policies_this_object_attached_are_detached() {
        let desired = DesiredRole {
            managed_policies: set(&[S3]),
            ..desired()
        };
        let mut observed = as_iam_returns(&desired, 0);
        observed.managed_policies = set(&[S3, LOGS, FOREIGN]);
        assert_eq!(
            changes(&desired, &observed, &set(&[S3, LOGS])),
            Ok(vec![Change::DetachPolicy {
                arn: LOGS.to_owned()
            }])
        );
        assert_eq!(changes(&desired, &observed, &set(&[])), Ok(vec![]));
        let mut gone = observed.clone();
        gone.managed_policies = set(&[S3]);
        assert_eq!(changes(&desired, &gone, &set(&[S3, LOGS])), Ok(vec![]));
    }

    #[test]
    fn inline_policies_are_put_before_strays_are_deleted() {
        let desired = DesiredRole {
            inline_policies: map(&[("read", READ), ("write", WRITE)]),
            ..desired()
        };
        let mut observed = as_iam_returns(&desired, 0);
        observed.inline_policies = map(&[("old", READ), ("read", WRITE), ("zzz", WRITE)]);
        assert_eq!(
            planned(&desired, &observed),
            [
                Change::PutInlinePolicy {
                    name: "read".to_owned(),
                    document: READ.to_owned()
                },
                Change::PutInlinePolicy {
                    name: "write".to_owned(),
                    document: WRITE.to_owned()
                },
                Change::DeleteInlinePolicy {
                    name: "old".to_owned()
                },
                Change::DeleteInlinePolicy {
                    name: "zzz".to_owned()
                },
            ]
        );
    }

    #[test]
    fn a_reformatted_inline_policy_is_not_put_again() {
        let desired = desired();
        let mut observed = as_iam_returns(&desired, 0);
        observed.inline_policies = map(&[(
            "read",
            r#"{ "Statement": { "Resource": ["*"], "Action": ["S3:ListBucket", "s3:GetObject"], "Effect": "Allow" },
                 "Version": "2012-10-17" }"#,
        )]);
        assert_eq!(planned(&desired, &observed), []);
    }

    #[test]
    fn boundaries_are_put_changed_and_deleted() {
        let desired = desired();
        let mut observed = as_iam_returns(&desired, 0);
        observed.permissions_boundary = None;
        let put = Change::PutBoundary {
            arn: BOUNDARY.to_owned(),
        };
        assert_eq!(planned(&desired, &observed), std::slice::from_ref(&put));
        observed.permissions_boundary = Some("arn:aws:iam::123456789012:policy/Old".to_owned());
        assert_eq!(planned(&desired, &observed), [put]);
        let unbounded = DesiredRole {
            permissions_boundary: None,
            ..desired
        };
        assert_eq!(planned(&unbounded, &observed), [Change::DeleteBoundary]);
        observed.permissions_boundary = None;
        assert_eq!(planned(&unbounded, &observed), []);
    }

    #[test]
    fn changed_and_new_tags_are_set_and_gone_ones_removed() {
        let desired = DesiredRole {
            tags: map(&[("Team", "platform"), ("New", "1"), (OWNER_TAG_KEY, OWNER)]),
            ..desired()
        };
        let mut observed = as_iam_returns(&desired, 0);
        observed.tags = map(&[
            ("Team", "storage"),
            ("Stale", "x"),
            ("aws:cloudformation:stack-id", "y"),
            (OWNER_TAG_KEY, OWNER),
        ]);
        assert_eq!(
            planned(&desired, &observed),
            [
                Change::TagRole {
                    tags: map(&[("New", "1"), ("Team", "platform")])
                },
                Change::UntagRole {
                    keys: vec!["Stale".to_owned()]
                },
            ]
        );
    }

    #[test]
    fn tag_keys_compare_ignoring_case_and_aws_keys_are_ignored() {
        let desired = DesiredRole {
            tags: map(&[
                ("team", "platform"),
                ("AWS:Reserved", "z"),
                (OWNER_TAG_KEY, OWNER),
            ]),
            ..desired()
        };
        let mut observed = as_iam_returns(&desired, 0);
        observed.tags = map(&[
            ("Team", "platform"),
            ("Aws:CreatedBy", "someone"),
            (&OWNER_TAG_KEY.to_uppercase(), OWNER),
        ]);
        assert_eq!(planned(&desired, &observed), []);
        observed
            .tags
            .insert("Team".to_owned(), "Platform".to_owned());
        assert_eq!(
            planned(&desired, &observed),
            [Change::TagRole {
                tags: map(&[("team", "platform")])
            }]
        );
    }

    #[test]
    fn every_kind_of_change_comes_in_the_documented_order() {
        let desired = DesiredRole {
            managed_policies: set(&[S3]),
            inline_policies: map(&[("write", WRITE)]),
            ..desired()
        };
        let observed = ObservedRole {
            path: "/".to_owned(),
            description: None,
            max_session_duration: 7200,
            trust_policy: "{}".to_owned(),
            managed_policies: set(&[LOGS]),
            inline_policies: map(&[("read", READ)]),
            tags: map(&[("Old", "1")]),
            ..ObservedRole::default()
        };
        let planned = operations(&desired, &observed, &set(&[LOGS]));
        assert_eq!(
            planned,
            [
                "UpdateRole",
                "UpdateAssumeRolePolicy",
                "PutRolePermissionsBoundary",
                "AttachRolePolicy",
                "PutRolePolicy",
                "DeleteRolePolicy",
                "DetachRolePolicy",
                "TagRole",
                "UntagRole",
            ]
        );
        let unbounded = DesiredRole {
            permissions_boundary: None,
            ..desired
        };
        let bounded = ObservedRole {
            permissions_boundary: Some(BOUNDARY.to_owned()),
            ..observed
        };
        let unbounding = operations(&unbounded, &bounded, &set(&[LOGS]));
        assert_eq!(
            unbounding,
            [
                "UpdateRole",
                "UpdateAssumeRolePolicy",
                "AttachRolePolicy",
                "PutRolePolicy",
                "DeleteRolePolicy",
                "DetachRolePolicy",
                "DeleteRolePermissionsBoundary",
                "TagRole",
                "UntagRole",
            ]
        );
    }

    #[test]
    fn a_path_mismatch_is_an_error_not_a_change() {
        let desired = desired();
        let mut observed = as_iam_returns(&desired, 0);
        observed.path = "/other/".to_owned();
        let error = changes(&desired, &observed, &set(&[]));
        assert_eq!(
            error,
            Err(PlanError::PathMismatch {
                desired: "/".to_owned(),
                observed: "/other/".to_owned()
            })
        );
        assert_eq!(error.err().map(|e| e.reason()), Some("PathMismatch"));
    }

    /// Every object of every manifest under `manifests/examples/`.
    fn example_objects() -> Vec<(String, Value)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/examples");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        let mut objects = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for document in serde_norway::Deserializer::from_str(&text) {
                let value = Value::deserialize(document)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                objects.push((file.display().to_string(), value));
            }
        }
        objects
    }

    #[test]
    fn every_example_role_reconciled_as_iam_returns_it_plans_nothing() {
        let objects = example_objects();
        let kind = |value: &Value| value.get("kind").and_then(Value::as_str).map(str::to_owned);
        let providers: Vec<AWSProvider> = objects
            .iter()
            .filter(|(_, value)| kind(value).as_deref() == Some("AWSProvider"))
            .map(|(file, value)| {
                serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{file}: {e}"))
            })
            .collect();
        let mut roles = 0;
        for (file, value) in &objects {
            if kind(value).as_deref() != Some("IAMRole") {
                continue;
            }
            let role: IAMRole =
                serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
            let namespace = role.metadata.namespace.as_deref().unwrap_or("default");
            let name = role.metadata.name.as_deref().unwrap_or_default();
            let provider = providers
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(role.spec.provider_ref.name.as_str()));
            let default_tags = provider.and_then(|p| p.spec.default_tags.as_ref());
            let facts = ProviderFacts {
                account_id: Some("123456789012".to_owned()),
                ..provider.map(ProviderFacts::of).unwrap_or_default()
            };
            let trust = effective_trust_policy(&role.spec, namespace, &facts)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let owner = owner_value(namespace, name);
            let desired = DesiredRole::new(&role.spec, trust, default_tags, &owner);
            assert_eq!(desired.tags.get(OWNER_TAG_KEY), Some(&owner), "{file}");
            for seed in [0, 1, 2, 3, 11, 1234] {
                let observed = as_iam_returns(&desired, seed);
                assert_eq!(
                    changes(&desired, &observed, &desired.managed_policies),
                    Ok(vec![]),
                    "{file} (seed {seed})"
                );
                assert_eq!(ownership(&observed.tags, &owner), Ownership::Ours);
            }
            roles += 1;
        }
        assert!(roles >= 10, "only {roles} example roles found");
    }
}
