//! Why a reconcile failed, the PascalCase reason reused as condition reason, Event reason and log
//! field, and whether to retry soon (with backoff) or wait for a change. Pure, no I/O.

use std::time::Duration;

use crate::aws::{AwsError, AwsErrorKind, SettingsError};
use crate::controller::plan::PlanError;

/// Annotation that lets an IAMRole take over an existing IAM role created outside the operator.
pub const ADOPT_ANNOTATION: &str = "aws-infra-operator.runner.codes/adopt";

/// Reason of [`ReconcileError::RoleExists`]: a role of that name exists without the owner tag.
pub const ROLE_EXISTS: &str = "RoleExists";
/// Reason of [`ReconcileError::RoleConflict`]: a role of that name is owned by another object.
pub const ROLE_CONFLICT: &str = "RoleConflict";

/// First delay after a failure that is worth retrying soon.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Longest delay between retries of a failing object.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// A failed reconcile of an IAMRole or an AWSProvider. Messages never hold credentials.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The object lacks a field the API server always sets (name, namespace).
    #[error("the object has no metadata.{0}")]
    InvalidObject(&'static str),
    /// A call to the Kubernetes API failed.
    #[error("cannot {action}: {source}")]
    Kube {
        /// What was being done.
        action: &'static str,
        /// The client's error.
        source: kube::Error,
    },
    /// The referenced AWSProvider does not exist.
    #[error("AWSProvider `{name}` does not exist in namespace `{namespace}`")]
    ProviderNotFound {
        /// Namespace looked in.
        namespace: String,
        /// Name of the provider.
        name: String,
    },
    /// The referenced AWSProvider cannot authenticate (yet).
    #[error("AWSProvider `{name}` is not ready: {message}")]
    ProviderNotReady {
        /// Name of the provider.
        name: String,
        /// The provider's own `Ready` condition message.
        message: String,
    },
    /// The provider's credentials settings cannot be built.
    #[error("AWSProvider `{name}`: {source}")]
    Settings {
        /// Name of the provider.
        name: String,
        /// What is wrong.
        source: SettingsError,
    },
    /// An AWS call failed.
    #[error("{source}")]
    Aws {
        /// The AWS layer's error.
        source: AwsError,
        /// Whether retrying soon may help.
        transient: bool,
    },
    /// The existing role cannot be brought to the spec.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A role of that name exists in IAM without this operator's owner tag.
    #[error(
        "IAM role `{role_name}` already exists and was not created by this object; it is left \
         untouched. To manage it from this object, annotate the object with \
         `{ADOPT_ANNOTATION}: \"true\"`"
    )]
    RoleExists {
        /// The role name.
        role_name: String,
    },
    /// The role is managed by another IAMRole object.
    #[error(
        "IAM role `{role_name}` is managed by IAMRole `{owner}`; two objects cannot manage one \
         role, so it is left untouched"
    )]
    RoleConflict {
        /// The role name.
        role_name: String,
        /// The owning object, `namespace/name`.
        owner: String,
    },
}

/// What to do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Retry soon, with exponential backoff.
    Backoff,
    /// Nothing changes until the spec (or AWS) does: look again at the next resync only.
    AtResync,
}

impl ReconcileError {
    /// A failed AWS call, transient as [`AwsError::is_transient`] says.
    pub fn aws(source: AwsError) -> Self {
        let transient = source.is_transient();
        ReconcileError::Aws { source, transient }
    }

    /// A failed AWS call on a role created moments ago: IAM is eventually consistent, so a
    /// `NoSuchEntity` about the new role is retried too.
    pub fn aws_after_create(source: AwsError) -> Self {
        let transient = source.is_transient() || source.kind() == AwsErrorKind::NoSuchEntity;
        ReconcileError::Aws { source, transient }
    }

    /// A failed Kubernetes API call.
    pub fn kube(action: &'static str, source: kube::Error) -> Self {
        ReconcileError::Kube { action, source }
    }

