//! Rules every policy document obeys, statement by statement: `policy-sid` (alphanumeric, unique),
//! `policy-condition` (known operators, no `NullIfExists`) and `policy-arn` (Resource and Principal
//! values well formed). Pure.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::super::arn;
use super::super::{FieldPath, Finding, RuleId};
use super::model::{Principal, Statement, Values, statements};
use super::quote;

/// Condition operators IAM knows, without `IfExists` and set prefixes.
const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "NotIpAddress",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "Null",
];

/// A condition operator split into its parts.
pub struct Operator<'a> {
    /// The operator proper, e.g. `StringEquals`.
    pub base: &'a str,
    /// Whether it ends in `IfExists`.
    pub if_exists: bool,
}

impl<'a> Operator<'a> {
    /// Splits `ForAnyValue:StringLikeIfExists` into `StringLike` + `IfExists`.
    pub fn parse(name: &'a str) -> Self {
        let name = name
            .strip_prefix("ForAnyValue:")
            .or_else(|| name.strip_prefix("ForAllValues:"))
            .unwrap_or(name);
        match name.strip_suffix("IfExists") {
            Some(base) => Operator {
                base,
                if_exists: true,
            },
            None => Operator {
                base: name,
                if_exists: false,
            },
        }
    }
}

/// Every key of a condition block under any operator accepted by `accept`.
pub fn condition_keys<'a>(
    condition: Option<&'a Map<String, Value>>,
    accept: impl Fn(&Operator<'_>) -> bool + 'a,
) -> impl Iterator<Item = &'a str> + 'a {
    condition
        .into_iter()
        .flatten()
        .filter(move |(operator, _)| accept(&Operator::parse(operator)))
        .filter_map(|(_, block)| block.as_object())
        .flat_map(|block| block.keys().map(String::as_str))
}

/// Which kind of policy a document is; it decides which elements hold ARNs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A role's trust policy: its Principal values are checked (Resource is not allowed at all).
    Trust,
    /// A permission policy: its Resource values are checked (Principal is not allowed at all).
    Permission,
}

/// Runs the common rules on every statement of `document`.
pub fn check(
    document: &Map<String, Value>,
    root: &FieldPath,
    kind: PolicyKind,
    out: &mut Vec<Finding>,
) {
    let mut sids: HashMap<&str, FieldPath> = HashMap::new();
    for statement in statements(document) {
        let path = statement.path(root);
        check_sid(&statement, &path, &mut sids, out);
        check_condition(&statement, &path, out);
        if kind == PolicyKind::Trust {
            for name in ["Principal", "NotPrincipal"] {
                if let Some(principal) = Principal::of(&statement, name) {
                    check_principal(&principal, &path.field(name), out);
                }
            }
        } else {
            for name in ["Resource", "NotResource"] {
                if let Some(values) = statement.values(name) {
                    check_resources(values, &path, out);
                }
            }
        }
    }
}

fn check_sid<'a>(
    statement: &Statement<'a>,
    path: &FieldPath,
    seen: &mut HashMap<&'a str, FieldPath>,
    out: &mut Vec<Finding>,
) {
    let Some(sid) = statement.get("Sid").and_then(Value::as_str) else {
        return;
    };
    let sid_path = path.field("Sid");
    if !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        out.push(Finding::deny(
            RuleId::PolicySid,
            &sid_path,
            format!(
                "Sid {} may only hold letters and digits; rename it, e.g. \"AllowRead\"",
                quote(sid)
            ),
        ));
    }
    if sid.is_empty() {
        return;
    }
    match seen.get(sid) {
        Some(first) => out.push(Finding::deny(
            RuleId::PolicySid,
            &sid_path,
            format!(
                "Sid {} is already used at {first}; give each statement its own Sid",
                quote(sid)
            ),
        )),
        None => {
            seen.insert(sid, path.clone());
        }
    }
}

fn check_condition(statement: &Statement<'_>, path: &FieldPath, out: &mut Vec<Finding>) {
    let Some(condition) = statement.condition() else {
        return;
    };
    for name in condition.keys() {
        let operator = Operator::parse(name);
        let message = if !OPERATORS.contains(&operator.base) {
            format!(
                "unknown condition operator {}; use one of IAM's (StringEquals, StringLike, ArnLike, Bool, IpAddress, …), optionally with IfExists or a ForAnyValue:/ForAllValues: prefix",
                quote(name)
            )
        } else if operator.base == "Null" && operator.if_exists {
            format!(
                "{} is not allowed: Null already tests whether the key exists; use Null",
                quote(name)
            )
        } else {
            continue;
        };
        out.push(Finding::deny(
            RuleId::PolicyCondition,
            &path.field("Condition").field(name),
            message,
        ));
    }
}

