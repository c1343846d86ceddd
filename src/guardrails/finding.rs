//! Findings: what a rule reports about one field, with its severity. Pure data.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{FieldPath, RuleId};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// The object is refused.
    Deny,
    /// The object is admitted with a warning.
    Warn,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Deny => "DENY",
            Severity::Warn => "WARN",
        })
    }
}

/// One rule's verdict on one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The stable rule ID.
    pub rule: RuleId,
    /// Exact path of the offending field, e.g. `spec.inlinePolicies[1].policyDocument.Statement[0].Action[2]`.
    pub path: String,
    /// Whether the finding refuses the object.
    pub severity: Severity,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl Finding {
    /// A finding refusing the object.
    pub fn deny(rule: RuleId, path: &FieldPath, message: impl Into<String>) -> Self {
        Self::new(rule, Severity::Deny, path, message)
    }

    /// A finding admitting the object with a warning.
    pub fn warn(rule: RuleId, path: &FieldPath, message: impl Into<String>) -> Self {
        Self::new(rule, Severity::Warn, path, message)
    }

    /// A finding of the given severity.
    pub fn new(
        rule: RuleId,
        severity: Severity,
        path: &FieldPath,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            rule,
            path: path.to_string(),
            severity,
            message: message.into(),
        }
    }

    /// Whether this finding refuses the object.
    pub fn is_deny(&self) -> bool {
        self.severity == Severity::Deny
    }
}

/// `[rule-id] field.path: message`, the form used in admission responses.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.rule, self.path, self.message)
    }
}
