//! The state of one IAM role as AWS reports it: what the AWS layer observes and the planner compares
//! against the desired state. Pure data, no I/O.

use std::collections::{BTreeMap, BTreeSet};

/// One existing IAM role, as read from IAM (policy documents already URL-decoded).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedRole {
    /// Role ARN.
    pub arn: String,
    /// Stable role id (`AROA…`).
    pub role_id: String,
    /// Creation time, RFC 3339.
    pub create_date: String,
    /// Role path (immutable in IAM).
    pub path: String,
    /// Description; `None` when the role has none.
    pub description: Option<String>,
    /// Maximum session duration in seconds.
    pub max_session_duration: i32,
    /// Trust policy document, URL-decoded, as IAM returned it.
    pub trust_policy: String,
    /// Permissions boundary policy ARN.
    pub permissions_boundary: Option<String>,
    /// Every tag on the role, including `aws:` ones.
    pub tags: BTreeMap<String, String>,
    /// ARNs of the attached managed policies.
    pub managed_policies: BTreeSet<String>,
    /// Inline policies: name → URL-decoded document.
    pub inline_policies: BTreeMap<String, String>,
}
