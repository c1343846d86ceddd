//! The write operations the reconciler can make on one IAM role: what the planner produces and the
//! AWS layer executes. Pure data.

use std::collections::BTreeMap;

/// One IAM write call on an existing role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `UpdateRole`: description (`None` clears it) and maximum session duration.
    UpdateRole {
        /// New description; `None` or empty clears it.
        description: Option<String>,
        /// New maximum session duration in seconds.
        max_session_duration: i32,
    },
    /// `UpdateAssumeRolePolicy`.
    UpdateTrustPolicy {
        /// The trust policy document, as written in the spec.
        document: String,
    },
    /// `AttachRolePolicy`.
    AttachPolicy {
        /// Managed policy ARN.
        arn: String,
    },
    /// `DetachRolePolicy`.
    DetachPolicy {
        /// Managed policy ARN.
        arn: String,
    },
    /// `PutRolePolicy` (new or changed inline policy).
    PutInlinePolicy {
        /// Policy name.
        name: String,
        /// Policy document, as written in the spec.
        document: String,
    },
    /// `DeleteRolePolicy`.
    DeleteInlinePolicy {
        /// Policy name.
        name: String,
    },
    /// `PutRolePermissionsBoundary`.
    PutBoundary {
        /// Boundary policy ARN.
        arn: String,
    },
    /// `DeleteRolePermissionsBoundary`.
    DeleteBoundary,
    /// `TagRole` (new or changed values).
    TagRole {
        /// Tags to set.
        tags: BTreeMap<String, String>,
    },
    /// `UntagRole` (keys no longer wanted).
    UntagRole {
        /// Keys to remove.
        keys: Vec<String>,
    },
}

impl Change {
    /// The IAM operation name, for metrics, events and error messages.
    pub fn operation(&self) -> &'static str {
        match self {
            Change::UpdateRole { .. } => "UpdateRole",
            Change::UpdateTrustPolicy { .. } => "UpdateAssumeRolePolicy",
            Change::AttachPolicy { .. } => "AttachRolePolicy",
            Change::DetachPolicy { .. } => "DetachRolePolicy",
            Change::PutInlinePolicy { .. } => "PutRolePolicy",
            Change::DeleteInlinePolicy { .. } => "DeleteRolePolicy",
            Change::PutBoundary { .. } => "PutRolePermissionsBoundary",
            Change::DeleteBoundary => "DeleteRolePermissionsBoundary",
            Change::TagRole { .. } => "TagRole",
            Change::UntagRole { .. } => "UntagRole",
        }
    }
}
