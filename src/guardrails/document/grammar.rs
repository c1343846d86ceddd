//! The `policy-grammar` rule: a parsed document checked against the IAM policy grammar written as
//! JSON Schemas (`policies/trust-policy.schema.json`, `policies/permission-policy.schema.json`),
//! compiled once. Each schema error becomes one finding at the exact field path, worded from the
//! `description` the schema gives the failing part. Pure (the schemas are compiled into the binary).

use std::borrow::Cow;
use std::collections::HashSet;

use jsonschema::Validator;
use jsonschema::error::{ValidationError, ValidationErrorKind};
use serde_json::Value;

use super::super::{FieldPath, Finding, RuleId, SchemaError};
use super::json::{self, kind_of};
use super::quote;

const TRUST_SCHEMA: &str = include_str!("../../../policies/trust-policy.schema.json");
const PERMISSION_SCHEMA: &str = include_str!("../../../policies/permission-policy.schema.json");
/// The most schema errors looked for in one document: past the findings an answer reports
/// ([`super::super::MAX_FINDINGS`]), with room for the errors that shadow others.
const MAX_GRAMMAR_ERRORS: usize = 2 * super::super::MAX_FINDINGS;
/// Statements of an invalid document checked at a time. The schema library gathers every error of
/// what it is given before handing out the first, so a document of thousands of bad statements is
/// checked a window at a time, and no further once [`MAX_GRAMMAR_ERRORS`] are found.
const STATEMENT_WINDOW: usize = 16;

/// One compiled grammar with its source, which supplies the wording of findings.
pub struct Grammar {
    schema: Value,
    validator: Validator,
}

/// The two grammars: trust policies and permission (inline) policies.
pub struct Grammars {
    /// Grammar of a role's trust policy.
    pub trust: Grammar,
    /// Grammar of a role's inline permission policies.
    pub permission: Grammar,
}

impl Grammars {
    /// Compiles both built-in schemas.
    pub fn new() -> Result<Self, SchemaError> {
        Ok(Grammars {
            trust: Grammar::compile("trust-policy.schema.json", TRUST_SCHEMA)?,
            permission: Grammar::compile("permission-policy.schema.json", PERMISSION_SCHEMA)?,
        })
    }
}

/// A schema error translated to a finding, before duplicates are dropped.
struct Pending {
    path: FieldPath,
    message: String,
    wrong_type: bool,
}

