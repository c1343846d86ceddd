//! The state an IAMRole asks IAM to hold: its spec with IAM's defaults applied, the provider's
//! default tags merged under the role's own, and the operator's tags (owner, and the memory of the
//! managed policies it attaches). Pure, no I/O.

use std::collections::{BTreeMap, BTreeSet};

use super::change::CreateRole;
use super::defaults::{max_session_duration, role_path};
use super::ownership::policies_tag_value;
use super::tags::{OWNER_TAG_KEY, POLICIES_TAG_KEY, merge_tags, set_tag};
use crate::api::IAMRoleSpec;

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
    /// Trust policy document: the spec's, with the statements its workload identity generates
    /// (see [`super::workload_identity::effective_trust_policy`]).
    pub trust_policy: String,
    /// ARNs of the managed policies to attach.
    pub managed_policies: BTreeSet<String>,
    /// Inline policies: name → document as written in the spec.
    pub inline_policies: BTreeMap<String, String>,
    /// Permissions boundary policy ARN.
    pub permissions_boundary: Option<String>,
    /// Every tag the role carries: provider defaults, then the role's own, then the operator's.
    pub tags: BTreeMap<String, String>,
}

impl DesiredRole {
    /// The desired role of `spec` trusting per `trust_policy` (its effective trust policy),
    /// managed through a provider with `default_tags`, owned by the object named `owner`
    /// (`namespace/name`, see [`super::owner_value`]).
    ///
    /// Tags merge as IAM compares them (see [`merge_tags`]); the operator's tags replace any tag
    /// of the same key. The managed-policies tag is left out while there are no managed policies
    /// (so a policy-less role carries one tag of the operator's, and a role whose last policy goes
    /// loses the tag after the detach). The singular `inlinePolicy` is added after
    /// `inlinePolicies` and replaces an entry of the same name.
    pub fn new(
        spec: &IAMRoleSpec,
        trust_policy: String,
        default_tags: Option<&BTreeMap<String, String>>,
        owner: &str,
    ) -> Self {
        let managed_policies: BTreeSet<String> =
            spec.managed_policy_arns.iter().flatten().cloned().collect();
        let mut tags = merge_tags(default_tags, spec.tags.as_ref());
        set_tag(&mut tags, OWNER_TAG_KEY, owner);
        if !managed_policies.is_empty() {
            set_tag(
                &mut tags,
                POLICIES_TAG_KEY,
                &policies_tag_value(&managed_policies),
            );
        }
        let inline_policies = spec
            .all_inline_policies()
            .map(|p| (p.policy_name.clone(), p.policy_document.clone()))
            .collect();
        DesiredRole {
            name: spec.role_name.clone(),
            path: role_path(spec.path.as_deref()).to_owned(),
            description: spec.description.clone().filter(|d| !d.is_empty()),
            max_session_duration: max_session_duration(spec.max_session_duration),
            trust_policy,
            managed_policies,
            inline_policies,
            permissions_boundary: spec.permissions_boundary.clone().filter(|b| !b.is_empty()),
            tags,
        }
    }

    /// The CreateRole call that makes this role with every attribute and tag at once.
    pub fn create_role(&self) -> CreateRole {
        CreateRole {
            name: self.name.clone(),
            path: self.path.clone(),
            trust_policy: self.trust_policy.clone(),
            description: self.description.clone(),
            max_session_duration: self.max_session_duration,
            permissions_boundary: self.permissions_boundary.clone(),
            tags: self.tags.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::InlinePolicy;

    const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[]}"#;

    fn spec() -> IAMRoleSpec {
        IAMRoleSpec {
            role_name: "app".to_owned(),
            assume_role_policy_document: Some(TRUST.to_owned()),
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
        let desired = DesiredRole::new(&spec(), TRUST.to_owned(), None, "team-a/app");
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
        let desired = DesiredRole::new(&spec, TRUST.to_owned(), None, "ns/app");
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
        let desired = DesiredRole::new(&spec, TRUST.to_owned(), None, "ns/app");
        assert_eq!(desired.description, None);
        assert_eq!(desired.path, "/");
    }

    #[test]
    fn operator_tags_cannot_be_overridden_and_remember_the_managed_policies() {
        let defaults = map(&[("AWS:managed", "x"), ("team", "platform")]);
        let spec = IAMRoleSpec {
            tags: Some(map(&[
                (&OWNER_TAG_KEY.to_uppercase(), "someone/else"),
                (&POLICIES_TAG_KEY.to_uppercase(), "forged"),
                ("aws:cloudformation:stack-name", "s"),
            ])),
            managed_policy_arns: Some(vec!["arn:aws:iam::aws:policy/A".to_owned()]),
            ..spec()
        };
        let desired = DesiredRole::new(&spec, TRUST.to_owned(), Some(&defaults), "ns/app");
        let remembered = crate::iam::policies_in_tag(&desired.tags, &desired.managed_policies);
        assert_eq!(remembered, desired.managed_policies);
        assert_eq!(
            desired.tags.get(OWNER_TAG_KEY).map(String::as_str),
            Some("ns/app")
        );
        assert_eq!(
            desired.tags.keys().map(String::as_str).collect::<Vec<_>>(),
            [POLICIES_TAG_KEY, OWNER_TAG_KEY, "team"]
        );
    }

    #[test]
    fn both_inline_policy_forms_are_collected_and_the_singular_one_wins_a_name_clash() {
        let spec = IAMRoleSpec {
            inline_policies: Some(vec![policy("a", "1"), policy("b", "2")]),
            inline_policy: Some(policy("b", "3")),
            ..spec()
        };
        let desired = DesiredRole::new(&spec, TRUST.to_owned(), None, "ns/app");
        assert_eq!(desired.inline_policies, map(&[("a", "1"), ("b", "3")]));
        let only_singular = IAMRoleSpec {
            inline_policy: Some(policy("c", "4")),
            ..self::spec()
        };
        let desired = DesiredRole::new(&only_singular, TRUST.to_owned(), None, "ns/app");
        assert_eq!(desired.inline_policies, map(&[("c", "4")]));
    }
}
