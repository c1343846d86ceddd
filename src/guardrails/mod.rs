//! The guardrail engine: every check of an IAMRole or AWSProvider, shared by the admission webhook,
//! `infra-operator validate` and the reconciler. Pure: no Kubernetes client, no AWS, no file I/O.
//!
//! [`Engine::check`] takes an object as JSON (as the API server or a manifest file holds it) and returns
//! [`Finding`]s, each naming its stable [`RuleId`], the exact field path, a severity and a message.

mod config;
mod denied_policy;
pub mod document;
pub mod duration;
mod excerpt;
mod finding;
mod path;
mod policy;
mod provider;
mod report;
mod role;
mod rule_id;
mod schema;
mod tags;
pub mod tenancy;
mod workload;

pub use config::{
    ActionWildcard, BoundaryPolicy, CONFIGURABLE_RULES, Config, ConfigError,
    DEFAULT_GUARDRAILS_YAML, EscalationPolicy, Level, Quotas, SessionRange,
};
pub use finding::{Finding, Severity};
pub use path::FieldPath;
pub use report::MAX_FINDINGS;
pub use rule_id::{RuleId, UnknownRuleId};
pub use workload::MAX_SERVICE_ACCOUNTS;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::api::{API_VERSION, AWSProviderSpec, IAMRoleSpec};
use report::Report;

pub use crate::iam::OWNER_TAG_KEY;
use crate::iam::arn;
use crate::iam::json::at;
use crate::iam::workload_identity::ProviderFacts;

/// The kinds the engine checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `IAMRole`.
    IAMRole,
    /// `AWSProvider`.
    AWSProvider,
    /// `GuardrailPolicy` (its settings are checked, not applied).
    GuardrailPolicy,
}

impl Kind {
    /// The kind of an object with this `apiVersion` and `kind`, if it is one of ours.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        if api_version != API_VERSION {
            return None;
        }
        Kind::named(kind)
    }

    /// The kind of an object of API `group` and `version` and this `kind`, if it is one of ours:
    /// the same answer as [`Kind::from_type`] for `group/version`, without writing that out.
    pub fn from_group_version(group: &str, version: &str, kind: &str) -> Option<Kind> {
        if API_VERSION.split_once('/') != Some((group, version)) {
            return None;
        }
        Kind::named(kind)
    }

    /// Our kind called `kind`, whatever its API version.
    fn named(kind: &str) -> Option<Kind> {
        match kind {
            "IAMRole" => Some(Kind::IAMRole),
            "AWSProvider" => Some(Kind::AWSProvider),
            "GuardrailPolicy" => Some(Kind::GuardrailPolicy),
            _ => None,
        }
    }

    /// The kind of a JSON object, read from its `apiVersion` and `kind` fields.
    pub fn of(object: &Value) -> Option<Kind> {
        let field = |name| {
            at(object, &[name])
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        Kind::from_type(field("apiVersion"), field("kind"))
    }

    /// The kind's name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::IAMRole => "IAMRole",
            Kind::AWSProvider => "AWSProvider",
            Kind::GuardrailPolicy => "GuardrailPolicy",
        }
    }
}

/// Why the engine could not be built (a committed JSON Schema failed to compile).
#[derive(Debug, thiserror::Error)]
#[error("built-in schema `{name}` does not compile: {message}")]
pub struct SchemaError {
    /// Which schema.
    pub name: &'static str,
    /// The compiler's complaint.
    pub message: String,
}

/// The guardrail engine: configuration plus compiled schemas. Cheap to share behind an `Arc`.
pub struct Engine {
    config: Config,
    compiled: Arc<Compiled>,
}

/// The schemas every engine uses, whatever its configuration.
struct Compiled {
    objects: schema::ObjectSchemas,
    policies: document::PolicyChecker,
}

impl Engine {
    /// Builds the engine for a configuration.
    pub fn new(config: Config) -> Result<Self, SchemaError> {
        let compiled = Compiled {
            objects: schema::ObjectSchemas::new()?,
            policies: document::PolicyChecker::new()?,
        };
        Ok(Engine {
            config,
            compiled: Arc::new(compiled),
        })
    }