impl Grammar {
    fn compile(name: &'static str, text: &str) -> Result<Self, SchemaError> {
        let fail = |message: String| SchemaError { name, message };
        let schema: Value = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| fail(e.to_string()))?;
        Ok(Grammar { schema, validator })
    }

    /// Adds a `policy-grammar` finding for every place `document` (a JSON object) leaves the
    /// grammar, and a warning when it has no `Version`.
    pub fn check(&self, document: &Value, root: &FieldPath, out: &mut Vec<Finding>) {
        if json::at(document, &["Version"]).is_none() {
            out.push(Finding::warn(
                RuleId::PolicyGrammar,
                &root.field("Version"),
                "Version is missing, so IAM reads the document with the old 2008-10-17 rules (no policy variables); add \"Version\": \"2012-10-17\"",
            ));
        }
        if self.validator.is_valid(document) {
            return;
        }
        let mut pending = Vec::new();
        match json::at(document, &["Statement"]) {
            Some(Value::Array(statements)) if statements.len() > STATEMENT_WINDOW => {
                self.check_by_window(document, statements, root, &mut pending)
            }
            _ => self.collect(document, 0, root, &mut pending),
        }
        let wrong_types: HashSet<&str> = pending
            .iter()
            .filter(|p| p.wrong_type)
            .map(|p| p.path.as_str())
            .collect();
        let mut reported: HashSet<(&str, &str)> = HashSet::new();
        for finding in &pending {
            let shadowed = !finding.wrong_type && wrong_types.contains(finding.path.as_str());
            if !shadowed && reported.insert((finding.path.as_str(), finding.message.as_str())) {
                out.push(Finding::deny(
                    RuleId::PolicyGrammar,
                    &finding.path,
                    finding.message.as_str(),
                ));
            }
        }
    }

    /// Checks `document` (whose `Statement` list is `statements`) as a series of documents that
    /// each hold the other elements and one window of statements, until enough errors are found.
    fn check_by_window(
        &self,
        document: &Value,
        statements: &[Value],
        root: &FieldPath,
        out: &mut Vec<Pending>,
    ) {
        let others = document.as_object().into_iter().flatten();
        let mut part = Value::Object(
            others
                .filter(|(name, _)| *name != "Statement")
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        );
        for (number, chunk) in statements.chunks(STATEMENT_WINDOW).enumerate() {
            if out.len() >= MAX_GRAMMAR_ERRORS {
                return;
            }
            part["Statement"] = Value::Array(chunk.to_vec());
            if !self.validator.is_valid(&part) {
                self.collect(&part, number * STATEMENT_WINDOW, root, out);
            }
        }
    }

    /// Translates the errors of `document`, whose first statement is statement `first_statement`
    /// of the document being checked, up to [`MAX_GRAMMAR_ERRORS`] in all.
    fn collect(
        &self,
        document: &Value,
        first_statement: usize,
        root: &FieldPath,
        out: &mut Vec<Pending>,
    ) {
        for error in self.validator.iter_errors(document) {
            if out.len() >= MAX_GRAMMAR_ERRORS {
                return;
            }
            self.translate(&error, document, first_statement, root, out);
        }
    }

    fn translate(
        &self,
        error: &ValidationError<'_>,
        document: &Value,
        first_statement: usize,
        root: &FieldPath,
        out: &mut Vec<Pending>,
    ) {
        let (path, subject) = locate(
            document,
            error.instance_path().as_str(),
            first_statement,
            root,
        );
        let keyword_parent = parent(error.schema_path().as_str());
        match error.kind() {
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let property_schema = format!("{keyword_parent}/properties/{}", escape(name));
                let message = match self.description_of(&property_schema) {
                    Some(description) => format!("{name} is missing; it {description}"),
                    None => format!("{name} is missing"),
                };
                out.push(Pending {
                    path: path.field(name),
                    message,
                    wrong_type: false,
                });
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let allowed = self.allowed_properties(keyword_parent);
                for name in unexpected {
                    out.push(Pending {
                        path: path.field(name),
                        message: format!(
                            "unknown element {}; allowed here: {allowed}",
                            quote(name)
                        ),
                        wrong_type: false,
                    });
                }
            }
            ValidationErrorKind::OneOfMultipleValid { .. }
                if let Some((first, second)) = self.both_present(error) =>
            {
                out.push(Pending {
                    path: path.field(second),
                    message: format!(
                        "{second} cannot be used together with {first}; keep exactly one of them"
                    ),
                    wrong_type: false,
                });
            }
            kind => {
                let description = self
                    .nearest_description(keyword_parent)
                    .unwrap_or("does not fit the IAM policy grammar");
                let mut message = format!("{subject} {description}");
                if matches!(
                    kind,
                    ValidationErrorKind::Type { .. }
                        | ValidationErrorKind::Enum { .. }
                        | ValidationErrorKind::Constant { .. }
                        | ValidationErrorKind::MinLength { .. }
                        | ValidationErrorKind::MinItems { .. }
                        | ValidationErrorKind::MinProperties { .. }
                ) {
                    message.push_str("; found ");
                    message.push_str(&summary(error.instance()));
                }
                out.push(Pending {
                    path,
                    message,
                    wrong_type: matches!(kind, ValidationErrorKind::Type { .. }),
                });
            }
        }
    }

    /// For a `oneOf` of two `required` alternatives (`Action` | `NotAction`) that the instance
    /// both satisfies, the two element names.
    fn both_present<'s>(&'s self, error: &ValidationError<'_>) -> Option<(&'s str, &'s str)> {
        let branches = self
            .schema
            .pointer(error.schema_path().as_str())?
            .as_array()?;
        let name = |i: usize| branches.get(i)?.pointer("/required/0")?.as_str();
        let (first, second) = (name(0)?, name(1)?);
        let instance = error.instance();
        (branches.len() == 2 && instance.get(first).is_some() && instance.get(second).is_some())
            .then_some((first, second))
    }

    /// The description of the schema at `pointer`, following one local `$ref`.
    fn description_of(&self, pointer: &str) -> Option<&str> {
        let node = self.schema.pointer(pointer)?;
        let node = match node
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
        {
            Some(target) => self.schema.pointer(target)?,
            None => node,
        };
        node.get("description").and_then(Value::as_str)
    }

    /// The description of the schema at `pointer` or of its nearest ancestor that has one.
    fn nearest_description(&self, mut pointer: &str) -> Option<&str> {
        loop {
            if let Some(description) = self
                .schema
                .pointer(pointer)
                .and_then(|n| n.get("description"))
            {
                return description.as_str();
            }
            if pointer.is_empty() {
                return None;
            }
            pointer = parent(pointer);
        }
    }

    /// The names a schema object at `pointer` allows, leaving out those it forbids (`not`).
    fn allowed_properties(&self, pointer: &str) -> String {
        let properties = self
            .schema
            .pointer(pointer)
            .and_then(|n| n.get("properties"))
            .and_then(Value::as_object);
        let names: Vec<&str> = properties
            .into_iter()
            .flatten()
            .filter(|(_, schema)| schema.get("not").is_none())
            .map(|(name, _)| name.as_str())
            .collect();
        names.join(", ")
    }
}

