//! The `tenancy` rule: what one namespace may reach through the operator — the role names and paths
//! it may use, whether it may adopt roles created outside the operator, and where its AWSProviders
//! may send credentials (the operator's own identity, endpoints, roles to assume). The settings are
//! the `tenancy` part of the namespace's GuardrailPolicy. Pure, no I/O.
//!
//! Patterns are IAM-style wildcards (`*` any run, `?` one character, ASCII case-insensitive) in
//! which `{namespace}` stands for the object's namespace. Endpoints are compared by origin only
//! (`scheme://host:port`, the port always spelt out), so nothing in a URL's user, path or query can
//! make an endpoint look like an allowed one.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use serde_json::Value;

use super::document::glob::Coverage;
use super::document::statements;
use super::excerpt::quote;
use super::{FieldPath, Finding, RuleId};
use crate::api::{ADOPT_ANNOTATION, AWSProviderSpec, IAMRoleSpec};
use crate::iam::{CredentialForm, DEFAULT_PATH, credential_form, json};

/// The placeholder for the object's namespace in a tenancy pattern.
pub const NAMESPACE_PLACEHOLDER: &str = "{namespace}";
/// The longest tenancy pattern accepted, in bytes.
pub const MAX_PATTERN_LENGTH: usize = 512;
/// The most patterns one tenancy list may hold.
pub const MAX_PATTERNS: usize = 64;

/// What the namespaces a policy governs may reach through the operator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Tenancy {
    /// Patterns a role name must match (`{namespace}` is the role's namespace), e.g. `{namespace}.*`
    /// (a separator no namespace name holds, so one namespace's names are never another's).
    pub role_names: Vec<String>,
    /// Patterns a role path must match, e.g. `/{namespace}/`.
    pub role_paths: Vec<String>,
    /// Whether roles created outside the operator may be adopted.
    pub adoption: Adoption,
    /// Where the namespace's AWSProviders may send credentials.
    pub providers: ProviderTenancy,
    /// Whether web identity trust must come from `spec.workloadIdentity` (generated for the
    /// namespace's own ServiceAccounts): a hand-written `Federated` OIDC provider or
    /// `sts:AssumeRoleWithWebIdentity` in `assumeRolePolicyDocument` is refused.
    pub require_workload_identity: bool,
}

/// Adoption of existing roles (`aws-infra-operator.runner.codes/adopt: "true"`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Adoption {
    /// Whether a role created outside the operator may be adopted at all.
    pub allowed: bool,
    /// When not empty, the only role names that may be adopted.
    pub role_names: Vec<String>,
}

/// What an AWSProvider of the namespace may use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ProviderTenancy {
    /// Whether a provider may use the operator's own identity: the default credential chain, or
    /// `roleARN` assumed with the operator's web identity token.
    pub operator_identity: bool,
    /// URL patterns a provider's `endpoint` may use, compared by origin (e.g. `http://127.0.0.1:*`);
    /// empty: AWS's own endpoints only (no `endpoint`).
    pub endpoints: Vec<String>,
    /// Patterns a provider's `roleARN` must match.
    pub role_arns: Vec<String>,
    /// Patterns a provider's `cluster.oidcIssuer` must match: the clusters whose pods the
    /// namespace's roles may trust through `workloadIdentity` (e.g. this cluster's issuer only).
    pub oidc_issuers: Vec<String>,
}

impl Default for Tenancy {
    fn default() -> Self {
        Tenancy {
            role_names: vec!["*".to_owned()],
            role_paths: vec!["*".to_owned()],
            adoption: Adoption::default(),
            providers: ProviderTenancy::default(),
            require_workload_identity: false,
        }
    }
}

impl Default for ProviderTenancy {
    fn default() -> Self {
        ProviderTenancy {
            operator_identity: true,
            endpoints: Vec::new(),
            role_arns: vec!["*".to_owned()],
            oidc_issuers: vec!["*".to_owned()],
        }
    }
}

/// One thing a namespace may not do, at the field that asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The field, e.g. `spec.endpoint`.
    pub path: FieldPath,
    /// Why.
    pub message: String,
}

