//! The `workload-identity` rule: a `spec.workloadIdentity` from which the trust statements can be
//! generated — ServiceAccount names that are names (so `system:serviceaccount:<namespace>:<name>`
//! can only ever name the role's own namespace), no repeats, a bounded list, the cluster's OIDC
//! issuer on the provider for IRSA — and a role that says who may assume it at all. Returns the
//! generated statements for the trust rules to check with the spec's document. Pure.

use serde_json::json;

use super::excerpt::quote;
use super::{FieldPath, Finding, RuleId};
use crate::api::IAMRoleSpec;
use crate::iam::workload_identity::{
    OidcProvider, ProviderFacts, WorkloadIdentityError, generated_statements, mode_name,
};

/// The most ServiceAccounts one role may list.
pub const MAX_SERVICE_ACCOUNTS: usize = 100;
/// The longest ServiceAccount name Kubernetes accepts.
const MAX_SERVICE_ACCOUNT_NAME: usize = 253;
/// The account written in the OIDC provider ARN while the provider's own is not known yet (before
/// its credentials are checked): as long as any account, so the size quota counts right. The
/// reconciler writes the real one.
const UNKNOWN_ACCOUNT: &str = "000000000000";

/// Checks `spec.workloadIdentity` of a role in `namespace` managed through the provider of
/// `provider` (`None`: not known here, so no IRSA statement can be generated); returns the
/// generated statements as one trust document, when there are any.
pub fn check(
    spec: &IAMRoleSpec,
    namespace: &str,
    provider: Option<&ProviderFacts>,
    out: &mut Vec<Finding>,
) -> Option<String> {
    let spec_path = FieldPath::root("spec");
    let Some(identity) = &spec.workload_identity else {
        // An empty document is the schema's to report (minLength).
        if spec.assume_role_policy_document.is_none() {
            out.push(Finding::deny(
                RuleId::Schema,
                &spec_path.field("assumeRolePolicyDocument"),
                WorkloadIdentityError::NoTrust.to_string(),
            ));
        }
        return None;
    };
    let path = spec_path.field("workloadIdentity");
    let accounts_path = path.field("serviceAccounts");
    let before = out.len();
    let mut deny = |path: &FieldPath, message: String| {
        out.push(Finding::deny(RuleId::WorkloadIdentity, path, message));
    };
    let names = &identity.service_accounts;
    if names.is_empty() {
        deny(
            &accounts_path,
            "lists no ServiceAccount; name those of this namespace whose pods may assume the role"
                .to_owned(),
        );
    }
    if names.len() > MAX_SERVICE_ACCOUNTS {
        deny(
            &accounts_path,
            format!(
                "lists {} ServiceAccounts; at most {MAX_SERVICE_ACCOUNTS} (split them over roles)",
                names.len()
            ),
        );
    }
    for (i, name) in names.iter().take(MAX_SERVICE_ACCOUNTS).enumerate() {
        if let Some(why) = not_a_service_account_name(name) {
            deny(
                &accounts_path.index(i),
                format!(
                    "{} is not a ServiceAccount name ({why}); give the name alone: the \
                     ServiceAccount is always the one in namespace `{namespace}`",
                    quote(name)
                ),
            );
        } else if let Some(first) = names[..i].iter().position(|n| n == name) {
            deny(
                &accounts_path.index(i),
                format!(
                    "{} is already listed at serviceAccounts[{first}]; remove the duplicate",
                    quote(name)
                ),
            );
        }
    }
    if identity.annotate_service_accounts == Some(true) && !identity.mode.irsa() {
        deny(
            &path.field("annotateServiceAccounts"),
            "the eks.amazonaws.com/role-arn annotation is for IRSA; EKS Pod Identity finds the \
             role through its pod identity association, so set mode IRSA or Both, or drop \
             annotateServiceAccounts"
                .to_owned(),
        );
    }
    let mut oidc = None;
    if identity.mode.irsa()
        && let Some(provider) = provider
    {
        let facts = ProviderFacts {
            account_id: provider
                .account_id
                .clone()
                .or_else(|| Some(UNKNOWN_ACCOUNT.to_owned())),
            ..provider.clone()
        };
        match OidcProvider::of(&facts, mode_name(identity)) {
            Ok(provider) => oidc = Some(provider),
            Err(error) => deny(&path.field("mode"), error.to_string()),
        }
    }
    if out.len() > before {
        return None;
    }
    let statements = generated_statements(identity, namespace, oidc.as_ref());
    (!statements.is_empty())
        .then(|| json!({"Version": "2012-10-17", "Statement": statements}).to_string())
}