/// The JSON pointer one level up (`/a/b` → `/a`, `/a` → ``).
fn parent(pointer: &str) -> &str {
    pointer.rsplit_once('/').map_or("", |(head, _)| head)
}

/// A property name escaped for use in a JSON pointer.
fn escape(name: &str) -> Cow<'_, str> {
    if name.contains(['~', '/']) {
        Cow::Owned(name.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(name)
    }
}

/// The field path of the JSON pointer `pointer` inside `document`, and the words naming it in a
/// message (`Action[1]`, `Statement[0]`, `the document`). `document`'s first statement is number
/// `first_statement` of the document the path names.
fn locate(
    document: &Value,
    pointer: &str,
    first_statement: usize,
    root: &FieldPath,
) -> (FieldPath, String) {
    let mut path = root.clone();
    let mut subject = String::from("the document");
    let mut node = Some(document);
    for (depth, raw) in pointer.split('/').skip(1).enumerate() {
        let segment = if raw.contains('~') {
            Cow::Owned(raw.replace("~1", "/").replace("~0", "~"))
        } else {
            Cow::Borrowed(raw)
        };
        match (node, segment.parse::<usize>()) {
            (Some(Value::Array(items)), Ok(i)) => {
                let number = if depth == 1 && pointer.starts_with("/Statement/") {
                    first_statement + i
                } else {
                    i
                };
                path = path.index(number);
                subject.push_str(&format!("[{number}]"));
                node = items.get(i);
            }
            _ => {
                path = path.field(&segment);
                node = node.and_then(|n| n.get(segment.as_ref()));
                subject = segment.into_owned();
            }
        }
    }
    (path, subject)
}

