//! The engine's bounds on one policy document, reported as `policy-size`: more statements than a
//! document within IAM's size limits can hold, and strings longer than IAM allows (an action name,
//! an ARN or principal, a condition key or value). The policy model leaves whatever lies past these
//! bounds out (see [`super::model`]), so no rule matches it. Pure.

use serde_json::{Map, Value};

use super::super::config::IAM_MAX_ARN_LENGTH;
use super::super::{FieldPath, Finding, RuleId};
use super::model::{
    MAX_STATEMENTS, Principal, Statement, Values, length_within, statement_count, statements,
};

/// Longest condition key: an OIDC provider's URL (at most 255 characters) with its `:sub`, with room
/// to spare.
pub const MAX_CONDITION_KEY_LENGTH: usize = 512;
/// Longest condition value: an ARN, the longest thing a condition compares.
pub const MAX_CONDITION_VALUE_LENGTH: usize = IAM_MAX_ARN_LENGTH;

const ELEMENTS: [&str; 4] = ["Action", "NotAction", "Resource", "NotResource"];
const PRINCIPAL_TYPES: [&str; 4] = ["AWS", "Federated", "Service", "CanonicalUser"];

/// Reports every bound `document` exceeds.
pub fn check(document: &Map<String, Value>, root: &FieldPath, out: &mut Vec<Finding>) {
    let count = statement_count(document);
    if count > MAX_STATEMENTS {
        out.push(Finding::deny(
            RuleId::PolicySize,
            &root.field("Statement"),
            format!(
                "the document has {count} statements, more than fit IAM's size limits (at most {MAX_STATEMENTS}); only the first {MAX_STATEMENTS} were checked: merge statements or split the policy"
            ),
        ));
    }
    for statement in statements(document) {
        let path = || statement.path(root);
        for name in ELEMENTS {
            if let Some(values) = statement.values(name) {
                report_oversized(values, path, out);
            }
        }
        for name in ["Principal", "NotPrincipal"] {
            let Some(principal) = Principal::of(&statement, name) else {
                continue;
            };
            for kind in PRINCIPAL_TYPES {
                if let Some(values) = principal.values(kind) {
                    report_oversized(values, || path().field(name), out);
                }
            }
        }
        check_condition(&statement, || path().field("Condition"), out);
    }
}

/// Reports each value longer than its element's cap; `parent` builds the element's parent path.
fn report_oversized(values: Values<'_>, parent: impl Fn() -> FieldPath, out: &mut Vec<Finding>) {
    for (j, length) in values.oversized() {
        out.push(Finding::deny(
            RuleId::PolicySize,
            &values.item_path(&parent(), j),
            format!(
                "this value is {length} characters long; IAM allows at most {} here: shorten it",
                values.max_length()
            ),
        ));
    }
}

/// Reports condition keys and values longer than their caps; `path` builds the Condition's path.
fn check_condition(
    statement: &Statement<'_>,
    path: impl Fn() -> FieldPath,
    out: &mut Vec<Finding>,
) {
    let Some(condition) = statement.condition() else {
        return;
    };
    for (operator, block) in condition {
        let Some(block) = block.as_object() else {
            continue;
        };
        for (key, value) in block {
            if !length_within(key, MAX_CONDITION_KEY_LENGTH) {
                out.push(Finding::deny(
                    RuleId::PolicySize,
                    &path().field(operator),
                    format!(
                        "a condition key here is {} characters long; condition keys have at most {MAX_CONDITION_KEY_LENGTH}: shorten it",
                        key.chars().count()
                    ),
                ));
                continue;
            }
            let long = match value {
                Value::String(s) => Some(s.as_str()),
                Value::Array(items) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|t| !length_within(t, MAX_CONDITION_VALUE_LENGTH)),
                _ => None,
            }
            .filter(|t| !length_within(t, MAX_CONDITION_VALUE_LENGTH));
            if let Some(long) = long {
                out.push(Finding::deny(
                    RuleId::PolicySize,
                    &path().field(operator).field(key),
                    format!(
                        "a value here is {} characters long; condition values have at most {MAX_CONDITION_VALUE_LENGTH}: shorten it",
                        long.chars().count()
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::super::Severity;
    use super::*;

    fn run(document: Value) -> Vec<(String, Severity, String)> {
        let mut out = Vec::new();
        if let Value::Object(map) = &document {
            check(map, &FieldPath::root("doc"), &mut out);
        }
        assert!(out.iter().all(|f| f.rule == RuleId::PolicySize));
        out.into_iter()
            .map(|f| (f.path, f.severity, f.message))
            .collect()
    }

    #[test]
    fn values_within_iam_limits_pass() {
        let document = json!({"Statement": [{"Action": ["s3:GetObject", "a".repeat(128)],
            "Resource": format!("arn:aws:s3:::{}", "b".repeat(2035)),
            "Principal": {"AWS": "é".repeat(2048)},
            "Condition": {"StringEquals": {"k".repeat(512): ["v".repeat(2048)]}}}]});
        assert!(run(document).is_empty());
    }

    #[test]
    fn longer_strings_are_denied_at_their_place() {
        let document = json!({"Statement": [{"NotAction": ["s3:GetObject", "a".repeat(129)],
            "NotResource": "r".repeat(2049),
            "Principal": {"Federated": ["x", "f".repeat(5000)]},
            "Condition": {"StringLike": {"k".repeat(513): "v", "key": ["v", "v".repeat(2049)]}}}]});
        let found = run(document);
        let paths: Vec<&str> = found.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "doc.Statement[0].NotAction[1]",
                "doc.Statement[0].NotResource",
                "doc.Statement[0].Principal.Federated[1]",
                "doc.Statement[0].Condition.StringLike",
                "doc.Statement[0].Condition.StringLike.key",
            ]
        );
        assert!(found.iter().all(|(_, s, _)| *s == Severity::Deny));
        assert_eq!(
            found[0].2,
            "this value is 129 characters long; IAM allows at most 128 here: shorten it"
        );
    }

    #[test]
    fn statements_past_what_iam_can_hold_are_counted_and_skipped() {
        let statement = json!({"Effect": "Deny", "Action": "*", "Resource": "*"});
        let fits = json!({"Statement": vec![statement.clone(); MAX_STATEMENTS]});
        assert!(run(fits).is_empty());
        let many = json!({"Statement": vec![statement; 75_000]});
        let found = run(many.clone());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "doc.Statement");
        assert!(found[0].2.starts_with("the document has 75000 statements"));
        let Value::Object(map) = &many else {
            unreachable!()
        };
        assert_eq!(statements(map).count(), MAX_STATEMENTS);
    }
}