/// Why `name` is not a ServiceAccount name (a DNS subdomain: lowercase letters, digits, `-` and
/// `.`, starting and ending with a letter or digit, at most 253 characters).
fn not_a_service_account_name(name: &str) -> Option<&'static str> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() || name.len() > MAX_SERVICE_ACCOUNT_NAME {
        Some("1–253 characters")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        Some("only lowercase letters, digits, `-` and `.`")
    } else if !edge(name.chars().next()) || !edge(name.chars().last()) {
        Some("it must start and end with a letter or digit")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{WorkloadIdentity, WorkloadIdentityMode};

    fn spec(mode: WorkloadIdentityMode, names: &[&str]) -> IAMRoleSpec {
        IAMRoleSpec {
            role_name: "app".to_owned(),
            workload_identity: Some(WorkloadIdentity {
                service_accounts: names.iter().map(|n| (*n).to_owned()).collect(),
                mode,
                annotate_service_accounts: None,
            }),
            ..IAMRoleSpec::default()
        }
    }

    fn provider(issuer: Option<&str>) -> ProviderFacts {
        ProviderFacts {
            name: "aws".to_owned(),
            oidc_issuer: issuer.map(str::to_owned),
            account_id: None,
            region: "us-east-1".to_owned(),
        }
    }

    fn findings(spec: &IAMRoleSpec, provider: Option<&ProviderFacts>) -> Vec<Finding> {
        let mut out = Vec::new();
        check(spec, "team-a", provider, &mut out);
        out
    }

    #[test]
    fn names_from_another_namespace_cannot_be_written() {
        for bad in [
            "system:serviceaccount:other:app",
            "other:app",
            "App",
            "-app",
            "app.",
            "a/b",
            "",
        ] {
            let found = findings(&spec(WorkloadIdentityMode::Irsa, &[bad]), None);
            assert_eq!(found.len(), 1, "{bad}: {found:?}");
            assert_eq!(found[0].rule, RuleId::WorkloadIdentity);
            assert_eq!(found[0].path, "spec.workloadIdentity.serviceAccounts[0]");
        }
        assert!(findings(&spec(WorkloadIdentityMode::Irsa, &["app.v2-x"]), None).is_empty());
    }

    #[test]
    fn an_empty_a_repeated_or_an_endless_list_is_refused() {
        let empty = findings(&spec(WorkloadIdentityMode::Irsa, &[]), None);
        assert_eq!(empty[0].path, "spec.workloadIdentity.serviceAccounts");
        let repeated = findings(&spec(WorkloadIdentityMode::Irsa, &["a", "b", "a"]), None);
        assert_eq!(repeated.len(), 1);
        assert_eq!(repeated[0].path, "spec.workloadIdentity.serviceAccounts[2]");
        let names: Vec<String> = (0..=MAX_SERVICE_ACCOUNTS)
            .map(|i| format!("sa{i}"))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let endless = findings(&spec(WorkloadIdentityMode::Irsa, &names), None);
        assert_eq!(endless.len(), 1, "{endless:?}");
    }

    #[test]
    fn irsa_through_a_provider_without_issuer_is_refused() {
        let found = findings(
            &spec(WorkloadIdentityMode::Irsa, &["app"]),
            Some(&provider(None)),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "spec.workloadIdentity.mode");
        assert!(found[0].message.contains("spec.cluster.oidcIssuer"));
        let pod_identity = findings(
            &spec(WorkloadIdentityMode::PodIdentity, &["app"]),
            Some(&provider(None)),
        );
        assert!(pod_identity.is_empty(), "{pod_identity:?}");
    }

    #[test]
    fn the_generated_document_follows_what_is_known() {
        let mut out = Vec::new();
        let both = spec(WorkloadIdentityMode::Both, &["app"]);
        let unknown = check(&both, "ns", None, &mut out).unwrap();
        assert!(!unknown.contains("oidc-provider"), "{unknown}");
        let issuer = provider(Some("https://oidc.eks.us-east-1.amazonaws.com/id/X"));
        let known = check(&both, "ns", Some(&issuer), &mut out).unwrap();
        assert!(
            known.contains(
                "arn:aws:iam::000000000000:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/X"
            ),
            "{known}"
        );
        assert!(out.is_empty());
        assert_eq!(
            check(
                &spec(WorkloadIdentityMode::Irsa, &["app"]),
                "ns",
                None,
                &mut out
            ),
            None
        );
    }

    #[test]
    fn a_role_needs_some_trust_and_annotations_need_irsa() {
        let nothing = IAMRoleSpec::default();
        let found = findings(&nothing, None);
        assert_eq!(found[0].rule, RuleId::Schema);
        assert_eq!(found[0].path, "spec.assumeRolePolicyDocument");
        let mut annotated = spec(WorkloadIdentityMode::PodIdentity, &["app"]);
        if let Some(identity) = annotated.workload_identity.as_mut() {
            identity.annotate_service_accounts = Some(true);
        }
        let found = findings(&annotated, None);
        assert_eq!(
            found[0].path,
            "spec.workloadIdentity.annotateServiceAccounts"
        );
    }
}
