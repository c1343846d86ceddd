//! The `IAMRole` kind: one AWS IAM role, its trust policy, permissions and tags.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of an AWS IAM role.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "aws-infra-operator.runner.codes",
    version = "v1alpha1",
    kind = "IAMRole",
    namespaced,
    status = "IAMRoleStatus",
    shortname = "iamr",
    doc = "An AWS IAM role managed from Kubernetes",
    printcolumn = r#"{"name": "Role Name", "type": "string", "jsonPath": ".spec.roleName"}"#,
    printcolumn = r#"{"name": "Ready", "type": "boolean", "jsonPath": ".status.ready"}"#,
    printcolumn = r#"{"name": "ARN", "type": "string", "jsonPath": ".status.roleArn"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IAMRoleSpec {
    /// The AWSProvider (in this namespace) whose credentials manage the role.
    pub provider_ref: ProviderRef,
    /// Name of the role in IAM: 1–64 of letters, digits and `+=,.@_-`. Immutable.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[\w+=,.@-]+$"))]
    pub role_name: String,
    /// Trust policy (JSON) naming who may assume the role. Optional with `workloadIdentity`, whose
    /// generated statements are added to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub assume_role_policy_document: Option<String>,
    /// Pods of this namespace that may assume the role through their ServiceAccounts (IRSA, EKS Pod
    /// Identity), without a hand-written trust policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
    /// Human-readable description, at most 1000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub description: Option<String>,
    /// IAM path (`/` or `/a/b/`), default `/`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^/([\x21-\x7E]*/)?$"))]
    pub path: Option<String>,
    /// Maximum session duration in seconds, 3600–43200, default 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3600, max = 43200))]
    pub max_session_duration: Option<i32>,
    /// ARNs of managed policies to attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20))]
    pub managed_policy_arns: Option<Vec<String>>,
    /// Inline policies embedded in the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_policies: Option<Vec<InlinePolicy>>,
    /// A single inline policy (older form); folded into `inlinePolicies` on admission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_policy: Option<InlinePolicy>,
    /// ARN of the managed policy used as permissions boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
    /// Tags of the role (at most 50 including defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 50))]
    pub tags: Option<BTreeMap<String, String>>,
    /// What happens in IAM when the object is deleted: `Delete` (default) or `Retain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

impl IAMRoleSpec {
    /// Every inline policy of the role: the list form, then the singular form.
    pub fn all_inline_policies(&self) -> impl Iterator<Item = &InlinePolicy> {
        self.inline_policies
            .iter()
            .flatten()
            .chain(&self.inline_policy)
    }
}

/// Reference to the AWSProvider that manages a role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    /// Name of the AWSProvider.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the AWSProvider; must be the role's own when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One inline policy of a role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InlinePolicy {
    /// Name of the policy: 1–128 of letters, digits and `+=,.@_-`.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[\w+=,.@-]+$"))]
    pub policy_name: String,
    /// The policy document (JSON).
    #[schemars(length(min = 1))]
    pub policy_document: String,
}

/// The ServiceAccounts whose pods may assume a role, and how.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentity {
    /// Names of ServiceAccounts in the role's namespace (never another namespace's).
    #[schemars(length(min = 1, max = 100))]
    pub service_accounts: Vec<String>,
    /// `IRSA` (default: an OIDC web identity statement for the cluster of the provider's
    /// `spec.cluster.oidcIssuer`), `PodIdentity` (the EKS Pod Identity agent), or `Both`.
    #[serde(default)]
    pub mode: WorkloadIdentityMode,
    /// Set `eks.amazonaws.com/role-arn` on those ServiceAccounts once the role exists, and remove
    /// it when the role is deleted or the ServiceAccount leaves the list, if it still names this
    /// role (IRSA only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotate_service_accounts: Option<bool>,
}

/// How pods get the role's credentials.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WorkloadIdentityMode {
    /// IAM Roles for Service Accounts: the cluster's OIDC provider, `sts:AssumeRoleWithWebIdentity`.
    #[default]
    #[serde(rename = "IRSA")]
    Irsa,
    /// EKS Pod Identity: `pods.eks.amazonaws.com`, `sts:AssumeRole` and `sts:TagSession`.
    PodIdentity,
    /// Both statements.
    Both,
}

impl WorkloadIdentityMode {
    /// Whether the IRSA statement is generated.
    pub fn irsa(self) -> bool {
        matches!(
            self,
            WorkloadIdentityMode::Irsa | WorkloadIdentityMode::Both
        )
    }

    /// Whether the Pod Identity statement is generated.
    pub fn pod_identity(self) -> bool {
        matches!(
            self,
            WorkloadIdentityMode::PodIdentity | WorkloadIdentityMode::Both
        )
    }
}

/// What happens to the IAM role when its object is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the role from IAM (default).
    #[default]
    Delete,
    /// Leave the role in IAM.
    Retain,
}

/// Observed state of an IAM role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IAMRoleStatus {
    /// ARN of the role in IAM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Unique ID of the role in IAM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    /// When IAM created the role (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_date: Option<String>,
    /// Whether the role exists and matches the spec.
    #[serde(default)]
    pub ready: bool,
    /// `Ready` and `Synced` conditions; the reason names the error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The generation last brought to IAM: a spec applied once keeps being healed even when
    /// stricter guardrails refuse it later (reported as `GuardrailViolation`); a new one is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_generation: Option<i64>,
    /// Managed policy ARNs this object attached: the only ones it ever detaches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached_policy_arns: Vec<String>,
    /// Who may assume the role through `spec.workloadIdentity`, as applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentityStatus>,
}

/// The workload identity of a role as applied to IAM and to the ServiceAccounts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentityStatus {
    /// SHA-256 of the effective trust policy (the spec's document with the generated statements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_policy_hash: Option<String>,
    /// Who may assume the role, one line per ServiceAccount and mechanism, such as
    /// `pods with ServiceAccount team-a/app (IRSA)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assumable_by: Vec<String>,
    /// ServiceAccounts whose `eks.amazonaws.com/role-arn` annotation this object set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotated_service_accounts: Vec<String>,
    /// Why a ServiceAccount of the list is not annotated (missing, or naming another role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_message: Option<String>,
}
