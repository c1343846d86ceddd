//! The trust statements `spec.workloadIdentity` generates — IRSA (the cluster's IAM OIDC provider,
//! `sts:AssumeRoleWithWebIdentity`, the token's `sub` and `aud` pinned) and EKS Pod Identity
//! (`pods.eks.amazonaws.com`, the session tags of the namespace and ServiceAccount pinned) — and
//! the effective trust policy: the spec's own document with those statements added. Every
//! ServiceAccount is named in the role's own namespace, so no spec can name another namespace's.
//! Pure.

use serde_json::{Map, Value, json};

use super::json::parse_object;
use crate::api::{AWSProvider, IAMRoleSpec, WorkloadIdentity};

/// The audience of the tokens EKS projects for IRSA.
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";
/// The service principal of the EKS Pod Identity agent.
pub const POD_IDENTITY_SERVICE: &str = "pods.eks.amazonaws.com";
/// The session tag EKS Pod Identity sets to the pod's namespace.
pub const POD_NAMESPACE_TAG: &str = "aws:RequestTag/kubernetes-namespace";
/// The session tag EKS Pod Identity sets to the pod's ServiceAccount.
pub const POD_SERVICE_ACCOUNT_TAG: &str = "aws:RequestTag/kubernetes-service-account";
/// The policy language version of a generated document.
const POLICY_VERSION: &str = "2012-10-17";
/// IAM's limit on an OIDC provider URL without its `https://`, in characters.
pub const MAX_ISSUER_LENGTH: usize = 255;

/// What a role's AWSProvider says about the cluster and the account.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProviderFacts {
    /// The provider's name, for messages.
    pub name: String,
    /// `spec.cluster.oidcIssuer`.
    pub oidc_issuer: Option<String>,
    /// `status.accountID`, once the provider's credentials were checked.
    pub account_id: Option<String>,
    /// `spec.region`, which fixes the partition.
    pub region: String,
}

impl ProviderFacts {
    /// The facts of `provider`.
    pub fn of(provider: &AWSProvider) -> Self {
        ProviderFacts {
            name: provider.metadata.name.clone().unwrap_or_default(),
            oidc_issuer: provider
                .spec
                .cluster
                .as_ref()
                .map(|c| c.oidc_issuer.clone()),
            account_id: provider
                .status
                .as_ref()
                .and_then(|s| s.account_id.clone())
                .filter(|a| !a.is_empty()),
            region: provider.spec.region.clone(),
        }
    }

    /// The partition of the provider's region.
    pub fn partition(&self) -> &'static str {
        partition(&self.region)
    }
}

/// The AWS partition of a region.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Why the effective trust policy cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadIdentityError {
    /// IRSA without the cluster's issuer.
    #[error(
        "workloadIdentity mode {mode} needs the cluster's OIDC issuer, but AWSProvider `{provider}` \
         has no spec.cluster.oidcIssuer; set it to what `aws eks describe-cluster --query \
         cluster.identity.oidc.issuer` prints"
    )]
    NoIssuer {
        /// The provider.
        provider: String,
        /// The mode asking for IRSA.
        mode: &'static str,
    },
    /// An issuer IAM would not take as an OIDC provider URL.
    #[error("spec.cluster.oidcIssuer of AWSProvider `{provider}` {reason}")]
    BadIssuer {
        /// The provider.
        provider: String,
        /// What is wrong with it.
        reason: String,
    },
    /// IRSA before the provider's account is known.
    #[error(
        "the account of AWSProvider `{0}` is not known yet (its credentials have not been \
         checked), so the OIDC provider ARN cannot be written"
    )]
    UnknownAccount(String),
    /// The spec's own document is not a JSON object with statements.
    #[error("assumeRolePolicyDocument cannot be combined with the generated statements: {0}")]
    UnreadableDocument(String),
    /// Nothing says who may assume the role.
    #[error(
        "the role has neither assumeRolePolicyDocument nor workloadIdentity: set one of them to \
         say who may assume it"
    )]
    NoTrust,
}

/// The cluster's IAM OIDC provider, as an IRSA statement names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcProvider {
    /// `arn:PARTITION:iam::ACCOUNT:oidc-provider/HOST/PATH`.
    pub arn: String,
    /// `HOST/PATH`, the prefix of the token's condition keys.
    pub name: String,
}

impl OidcProvider {
    /// The provider of `issuer` in `account` of `partition`.
    pub fn new(issuer: &str, account: &str, partition: &str) -> Result<Self, String> {
        let name = issuer_name(issuer)?;
        Ok(OidcProvider {
            arn: format!("arn:{partition}:iam::{account}:oidc-provider/{name}"),
            name: name.to_owned(),
        })
    }

