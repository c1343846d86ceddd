//! Policy documents: the IAM policy model parsed with a real JSON parser, the grammar check against
//! `policies/*.schema.json`, and every rule on trust and permission policies. Pure.
//!
//! A document longer than IAM's 131,072 characters gets one `policy-size` finding and is not read
//! further. Each other document is parsed strictly first (`policy-json`); a document that is not one
//! JSON object gets no other finding. The rest then runs on whatever the document holds, so one pass
//! reports every problem: grammar (`policy-grammar`), size and bounds (`policy-size`), the statement
//! rules shared by both kinds (`policy-sid`, `policy-condition`, `policy-arn`) and the rules of each
//! kind. The permission rules, which match wildcards, run only on the inline policies that fit within
//! IAM's limit for a role's inline policies together; the documents after the one crossing that
//! limit are only counted, not parsed: IAM refuses them whatever they hold.

mod action_name;
mod escalation;
pub(crate) mod glob;
mod grammar;
mod limits;
mod model;
mod permissions;
mod size;
mod statement;
mod trust;
mod web_identity;

use serde_json::{Map, Value};

pub(crate) use model::statements;

use crate::iam::json;

use super::config::{
    IAM_MAX_DOCUMENT_LENGTH, IAM_MAX_INLINE_POLICIES_SIZE, IAM_MAX_TRUST_POLICY_SIZE,
};
use super::report::Report;
use super::{Config, FieldPath, Finding, RuleId, SchemaError};
use statement::PolicyKind;

/// Who may assume a role, as far as the permission rules need to know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrustedBy {
    /// Only the guardrails' role managers (`privilegeEscalation.roleManagers`), such as the operator.
    RoleManagers,
    /// Anyone else (or not known).
    #[default]
    Others,
}

/// Checks trust and permission policy documents. Build it once: it holds the compiled grammars.
pub struct PolicyChecker {
    grammars: grammar::Grammars,
}

impl PolicyChecker {
    /// Compiles the IAM grammar schemas.
    pub fn new() -> Result<Self, SchemaError> {
        Ok(PolicyChecker {
            grammars: grammar::Grammars::new()?,
        })
    }

    /// Checks a role's effective trust policy: the spec's document (`given`, at `path`) and the
    /// statements generated for it (`generated`, a document of its own at its path), each with every
    /// trust rule, and the size quota on both together (as IAM will hold them).
    pub fn check_effective_trust(
        &self,
        given: Option<&str>,
        path: &FieldPath,
        generated: Option<(&str, &FieldPath)>,
        config: &Config,
        out: &mut Vec<Finding>,
    ) -> TrustedBy {
        let mut documents = Vec::new();
        let mut size = 0;
        for (text, path) in given.map(|text| (text, path)).into_iter().chain(generated) {
            let Some(document) = parse(text, path, out) else {
                return TrustedBy::Others;
            };
            let Value::Object(fields) = &document else {
                return TrustedBy::Others;
            };
            size += size::count(text);
            self.check_common(&document, fields, path, PolicyKind::Trust, out);
            trust::check(fields, path, config, out);
            documents.push(document);
        }
        let quota = config.quotas.trust_policy_size;
        if size > quota {
            let (whole, root) = match (given, generated) {
                (Some(_), Some((_, generated_path))) => (
                    "the trust policy with the statements generated for workloadIdentity",
                    generated_path,
                ),
                (None, Some((_, generated_path))) => (
                    "the trust policy generated for workloadIdentity",
                    generated_path,
                ),
                _ => ("the trust policy", path),
            };
            out.push(Finding::deny(
                RuleId::PolicySize,
                root,
                format!(
                    "{whole} has about {size} characters without whitespace, over the quota of {quota}; shorten it (merge statements, drop Sids, fewer ServiceAccounts) or raise quotas.trustPolicySize (IAM allows up to {IAM_MAX_TRUST_POLICY_SIZE} after a quota increase)"
                ),
            ));
        }
        match documents.as_slice() {
            [Value::Object(fields)] => web_identity::trusted_by(fields, config),
            _ => {
                // Who trusts the role is decided on its statements together.
                let mut statements = Vec::new();
                for document in &documents {
                    match json::at(document, &["Statement"]) {
                        Some(Value::Array(items)) => {
                            statements.extend(items.iter().take(model::MAX_STATEMENTS).cloned())
                        }
                        Some(single @ Value::Object(_)) => statements.push(single.clone()),
                        _ => {}
                    }
                }
                let mut whole = Map::new();
                whole.insert("Statement".to_owned(), Value::Array(statements));
                web_identity::trusted_by(&whole, config)
            }
        }
    }