impl Tenancy {
    /// What the role asks for that its namespace may not have. `adopt`: the object carries the
    /// adopt annotation.
    pub fn role_refusals(&self, spec: &IAMRoleSpec, namespace: &str, adopt: bool) -> Vec<Refusal> {
        let spec_path = FieldPath::root("spec");
        let mut out = Vec::new();
        let mut coverage = Coverage::default();
        if !any_matches(&mut coverage, &self.role_names, namespace, &spec.role_name) {
            out.push(Refusal {
                path: spec_path.field("roleName"),
                message: format!(
                    "role name {} is not one namespace `{namespace}` may use (allowed: {})",
                    quote(&spec.role_name),
                    shown(&self.role_names, namespace)
                ),
            });
        }
        let path = spec.path.as_deref().unwrap_or(DEFAULT_PATH);
        if !any_matches(&mut coverage, &self.role_paths, namespace, path) {
            out.push(Refusal {
                path: spec_path.field("path"),
                message: format!(
                    "role path {} is not one namespace `{namespace}` may use (allowed: {})",
                    quote(path),
                    shown(&self.role_paths, namespace)
                ),
            });
        }
        if self.require_workload_identity
            && let Some(document) = &spec.assume_role_policy_document
            && hand_written_web_identity(document)
        {
            out.push(Refusal {
                path: spec_path.field("assumeRolePolicyDocument"),
                message: format!(
                    "namespace `{namespace}` may not write web identity trust by hand (a Federated \
                     OIDC provider or sts:AssumeRoleWithWebIdentity); list the ServiceAccounts in \
                     spec.workloadIdentity instead, which generates that trust for this namespace"
                ),
            });
        }
        if adopt {
            let by_name = self.adoption.role_names.is_empty()
                || any_matches(
                    &mut coverage,
                    &self.adoption.role_names,
                    namespace,
                    &spec.role_name,
                );
            let why = if !self.adoption.allowed {
                Some("namespace `{namespace}` may not adopt roles created outside the operator")
            } else if !by_name {
                Some("namespace `{namespace}` may not adopt a role of this name")
            } else {
                None
            };
            if let Some(why) = why {
                out.push(Refusal {
                    path: FieldPath::root("metadata")
                        .field("annotations")
                        .key(ADOPT_ANNOTATION),
                    message: format!(
                        "{}; remove the annotation or ask the platform team to allow it",
                        why.replace(NAMESPACE_PLACEHOLDER, namespace)
                    ),
                });
            }
        }
        out
    }

    /// What the provider asks for that its namespace may not have: an endpoint outside the allowed
    /// ones, a `roleARN` outside the allowed ones, or the operator's own identity where it is not
    /// allowed.
    pub fn provider_refusals(&self, spec: &AWSProviderSpec, namespace: &str) -> Vec<Refusal> {
        let spec_path = FieldPath::root("spec");
        let allowed = &self.providers;
        let mut out = Vec::new();
        let mut coverage = Coverage::default();
        if let Some(endpoint) = &spec.endpoint
            && !endpoint_allowed(&mut coverage, &allowed.endpoints, namespace, endpoint)
        {
            let allowed_list = if allowed.endpoints.is_empty() {
                "none: only AWS's own endpoints, so leave `endpoint` out".to_owned()
            } else {
                shown(&allowed.endpoints, namespace)
            };
            out.push(Refusal {
                path: spec_path.field("endpoint"),
                message: format!(
                    "endpoint {} is not one namespace `{namespace}` may send credentials to \
                     (allowed: {allowed_list})",
                    quote(endpoint)
                ),
            });
        }
        if let Some(role_arn) = &spec.role_arn
            && !any_matches(&mut coverage, &allowed.role_arns, namespace, role_arn)
        {
            out.push(Refusal {
                path: spec_path.field("roleARN"),
                message: format!(
                    "roleARN {} is not a role namespace `{namespace}` may assume (allowed: {})",
                    quote(role_arn),
                    shown(&allowed.role_arns, namespace)
                ),
            });
        }
        if let Some(cluster) = &spec.cluster
            && !any_matches(
                &mut coverage,
                &allowed.oidc_issuers,
                namespace,
                &cluster.oidc_issuer,
            )
        {
            out.push(Refusal {
                path: spec_path.field("cluster").field("oidcIssuer"),
                message: format!(
                    "oidcIssuer {} is not a cluster whose pods namespace `{namespace}` may trust \
                     (allowed: {})",
                    quote(&cluster.oidc_issuer),
                    shown(&allowed.oidc_issuers, namespace)
                ),
            });
        }
        let operator_identity = matches!(
            credential_form(spec),
            Ok(CredentialForm::WebIdentity { .. } | CredentialForm::DefaultChain)
        );
        if operator_identity && !allowed.operator_identity {
            out.push(Refusal {
                path: spec_path.clone(),
                message: format!(
                    "namespace `{namespace}` may not use the operator's own AWS identity (the default \
                     credential chain or roleARN with its web identity); reference static credentials \
                     in a Secret with accessKeyIDRef and secretAccessKeyRef"
                ),
            });
        }
        out
    }