    /// PascalCase reason: condition reason, Event reason and log field.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::InvalidObject(_) => "InvalidObject",
            ReconcileError::Kube { .. } => "KubernetesApiError",
            ReconcileError::ProviderNotFound { .. } => "ProviderNotFound",
            ReconcileError::ProviderNotReady { .. } => "ProviderNotReady",
            ReconcileError::Settings { source, .. } => source.reason(),
            ReconcileError::Aws { source, .. } => source.reason(),
            ReconcileError::Plan(e) => e.reason(),
            ReconcileError::RoleExists { .. } => ROLE_EXISTS,
            ReconcileError::RoleConflict { .. } => ROLE_CONFLICT,
        }
    }

    /// Whether to retry soon or wait for a change. Kubernetes API failures, a provider that is
    /// missing or not ready, credentials that do not work (yet), and transient AWS errors back
    /// off and retry; invalid specs and roles that are not this object's wait for a change.
    pub fn retry(&self) -> Retry {
        match self {
            ReconcileError::Kube { .. }
            | ReconcileError::ProviderNotFound { .. }
            | ReconcileError::ProviderNotReady { .. }
            | ReconcileError::Settings { .. } => Retry::Backoff,
            ReconcileError::Aws { source, transient } => {
                if *transient || source.kind() == AwsErrorKind::InvalidCredentials {
                    Retry::Backoff
                } else {
                    Retry::AtResync
                }
            }
            ReconcileError::InvalidObject(_)
            | ReconcileError::Plan(_)
            | ReconcileError::RoleExists { .. }
            | ReconcileError::RoleConflict { .. } => Retry::AtResync,
        }
    }
}

/// The delay before retry number `failures` (1 for the first failure): [`BACKOFF_BASE`] doubled
/// each time, at most [`BACKOFF_MAX`].
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << exponent).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        assert_eq!(backoff(0), BACKOFF_BASE);
        assert_eq!(backoff(1), BACKOFF_BASE);
        assert_eq!(backoff(2), BACKOFF_BASE * 2);
        assert_eq!(backoff(3), BACKOFF_BASE * 4);
        assert_eq!(backoff(10), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn transient_aws_errors_back_off_and_invalid_specs_wait() {
        let throttled = AwsError::new("TagRole", AwsErrorKind::Throttling, "slow down");
        assert_eq!(ReconcileError::aws(throttled).retry(), Retry::Backoff);
        let missing = AwsError::new("AttachRolePolicy", AwsErrorKind::NoSuchEntity, "no policy");
        assert_eq!(
            ReconcileError::aws(missing.clone()).retry(),
            Retry::AtResync
        );
        assert_eq!(
            ReconcileError::aws_after_create(missing).retry(),
            Retry::Backoff
        );
        let malformed = AwsError::new(
            "CreateRole",
            AwsErrorKind::MalformedPolicyDocument,
            "Syntax errors in policy",
        );
        let error = ReconcileError::aws(malformed);
        assert_eq!(error.retry(), Retry::AtResync);
        assert_eq!(error.reason(), "MalformedPolicyDocument");
        let credentials = AwsError::new(
            "GetCallerIdentity",
            AwsErrorKind::InvalidCredentials,
            "bad token",
        );
        assert_eq!(ReconcileError::aws(credentials).retry(), Retry::Backoff);
    }

    #[test]
    fn foreign_roles_wait_and_name_the_adopt_annotation() {
        let exists = ReconcileError::RoleExists {
            role_name: "app".to_owned(),
        };
        assert_eq!(exists.reason(), "RoleExists");
        assert_eq!(exists.retry(), Retry::AtResync);
        assert!(exists.to_string().contains(ADOPT_ANNOTATION));
        let conflict = ReconcileError::RoleConflict {
            role_name: "app".to_owned(),
            owner: "ns/other".to_owned(),
        };
        assert_eq!(conflict.reason(), "RoleConflict");
        assert!(conflict.to_string().contains("ns/other"));
        let missing = ReconcileError::ProviderNotFound {
            namespace: "ns".to_owned(),
            name: "aws".to_owned(),
        };
        assert_eq!(missing.retry(), Retry::Backoff);
    }
}