    /// Checks a role's permission (inline) policies, each at its path, and their size together;
    /// `trusted_by` says who may assume the role.
    pub fn check_permissions(
        &self,
        documents: &[(FieldPath, &str)],
        trusted_by: TrustedBy,
        config: &Config,
        report: &mut Report,
    ) {
        let mut coverage = glob::Coverage::default();
        let mut total = 0;
        let mut unchecked = false;
        for (path, text) in documents {
            report.trim();
            let out = report.findings();
            if total > IAM_MAX_INLINE_POLICIES_SIZE {
                // Past IAM's limit on all inline policies, IAM refuses a document whatever it
                // holds: it is only counted, so a hostile review cannot make the engine parse and
                // check megabytes of it.
                total += size::count(text);
                unchecked = true;
                continue;
            }
            let Some(document) = parse(text, path, out) else {
                continue;
            };
            let Value::Object(fields) = &document else {
                continue;
            };
            total += size::count(text);
            self.check_common(&document, fields, path, PolicyKind::Permission, out);
            if total <= IAM_MAX_INLINE_POLICIES_SIZE {
                permissions::check(fields, path, trusted_by, config, &mut coverage, out);
            } else {
                unchecked = true;
            }
        }
        let quota = config.quotas.inline_policies_size;
        if let Some((first, _)) = documents.first().filter(|_| total > quota) {
            let out = report.findings();
            let skipped = if unchecked {
                "; the documents past IAM's limit were not checked further"
            } else {
                ""
            };
            out.push(Finding::deny(
                RuleId::PolicySize,
                &size::inline_policies_path(first),
                format!(
                    "the inline policies together have {total} characters without whitespace, over the quota of {quota} (IAM's limit is {IAM_MAX_INLINE_POLICIES_SIZE}); move permissions into managed policies{skipped}"
                ),
            ));
        }
    }

    /// The checks both kinds share: grammar, action names, bounds and statement rules.
    fn check_common(
        &self,
        document: &Value,
        fields: &Map<String, Value>,
        path: &FieldPath,
        kind: PolicyKind,
        out: &mut Vec<Finding>,
    ) {
        let grammar = match kind {
            PolicyKind::Trust => &self.grammars.trust,
            PolicyKind::Permission => &self.grammars.permission,
        };
        grammar.check(document, path, out);
        limits::check(fields, path, out);
        action_name::check(fields, path, out);
        statement::check(fields, path, kind, out);
    }
}

#[cfg(test)]
impl PolicyChecker {
    /// Checks a role's trust policy found at `path` alone; says who may assume the role.
    pub fn check_trust(
        &self,
        text: &str,
        path: &FieldPath,
        config: &Config,
        out: &mut Vec<Finding>,
    ) -> TrustedBy {
        self.check_effective_trust(Some(text), path, None, config, out)
    }

    /// Every finding of `documents` as the permission policies of a role trusted by `trusted_by`.
    pub fn permission_findings(
        &self,
        documents: &[(FieldPath, &str)],
        trusted_by: TrustedBy,
        config: &Config,
    ) -> Vec<Finding> {
        let mut report = Report::default();
        self.check_permissions(documents, trusted_by, config, &mut report);
        report.into_findings()
    }
}

/// The document as a JSON object, or a `policy-json` finding; a document longer than IAM allows
/// gets a `policy-size` finding instead and is not parsed.
fn parse(text: &str, path: &FieldPath, out: &mut Vec<Finding>) -> Option<Value> {
    if !model::length_within(text, IAM_MAX_DOCUMENT_LENGTH) {
        out.push(Finding::deny(
            RuleId::PolicySize,
            path,
            format!(
                "the document has {} characters counting whitespace; IAM refuses policies over {IAM_MAX_DOCUMENT_LENGTH}: remove padding or split it, and keep within the size quotas",
                text.chars().count()
            ),
        ));
        return None;
    }
    json::parse_object(text)
        .map_err(|message| out.push(Finding::deny(RuleId::PolicyJson, path, message)))
        .ok()
}