    /// Checks the settings themselves: the field (under `tenancy`) and what is wrong.
    pub fn problem(&self) -> Option<(String, String)> {
        let lists = [
            ("roleNames", &self.role_names),
            ("rolePaths", &self.role_paths),
            ("adoption.roleNames", &self.adoption.role_names),
            ("providers.endpoints", &self.providers.endpoints),
            ("providers.roleArns", &self.providers.role_arns),
            ("providers.oidcIssuers", &self.providers.oidc_issuers),
        ];
        for (field, patterns) in lists {
            if patterns.len() > MAX_PATTERNS {
                return Some((
                    format!("tenancy.{field}"),
                    format!("holds {} patterns; at most {MAX_PATTERNS}", patterns.len()),
                ));
            }
            for (i, pattern) in patterns.iter().enumerate() {
                if let Some(why) = pattern_problem(pattern, field == "providers.endpoints") {
                    return Some((format!("tenancy.{field}[{i}]"), why));
                }
            }
        }
        None
    }
}

/// Whether a trust document holds a web identity statement: a `Federated` IAM OIDC provider, or
/// the web identity action (any case). A document that cannot be read holds none (its own rules
/// refuse it).
fn hand_written_web_identity(document: &str) -> bool {
    let Ok(Value::Object(document)) = crate::iam::json::parse_object(document) else {
        return false;
    };
    let names_oidc = |value: &Value| match value {
        Value::String(text) => text.contains(":oidc-provider/"),
        Value::Array(items) => items
            .iter()
            .any(|item| item.as_str().is_some_and(|t| t.contains(":oidc-provider/"))),
        _ => false,
    };
    let is_web_identity =
        |action: &str| action.eq_ignore_ascii_case("sts:AssumeRoleWithWebIdentity");
    statements(&document).any(|statement| {
        statement
            .get("Principal")
            .and_then(|p| json::at(p, &["Federated"]))
            .is_some_and(names_oidc)
            || match statement.get("Action") {
                Some(Value::String(action)) => is_web_identity(action),
                Some(Value::Array(actions)) => actions
                    .iter()
                    .any(|a| a.as_str().is_some_and(is_web_identity)),
                _ => false,
            }
    })
}

/// Adds a `tenancy` finding for each refusal.
pub fn report(refusals: Vec<Refusal>, out: &mut Vec<Finding>) {
    out.extend(
        refusals
            .into_iter()
            .map(|r| Finding::deny(RuleId::Tenancy, &r.path, r.message)),
    );
}

/// Why a tenancy pattern cannot be used, if it cannot.
fn pattern_problem(pattern: &str, endpoint: bool) -> Option<String> {
    if pattern.is_empty() || pattern.len() > MAX_PATTERN_LENGTH {
        return Some(format!("must be a pattern of 1–{MAX_PATTERN_LENGTH} bytes"));
    }
    if !pattern.is_ascii() || pattern.chars().any(|c| c.is_ascii_control()) {
        return Some(format!("{} must be printable ASCII", quote(pattern)));
    }
    let without_placeholder = pattern.replace(NAMESPACE_PLACEHOLDER, "");
    if without_placeholder.contains(['{', '}']) {
        return Some(format!(
            "{} holds a placeholder other than {NAMESPACE_PLACEHOLDER}",
            quote(pattern)
        ));
    }
    if endpoint && origin_pattern(pattern).is_none() {
        return Some(format!(
            "{} is not an endpoint pattern `http(s)://HOST[:PORT]` (wildcards allowed in HOST and \
             PORT, no user, path or query), e.g. `http://127.0.0.1:*`",
            quote(pattern)
        ));
    }
    None
}