    /// The cluster's provider from the role's AWSProvider: its issuer and account.
    pub fn of(facts: &ProviderFacts, mode: &'static str) -> Result<Self, WorkloadIdentityError> {
        let issuer =
            facts
                .oidc_issuer
                .as_deref()
                .ok_or_else(|| WorkloadIdentityError::NoIssuer {
                    provider: facts.name.clone(),
                    mode,
                })?;
        let account = facts
            .account_id
            .as_deref()
            .ok_or_else(|| WorkloadIdentityError::UnknownAccount(facts.name.clone()))?;
        OidcProvider::new(issuer, account, facts.partition()).map_err(|reason| {
            WorkloadIdentityError::BadIssuer {
                provider: facts.name.clone(),
                reason,
            }
        })
    }
}

/// The name IAM gives the OIDC provider of `issuer`: the URL without `https://` and without a
/// trailing `/`. The error says what IAM would refuse.
pub fn issuer_name(issuer: &str) -> Result<&str, String> {
    let Some(rest) = issuer.strip_prefix("https://") else {
        return Err("must start with https://".to_owned());
    };
    let name = rest.strip_suffix('/').unwrap_or(rest);
    let host = name.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err("has no host after https://".to_owned());
    }
    if name.chars().count() > MAX_ISSUER_LENGTH {
        return Err(format!(
            "is longer than the {MAX_ISSUER_LENGTH} characters IAM allows after https://"
        ));
    }
    let host_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':');
    if !host_ok {
        return Err(format!(
            "has host `{}`, not a DNS name (letters, digits, `.` and `-`)",
            host.escape_default()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '@' | '*' | '"'))
    {
        return Err(format!(
            "contains {:?}, which an issuer URL cannot hold (no query, fragment, user or wildcard)",
            bad
        ));
    }
    if name.split('/').skip(1).any(str::is_empty) {
        return Err("has an empty path segment (`//`)".to_owned());
    }
    Ok(name)
}

