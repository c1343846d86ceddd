//! The reconciler's own guardrail check, run before any IAM write (defense in depth: objects
//! admitted before the webhook was installed, `controller`-only deployments, UPDATEs the webhook
//! configuration skips). It checks what only the reconciler knows too: the provider's
//! `defaultTags` counted with the role's own, and — before an adoption — the existing role as
//! found in IAM. Pure, no I/O.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::api::{API_VERSION, IAMRole};
use crate::guardrails::{Engine, FieldPath, Finding, Kind, RuleId};
use crate::iam::ObservedRole;
use crate::iam::tags::{is_aws_tag, is_operator_tag, merge_tags};
use crate::iam::workload_identity::ProviderFacts;

/// The longest findings text a condition, an Event or an error carries.
pub const MAX_FINDINGS_TEXT: usize = 4096;

/// What the guardrails say of a spec about to be applied.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Nothing refused.
    Clean,
    /// Refused, but this very spec was applied before (the guardrails became stricter since): it
    /// keeps being applied, and the violation is reported.
    Violation(Vec<Finding>),
    /// Refused, and never applied: nothing may be written.
    Denied(Vec<Finding>),
}

/// Checks the object's spec, with the provider's default tags merged under its own tags and the
/// trust its workload identity generates for the provider's cluster (`provider`).
pub fn judge_spec(
    engine: &Engine,
    role: &IAMRole,
    provider_default_tags: Option<&BTreeMap<String, String>>,
    provider: &ProviderFacts,
) -> Verdict {
    let mut object = match serde_json::to_value(role) {
        Ok(object) => object,
        // Nothing that cannot be checked is applied.
        Err(error) => {
            return Verdict::Denied(vec![Finding::deny(
                RuleId::Schema,
                &FieldPath::root("spec"),
                format!("cannot be read for checking: {error}"),
            )]);
        }
    };
    if provider_default_tags.is_some_and(|tags| !tags.is_empty()) {
        let tags = merge_tags(provider_default_tags, role.spec.tags.as_ref());
        object["spec"]["tags"] = json!(tags);
    }
    if let Some(status) = object.as_object_mut() {
        status.remove("status");
    }
    let denied: Vec<Finding> = engine
        .check_with_provider(Kind::IAMRole, &object, None, Some(provider))
        .into_iter()
        .filter(Finding::is_deny)
        .collect();
    if denied.is_empty() {
        Verdict::Clean
    } else if applied(role) {
        Verdict::Violation(denied)
    } else {
        Verdict::Denied(denied)
    }
}

/// Whether the object's current spec (its generation) was brought to IAM before.
pub fn applied(role: &IAMRole) -> bool {
    let applied = role.status.as_ref().and_then(|s| s.applied_generation);
    applied.is_some() && applied == role.metadata.generation
}

/// The refusals of an existing role as found in IAM (trust, managed and inline policies, boundary,
/// path, tags) under the object's name and namespace: a role that fails them is not adopted.
pub fn judge_found_role(engine: &Engine, role: &IAMRole, found: &ObservedRole) -> Vec<Finding> {
    // AWS's own tags are not the role's, and the operator's own (an earlier owner's) are counted by
    // the `tags` rule anyway and replaced on adoption.
    let tags: BTreeMap<&String, &String> = found
        .tags
        .iter()
        .filter(|(key, _)| !is_aws_tag(key) && !is_operator_tag(key))
        .collect();
    let inline: Vec<Value> = found
        .inline_policies
        .iter()
        .map(|(name, document)| json!({"policyName": name, "policyDocument": document}))
        .collect();
    let mut spec = json!({
        "providerRef": {"name": role.spec.provider_ref.name},
        "roleName": role.spec.role_name,
        "path": found.path,
        "assumeRolePolicyDocument": found.trust_policy,
        "maxSessionDuration": found.max_session_duration,
        "managedPolicyArns": found.managed_policies,
        "inlinePolicies": inline,
        "tags": tags,
    });
    if let Some(description) = &found.description {
        spec["description"] = json!(description);
    }
    if let Some(boundary) = &found.permissions_boundary {
        spec["permissionsBoundary"] = json!(boundary);
    }
    let object = json!({
        "apiVersion": API_VERSION,
        "kind": "IAMRole",
        "metadata": {"name": role.metadata.name, "namespace": role.metadata.namespace},
        "spec": spec,
    });
    engine
        .check(Kind::IAMRole, &object, None)
        .into_iter()
        .filter(Finding::is_deny)
        .collect()
}