/// Whether `text` matches one of `patterns` once `{namespace}` is replaced.
fn any_matches(coverage: &mut Coverage, patterns: &[String], namespace: &str, text: &str) -> bool {
    patterns
        .iter()
        .any(|p| coverage.matches(&for_namespace(p, namespace), text))
}

/// `pattern` with [`NAMESPACE_PLACEHOLDER`] replaced by `namespace`; a pattern without it (such as
/// the default `*`) is used as it is, without a copy on every check.
fn for_namespace<'p>(pattern: &'p str, namespace: &str) -> Cow<'p, str> {
    if pattern.contains(NAMESPACE_PLACEHOLDER) {
        Cow::Owned(pattern.replace(NAMESPACE_PLACEHOLDER, namespace))
    } else {
        Cow::Borrowed(pattern)
    }
}

/// Whether credentials may be sent to `endpoint`: its origin matches one of the (origin) patterns.
pub fn endpoint_allowed(
    coverage: &mut Coverage,
    patterns: &[String],
    namespace: &str,
    endpoint: &str,
) -> bool {
    let Some(origin) = endpoint_origin(endpoint) else {
        return false;
    };
    patterns.iter().any(|pattern| {
        origin_pattern(&for_namespace(pattern, namespace))
            .is_some_and(|p| coverage.matches(&p, &origin))
    })
}

/// `scheme://host:port` of an absolute http(s) URL, the port spelt out; `None` for anything else,
/// including a URL with user information.
pub fn endpoint_origin(endpoint: &str) -> Option<String> {
    let uri = endpoint.parse::<http::Uri>().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let port = authority.port_u16().unwrap_or(default_port);
    Some(format!("{scheme}://{host}:{port}"))
}

/// An endpoint pattern as an origin pattern (`scheme://host:port`, the port `*`-free only when
/// given); `None` when it is not one.
fn origin_pattern(pattern: &str) -> Option<String> {
    let (scheme, rest) = pattern.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => (host, port),
        _ => (rest, default_port),
    };
    let host_ok = !host.is_empty()
        && host.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*' | '?' | '[' | ']' | ':')
        });
    let port_ok = !port.is_empty()
        && port
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '?');
    (host_ok && port_ok).then(|| format!("{scheme}://{}:{port}", host.to_ascii_lowercase()))
}

