//! The state an IAMRole asks IAM to hold: its spec with defaults applied, the provider's default
//! tags merged under the role's own, and the owner tag. Pure, no I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::IAMRoleSpec;
use crate::guardrails::OWNER_TAG_KEY;

/// IAM's path for a role that names none.
pub const DEFAULT_PATH: &str = "/";

/// IAM's maximum session duration (seconds) for a role that names none.
pub const DEFAULT_MAX_SESSION_DURATION: i32 = 3600;

/// One IAM role as its object declares it, ready to compare with what IAM holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredRole {
    /// Role name.
    pub name: String,
    /// Role path (`/` by default).
    pub path: String,
    /// Description; `None` when the spec has none or an empty one.
    pub description: Option<String>,
    /// Maximum session duration in seconds (3600 by default).
    pub max_session_duration: i32,
    /// Trust policy document, as written in the spec.
    pub trust_policy: String,
    /// ARNs of the managed policies to attach.
    pub managed_policies: BTreeSet<String>,
    /// Inline policies: name → document as written in the spec.
    pub inline_policies: BTreeMap<String, String>,
    /// Permissions boundary policy ARN.
    pub permissions_boundary: Option<String>,
    /// Every tag the role carries: provider defaults, then the role's own, then the owner tag.
    pub tags: BTreeMap<String, String>,
}

impl DesiredRole {
    /// The desired role of `spec`, managed through a provider with `default_tags`, owned by the
    /// object named `owner` (`namespace/name`, see [`owner_value`]).
    ///
    /// Tags merge as IAM compares them, ignoring the case of keys: a role tag replaces a default tag
    /// whose key equals it ignoring case, and the owner tag replaces both. Keys starting with `aws:`
    /// (any case) are reserved for AWS and left out. The singular `inlinePolicy` is added after
    /// `inlinePolicies` and replaces an entry of the same name.
    pub fn new(
        spec: &IAMRoleSpec,
        default_tags: Option<&BTreeMap<String, String>>,
        owner: &str,
    ) -> Self {
        let mut tags = BTreeMap::new();
        for (key, value) in default_tags.into_iter().flatten() {
            set_tag(&mut tags, key, value);
        }
        for (key, value) in spec.tags.iter().flatten() {
            set_tag(&mut tags, key, value);
        }
        set_tag(&mut tags, OWNER_TAG_KEY, owner);
        let inline_policies = spec
            .all_inline_policies()
            .map(|p| (p.policy_name.clone(), p.policy_document.clone()))
            .collect();
        DesiredRole {
            name: spec.role_name.clone(),
            path: spec
                .path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_PATH.to_owned()),
            description: spec.description.clone().filter(|d| !d.is_empty()),
            max_session_duration: spec
                .max_session_duration
                .unwrap_or(DEFAULT_MAX_SESSION_DURATION),
            trust_policy: spec.assume_role_policy_document.clone(),
            managed_policies: spec.managed_policy_arns.iter().flatten().cloned().collect(),
            inline_policies,
            permissions_boundary: spec.permissions_boundary.clone().filter(|b| !b.is_empty()),
            tags,
        }
    }
}

/// The owner tag value naming the object `namespace/name`.
pub fn owner_value(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Whether a tag key is reserved for AWS (`aws:` in any case); such tags are never written nor removed.
pub fn is_aws_tag(key: &str) -> bool {
    key.get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("aws:"))
}

