//! The `GuardrailPolicy` kind (cluster-scoped): the platform team's guardrails for the namespaces
//! its selector matches — every setting of the guardrail engine plus `tenancy`. Pure data.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::guardrails::{Config, ConfigError};

/// Guardrails for the IAMRoles and AWSProviders of the namespaces the selector matches. Of the
/// policies matching a namespace, the one with the highest priority governs it (ties: the first
/// name in alphabetical order); a namespace no policy matches gets the built-in defaults.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "aws-infra-operator.runner.codes",
    version = "v1alpha1",
    kind = "GuardrailPolicy",
    status = "GuardrailPolicyStatus",
    shortname = "gp",
    doc = "The platform team's guardrails for the IAMRoles and AWSProviders of selected namespaces",
    printcolumn = r#"{"name": "Priority", "type": "integer", "jsonPath": ".spec.priority"}"#,
    printcolumn = r#"{"name": "Selector", "type": "string", "jsonPath": ".status.selector"}"#,
    printcolumn = r#"{"name": "Namespaces", "type": "integer", "jsonPath": ".status.namespaces"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailPolicySpec {
    /// The namespaces this policy may govern; empty or absent: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Of the policies matching a namespace, the highest priority governs it.
    #[serde(default)]
    pub priority: i32,
    /// The guardrail settings (the same names as `policies/guardrails.yaml`) and `tenancy`, kept
    /// as written so that a policy the engine cannot read still reaches the operator (and fails
    /// closed) instead of stopping the watch of every policy.
    #[serde(flatten)]
    #[schemars(with = "Config")]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl GuardrailPolicySpec {
    /// The guardrail settings, read and checked.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::from_spec(&serde_json::Value::Object(self.settings.clone()))
    }
}

/// What the policy governs now.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailPolicyStatus {
    /// How many namespaces this policy governs.
    #[serde(default)]
    pub namespaces: i64,
    /// The namespace selector in `kubectl` notation (`team=a,tier in (x,y)`; `<all>`: every namespace).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// `Accepted`: whether the settings are valid (a policy that is not governs its namespaces by
    /// refusing everything, until fixed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