/// A value quoted for a message, on one line and cut to a readable length.
fn quote(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::super::Severity;
    use super::*;

    fn checker() -> PolicyChecker {
        PolicyChecker::new().unwrap()
    }

    fn trust(text: &str, config: &Config) -> Vec<Finding> {
        let mut out = Vec::new();
        checker().check_trust(
            text,
            &FieldPath::root("spec").field("assumeRolePolicyDocument"),
            config,
            &mut out,
        );
        out
    }

    fn inline(texts: &[&str], config: &Config) -> Vec<Finding> {
        inline_trusted_by(texts, TrustedBy::Others, config)
    }

    fn inline_trusted_by(texts: &[&str], trusted_by: TrustedBy, config: &Config) -> Vec<Finding> {
        let documents: Vec<(FieldPath, &str)> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                (
                    FieldPath::root("spec")
                        .field("inlinePolicies")
                        .index(i)
                        .field("policyDocument"),
                    *text,
                )
            })
            .collect();
        checker().permission_findings(&documents, trusted_by, config)
    }

    fn summary(findings: &[Finding]) -> Vec<(RuleId, &str, Severity)> {
        findings
            .iter()
            .map(|f| (f.rule, f.path.as_str(), f.severity))
            .collect()
    }

    #[test]
    fn policy_json_is_the_only_finding_of_a_document_that_is_not_one_object() {
        let c = Config::default();
        let bad = [
            "",
            "{\"Version\": \"2012-10-17\", \"Statement\": [],}",
            "{\"Version\": \"2012-10-17\" /* c */}",
            "{'Version': '2012-10-17'}",
            "{\"Version\": \"2012-10-17\", \"Statement\": [",
            "[{\"Effect\": \"Allow\"}]",
            "17",
            "{\"Statement\": {\"Effect\": \"Allow\", \"Action\": \"*\", \"Resource\": \"*\"}} trailing",
            "{\"Statement\": {\"Effect\": \"Allow\", \"Action\": \"s3:GetObject\", \"Action\": \"*\", \"Resource\": \"*\"}}",
        ];
        for text in bad {
            let root = "spec.assumeRolePolicyDocument";
            assert_eq!(
                summary(&trust(text, &c)),
                [(RuleId::PolicyJson, root, Severity::Deny)],
                "{text:?}"
            );
            let first = "spec.inlinePolicies[0].policyDocument";
            assert_eq!(
                summary(&inline(&[text], &c)),
                [(RuleId::PolicyJson, first, Severity::Deny)],
                "{text:?}"
            );
        }
        let duplicate = inline(&[bad[8]], &c);
        assert!(
            duplicate[0].message.contains("\"Action\" appears twice"),
            "{}",
            duplicate[0].message
        );
        let good = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}"#;
        assert!(inline(&[good], &c).is_empty());
    }

    #[test]
    fn escapes_are_decoded_before_any_rule() {
        let text = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["iam:\u002A"], "Resource": "arn:aws:s3:::b/*"}]}"#;
        assert_eq!(
            summary(&inline(&[text], &Config::default())),
            [(
                RuleId::ActionWildcard,
                "spec.inlinePolicies[0].policyDocument.Statement[0].Action[0]",
                Severity::Deny
            )]
        );
    }

    fn padded_statements(count: usize) -> String {
        let statements: Vec<Value> = (0..count)
            .map(|i| {
                json!({"Sid": format!("S{i}"), "Effect": "Allow", "Action": "s3:GetObject",
                "Resource": format!("arn:aws:s3:::bucket-{i}/*")})
            })
            .collect();
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    #[test]
    fn policy_size_counts_non_whitespace_characters_against_the_quotas() {
        let mut c = Config::default();
        let service = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#;
        assert!(trust(service, &c).is_empty());
        c.quotas.trust_policy_size = size::count(service);
        assert!(
            trust(service, &c).is_empty(),
            "exactly at the quota is fine"
        );
        c.quotas.trust_policy_size -= 1;
        assert_eq!(
            summary(&trust(service, &c)),
            [(
                RuleId::PolicySize,
                "spec.assumeRolePolicyDocument",
                Severity::Deny
            )]
        );

        let c = Config::default();
        let big = padded_statements(60);
        assert!(size::count(&big) > IAM_MAX_INLINE_POLICIES_SIZE / 2);
        assert!(size::count(&big) < IAM_MAX_INLINE_POLICIES_SIZE);
        assert!(inline(&[&big], &c).is_empty());
        assert_eq!(
            summary(&inline(&[&big, &big], &c)),
            [(RuleId::PolicySize, "spec.inlinePolicies", Severity::Deny)]
        );
        let single = FieldPath::root("spec")
            .field("inlinePolicy")
            .field("policyDocument");
        let folded = checker().permission_findings(
            &[(single, big.as_str()), (FieldPath::root("x"), big.as_str())],
            TrustedBy::Others,
            &c,
        );
        assert_eq!(
            summary(&folded),
            [(RuleId::PolicySize, "spec.inlinePolicies", Severity::Deny)]
        );
    }

    #[test]
    fn documents_past_iams_inline_limit_are_not_grammar_checked() {
        let c = Config::default();
        let big = padded_statements(60);
        let invalid = r#"{"Version":"2012-10-17","Statement":[{"Sid":"-","Effect":"X"}]}"#;
        // Within the limit, the invalid document's grammar is reported.
        let within = inline(&[invalid], &c);
        assert!(
            within.iter().any(|f| f.rule == RuleId::PolicyGrammar),
            "{within:?}"
        );
        // After two documents that cross it, it is only counted in the size finding.
        let past = inline(&[&big, &big, invalid], &c);
        assert_eq!(
            summary(&past),
            [(RuleId::PolicySize, "spec.inlinePolicies", Severity::Deny)]
        );
    }

    /// Every policy document of the product's user documentation.
    const SEED_TRUST: &[&str] = &[
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub": "system:serviceaccount:infra-operator-system:infra-operator-controller-manager",
                "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:aud": "sts.amazonaws.com"}}}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/other-role"}, "Action": "sts:AssumeRole",
             "Condition": {"StringEquals": {"sts:ExternalId": "unique-external-id"}}}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
            "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": "unique-external-id-123"}}}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC123"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"oidc.eks.us-east-1.amazonaws.com/id/ABC123:sub": "system:serviceaccount:default:app-sa"}}}]}"#,
    ];

    const SEED_PERMISSIONS: &[&str] = &[
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["iam:CreateRole", "iam:DeleteRole",
            "iam:GetRole", "iam:UpdateRole", "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:PutRolePolicy",
            "iam:DeleteRolePolicy", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
            "iam:TagRole", "iam:UntagRole", "iam:ListRoleTags"], "Resource": "*"}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem",
            "dynamodb:UpdateItem", "dynamodb:Query"], "Resource": "arn:aws:dynamodb:*:*:table/e2e-*"}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem",
            "dynamodb:UpdateItem", "dynamodb:Query"], "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/users"}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
            "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*"}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": ["arn:aws:s3:::my-app-bucket", "arn:aws:s3:::my-app-bucket/*"]}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken",
            "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": "*"}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
            "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecs/*"}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": "arn:aws:s3:::eks-app-data/*"}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": "arn:aws:s3:::my-bucket/*", "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": "arn:aws:s3:::data-bucket/*"}, {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem",
            "dynamodb:Query"], "Resource": "arn:aws:dynamodb:us-east-1:*:table/data"}]}"#,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": "arn:aws:s3:::app-bucket/*"},
            {"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": "arn:aws:dynamodb:*:*:table/app-*"},
            {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": "arn:aws:secretsmanager:*:*:secret:app/*"}]}"#,
    ];

    #[test]
    fn every_seed_document_is_accepted_with_the_expected_warnings() {
        let c = Config::default();
        let mut warnings = Vec::new();
        for (i, text) in SEED_TRUST.iter().enumerate() {
            let found = trust(text, &c);
            assert!(
                !found.iter().any(Finding::is_deny),
                "trust policy {i}: {found:?}"
            );
            warnings.extend(
                found
                    .into_iter()
                    .map(|f| (format!("trust {i}"), f.rule, f.path)),
            );
        }
        // The operator's own policy (permission 0) goes with the operator's own trust (trust 0).
        let operator_trust = |i: usize| {
            if i == 0 {
                TrustedBy::RoleManagers
            } else {
                TrustedBy::Others
            }
        };
        for (i, text) in SEED_TRUST.iter().enumerate() {
            let trusted_by =
                checker().check_trust(text, &FieldPath::root("t"), &c, &mut Vec::new());
            assert_eq!(trusted_by, operator_trust(i), "trust policy {i}");
        }
        for (i, text) in SEED_PERMISSIONS.iter().enumerate() {
            let found = inline_trusted_by(&[text], operator_trust(i), &c);
            assert!(
                !found.iter().any(Finding::is_deny),
                "permission policy {i}: {found:?}"
            );
            warnings.extend(
                found
                    .into_iter()
                    .map(|f| (format!("permission {i}"), f.rule, f.path)),
            );
        }
        let trust_doc = "spec.assumeRolePolicyDocument";
        let inline_doc = "spec.inlinePolicies[0].policyDocument";
        let expected = [
            (
                "trust 6",
                RuleId::TrustExternalId,
                format!("{trust_doc}.Statement[0].Principal.AWS"),
            ),
            (
                "trust 7",
                RuleId::TrustOidcConditions,
                format!("{trust_doc}.Statement[0].Condition"),
            ),
            (
                "permission 7",
                RuleId::ActionWildcard,
                format!("{inline_doc}.Statement[0].Action[0]"),
            ),
            (
                "permission 10",
                RuleId::ActionWildcard,
                format!("{inline_doc}.Statement[0].Action[0]"),
            ),
            (
                "permission 10",
                RuleId::ActionWildcard,
                format!("{inline_doc}.Statement[1].Action[0]"),
            ),
        ]
        .map(|(doc, rule, path)| (doc.to_owned(), rule, path));
        assert_eq!(warnings, expected);
        assert!(
            inline_trusted_by(SEED_PERMISSIONS, TrustedBy::RoleManagers, &c)
                .iter()
                .all(|f| !f.is_deny()),
            "all of them together fit the quota"
        );
        let elsewhere = inline(&SEED_PERMISSIONS[..1], &c);
        assert_eq!(
            summary(&elsewhere),
            [
                (
                    RuleId::PrivilegeEscalation,
                    "spec.inlinePolicies[0].policyDocument.Statement[0].Action[4]",
                    Severity::Deny
                ),
                (
                    RuleId::PrivilegeEscalation,
                    "spec.inlinePolicies[0].policyDocument.Statement[0].Action[6]",
                    Severity::Deny
                )
            ],
            "the same policy in a role others can assume"
        );
    }

    const KEYS: &[&str] = &[
        "Version",
        "Id",
        "Statement",
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
        "AWS",
        "Federated",
        "Service",
        "CanonicalUser",
        "StringEquals",
        "NullIfExists",
        "ForAnyValue:StringLike",
        "x:sub",
        "x:aud",
        "sts:ExternalId",
    ];
    const WORDS: &[&str] = &[
        "*",
        "Allow",
        "Deny",
        "2012-10-17",
        "iam:*",
        "iam:PassRole",
        "s3:*",
        "sts:AssumeRole",
        "sts:AssumeRoleWithWebIdentity",
        "sts:AssumeRoleWithSAML",
        "arn:aws:iam::123456789012:root",
        "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/X",
        "arn:aws:iam::*:role/*",
        "ec2.amazonaws.com",
        "accounts.google.com",
        "111111111111",
        "",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let text = prop_oneof![
            proptest::sample::select(WORDS).prop_map(str::to_owned),
            any::<String>()
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text.prop_map(Value::String),
        ];
        let key = prop_oneof![
            proptest::sample::select(KEYS).prop_map(str::to_owned),
            any::<String>()
        ];
        leaf.prop_recursive(5, 96, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key.clone(), inner), 0..8)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    fn check_both(checker: &PolicyChecker, text: &str) -> (Vec<Finding>, Vec<Finding>) {
        let c = Config::default();
        let mut trust = Vec::new();
        checker.check_trust(text, &FieldPath::root("t"), &c, &mut trust);
        let permissions =
            checker.permission_findings(&[(FieldPath::root("p"), text)], TrustedBy::Others, &c);
        (trust, permissions)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let (trust, permissions) = check_both(&checker(), &text);
            prop_assert!(trust.iter().all(|f| f.path.starts_with('t')));
            prop_assert!(permissions.iter().all(|f| f.path.starts_with('p')));
        }

        #[test]
        fn arbitrary_json_never_panics_and_only_non_objects_are_policy_json(
            value in json_value(),
            statement in json_value(),
        ) {
            let checker = checker();
            let policy = json!({"Version": "2012-10-17", "Statement": statement});
            for document in [&value, &policy] {
                let (trust, permissions) = check_both(&checker, &document.to_string());
                let is_json_error = |f: &Finding| f.rule == RuleId::PolicyJson;
                prop_assert_eq!(trust.iter().any(is_json_error), !document.is_object());
                prop_assert_eq!(permissions.iter().any(is_json_error), !document.is_object());
                prop_assert!(trust.iter().chain(&permissions).all(|f| !f.message.contains('\n')));
            }
        }
    }
}
