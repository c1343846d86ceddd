//! The `AWSProvider` kind: the region, endpoint and credentials used to reach AWS.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How to reach one AWS account.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "aws-infra-operator.runner.codes",
    version = "v1alpha1",
    kind = "AWSProvider",
    namespaced,
    status = "AWSProviderStatus",
    shortname = "awsp",
    doc = "Region, endpoint and credentials used to manage AWS resources",
    printcolumn = r#"{"name": "Region", "type": "string", "jsonPath": ".spec.region"}"#,
    printcolumn = r#"{"name": "Ready", "type": "boolean", "jsonPath": ".status.ready"}"#,
    printcolumn = r#"{"name": "Account", "type": "string", "jsonPath": ".status.accountID"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AWSProviderSpec {
    /// AWS region, e.g. `us-east-1`.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[a-z]{2}(-[a-z]+)+-\d+$")
    )]
    pub region: String,
    /// Role assumed with the web identity token in `AWS_WEB_IDENTITY_TOKEN_FILE` (IRSA).
    #[serde(default, rename = "roleARN", skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Secret key holding the access key ID (static credentials).
    #[serde(
        default,
        rename = "accessKeyIDRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_key_id_ref: Option<SecretKeyRef>,
    /// Secret key holding the secret access key (static credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_ref: Option<SecretKeyRef>,
    /// Secret key holding a session token (optional, static credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_ref: Option<SecretKeyRef>,
    /// Endpoint URL overriding AWS's (LocalStack, moto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Tags put on every resource managed through this provider (a resource's own tags win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_tags: Option<BTreeMap<String, String>>,
    /// Periodic comparison of AWS with the declared state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_detection: Option<DriftDetection>,
    /// The EKS cluster whose pods this provider's roles trust with `workloadIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterIdentity>,
}

/// The identity of the Kubernetes cluster, as IAM knows it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIdentity {
    /// The cluster's OIDC issuer URL as `aws eks describe-cluster` prints it
    /// (`https://oidc.eks.REGION.amazonaws.com/id/ID`); the IAM OIDC provider of the same name
    /// must exist in the provider's account.
    #[schemars(length(min = 9, max = 263), regex(pattern = r"^https://[^\s]+$"))]
    pub oidc_issuer: String,
}

/// A key of a Secret in the provider's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Drift detection settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DriftDetection {
    /// Whether managed resources are re-checked periodically (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Interval between checks as a Go-style duration (`10m`, `30s`, `1h30m`), default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"))]
    pub interval: Option<String>,
}

/// Observed state of a provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AWSProviderStatus {
    /// Whether STS GetCallerIdentity succeeds with these credentials.
    #[serde(default)]
    pub ready: bool,
    /// The AWS account the credentials belong to.
    #[serde(default, rename = "accountID", skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// ARN of the caller identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_identity: Option<String>,
    /// When the credentials last authenticated successfully (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_authentication_time: Option<String>,
    /// `Ready` condition; the reason names the error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
