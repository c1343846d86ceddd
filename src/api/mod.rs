//! Custom resource types of the `aws-infra-operator.runner.codes/v1alpha1` API: [`IAMRole`] and
//! [`AWSProvider`], and the generation of their CRD manifests. Pure data, no I/O.

mod awsprovider;
mod crd;
mod iamrole;

pub use awsprovider::{
    AWSProvider, AWSProviderSpec, AWSProviderStatus, DriftDetection, SecretKeyRef,
};
pub use crd::{crd_yaml, crds};
pub use iamrole::{DeletionPolicy, IAMRole, IAMRoleSpec, IAMRoleStatus, InlinePolicy, ProviderRef};

/// The API group of every kind this operator serves.
pub const GROUP: &str = "aws-infra-operator.runner.codes";
/// The API version of every kind this operator serves.
pub const VERSION: &str = "v1alpha1";
/// The finalizer that keeps an IAMRole until the reconciler has cleaned up its IAM role. The
/// mutating webhook puts it on every IAMRole that is not being deleted; the reconciler adds it too
/// (before CreateRole) where the webhook did not, and removes it once the role is deleted or retained.
pub const FINALIZER: &str = "aws-infra-operator.runner.codes/finalizer";
/// `apiVersion` as it appears in manifests.
pub const API_VERSION: &str = "aws-infra-operator.runner.codes/v1alpha1";
