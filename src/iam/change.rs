//! The write operations the reconciler can make on one IAM role — creating it, and each change to
//! an existing one — and the identity IAM reports for a role: what the planner produces and the
//! AWS layer executes. Pure data.

use std::collections::BTreeMap;

/// Everything CreateRole sets, in one call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateRole {
    /// Role name.
    pub name: String,
    /// Role path (`/` or `/…/`).
    pub path: String,
    /// Trust policy document.
    pub trust_policy: String,
    /// Description; `None` or empty sets none.
    pub description: Option<String>,
    /// Maximum session duration in seconds.
    pub max_session_duration: i32,
    /// Permissions boundary policy ARN.
    pub permissions_boundary: Option<String>,
    /// Tags, the operator's own included.
    pub tags: BTreeMap<String, String>,
}

/// The identity of an IAM role, as IAM reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleIdentity {
    /// Role ARN.
    pub arn: String,
    /// Stable role ID (`AROA…`).
    pub role_id: String,
    /// Creation time, RFC 3339.
    pub create_date: String,
}

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

    /// What the change touches, for people: the operation and its subject.
    pub fn describe(&self) -> String {
        match self {
            Change::UpdateRole { .. } => "UpdateRole (description, maxSessionDuration)".to_owned(),
            Change::UpdateTrustPolicy { .. } => "UpdateAssumeRolePolicy".to_owned(),
            Change::AttachPolicy { arn } => format!("AttachRolePolicy {arn}"),
            Change::DetachPolicy { arn } => format!("DetachRolePolicy {arn}"),
            Change::PutInlinePolicy { name, .. } => format!("PutRolePolicy {name}"),
            Change::DeleteInlinePolicy { name } => format!("DeleteRolePolicy {name}"),
            Change::PutBoundary { arn } => format!("PutRolePermissionsBoundary {arn}"),
            Change::DeleteBoundary => "DeleteRolePermissionsBoundary".to_owned(),
            Change::TagRole { tags } => {
                let keys: Vec<&str> = tags.keys().map(String::as_str).collect();
                format!("TagRole {}", keys.join(","))
            }
            Change::UntagRole { keys } => format!("UntagRole {}", keys.join(",")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_what_was_touched() {
        let text: Vec<String> = [
            Change::AttachPolicy {
                arn: "arn:aws:iam::aws:policy/A".to_owned(),
            },
            Change::UntagRole {
                keys: vec!["a".to_owned(), "b".to_owned()],
            },
            Change::DeleteBoundary,
        ]
        .iter()
        .map(Change::describe)
        .collect();
        assert_eq!(
            text.join("; "),
            "AttachRolePolicy arn:aws:iam::aws:policy/A; UntagRole a,b; DeleteRolePermissionsBoundary"
        );
    }
}
