//! Custom resource types of the `aws-infra-operator.runner.codes/v1alpha1` API: [`IAMRole`],
//! [`AWSProvider`] and [`GuardrailPolicy`], and the generation of their CRD manifests. Pure data, no I/O.

mod awsprovider;
mod crd;
mod guardrailpolicy;
mod iamrole;

pub use awsprovider::{
    AWSProvider, AWSProviderSpec, AWSProviderStatus, ClusterIdentity, DriftDetection, SecretKeyRef,
};
pub use crd::{crd_yaml, crds};
pub use guardrailpolicy::{GuardrailPolicy, GuardrailPolicySpec, GuardrailPolicyStatus};
pub use iamrole::{
    DeletionPolicy, IAMRole, IAMRoleSpec, IAMRoleStatus, InlinePolicy, ProviderRef,
    WorkloadIdentity, WorkloadIdentityMode, WorkloadIdentityStatus,
};

/// The API group of every kind this operator serves.
pub const GROUP: &str = "aws-infra-operator.runner.codes";
/// The API version of every kind this operator serves.
pub const VERSION: &str = "v1alpha1";
/// The finalizer that keeps an IAMRole until the reconciler has cleaned up its IAM role. The
/// mutating webhook puts it on every IAMRole that is not being deleted; the reconciler adds it too
/// (before CreateRole) where the webhook did not, and removes it once the role is deleted or retained.
pub const FINALIZER: &str = "aws-infra-operator.runner.codes/finalizer";
/// Annotation that asks for an existing IAM role created outside the operator to be taken over by
/// the IAMRole (only where the namespace's GuardrailPolicy allows adoption, and only a role that
/// passes the guardrails as found).
pub const ADOPT_ANNOTATION: &str = "aws-infra-operator.runner.codes/adopt";

/// Whether annotations ask for adoption: [`ADOPT_ANNOTATION`] set to `true` (any case, spaces
/// ignored).
pub fn adopt_requested(value: Option<&str>) -> bool {
    value.is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// The ServiceAccount annotation naming the role IRSA gives the ServiceAccount's pods.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// `apiVersion` as it appears in manifests.
pub const API_VERSION: &str = "aws-infra-operator.runner.codes/v1alpha1";