/// Tag keys equal for IAM (which compares them ignoring case).
pub fn same_tag_key(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// Sets `key` to `value`, replacing any key equal to it ignoring case; `aws:` keys are skipped.
fn set_tag(tags: &mut BTreeMap<String, String>, key: &str, value: &str) {
    if is_aws_tag(key) {
        return;
    }
    tags.retain(|existing, _| !same_tag_key(existing, key));
    tags.insert(key.to_owned(), value.to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::InlinePolicy;

    const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[]}"#;

    fn spec() -> IAMRoleSpec {
        IAMRoleSpec {
            role_name: "app".to_owned(),
            assume_role_policy_document: TRUST.to_owned(),
            ..IAMRoleSpec::default()
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn policy(name: &str, document: &str) -> InlinePolicy {
        InlinePolicy {
            policy_name: name.to_owned(),
            policy_document: document.to_owned(),
        }
    }

    #[test]
    fn a_minimal_spec_gets_iam_defaults_and_the_owner_tag() {
        let desired = DesiredRole::new(&spec(), None, "team-a/app");
        assert_eq!(desired.name, "app");
        assert_eq!(desired.path, "/");
        assert_eq!(desired.max_session_duration, 3600);
        assert_eq!(desired.description, None);
        assert_eq!(desired.trust_policy, TRUST);
        assert_eq!(desired.permissions_boundary, None);
        assert!(desired.managed_policies.is_empty());
        assert!(desired.inline_policies.is_empty());
        assert_eq!(desired.tags, map(&[(OWNER_TAG_KEY, "team-a/app")]));
    }

    #[test]
    fn explicit_values_are_kept() {
        let spec = IAMRoleSpec {
            path: Some("/svc/".to_owned()),
            description: Some("d".to_owned()),
            max_session_duration: Some(7200),
            permissions_boundary: Some("arn:aws:iam::1:policy/b".to_owned()),
            managed_policy_arns: Some(vec![
                "arn:aws:iam::aws:policy/B".to_owned(),
                "arn:aws:iam::aws:policy/A".to_owned(),
                "arn:aws:iam::aws:policy/B".to_owned(),
            ]),
            ..spec()
        };
        let desired = DesiredRole::new(&spec, None, "ns/app");
        assert_eq!(desired.path, "/svc/");
        assert_eq!(desired.description.as_deref(), Some("d"));
        assert_eq!(desired.max_session_duration, 7200);
        assert_eq!(
            desired.permissions_boundary.as_deref(),
            Some("arn:aws:iam::1:policy/b")
        );
        let arns: Vec<&str> = desired
            .managed_policies
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(
            arns,
            ["arn:aws:iam::aws:policy/A", "arn:aws:iam::aws:policy/B"]
        );
    }

    #[test]
    fn empty_description_and_path_count_as_absent() {
        let spec = IAMRoleSpec {
            description: Some(String::new()),
            path: Some(String::new()),
            ..spec()
        };
        let desired = DesiredRole::new(&spec, None, "ns/app");
        assert_eq!(desired.description, None);
        assert_eq!(desired.path, "/");
    }

    #[test]
    fn role_tags_win_over_default_tags_ignoring_case() {
        let defaults = map(&[("Environment", "prod"), ("team", "platform")]);
        let spec = IAMRoleSpec {
            tags: Some(map(&[("environment", "dev"), ("App", "x")])),
            ..spec()
        };
        let desired = DesiredRole::new(&spec, Some(&defaults), "ns/app");
        assert_eq!(
            desired.tags,
            map(&[
                ("App", "x"),
                ("environment", "dev"),
                ("team", "platform"),
                (OWNER_TAG_KEY, "ns/app"),
            ])
        );
    }

    #[test]
    fn the_owner_tag_cannot_be_overridden_and_aws_keys_are_left_out() {
        let defaults = map(&[("AWS:managed", "x")]);
        let spec = IAMRoleSpec {
            tags: Some(map(&[
                (&OWNER_TAG_KEY.to_uppercase(), "someone/else"),
                ("aws:cloudformation:stack-name", "s"),
            ])),
            ..spec()
        };
        let desired = DesiredRole::new(&spec, Some(&defaults), "ns/app");
        assert_eq!(desired.tags, map(&[(OWNER_TAG_KEY, "ns/app")]));
    }

    #[test]
    fn both_inline_policy_forms_are_collected_and_the_singular_one_wins_a_name_clash() {
        let spec = IAMRoleSpec {
            inline_policies: Some(vec![policy("a", "1"), policy("b", "2")]),
            inline_policy: Some(policy("b", "3")),
            ..spec()
        };
        let desired = DesiredRole::new(&spec, None, "ns/app");
        assert_eq!(desired.inline_policies, map(&[("a", "1"), ("b", "3")]));
        let only_singular = IAMRoleSpec {
            inline_policy: Some(policy("c", "4")),
            ..self::spec()
        };
        let desired = DesiredRole::new(&only_singular, None, "ns/app");
        assert_eq!(desired.inline_policies, map(&[("c", "4")]));
    }

    #[test]
    fn aws_tag_keys_are_recognised_in_any_case() {
        assert!(is_aws_tag("aws:x"));
        assert!(is_aws_tag("AwS:x"));
        assert!(!is_aws_tag("aws"));
        assert!(!is_aws_tag("awsx:y"));
        assert!(!is_aws_tag("é"));
        assert!(same_tag_key("CostCenter", "costcenter"));
        assert!(!same_tag_key("CostCenter", "Cost-Center"));
    }

    #[test]
    fn owner_value_is_namespace_slash_name() {
        assert_eq!(owner_value("default", "app"), "default/app");
    }
}