/// Findings as one bounded line of text: `[rule] path: message; …`.
pub fn findings_text(findings: &[Finding]) -> String {
    let mut text = String::new();
    for (i, finding) in findings.iter().enumerate() {
        let item = finding.to_string();
        if text.len() + item.len() + 2 > MAX_FINDINGS_TEXT {
            text.push_str(&format!("; … and {} more", findings.len() - i));
            break;
        }
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(&item);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        IAMRoleSpec, IAMRoleStatus, ProviderRef, WorkloadIdentity, WorkloadIdentityMode,
    };
    use crate::guardrails::Config;

    const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

    fn engine() -> Engine {
        Engine::new(Config::default()).unwrap()
    }

    fn role(tags: usize) -> IAMRole {
        let mut role = IAMRole::new(
            "app",
            IAMRoleSpec {
                provider_ref: ProviderRef {
                    name: "aws".to_owned(),
                    namespace: None,
                },
                role_name: "app".to_owned(),
                assume_role_policy_document: Some(TRUST.to_owned()),
                tags: Some(
                    (0..tags)
                        .map(|i| (format!("k{i}"), "v".to_owned()))
                        .collect(),
                ),
                ..IAMRoleSpec::default()
            },
        );
        role.metadata.namespace = Some("team-a".to_owned());
        role.metadata.generation = Some(3);
        role
    }

    fn rules(verdict: &Verdict) -> Vec<RuleId> {
        match verdict {
            Verdict::Clean => Vec::new(),
            Verdict::Violation(f) | Verdict::Denied(f) => f.iter().map(|f| f.rule).collect(),
        }
    }

    #[test]
    fn provider_default_tags_count_against_the_limit() {
        let engine = engine();
        let role = role(47);
        assert_eq!(
            judge_spec(&engine, &role, None, &ProviderFacts::default()),
            Verdict::Clean
        );
        let defaults: BTreeMap<String, String> =
            (0..3).map(|i| (format!("d{i}"), "v".to_owned())).collect();
        let verdict = judge_spec(&engine, &role, Some(&defaults), &ProviderFacts::default());
        assert!(matches!(verdict, Verdict::Denied(_)), "{verdict:?}");
        assert_eq!(rules(&verdict), [RuleId::Tags]);
    }

    #[test]
    fn a_spec_applied_before_is_a_violation_and_a_new_one_is_denied() {
        let engine = engine();
        let mut role = role(0);
        role.spec.managed_policy_arns = Some(vec![
            "arn:aws:iam::aws:policy/AdministratorAccess".to_owned(),
        ]);
        assert!(matches!(
            judge_spec(&engine, &role, None, &ProviderFacts::default()),
            Verdict::Denied(_)
        ));
        role.status = Some(IAMRoleStatus {
            applied_generation: Some(3),
            ..IAMRoleStatus::default()
        });
        assert!(matches!(
            judge_spec(&engine, &role, None, &ProviderFacts::default()),
            Verdict::Violation(_)
        ));
        role.metadata.generation = Some(4);
        assert!(matches!(
            judge_spec(&engine, &role, None, &ProviderFacts::default()),
            Verdict::Denied(_)
        ));
    }

    #[test]
    fn the_generated_trust_is_judged_with_the_providers_cluster() {
        let engine = engine();
        let mut role = role(0);
        role.spec.assume_role_policy_document = None;
        role.spec.workload_identity = Some(WorkloadIdentity {
            service_accounts: vec!["app".to_owned()],
            mode: WorkloadIdentityMode::Both,
            annotate_service_accounts: Some(true),
        });
        let without_issuer = ProviderFacts {
            name: "aws".to_owned(),
            oidc_issuer: None,
            account_id: Some("123456789012".to_owned()),
            region: "us-east-1".to_owned(),
        };
        let verdict = judge_spec(&engine, &role, None, &without_issuer);
        assert_eq!(rules(&verdict), [RuleId::WorkloadIdentity]);
        let with_issuer = ProviderFacts {
            oidc_issuer: Some("https://oidc.eks.us-east-1.amazonaws.com/id/A1".to_owned()),
            ..without_issuer
        };
        assert_eq!(
            judge_spec(&engine, &role, None, &with_issuer),
            Verdict::Clean
        );
        // The generated statements count against the trust policy quota.
        if let Some(identity) = role.spec.workload_identity.as_mut() {
            identity.service_accounts =
                (0..60).map(|i| format!("service-account-{i:03}")).collect();
        }
        let verdict = judge_spec(&engine, &role, None, &with_issuer);
        assert_eq!(rules(&verdict), [RuleId::PolicySize]);
    }

    #[test]
    fn a_found_role_is_judged_with_everything_attached_to_it() {
        let engine = engine();
        let role = role(0);
        let mut found = ObservedRole {
            arn: "arn:aws:iam::123456789012:role/app".to_owned(),
            role_id: "AROAEXAMPLE".to_owned(),
            create_date: String::new(),
            path: "/".to_owned(),
            description: None,
            max_session_duration: 3600,
            trust_policy: TRUST.to_owned(),
            permissions_boundary: None,
            tags: BTreeMap::from([
                ("aws:cloudformation:stack-name".to_owned(), "x".to_owned()),
                (
                    crate::iam::POLICIES_TAG_KEY.to_owned(),
                    "d85260e7".to_owned(),
                ),
            ]),
            managed_policies: Default::default(),
            inline_policies: Default::default(),
        };
        let clean = judge_found_role(&engine, &role, &found);
        assert!(clean.is_empty(), "{clean:?}");
        found
            .managed_policies
            .insert("arn:aws:iam::aws:policy/AdministratorAccess".to_owned());
        let refused = judge_found_role(&engine, &role, &found);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].rule, RuleId::ManagedPolicy);
        assert!(findings_text(&refused).contains("AdministratorAccess"));
    }
}