fn check_resources(values: Values<'_>, path: &FieldPath, out: &mut Vec<Finding>) {
    for (j, resource) in values.iter() {
        if resource == "*" {
            continue;
        }
        if let Err(error) = arn::parse(resource) {
            out.push(Finding::deny(
                RuleId::PolicyArn,
                &values.item_path(path, j),
                format!("{} is not an ARN ({error}); use \"*\" or arn:partition:service:region:account:resource", quote(resource)),
            ));
        }
    }
}

fn check_principal(principal: &Principal<'_>, path: &FieldPath, out: &mut Vec<Finding>) {
    type Check = fn(&str) -> Result<(), &'static str>;
    const KINDS: [(&str, Check); 4] = [
        ("AWS", aws_principal),
        ("Federated", federated_principal),
        ("Service", service_principal),
        ("CanonicalUser", canonical_user),
    ];
    for (kind, check) in KINDS {
        let Some(values) = principal.values(kind) else {
            continue;
        };
        for (j, value) in values.iter() {
            if let Err(expected) = check(value) {
                out.push(Finding::deny(
                    RuleId::PolicyArn,
                    &values.item_path(path, j),
                    format!("{kind} principal {} is not {expected}", quote(value)),
                ));
            }
        }
    }
}

/// `*`, a 12-digit account ID, or an `iam`/`sts` ARN.
fn aws_principal(value: &str) -> Result<(), &'static str> {
    let ok = value == "*"
        || is_account_id(value)
        || arn::parse(value).is_ok_and(|a| a.service == "iam" || a.service == "sts");
    ok.then_some(()).ok_or(
        "\"*\", a 12-digit account ID or an IAM/STS ARN such as arn:aws:iam::123456789012:root",
    )
}

/// An IAM OIDC or SAML provider ARN, or an identity provider's domain name.
fn federated_principal(value: &str) -> Result<(), &'static str> {
    let provider = arn::parse(value).is_ok_and(|a| {
        a.service == "iam"
            && (a.resource.starts_with("oidc-provider/")
                || a.resource.starts_with("saml-provider/"))
    });
    (provider || is_domain(value))
        .then_some(())
        .ok_or("an IAM oidc-provider/ or saml-provider/ ARN, or an identity provider's domain such as accounts.google.com")
}

/// A service principal such as `ec2.amazonaws.com`.
fn service_principal(value: &str) -> Result<(), &'static str> {
    is_domain(value)
        .then_some(())
        .ok_or("a service name such as ec2.amazonaws.com")
}

/// A canonical user ID: 64 hexadecimal digits.
fn canonical_user(value: &str) -> Result<(), &'static str> {
    (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(())
        .ok_or("a canonical user ID of 64 hexadecimal digits")
}