/// The `sub` of the token Kubernetes projects for ServiceAccount `name` of `namespace`.
pub fn service_account_subject(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// One value, or the list of them, as IAM writes a condition value.
fn one_or_many(values: Vec<String>) -> Value {
    match <[String; 1]>::try_from(values) {
        Ok([one]) => Value::String(one),
        Err(values) => json!(values),
    }
}

/// The statements `identity` generates in `namespace`: the IRSA statement when the mode has it
/// and `oidc` is known, then the Pod Identity statement when the mode has it.
pub fn generated_statements(
    identity: &WorkloadIdentity,
    namespace: &str,
    oidc: Option<&OidcProvider>,
) -> Vec<Value> {
    let mut statements = Vec::new();
    if identity.mode.irsa()
        && let Some(oidc) = oidc
    {
        let subjects = identity
            .service_accounts
            .iter()
            .map(|name| service_account_subject(namespace, name))
            .collect();
        let mut equals = Map::new();
        equals.insert(format!("{}:sub", oidc.name), one_or_many(subjects));
        equals.insert(format!("{}:aud", oidc.name), json!(STS_AUDIENCE));
        statements.push(json!({
            "Effect": "Allow",
            "Principal": {"Federated": oidc.arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": equals},
        }));
    }
    if identity.mode.pod_identity() {
        let mut equals = Map::new();
        equals.insert(POD_NAMESPACE_TAG.to_owned(), json!(namespace));
        equals.insert(
            POD_SERVICE_ACCOUNT_TAG.to_owned(),
            one_or_many(identity.service_accounts.clone()),
        );
        statements.push(json!({
            "Effect": "Allow",
            "Principal": {"Service": POD_IDENTITY_SERVICE},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": equals},
        }));
    }
    statements
}

/// The spec's trust document (if any) with `generated` appended to its statements, as compact
/// JSON; the document as written when nothing is generated.
pub fn compose(
    given: Option<&str>,
    generated: Vec<Value>,
) -> Result<String, WorkloadIdentityError> {
    let given = given.filter(|g| !g.is_empty());
    if generated.is_empty() {
        return given
            .map(str::to_owned)
            .ok_or(WorkloadIdentityError::NoTrust);
    }
    let mut document = match given {
        Some(text) => match parse_object(text) {
            Ok(Value::Object(document)) => document,
            Ok(_) => Map::new(),
            Err(error) => return Err(WorkloadIdentityError::UnreadableDocument(error)),
        },
        None => Map::new(),
    };
    let mut statements = match document.remove("Statement") {
        None => Vec::new(),
        Some(Value::Array(statements)) => statements,
        Some(statement @ Value::Object(_)) => vec![statement],
        Some(_) => {
            return Err(WorkloadIdentityError::UnreadableDocument(
                "its Statement is neither a list nor an object".to_owned(),
            ));
        }
    };
    statements.extend(generated);
    document
        .entry("Version")
        .or_insert_with(|| json!(POLICY_VERSION));
    document.insert("Statement".to_owned(), Value::Array(statements));
    Ok(Value::Object(document).to_string())
}

/// The trust policy IAM is to hold for `spec` in `namespace`, managed through the provider of
/// `facts`: the spec's document, with the workload identity statements when there are any.
pub fn effective_trust_policy(
    spec: &IAMRoleSpec,
    namespace: &str,
    facts: &ProviderFacts,
) -> Result<String, WorkloadIdentityError> {
    let given = spec.assume_role_policy_document.as_deref();
    let Some(identity) = &spec.workload_identity else {
        return compose(given, Vec::new());
    };
    let oidc = if identity.mode.irsa() {
        Some(OidcProvider::of(facts, mode_name(identity))?)
    } else {
        None
    };
    compose(
        given,
        generated_statements(identity, namespace, oidc.as_ref()),
    )
}

/// The mode as written in manifests.
pub fn mode_name(identity: &WorkloadIdentity) -> &'static str {
    use crate::api::WorkloadIdentityMode::{Both, Irsa, PodIdentity};
    match identity.mode {
        Irsa => "IRSA",
        PodIdentity => "PodIdentity",
        Both => "Both",
    }
}

/// Who may assume the role through `identity`, one line per ServiceAccount and mechanism.
pub fn assumable_by(identity: &WorkloadIdentity, namespace: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for name in &identity.service_accounts {
        if identity.mode.irsa() {
            lines.push(format!(
                "pods with ServiceAccount {namespace}/{name} (IRSA)"
            ));
        }
        if identity.mode.pod_identity() {
            lines.push(format!(
                "pods with ServiceAccount {namespace}/{name} (EKS Pod Identity association)"
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WorkloadIdentityMode;
    use crate::iam::policies_equal;

    const ISSUER: &str = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC123";
    const HOST: &str = "oidc.eks.eu-west-1.amazonaws.com/id/ABC123";

    fn identity(mode: WorkloadIdentityMode, names: &[&str]) -> WorkloadIdentity {
        WorkloadIdentity {
            service_accounts: names.iter().map(|n| (*n).to_owned()).collect(),
            mode,
            annotate_service_accounts: None,
        }
    }

    fn facts(issuer: Option<&str>) -> ProviderFacts {
        ProviderFacts {
            name: "aws".to_owned(),
            oidc_issuer: issuer.map(str::to_owned),
            account_id: Some("123456789012".to_owned()),
            region: "eu-west-1".to_owned(),
        }
    }

    fn spec(identity: WorkloadIdentity, given: Option<&str>) -> IAMRoleSpec {
        IAMRoleSpec {
            role_name: "app".to_owned(),
            assume_role_policy_document: given.map(str::to_owned),
            workload_identity: Some(identity),
            ..IAMRoleSpec::default()
        }
    }

    #[test]
    fn irsa_pins_the_subject_and_the_audience_of_the_cluster() {
        let spec = spec(identity(WorkloadIdentityMode::Irsa, &["app"]), None);
        let document = effective_trust_policy(&spec, "team-a", &facts(Some(ISSUER))).unwrap();
        let expected = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::123456789012:oidc-provider/{HOST}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{HOST}:sub"): "system:serviceaccount:team-a:app",
                format!("{HOST}:aud"): "sts.amazonaws.com",
            }},
        }]});
        assert!(
            policies_equal(&document, &expected.to_string()),
            "{document}"
        );
    }

    #[test]
    fn pod_identity_pins_the_namespace_and_service_accounts() {
        let spec = spec(
            identity(WorkloadIdentityMode::PodIdentity, &["a", "b"]),
            None,
        );
        let document = effective_trust_policy(&spec, "team-a", &facts(None)).unwrap();
        let expected = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {
                "aws:RequestTag/kubernetes-namespace": "team-a",
                "aws:RequestTag/kubernetes-service-account": ["a", "b"],
            }},
        }]});
        assert!(
            policies_equal(&document, &expected.to_string()),
            "{document}"
        );
    }

    #[test]
    fn both_modes_follow_the_given_statements() {
        let given = r#"{"Version":"2012-10-17","Id":"x","Statement":{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}}"#;
        let spec = spec(
            identity(WorkloadIdentityMode::Both, &["a", "b"]),
            Some(given),
        );
        let document = effective_trust_policy(&spec, "ns", &facts(Some(ISSUER))).unwrap();
        let value: Value = serde_json::from_str(&document).unwrap();
        assert_eq!(value["Id"], "x");
        let statements = value["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[0]["Principal"]["Service"], "ec2.amazonaws.com");
        assert_eq!(
            statements[1]["Condition"]["StringEquals"][format!("{HOST}:sub")],
            json!(["system:serviceaccount:ns:a", "system:serviceaccount:ns:b"])
        );
        assert_eq!(
            statements[2]["Principal"]["Service"],
            "pods.eks.amazonaws.com"
        );
    }

    #[test]
    fn without_workload_identity_the_document_is_kept_as_written() {
        let given = "{ \"Statement\": [] }";
        let spec = IAMRoleSpec {
            assume_role_policy_document: Some(given.to_owned()),
            ..IAMRoleSpec::default()
        };
        assert_eq!(
            effective_trust_policy(&spec, "ns", &facts(None)).as_deref(),
            Ok(given)
        );
        let none = IAMRoleSpec::default();
        assert_eq!(
            effective_trust_policy(&none, "ns", &facts(None)),
            Err(WorkloadIdentityError::NoTrust)
        );
    }

    #[test]
    fn irsa_needs_an_issuer_and_an_account() {
        let spec = spec(identity(WorkloadIdentityMode::Both, &["a"]), None);
        let error = effective_trust_policy(&spec, "ns", &facts(None)).unwrap_err();
        assert!(matches!(
            error,
            WorkloadIdentityError::NoIssuer { mode: "Both", .. }
        ));
        assert!(
            error.to_string().contains("spec.cluster.oidcIssuer"),
            "{error}"
        );
        let unknown = ProviderFacts {
            account_id: None,
            ..facts(Some(ISSUER))
        };
        assert!(matches!(
            effective_trust_policy(&spec, "ns", &unknown),
            Err(WorkloadIdentityError::UnknownAccount(_))
        ));
    }

    #[test]
    fn a_given_document_that_is_not_an_object_with_statements_is_refused() {
        for given in ["not json", r#"{"Statement":"x"}"#, r#"{"a":1,"a":2}"#] {
            let spec = spec(
                identity(WorkloadIdentityMode::PodIdentity, &["a"]),
                Some(given),
            );
            assert!(
                matches!(
                    effective_trust_policy(&spec, "ns", &facts(None)),
                    Err(WorkloadIdentityError::UnreadableDocument(_))
                ),
                "{given}"
            );
        }
    }

    #[test]
    fn issuers_are_read_as_iam_names_them() {
        assert_eq!(issuer_name(ISSUER), Ok(HOST));
        assert_eq!(issuer_name(&format!("{ISSUER}/")), Ok(HOST));
        assert_eq!(
            issuer_name("https://token.actions.githubusercontent.com"),
            Ok("token.actions.githubusercontent.com")
        );
        for bad in [
            "http://oidc.example.com",
            "https://",
            "https:///id/x",
            "https://a b/id",
            "https://oidc.example.com/id?x=1",
            "https://user@oidc.example.com",
            "https://oidc.example.com//x",
            "https://oidc.example.com/*",
            "https://oidc\u{0}.example.com",
        ] {
            assert!(issuer_name(bad).is_err(), "{bad}");
        }
        let long = format!("https://oidc.example.com/{}", "a".repeat(300));
        assert!(issuer_name(&long).unwrap_err().contains("255"));
    }

    #[test]
    fn the_partition_follows_the_region() {
        assert_eq!(partition("us-east-1"), "aws");
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        let oidc = OidcProvider::new(ISSUER, "1", partition("cn-north-1")).unwrap();
        assert!(oidc.arn.starts_with("arn:aws-cn:iam::1:oidc-provider/"));
    }

    #[test]
    fn assumable_by_names_every_service_account_and_mechanism() {
        let lines = assumable_by(&identity(WorkloadIdentityMode::Both, &["a"]), "ns");
        assert_eq!(
            lines,
            [
                "pods with ServiceAccount ns/a (IRSA)",
                "pods with ServiceAccount ns/a (EKS Pod Identity association)"
            ]
        );
    }
}