/// The patterns as a message shows them, with the namespace filled in.
fn shown(patterns: &[String], namespace: &str) -> String {
    if patterns.is_empty() {
        return "none".to_owned();
    }
    patterns
        .iter()
        .map(|p| format!("`{}`", for_namespace(p, namespace)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ProviderRef, SecretKeyRef};

    fn team_policy() -> Tenancy {
        Tenancy {
            role_names: vec!["{namespace}-*".to_owned()],
            role_paths: vec!["/{namespace}/".to_owned()],
            adoption: Adoption::default(),
            providers: ProviderTenancy {
                operator_identity: false,
                endpoints: vec!["http://127.0.0.1:*".to_owned()],
                role_arns: vec!["arn:aws:iam::111122223333:role/{namespace}-*".to_owned()],
                oidc_issuers: vec!["https://oidc.eks.us-east-1.amazonaws.com/id/OURS".to_owned()],
            },
            require_workload_identity: true,
        }
    }

    #[test]
    fn a_provider_may_name_only_the_allowed_clusters() {
        let provider = |issuer: &str| AWSProviderSpec {
            region: "us-east-1".to_owned(),
            access_key_id_ref: Some(SecretKeyRef {
                name: "keys".to_owned(),
                key: "id".to_owned(),
            }),
            secret_access_key_ref: Some(SecretKeyRef {
                name: "keys".to_owned(),
                key: "secret".to_owned(),
            }),
            cluster: Some(crate::api::ClusterIdentity {
                oidc_issuer: issuer.to_owned(),
            }),
            ..AWSProviderSpec::default()
        };
        let ours = provider("https://oidc.eks.us-east-1.amazonaws.com/id/OURS");
        assert!(team_policy().provider_refusals(&ours, "team-a").is_empty());
        let theirs = provider("https://oidc.eks.us-east-1.amazonaws.com/id/OTHER-CLUSTER");
        let refusals = team_policy().provider_refusals(&theirs, "team-a");
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert_eq!(refusals[0].path.as_str(), "spec.cluster.oidcIssuer");
        assert!(
            Tenancy::default()
                .provider_refusals(&theirs, "team-a")
                .is_empty()
        );
    }

    #[test]
    fn hand_written_web_identity_trust_is_refused_where_workload_identity_is_required() {
        let federated = r#"{"Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::1:oidc-provider/oidc.example.com"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#;
        let action_only = r#"{"Statement":{"Effect":"Allow","Principal":{"Service":"x"},"Action":["STS:assumerolewithwebidentity"]}}"#;
        let service = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        for (document, refused) in [(federated, true), (action_only, true), (service, false)] {
            let spec = IAMRoleSpec {
                assume_role_policy_document: Some(document.to_owned()),
                ..role("team-a-app", Some("/team-a/"))
            };
            let refusals = team_policy().role_refusals(&spec, "team-a", false);
            assert_eq!(!refusals.is_empty(), refused, "{document}: {refusals:?}");
            if refused {
                assert_eq!(refusals[0].path.as_str(), "spec.assumeRolePolicyDocument");
                assert!(refusals[0].message.contains("spec.workloadIdentity"));
            }
            let relaxed = Tenancy {
                require_workload_identity: false,
                ..team_policy()
            };
            assert!(relaxed.role_refusals(&spec, "team-a", false).is_empty());
        }
    }

    fn role(name: &str, path: Option<&str>) -> IAMRoleSpec {
        IAMRoleSpec {
            provider_ref: ProviderRef {
                name: "aws".to_owned(),
                namespace: None,
            },
            role_name: name.to_owned(),
            path: path.map(str::to_owned),
            ..IAMRoleSpec::default()
        }
    }

    fn paths(refusals: &[Refusal]) -> Vec<String> {
        refusals.iter().map(|r| r.path.to_string()).collect()
    }

    fn static_keys(endpoint: Option<&str>) -> AWSProviderSpec {
        let key = |k: &str| {
            Some(SecretKeyRef {
                name: "creds".to_owned(),
                key: k.to_owned(),
            })
        };
        AWSProviderSpec {
            region: "us-east-1".to_owned(),
            access_key_id_ref: key("id"),
            secret_access_key_ref: key("secret"),
            endpoint: endpoint.map(str::to_owned),
            ..AWSProviderSpec::default()
        }
    }

    #[test]
    fn defaults_allow_every_name_and_path_and_no_endpoint() {
        let open = Tenancy::default();
        assert!(
            open.role_refusals(&role("anything", Some("/x/y/")), "a", false)
                .is_empty()
        );
        assert!(open.provider_refusals(&static_keys(None), "a").is_empty());
        let refused = open.provider_refusals(&static_keys(Some("http://127.0.0.1:5000")), "a");
        assert_eq!(paths(&refused), ["spec.endpoint"]);
        assert!(
            refused[0].message.contains("only AWS's own endpoints"),
            "{}",
            refused[0].message
        );
    }

    #[test]
    fn names_and_paths_follow_the_namespace() {
        let policy = team_policy();
        assert!(
            policy
                .role_refusals(&role("team-a-app", Some("/team-a/")), "team-a", false)
                .is_empty()
        );
        assert!(
            policy
                .role_refusals(&role("TEAM-A-app", Some("/team-a/")), "team-a", false)
                .is_empty()
        );
        let squat = policy.role_refusals(&role("team-b-deployer", None), "team-a", false);
        assert_eq!(paths(&squat), ["spec.roleName", "spec.path"]);
        assert!(
            squat[0].message.contains("`team-a-*`"),
            "{}",
            squat[0].message
        );
        assert!(squat[1].message.contains("`/`"), "{}", squat[1].message);
    }

    #[test]
    fn a_separator_namespaces_never_hold_keeps_prefixed_namespaces_apart() {
        let dotted = Tenancy {
            role_names: vec!["{namespace}.*".to_owned()],
            ..Tenancy::default()
        };
        let spec = role("payments-api.deployer", None);
        assert!(
            dotted
                .role_refusals(&spec, "payments-api", false)
                .is_empty()
        );
        assert_eq!(
            paths(&dotted.role_refusals(&spec, "payments", false)),
            ["spec.roleName"]
        );
        // With `-`, the shorter namespace reaches into the longer one's names.
        let dashed = Tenancy {
            role_names: vec!["{namespace}-*".to_owned()],
            ..Tenancy::default()
        };
        let spec = role("payments-api-deployer", None);
        assert!(dashed.role_refusals(&spec, "payments", false).is_empty());
    }

    #[test]
    fn adoption_needs_the_policy_and_a_matching_name() {
        let mut policy = team_policy();
        let spec = role("team-a-legacy", Some("/team-a/"));
        let refused = policy.role_refusals(&spec, "team-a", true);
        assert_eq!(
            paths(&refused),
            [format!("metadata.annotations[{ADOPT_ANNOTATION}]")]
        );
        policy.adoption.allowed = true;
        assert!(policy.role_refusals(&spec, "team-a", true).is_empty());
        policy.adoption.role_names = vec!["{namespace}-imported-*".to_owned()];
        assert_eq!(policy.role_refusals(&spec, "team-a", true).len(), 1);
        assert!(policy.role_refusals(&spec, "team-a", false).is_empty());
        let imported = role("team-a-imported-1", Some("/team-a/"));
        assert!(policy.role_refusals(&imported, "team-a", true).is_empty());
    }

    #[test]
    fn endpoints_compare_by_origin_so_urls_cannot_disguise_their_host() {
        let policy = team_policy();
        for allowed in [
            "http://127.0.0.1:5000",
            "http://127.0.0.1:5000/",
            "HTTP://127.0.0.1:80/x",
        ] {
            assert!(
                policy
                    .provider_refusals(&static_keys(Some(allowed)), "team-a")
                    .is_empty(),
                "{allowed}"
            );
        }
        for hostile in [
            "http://127.0.0.1:5000@evil.example/",
            "http://127.0.0.1.evil.example:5000/",
            "https://127.0.0.1:5000/",
            "http://evil.example/?http://127.0.0.1:5000",
            "http://evil.example/http://127.0.0.1:1",
            "ftp://127.0.0.1:21/",
            "not a url",
        ] {
            let refused = policy.provider_refusals(&static_keys(Some(hostile)), "team-a");
            assert_eq!(paths(&refused), ["spec.endpoint"], "{hostile}");
        }
    }

    #[test]
    fn operator_identity_and_role_arns_are_limited() {
        let policy = team_policy();
        let chain = AWSProviderSpec {
            region: "us-east-1".to_owned(),
            ..AWSProviderSpec::default()
        };
        assert_eq!(paths(&policy.provider_refusals(&chain, "team-a")), ["spec"]);
        let web_identity = AWSProviderSpec {
            role_arn: Some("arn:aws:iam::111122223333:role/team-b-admin".to_owned()),
            ..chain.clone()
        };
        assert_eq!(
            paths(&policy.provider_refusals(&web_identity, "team-a")),
            ["spec.roleARN", "spec"]
        );
        let mut open = policy.clone();
        open.providers.operator_identity = true;
        let own = AWSProviderSpec {
            role_arn: Some("arn:aws:iam::111122223333:role/team-a-deployer".to_owned()),
            ..chain
        };
        assert!(open.provider_refusals(&own, "team-a").is_empty());
    }

    #[test]
    fn bad_patterns_are_named() {
        let mut policy = Tenancy::default();
        assert_eq!(policy.problem(), None);
        policy.providers.endpoints = vec!["http://127.0.0.1:*/path".to_owned()];
        assert_eq!(
            policy.problem().map(|(field, _)| field),
            Some("tenancy.providers.endpoints[0]".to_owned())
        );
        policy.providers.endpoints = vec!["http://u@host".to_owned()];
        assert!(policy.problem().is_some());
        policy.providers.endpoints = vec!["https://*.example.com".to_owned()];
        assert_eq!(policy.problem(), None);
        policy.role_names = vec!["{team}-*".to_owned()];
        assert_eq!(
            policy.problem().map(|(field, _)| field),
            Some("tenancy.roleNames[0]".to_owned())
        );
        policy.role_names = vec![String::new()];
        assert!(policy.problem().is_some());
    }
}
