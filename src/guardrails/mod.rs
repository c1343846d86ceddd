//! The guardrail engine: every check of an IAMRole or AWSProvider, shared by the admission webhook,
//! `infra-operator validate` and the reconciler. Pure: no Kubernetes client, no AWS, no file I/O.
//!
//! [`Engine::check`] takes an object as JSON (as the API server or a manifest file holds it) and returns
//! [`Finding`]s, each naming its stable [`RuleId`], the exact field path, a severity and a message.

mod config;
pub mod document;
pub mod duration;
mod excerpt;
mod finding;
mod path;
mod provider;
mod role;
mod rule_id;
mod schema;
mod tags;

pub use config::{
    ActionWildcard, BoundaryPolicy, CONFIGURABLE_RULES, Config, ConfigError,
    DEFAULT_GUARDRAILS_YAML, Level, Quotas, SessionRange,
};
pub use finding::{Finding, Severity};
pub use path::FieldPath;
pub use rule_id::{RuleId, UnknownRuleId};

use serde_json::Value;

use crate::api::{API_VERSION, AWSProviderSpec, IAMRoleSpec};
pub use crate::iam::OWNER_TAG_KEY;
use crate::iam::arn;

/// The kinds the engine checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `IAMRole`.
    IAMRole,
    /// `AWSProvider`.
    AWSProvider,
}

impl Kind {
    /// The kind of an object with this `apiVersion` and `kind`, if it is one of ours.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        if api_version != API_VERSION {
            return None;
        }
        match kind {
            "IAMRole" => Some(Kind::IAMRole),
            "AWSProvider" => Some(Kind::AWSProvider),
            _ => None,
        }
    }

    /// The kind of a JSON object, read from its `apiVersion` and `kind` fields.
    pub fn of(object: &Value) -> Option<Kind> {
        let field = |name| object.get(name).and_then(Value::as_str).unwrap_or_default();
        Kind::from_type(field("apiVersion"), field("kind"))
    }

    /// The kind's name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::IAMRole => "IAMRole",
            Kind::AWSProvider => "AWSProvider",
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
    objects: schema::ObjectSchemas,
    policies: document::PolicyChecker,
}

impl Engine {
    /// Builds the engine for a configuration.
    pub fn new(config: Config) -> Result<Self, SchemaError> {
        Ok(Engine {
            config,
            objects: schema::ObjectSchemas::new()?,
            policies: document::PolicyChecker::new()?,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every finding for `object` of `kind`; `old` is the stored object on UPDATE.
    pub fn check(&self, kind: Kind, object: &Value, old: Option<&Value>) -> Vec<Finding> {
        let mut out = Vec::new();
        self.objects.check(kind, object, &mut out);
        let spec = object.get("spec").cloned().unwrap_or(Value::Null);
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str);
        match kind {
            Kind::IAMRole => match read_spec::<IAMRoleSpec>(spec) {
                Ok(spec) => {
                    self.check_role(&spec, namespace, &mut out);
                    let old_spec = old
                        .and_then(|o| o.get("spec"))
                        .and_then(|s| serde_json::from_value::<IAMRoleSpec>(s.clone()).ok());
                    if let Some(old_spec) = old_spec {
                        role::check_immutable(&spec, &old_spec, &mut out);
                    }
                }
                Err(e) => schema::unreadable_spec(&e, &mut out),
            },
            Kind::AWSProvider => match read_spec::<AWSProviderSpec>(spec) {
                Ok(spec) => provider::check_provider(&spec, &mut out),
                Err(e) => schema::unreadable_spec(&e, &mut out),
            },
        }
        out
    }

    fn check_role(&self, spec: &IAMRoleSpec, namespace: Option<&str>, out: &mut Vec<Finding>) {
        role::check_role(spec, namespace, &self.config, out);
        let spec_path = FieldPath::root("spec");
        self.policies.check_trust(
            &spec.assume_role_policy_document,
            &spec_path.field("assumeRolePolicyDocument"),
            &self.config,
            out,
        );
        let mut documents = Vec::new();
        for (i, policy) in spec.inline_policies.iter().flatten().enumerate() {
            let path = spec_path
                .field("inlinePolicies")
                .index(i)
                .field("policyDocument");
            documents.push((path, policy.policy_document.as_str()));
        }
        if let Some(policy) = &spec.inline_policy {
            let path = spec_path.field("inlinePolicy").field("policyDocument");
            documents.push((path, policy.policy_document.as_str()));
        }
        self.policies
            .check_permissions(&documents, &self.config, out);
    }
}

/// Reads a spec into its API type; the error names the field that could not be read.
fn read_spec<T: serde::de::DeserializeOwned>(
    spec: Value,
) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    serde_path_to_error::deserialize(spec)
}

/// Whether any finding refuses the object.
pub fn denied(findings: &[Finding]) -> bool {
    findings.iter().any(Finding::is_deny)
}
