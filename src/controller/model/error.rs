//! Why a reconcile failed, the PascalCase reason reused as condition reason, Event reason and log
//! field, and whether to retry soon (with backoff) or wait for a change. Pure, no I/O.

use super::plan::PlanError;
use crate::aws::{AwsError, AwsErrorKind, SettingsError};
use crate::governance::GovernanceError;
use crate::iam::workload_identity::WorkloadIdentityError;

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
    /// Nothing may be written to the existing role (not ours, or not convergeable).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The guardrails refuse a spec never applied, or the existing role an adoption would take.
    #[error(
        "refused by the guardrails of namespace `{namespace}`, nothing was written to IAM: {findings}"
    )]
    GuardrailDenied {
        /// The namespace whose guardrails refuse it.
        namespace: String,
        /// The refusals, `[rule] path: message; …`.
        findings: String,
    },
    /// The provider would send credentials where its namespace's guardrails do not allow.
    #[error(
        "AWSProvider `{name}` is refused by the guardrails of its namespace, so no credentials are sent: {message}"
    )]
    ProviderRefused {
        /// Name of the provider.
        name: String,
        /// The refusals.
        message: String,
    },
    /// The guardrails governing the namespace are not known (fail closed).
    #[error("{0}")]
    Guardrails(#[from] GovernanceError),
    /// The trust policy of `workloadIdentity` cannot be made with the provider as it is.
    #[error("{0}")]
    WorkloadIdentity(#[from] WorkloadIdentityError),
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
            ReconcileError::GuardrailDenied { .. } | ReconcileError::ProviderRefused { .. } => {
                "GuardrailDenied"
            }
            ReconcileError::Guardrails(_) => "GuardrailsUnavailable",
            ReconcileError::WorkloadIdentity(_) => "WorkloadIdentityUnavailable",
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
            | ReconcileError::Settings { .. }
            | ReconcileError::Guardrails(_) => Retry::Backoff,
            ReconcileError::Aws { source, transient } => {
                if *transient || source.kind() == AwsErrorKind::InvalidCredentials {
                    Retry::Backoff
                } else {
                    Retry::AtResync
                }
            }
            ReconcileError::InvalidObject(_)
            | ReconcileError::Plan(_)
            | ReconcileError::GuardrailDenied { .. }
            | ReconcileError::ProviderRefused { .. }
            | ReconcileError::WorkloadIdentity(_) => Retry::AtResync,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let exists = ReconcileError::from(PlanError::RoleExists {
            role_name: "app".to_owned(),
        });
        assert_eq!(exists.reason(), "RoleExists");
        assert_eq!(exists.retry(), Retry::AtResync);
        assert!(
            exists
                .to_string()
                .contains(super::super::plan::ADOPT_ANNOTATION)
        );
        let conflict = ReconcileError::from(PlanError::RoleConflict {
            role_name: "app".to_owned(),
            owner: "ns/other".to_owned(),
        });
        assert_eq!(conflict.reason(), "RoleConflict");
        assert!(conflict.to_string().contains("ns/other"));
        let missing = ReconcileError::ProviderNotFound {
            namespace: "ns".to_owned(),
            name: "aws".to_owned(),
        };
        assert_eq!(missing.retry(), Retry::Backoff);
    }
}