/// A short rendering of a value for a message.
fn summary(value: &Value) -> String {
    match value {
        Value::String(s) => quote(s),
        Value::Array(items) if items.is_empty() => "an empty list".to_owned(),
        Value::Object(map) if map.is_empty() => "an empty object".to_owned(),
        Value::Null | Value::Bool(_) | Value::Number(_) => value.to_string(),
        other => kind_of(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::super::Severity;
    use super::*;

    fn grammars() -> Grammars {
        Grammars::new().unwrap()
    }

    fn check(grammar: &Grammar, document: Value) -> Vec<(String, Severity, String)> {
        let mut out = Vec::new();
        grammar.check(&document, &FieldPath::root("doc"), &mut out);
        out.into_iter()
            .map(|f| (f.path, f.severity, f.message))
            .collect()
    }

    fn paths(findings: &[(String, Severity, String)]) -> Vec<&str> {
        findings.iter().map(|(p, _, _)| p.as_str()).collect()
    }

    #[test]
    fn good_documents_pass_and_a_missing_version_only_warns() {
        let g = grammars();
        let permission = json!({"Version": "2012-10-17", "Statement": [{"Sid": "A", "Effect": "Allow",
            "Action": ["s3:GetObject"], "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]},
            "Bool": {"aws:SecureTransport": true}, "NumericLessThan": {"s3:max-keys": 10}}}]});
        assert!(check(&g.permission, permission).is_empty());
        let trust = json!({"Statement": {"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com"]},
            "Action": "sts:AssumeRole"}});
        let found = check(&g.trust, trust);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "doc.Version");
        assert_eq!(found[0].1, Severity::Warn);
    }

    #[test]
    fn bad_version_effect_and_missing_statement_are_denied_at_their_field() {
        let g = grammars();
        let found = check(&g.permission, json!({"Version": "2012-10-18"}));
        let mut sorted = paths(&found);
        sorted.sort_unstable();
        assert_eq!(sorted, ["doc.Statement", "doc.Version"]);
        assert!(found.iter().all(|(_, s, _)| *s == Severity::Deny));
        let version = found.iter().find(|(p, _, _)| p == "doc.Version").unwrap();
        assert_eq!(
            version.2,
            "Version must be \"2012-10-17\" (or the legacy \"2008-10-17\"); found \"2012-10-18\""
        );
        let statement = found.iter().find(|(p, _, _)| p == "doc.Statement").unwrap();
        assert!(
            statement
                .2
                .starts_with("Statement is missing; it must be a statement object"),
            "{}",
            statement.2
        );

        let effect = check(
            &g.trust,
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "allow",
            "Principal": "*", "Action": "sts:AssumeRole"}]}),
        );
        assert_eq!(effect.len(), 1);
        assert_eq!(effect[0].0, "doc.Statement[0].Effect");
        assert_eq!(
            effect[0].2,
            "Effect must be \"Allow\" or \"Deny\"; found \"allow\""
        );
    }

    #[test]
    fn action_and_resource_choices_are_reported_once_each_where_they_fail() {
        let g = grammars();
        let none = check(
            &g.permission,
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}),
        );
        let messages: Vec<&str> = none.iter().map(|(_, _, m)| m.as_str()).collect();
        assert_eq!(paths(&none), ["doc.Statement[0]", "doc.Statement[0]"]);
        assert!(messages.contains(&"Statement[0] needs exactly one of Action or NotAction"));
        assert!(messages.contains(&"Statement[0] needs exactly one of Resource or NotResource"));
        let both = check(
            &g.permission,
            json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow",
            "Action": "a:b", "NotAction": "a:c", "Resource": "*"}}),
        );
        assert_eq!(paths(&both), ["doc.Statement.NotAction"]);
        assert_eq!(
            both[0].2,
            "NotAction cannot be used together with Action; keep exactly one of them"
        );
        let resources = check(
            &g.permission,
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
            "Action": "a:b", "Resource": "*", "NotResource": "*"}]}),
        );
        assert_eq!(paths(&resources), ["doc.Statement[0].NotResource"]);
        let not_object = check(
            &g.permission,
            json!({"Version": "2012-10-17", "Statement": [7]}),
        );
        assert_eq!(paths(&not_object), ["doc.Statement[0]"]);
    }

    #[test]
    fn unknown_elements_and_principals_in_permission_policies_are_denied() {
        let g = grammars();
        let found = check(
            &g.permission,
            json!({"Version": "2012-10-17", "Extra": 1, "Statement": [{"Effect": "Allow",
            "Action": "s3:GetObject", "Resource": "*", "Principal": {"AWS": "*"}, "Actions": "x"}]}),
        );
        let mut sorted = paths(&found);
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [
                "doc.Extra",
                "doc.Statement[0].Actions",
                "doc.Statement[0].Principal"
            ]
        );
        let extra = found.iter().find(|(p, _, _)| p == "doc.Extra").unwrap();
        assert_eq!(
            extra.2,
            "unknown element \"Extra\"; allowed here: Version, Id, Statement"
        );
        let actions = found
            .iter()
            .find(|(p, _, _)| p == "doc.Statement[0].Actions")
            .unwrap();
        assert!(
            actions
                .2
                .ends_with("Sid, Effect, Action, NotAction, Resource, NotResource, Condition"),
            "{}",
            actions.2
        );
        let principal = found
            .iter()
            .find(|(p, _, _)| p == "doc.Statement[0].Principal")
            .unwrap();
        assert!(
            principal
                .2
                .starts_with("Principal is not allowed in a permission policy"),
            "{}",
            principal.2
        );
    }

    #[test]
    fn wrong_value_types_are_reported_once_at_the_most_precise_path() {
        let g = grammars();
        let found = check(
            &g.permission,
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["s3:GetObject", 5, ""], "Resource": [], "Condition": {"StringEquals": {"k": {"x": 1}},
            "Bool": "true"}}]}),
        );
        assert_eq!(
            {
                let mut p = paths(&found);
                p.sort_unstable();
                p
            },
            [
                "doc.Statement[0].Action[1]",
                "doc.Statement[0].Action[2]",
                "doc.Statement[0].Condition.Bool",
                "doc.Statement[0].Condition.StringEquals.k",
                "doc.Statement[0].Resource",
            ]
        );
        let action = found
            .iter()
            .find(|(p, _, _)| p == "doc.Statement[0].Action[1]")
            .unwrap();
        assert_eq!(action.2, "Action[1] must be a non-empty string; found 5");
        let resource = found
            .iter()
            .find(|(p, _, _)| p == "doc.Statement[0].Resource")
            .unwrap();
        assert!(
            resource.2.ends_with("found an empty list"),
            "{}",
            resource.2
        );

        let statement = check(&g.trust, json!({"Version": "2012-10-17", "Statement": "x"}));
        assert_eq!(paths(&statement), ["doc.Statement"]);
        let item = check(&g.trust, json!({"Version": "2012-10-17", "Statement": [5]}));
        assert_eq!(paths(&item), ["doc.Statement[0]"]);
        assert!(item[0].2.ends_with("; found 5"), "{}", item[0].2);
        let empty = check(&g.trust, json!({"Version": "2012-10-17", "Statement": []}));
        assert_eq!(paths(&empty), ["doc.Statement"]);
    }

    #[test]
    fn trust_principals_must_be_star_or_typed() {
        let g = grammars();
        let text = check(
            &g.trust,
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": "arn:aws:iam::123456789012:root", "Action": "sts:AssumeRole"}]}),
        );
        assert_eq!(paths(&text), ["doc.Statement[0].Principal"]);
        assert!(
            text[0]
                .2
                .starts_with("Principal must be \"*\" or an object"),
            "{}",
            text[0].2
        );
        let typed = check(
            &g.trust,
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"User": "x", "AWS": [1]}, "Action": "sts:AssumeRole"}]}),
        );
        let mut sorted = paths(&typed);
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [
                "doc.Statement[0].Principal.AWS[0]",
                "doc.Statement[0].Principal.User"
            ]
        );
    }

    /// A permission policy of `statements`.
    fn policy(statements: &[Value]) -> Value {
        json!({"Version": "2012-10-17", "Extra": true, "Statement": statements})
    }

    /// What the permission grammar finds in `policy(statements)` a window at a time.
    fn windowed(g: &Grammars, statements: &[Value]) -> Vec<Pending> {
        let mut pending = Vec::new();
        let root = FieldPath::root("doc");
        g.permission
            .check_by_window(&policy(statements), statements, &root, &mut pending);
        pending
    }

    #[test]
    fn long_documents_checked_a_window_at_a_time_find_what_one_pass_finds() {
        let g = grammars();
        let good = json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"});
        let bad = [
            json!({"Effect": "allow", "Action": "s3:GetObject", "Resource": "*"}),
            json!({"Effect": "Allow", "Action": [5], "Resource": "*", "Principal": "*"}),
            json!({"Effect": "Deny", "Resource": "*"}),
            json!("not a statement"),
        ];
        let statements: Vec<Value> = (0..3 * STATEMENT_WINDOW + 5)
            .map(|i| match i % 7 {
                0 => bad[(i / 7) % bad.len()].clone(),
                _ => good.clone(),
            })
            .collect();
        let windowed = windowed(&g, &statements);
        let mut whole = Vec::new();
        let root = FieldPath::root("doc");
        g.permission
            .collect(&policy(&statements), 0, &root, &mut whole);
        let render = |pending: &[Pending]| {
            let mut all: Vec<(String, String)> = pending
                .iter()
                .map(|p| (p.path.as_str().to_owned(), p.message.clone()))
                .collect();
            all.sort_unstable();
            all.dedup();
            all
        };
        assert_eq!(render(&windowed), render(&whole));
        let last_bad = (statements.len() - 1) / 7 * 7;
        assert!(
            render(&windowed)
                .iter()
                .any(|(path, _)| path.starts_with(&format!("doc.Statement[{last_bad}]"))),
            "{:?}",
            render(&windowed)
        );
    }

    #[test]
    fn one_bad_statement_deep_in_a_long_document_is_found_at_its_index() {
        let g = grammars();
        let good = json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"});
        let mut statements = vec![good; 1000];
        statements[777] = json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": ""});
        let found = check(&g.permission, policy(&statements));
        let mut sorted = paths(&found);
        sorted.sort_unstable();
        assert_eq!(sorted, ["doc.Extra", "doc.Statement[777].Resource"]);
        assert!(found[1].2.starts_with("Resource "), "{}", found[1].2);
    }

    #[test]
    fn a_document_of_thousands_of_bad_statements_stops_after_enough_errors() {
        let g = grammars();
        let statements = vec![json!({"Sid": 1, "Effect": "X"}); 5000];
        let pending = windowed(&g, &statements);
        assert!(pending.len() >= MAX_GRAMMAR_ERRORS);
        assert!(pending.len() < MAX_GRAMMAR_ERRORS + 4 * STATEMENT_WINDOW);
        let deepest = pending
            .iter()
            .filter_map(|p| {
                let index = p.path.as_str().strip_prefix("doc.Statement[")?;
                index.split(']').next()?.parse::<usize>().ok()
            })
            .max()
            .unwrap();
        assert!(
            deepest < 2 * MAX_GRAMMAR_ERRORS,
            "looked as far as statement {deepest}"
        );
    }

    #[test]
    fn keys_with_slashes_and_numbers_map_back_to_fields() {
        let document =
            json!({"Statement": [{"Condition": {"StringEquals": {"a/b~c": 1, "7": 2}}}]});
        let root = FieldPath::root("d");
        let (path, subject) = locate(
            &document,
            "/Statement/0/Condition/StringEquals/a~1b~0c",
            0,
            &root,
        );
        assert_eq!(path.as_str(), "d.Statement[0].Condition.StringEquals.a/b~c");
        assert_eq!(subject, "a/b~c");
        let (path, _) = locate(&document, "/Statement/0/Condition/StringEquals/7", 0, &root);
        assert_eq!(path.as_str(), "d.Statement[0].Condition.StringEquals.7");
        assert_eq!(locate(&document, "", 0, &root).1, "the document");
        let (path, subject) = locate(&document, "/Statement/0/Condition", 64, &root);
        assert_eq!(path.as_str(), "d.Statement[64].Condition");
        assert_eq!(subject, "Condition");
    }
}