/// Whether `value` is a 12-digit AWS account ID.
pub fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `value` is a domain name: two or more dot-separated labels of letters, digits and inner
/// hyphens.
fn is_domain(value: &str) -> bool {
    value.len() <= 253
        && value.contains('.')
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(document: Value, kind: PolicyKind) -> Vec<(RuleId, String)> {
        let mut out = Vec::new();
        if let Value::Object(map) = &document {
            check(map, &FieldPath::root("doc"), kind, &mut out);
        }
        assert!(out.iter().all(Finding::is_deny));
        out.into_iter().map(|f| (f.rule, f.path)).collect()
    }

    fn found(rule: RuleId, path: &str) -> Vec<(RuleId, String)> {
        vec![(rule, path.to_owned())]
    }

    #[test]
    fn sids_must_be_alphanumeric_and_unique() {
        let good = json!({"Statement": [{"Sid": "ReadData1"}, {"Sid": "WriteData"}, {"Sid": ""}, {"Sid": ""}]});
        assert!(run(good, PolicyKind::Permission).is_empty());
        let bad = json!({"Statement": [{"Sid": "read-data"}]});
        assert_eq!(
            run(bad, PolicyKind::Permission),
            found(RuleId::PolicySid, "doc.Statement[0].Sid")
        );
        let twice = json!({"Statement": [{"Sid": "A"}, {"Sid": "B"}, {"Sid": "A"}]});
        assert_eq!(
            run(twice, PolicyKind::Permission),
            found(RuleId::PolicySid, "doc.Statement[2].Sid")
        );
    }

    #[test]
    fn condition_operators_must_be_known() {
        let good = json!({"Statement": {"Condition": {"StringEquals": {}, "ForAnyValue:StringLikeIfExists": {},
            "ForAllValues:ArnNotLike": {}, "IpAddress": {}, "NotIpAddress": {}, "DateGreaterThanEquals": {},
            "Null": {}, "BoolIfExists": {}, "BinaryEquals": {}, "NumericLessThanEqualsIfExists": {}}}});
        assert!(run(good, PolicyKind::Permission).is_empty());
        let unknown = json!({"Statement": {"Condition": {"StringEqual": {}}}});
        assert_eq!(
            run(unknown, PolicyKind::Permission),
            found(
                RuleId::PolicyCondition,
                "doc.Statement.Condition.StringEqual"
            )
        );
        let lower = json!({"Statement": [{"Condition": {"stringequals": {}}}]});
        assert_eq!(
            run(lower, PolicyKind::Permission),
            found(
                RuleId::PolicyCondition,
                "doc.Statement[0].Condition.stringequals"
            )
        );
        let null = json!({"Statement": [{"Condition": {"NullIfExists": {}}}]});
        assert_eq!(
            run(null, PolicyKind::Permission),
            found(
                RuleId::PolicyCondition,
                "doc.Statement[0].Condition.NullIfExists"
            )
        );
        let prefix = json!({"Statement": [{"Condition": {"ForSomeValues:StringLike": {}}}]});
        assert_eq!(
            run(prefix, PolicyKind::Permission),
            found(
                RuleId::PolicyCondition,
                "doc.Statement[0].Condition.ForSomeValues:StringLike"
            )
        );
    }

    #[test]
    fn resources_must_be_star_or_arns() {
        let good = json!({"Statement": [{"Resource": ["*", "arn:aws:s3:::bucket/*", "arn:aws:dynamodb:*:*:table/e2e-*"],
            "NotResource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*"}]});
        assert!(run(good, PolicyKind::Permission).is_empty());
        let bad = json!({"Statement": [{"Resource": ["*", "my-bucket/*"]}, {"NotResource": "arn:aws:s3"}]});
        assert_eq!(
            run(bad, PolicyKind::Permission),
            [
                (RuleId::PolicyArn, "doc.Statement[0].Resource[1]".to_owned()),
                (RuleId::PolicyArn, "doc.Statement[1].NotResource".to_owned()),
            ]
        );
    }

    #[test]
    fn principals_must_be_well_formed() {
        let good = json!({"Statement": [{"Principal": {
            "AWS": ["*", "123456789012", "arn:aws:iam::123456789012:root", "arn:aws:sts::123456789012:assumed-role/r/s"],
            "Federated": ["arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC",
                "arn:aws:iam::123456789012:saml-provider/Okta", "accounts.google.com", "cognito-identity.amazonaws.com"],
            "Service": ["ec2.amazonaws.com", "ecs-tasks.amazonaws.com", "states.us-east-1.amazonaws.com"],
            "CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}}]});
        assert!(run(good, PolicyKind::Trust).is_empty());
        let bad = json!({"Statement": [{"Principal": {"AWS": ["123", "arn:aws:s3:::bucket"],
            "Federated": "arn:aws:iam::123456789012:role/x", "Service": "ec2", "CanonicalUser": "abc"}},
            {"NotPrincipal": {"Service": "*"}}]});
        assert_eq!(
            run(bad, PolicyKind::Trust),
            [
                (
                    RuleId::PolicyArn,
                    "doc.Statement[0].Principal.AWS[0]".to_owned()
                ),
                (
                    RuleId::PolicyArn,
                    "doc.Statement[0].Principal.AWS[1]".to_owned()
                ),
                (
                    RuleId::PolicyArn,
                    "doc.Statement[0].Principal.Federated".to_owned()
                ),
                (
                    RuleId::PolicyArn,
                    "doc.Statement[0].Principal.Service".to_owned()
                ),
                (
                    RuleId::PolicyArn,
                    "doc.Statement[0].Principal.CanonicalUser".to_owned()
                ),
                (
                    RuleId::PolicyArn,
                    "doc.Statement[1].NotPrincipal.Service".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn trust_resources_and_permission_principals_are_left_to_other_rules() {
        let document = json!({"Statement": [{"Resource": "bad", "Principal": {"AWS": "bad"}}]});
        assert_eq!(
            run(document.clone(), PolicyKind::Trust),
            found(RuleId::PolicyArn, "doc.Statement[0].Principal.AWS")
        );
        assert_eq!(
            run(document, PolicyKind::Permission),
            found(RuleId::PolicyArn, "doc.Statement[0].Resource")
        );
    }

    #[test]
    fn operators_split_into_base_and_if_exists() {
        let op = Operator::parse("ForAllValues:StringEqualsIgnoreCaseIfExists");
        assert_eq!((op.base, op.if_exists), ("StringEqualsIgnoreCase", true));
        let op = Operator::parse("Bool");
        assert_eq!((op.base, op.if_exists), ("Bool", false));
    }
}