    /// An engine for another configuration, sharing this one's compiled schemas (cheap).
    pub fn with_config(&self, config: Config) -> Engine {
        Engine {
            config,
            compiled: Arc::clone(&self.compiled),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every finding for `object` of `kind`; `old` is the stored object on UPDATE.
    /// At most [`MAX_FINDINGS`] are returned, plus one summing up the others.
    pub fn check(&self, kind: Kind, object: &Value, old: Option<&Value>) -> Vec<Finding> {
        self.check_with_provider(kind, object, old, None)
    }

    /// [`Engine::check`] of an IAMRole whose AWSProvider is known (`provider`): the statements
    /// its `workloadIdentity` generates for that provider's cluster are checked with its trust
    /// policy. Without it, only what needs no provider is generated and checked.
    pub fn check_with_provider(
        &self,
        kind: Kind,
        object: &Value,
        old: Option<&Value>,
        provider: Option<&ProviderFacts>,
    ) -> Vec<Finding> {
        let mut report = Report::default();
        self.compiled.objects.check(kind, object, report.findings());
        let spec = at(object, &["spec"]).unwrap_or(&Value::Null);
        let namespace = at(object, &["metadata", "namespace"]).and_then(Value::as_str);
        // A manifest without a namespace is applied to the current one, `default` unless told.
        let tenant = namespace.unwrap_or("default");
        match kind {
            Kind::IAMRole => match read_spec::<IAMRoleSpec>(spec) {
                Ok(spec) => {
                    self.check_role(&spec, namespace, provider, &mut report);
                    let adopt = crate::api::adopt_requested(
                        at(
                            object,
                            &["metadata", "annotations", crate::api::ADOPT_ANNOTATION],
                        )
                        .and_then(Value::as_str),
                    );
                    tenancy::report(
                        self.config.tenancy.role_refusals(&spec, tenant, adopt),
                        report.findings(),
                    );
                    if let Some(old) = old {
                        let old_spec =
                            at(old, &["spec"]).and_then(|s| IAMRoleSpec::deserialize(s).ok());
                        match old_spec {
                            Some(old_spec) => {
                                role::check_immutable(&spec, &old_spec, report.findings());
                            }
                            None => report.findings().push(Finding::deny(
                                RuleId::ImmutableField,
                                &FieldPath::root("oldObject").field("spec"),
                                "the stored object cannot be read, so the immutable fields \
                                 (roleName, path, providerRef) cannot be compared; refused",
                            )),
                        }
                    }
                }
                Err(e) => schema::unreadable_spec(&e, report.findings()),
            },
            Kind::AWSProvider => match read_spec::<AWSProviderSpec>(spec) {
                Ok(spec) => {
                    provider::check_provider(&spec, report.findings());
                    let mut refusals = self.config.tenancy.provider_refusals(&spec, tenant);
                    // An endpoint that is no URL at all is provider-config's to report.
                    refusals.retain(|refusal| {
                        !report.findings().iter().any(|f| {
                            f.rule == RuleId::ProviderConfig && f.path == refusal.path.as_str()
                        })
                    });
                    tenancy::report(refusals, report.findings());
                }
                Err(e) => schema::unreadable_spec(&e, report.findings()),
            },
            Kind::GuardrailPolicy => policy::check_policy(spec, report.findings()),
        }
        report.into_findings()
    }

    fn check_role(
        &self,
        spec: &IAMRoleSpec,
        namespace: Option<&str>,
        provider: Option<&ProviderFacts>,
        report: &mut Report,
    ) {
        role::check_role(spec, namespace, &self.config, report.findings());
        let tenant = namespace.unwrap_or("default");
        let generated = workload::check(spec, tenant, provider, report.findings());
        let generated_path = FieldPath::fixed("spec.workloadIdentity");
        let trusted_by = self.compiled.policies.check_effective_trust(
            spec.assume_role_policy_document.as_deref(),
            &FieldPath::fixed("spec.assumeRolePolicyDocument"),
            generated.as_deref().map(|text| (text, &generated_path)),
            &self.config,
            report.findings(),
        );
        report.trim();
        let mut documents = Vec::new();
        for (i, policy) in spec.inline_policies.iter().flatten().enumerate() {
            let path = FieldPath::fixed("spec.inlinePolicies")
                .index(i)
                .field("policyDocument");
            documents.push((path, policy.policy_document.as_str()));
        }
        if let Some(policy) = &spec.inline_policy {
            let path = FieldPath::fixed("spec.inlinePolicy.policyDocument");
            documents.push((path, policy.policy_document.as_str()));
        }
        self.compiled
            .policies
            .check_permissions(&documents, trusted_by, &self.config, report);
    }
}

/// Reads a spec into its API type; the error names the field that could not be read.
fn read_spec<T: serde::de::DeserializeOwned>(
    spec: &Value,
) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    // Read again with the path tracked only when it fails: tracking costs more than the reading.
    T::deserialize(spec).or_else(|_| serde_path_to_error::deserialize(spec))
}

/// Whether any finding refuses the object.
pub fn denied(findings: &[Finding]) -> bool {
    findings.iter().any(Finding::is_deny)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn role(inline_policies: Vec<Value>) -> Value {
        json!({
            "apiVersion": API_VERSION, "kind": "IAMRole",
            "metadata": {"name": "hostile", "namespace": "default"},
            "spec": {
                "providerRef": {"name": "aws"}, "roleName": "hostile",
                "assumeRolePolicyDocument": json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}).to_string(),
                "inlinePolicies": inline_policies,
            }
        })
    }

    fn policy(name: &str, statements: usize) -> Value {
        let statement =
            json!({"Effect": "Allow", "Action": ["iam:*", "\u{131}am:*"], "Resource": "*"});
        let document = json!({"Version": "2012-10-17", "Statement": vec![statement; statements]});
        json!({"policyName": name, "policyDocument": document.to_string()})
    }

    fn check(object: &Value) -> Vec<Finding> {
        let engine = Engine::new(Config::default()).unwrap();
        engine.check(Kind::IAMRole, object, None)
    }

    fn text_size(findings: &[Finding]) -> usize {
        findings.iter().map(|f| f.to_string().len()).sum()
    }

    #[test]
    fn a_spec_that_cannot_be_read_names_the_field() {
        let mut spec = role(Vec::new())["spec"].clone();
        assert!(read_spec::<IAMRoleSpec>(&spec).is_ok());
        spec["inlinePolicies"] = json!([{"policyName": "p", "policyDocument": 7}]);
        let error = read_spec::<IAMRoleSpec>(&spec).unwrap_err();
        assert_eq!(error.path().to_string(), "inlinePolicies[0].policyDocument");
    }

    #[test]
    fn a_huge_document_gets_one_size_finding() {
        let object = role(vec![policy("huge", 75_000)]);
        assert!(object.to_string().len() > 2_800_000);
        let findings = check(&object);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule, RuleId::PolicySize);
    }

    #[test]
    fn many_bad_statements_get_a_capped_answer() {
        let policies: Vec<Value> = (0..24).map(|i| policy(&format!("p{i}"), 1_800)).collect();
        let object = role(policies);
        assert!(object.to_string().len() > 2_800_000);
        let findings = check(&object);
        assert_eq!(findings.len(), MAX_FINDINGS + 1);
        assert!(findings.iter().all(Finding::is_deny));
        assert!(
            text_size(&findings) < 200 * 1024,
            "{} bytes",
            text_size(&findings)
        );
        let last = &findings[MAX_FINDINGS];
        assert!(
            last.message.starts_with("and ") && last.message.contains(" more: "),
            "{}",
            last.message
        );
        assert_eq!(last.path, "spec.inlinePolicies");
    }
}
