//! The `schema` rule: an object checked against its CRD's own OpenAPI v3 schema, generated from the
//! API types and turned once into a compiled JSON Schema that also refuses unknown fields. Limits on
//! fields a dedicated rule owns (roleName, tags, region, ...) are left to that rule. Pure, no I/O.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, ValidationError, Validator};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Map, Value, json};

use crate::api::{AWSProvider, GuardrailPolicy, IAMRole};

use super::excerpt::quote;
use super::{FieldPath, Finding, Kind, RuleId, SchemaError};

/// Longest unknown field name for which a close known name is looked for.
const MAX_SUGGESTION_INPUT: usize = 64;

/// Compiled CRD schemas of every kind.
pub struct ObjectSchemas {
    role: ObjectSchema,
    provider: ObjectSchema,
    policy: ObjectSchema,
}

impl ObjectSchemas {
    /// Compiles the schemas generated from the API types.
    pub fn new() -> Result<Self, SchemaError> {
        Ok(ObjectSchemas {
            role: ObjectSchema::compile(Kind::IAMRole, &IAMRole::crd())?,
            provider: ObjectSchema::compile(Kind::AWSProvider, &AWSProvider::crd())?,
            policy: ObjectSchema::compile(Kind::GuardrailPolicy, &GuardrailPolicy::crd())?,
        })
    }

    /// Adds a `schema` finding for every place `object` does not fit its CRD schema.
    pub fn check(&self, kind: Kind, object: &Value, out: &mut Vec<Finding>) {
        let schema = match kind {
            Kind::IAMRole => &self.role,
            Kind::AWSProvider => &self.provider,
            Kind::GuardrailPolicy => &self.policy,
        };
        // The common case, a fitting object, without building any error.
        if schema.validator.is_valid(object) {
            return;
        }
        for error in schema.validator.iter_errors(object) {
            schema.report(&error, out);
        }
    }
}

/// Reports a spec that could not be read into the API types, unless the schema already said why.
pub fn unreadable_spec(
    error: &serde_path_to_error::Error<serde_json::Error>,
    out: &mut Vec<Finding>,
) {
    if out.iter().any(|f| f.rule == RuleId::Schema) {
        return;
    }
    let mut path = FieldPath::root("spec");
    for segment in error.path().iter() {
        path = match segment {
            serde_path_to_error::Segment::Seq { index } => path.index(*index),
            serde_path_to_error::Segment::Map { key } => path.field(key),
            serde_path_to_error::Segment::Enum { variant } => path.field(variant),
            serde_path_to_error::Segment::Unknown => path,
        };
    }
    let error = error.inner().to_string();
    let error = error.split(" at line ").next().unwrap_or(&error);
    out.push(deny(
        &path,
        format!("cannot be read: {error}; fix the value"),
    ));
}

/// One kind's schema: the JSON Schema (to map errors back to fields) and its compiled validator.
struct ObjectSchema {
    kind: Kind,
    schema: Value,
    validator: Validator,
}

impl ObjectSchema {
    fn compile(kind: Kind, crd: &CustomResourceDefinition) -> Result<Self, SchemaError> {
        let fail = |message: String| SchemaError {
            name: kind.as_str(),
            message,
        };
        let openapi = crd
            .spec
            .versions
            .first()
            .and_then(|version| version.schema.as_ref())
            .and_then(|validation| validation.open_api_v3_schema.as_ref())
            .ok_or_else(|| fail("the CRD has no openAPIV3Schema".to_owned()))?;
        let mut schema = serde_json::to_value(openapi).map_err(|e| fail(e.to_string()))?;
        add_implicit_fields(&mut schema);
        close(&mut schema);
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .build(&schema)
            .map_err(|e| fail(e.to_string()))?;
        Ok(ObjectSchema {
            kind,
            schema,
            validator,
        })
    }

    /// Turns one validation error into findings at the offending fields.
    fn report(&self, error: &ValidationError<'_>, out: &mut Vec<Finding>) {
        let segments: Vec<String> = error
            .instance_path()
            .segments()
            .map(|segment| segment.to_string())
            .collect();
        let (path, node) = locate(&self.schema, &segments);
        let field = segments.last().map_or(self.kind.as_str(), String::as_str);
        let value = error.instance();
        let message = match error.kind() {
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let message = if segments.is_empty() && name == "spec" {
                    self.missing_spec()
                } else {
                    format!("required field `{name}` is missing; add it")
                };
                out.push(deny(&path.field(name), message));
                return;
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    out.push(deny(&path.field(name), unknown_field(name, node, &path)));
                }
                return;
            }
            ValidationErrorKind::Enum { options } => {
                let allowed: Vec<String> = options
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|option| !option.is_null())
                    .map(|option| {
                        option
                            .as_str()
                            .map_or_else(|| option.to_string(), str::to_owned)
                    })
                    .collect();
                format!(
                    "{field} {} is not an allowed value; use one of: {}",
                    shown(value),
                    allowed.join(", ")
                )
            }
            ValidationErrorKind::Type { kind } => wrong_type(field, kind, value),
            kind if is_limit(kind) && owned_by_dedicated_rule(self.kind, &segments) => return,
            ValidationErrorKind::MinLength { limit: 1 } => {
                format!("{field} is empty; give it a value")
            }
            ValidationErrorKind::MinLength { limit } => {
                format!(
                    "{field} {} is shorter than {limit} characters; lengthen it",
                    shown(value)
                )
            }
            ValidationErrorKind::MaxLength { limit } => {
                format!(
                    "{field} {} is longer than {limit} characters; shorten it",
                    shown(value)
                )
            }
            ValidationErrorKind::Pattern { pattern } => {
                let hint = node
                    .and_then(|n| n.get("description"))
                    .and_then(Value::as_str)
                    .map(|d| format!(" ({})", d.trim_end_matches('.')))
                    .unwrap_or_default();
                format!(
                    "{field} {} does not match `{pattern}`{hint}; fix the value",
                    shown(value)
                )
            }
            ValidationErrorKind::Minimum { limit }
            | ValidationErrorKind::ExclusiveMinimum { limit } => {
                format!(
                    "{field} {} is below the minimum {limit}; raise it",
                    shown(value)
                )
            }
            ValidationErrorKind::Maximum { limit }
            | ValidationErrorKind::ExclusiveMaximum { limit } => {
                format!(
                    "{field} {} is above the maximum {limit}; lower it",
                    shown(value)
                )
            }
            ValidationErrorKind::MaxItems { limit }
            | ValidationErrorKind::MaxProperties { limit } => {
                format!("{field} has more than {limit} entries; remove some")
            }
            ValidationErrorKind::MinItems { limit }
            | ValidationErrorKind::MinProperties { limit } => {
                format!("{field} has fewer than {limit} entries; add some")
            }
            other => format!(
                "{field} does not fit the CRD schema (`{}`): {}",
                other.keyword(),
                quote(&error.to_string())
            ),
        };
        out.push(deny(&path, message));
    }

    /// The message for an object without `spec`, naming the fields a spec needs.
    fn missing_spec(&self) -> String {
        let required: Vec<&str> = self
            .schema
            .pointer("/properties/spec/required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        format!(
            "the {} has no spec; add one with at least {}",
            self.kind.as_str(),
            required.join(", ")
        )
    }
}

fn deny(path: &FieldPath, message: String) -> Finding {
    Finding::deny(RuleId::Schema, path, message)
}

/// Declares the fields every Kubernetes object has, which CRD schemas leave implicit; `metadata`
/// stays free-form (the API server checks it).
fn add_implicit_fields(schema: &mut Value) {
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        for (name, field) in [
            ("apiVersion", json!({"type": "string"})),
            ("kind", json!({"type": "string"})),
            ("metadata", json!({"type": "object"})),
        ] {
            properties.entry(name).or_insert(field);
        }
    }
}

/// Turns an OpenAPI v3 (structural) schema into a JSON Schema: `nullable` becomes a `null` type, and
/// every object schema with `properties` refuses other fields unless it preserves unknown fields.
/// Structural CRD schemas nest through `properties`, `items` and `additionalProperties` only.
fn close(node: &mut Value) {
    let Value::Object(schema) = node else {
        return;
    };
    if schema.remove("nullable") == Some(Value::Bool(true)) {
        allow_null(schema);
    }
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        properties.values_mut().for_each(close);
        let preserves =
            schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if !preserves {
            schema
                .entry("additionalProperties")
                .or_insert(Value::Bool(false));
        }
    }
    for key in ["items", "additionalProperties"] {
        match schema.get_mut(key) {
            Some(Value::Array(list)) => list.iter_mut().for_each(close),
            Some(child) => close(child),
            None => {}
        }
    }
}

/// Lets a schema accept `null`, as OpenAPI's `nullable: true` does.
fn allow_null(schema: &mut Map<String, Value>) {
    if let Some(Value::String(single)) = schema.get("type") {
        let types = json!([single, "null"]);
        schema.insert("type".to_owned(), types);
    }
    if let Some(Value::Array(options)) = schema.get_mut("enum")
        && !options.contains(&Value::Null)
    {
        options.push(Value::Null);
    }
}

/// The field path of a JSON pointer's segments, walking the schema alongside: struct fields become
/// `.field`, array indices `[i]` and keys of map-typed fields `[key]`. Also returns the schema of the
/// addressed value, when the schema describes it.
fn locate<'s>(schema: &'s Value, segments: &[String]) -> (FieldPath, Option<&'s Value>) {
    let mut path = FieldPath::default();
    let mut node = Some(schema);
    for segment in segments {
        let current = node;
        let child = |keyword: &str| current.and_then(|n| n.get(keyword));
        let index = segment.parse::<usize>().ok();
        if let Some(field) = child("properties").and_then(|p| p.get(segment)) {
            path = path.field(segment);
            node = Some(field);
        } else if let (Some(items), Some(i)) = (child("items"), index) {
            path = path.index(i);
            node = Some(items);
        } else if let Some(values) = child("additionalProperties").filter(|v| v.is_object()) {
            path = path.key(segment);
            node = Some(values);
        } else {
            path = index.map_or_else(|| path.field(segment), |i| path.index(i));
            node = None;
        }
    }
    (path, node)
}

/// Whether an error kind is a limit (length, range, count, pattern) rather than a shape error.
fn is_limit(kind: &ValidationErrorKind) -> bool {
    matches!(
        kind,
        ValidationErrorKind::Pattern { .. }
            | ValidationErrorKind::MinLength { .. }
            | ValidationErrorKind::MaxLength { .. }
            | ValidationErrorKind::Minimum { .. }
            | ValidationErrorKind::Maximum { .. }
            | ValidationErrorKind::ExclusiveMinimum { .. }
            | ValidationErrorKind::ExclusiveMaximum { .. }
            | ValidationErrorKind::MinItems { .. }
            | ValidationErrorKind::MaxItems { .. }
            | ValidationErrorKind::MinProperties { .. }
            | ValidationErrorKind::MaxProperties { .. }
    )
}

/// Whether a dedicated rule checks the limits of the field at `segments` (and says more precisely
/// what is wrong): role-name, role-path, role-description, max-session-duration, tags,
/// managed-policy, inline-policy-name, provider-ref and provider-config.
fn owned_by_dedicated_rule(kind: Kind, segments: &[String]) -> bool {
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match kind {
        Kind::IAMRole => matches!(
            segments.as_slice(),
            [
                "spec",
                "roleName" | "path" | "description" | "maxSessionDuration"
            ] | ["spec", "tags" | "managedPolicyArns", ..]
                | ["spec", "inlinePolicies", _, "policyName"]
                | ["spec", "inlinePolicy", "policyName"]
                | ["spec", "providerRef", "name"]
        ),
        Kind::AWSProvider => matches!(
            segments.as_slice(),
            ["spec", "region"]
                | [
                    "spec",
                    "accessKeyIDRef" | "secretAccessKeyRef" | "sessionTokenRef",
                    "name" | "key"
                ]
        ),
        Kind::GuardrailPolicy => false,
    }
}

/// The message for an unknown field, suggesting a known one that looks alike.
fn unknown_field(name: &str, object_schema: Option<&Value>, object_path: &FieldPath) -> String {
    let known: Vec<&str> = object_schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|properties| properties.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if let Some(suggestion) = closest(name, &known) {
        return format!(
            "unknown field {}; did you mean `{suggestion}`?",
            quote(name)
        );
    }
    let owner = if object_path.as_str().is_empty() {
        "the object".to_owned()
    } else {
        object_path.to_string()
    };
    format!(
        "unknown field {} in {owner}; remove it (known fields: {})",
        quote(name),
        known.join(", ")
    )
}

/// The known name within two edits of `name` (ignoring case), if any.
fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    if name.chars().count() > MAX_SUGGESTION_INPUT {
        return None;
    }
    let name = name.to_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&name, &k.to_lowercase()), *k))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// Levenshtein distance between two strings, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            let deletion = previous[j + 1] + 1;
            let insertion = current[j] + 1;
            current.push(substitution.min(deletion).min(insertion));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The message for a value of the wrong JSON type.
fn wrong_type(field: &str, expected: &TypeKind, value: &Value) -> String {
    let expected: Vec<&str> = match expected {
        TypeKind::Single(t) => vec![t.as_str()],
        TypeKind::Multiple(set) => set
            .iter()
            .map(|t| t.as_str())
            .filter(|t| *t != "null")
            .collect(),
    };
    let found = json_type(value);
    let hint = match (expected.as_slice(), found) {
        (["string"], "integer" | "number" | "boolean") => "quote the value".to_owned(),
        (["integer" | "number"], "string") => "write the number without quotes".to_owned(),
        _ => format!("write {} here", with_article(&expected.join(" or "))),
    };
    format!(
        "{field} must be {} but is {} {}; {hint}",
        with_article(&expected.join(" or ")),
        with_article(found),
        shown(value)
    )
}

/// The JSON type of a value, as JSON Schema names it.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn with_article(noun: &str) -> String {
    match noun.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {noun}"),
        _ if noun == "null" => noun.to_owned(),
        _ => format!("a {noun}"),
    }
}

/// A value as shown in messages: strings as their text, others as compact JSON.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => quote(text),
        other => quote(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::guardrails::{Config, Engine};

    const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    const PERMISSIONS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;

    fn engine() -> Engine {
        Engine::new(Config::default()).expect("engine builds")
    }

    fn role(spec: Value) -> Value {
        json!({
            "apiVersion": "aws-infra-operator.runner.codes/v1alpha1",
            "kind": "IAMRole",
            "metadata": {"name": "r", "namespace": "default", "labels": {"app": "x"}, "uid": "1"},
            "spec": spec,
        })
    }

    fn role_spec() -> Value {
        json!({
            "providerRef": {"name": "production-aws"},
            "roleName": "lambda-execution-role",
            "assumeRolePolicyDocument": TRUST,
        })
    }

    fn role_with(field: &str, value: Value) -> Value {
        let mut spec = role_spec();
        spec[field] = value;
        role(spec)
    }

    fn provider(spec: Value) -> Value {
        json!({
            "apiVersion": "aws-infra-operator.runner.codes/v1alpha1",
            "kind": "AWSProvider",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": spec,
        })
    }

    /// The rules on objects' own fields (policy documents have their own rules).
    const OBJECT_RULES: [RuleId; 11] = [
        RuleId::Schema,
        RuleId::RoleName,
        RuleId::RolePath,
        RuleId::RoleDescription,
        RuleId::MaxSessionDuration,
        RuleId::Tags,
        RuleId::ManagedPolicy,
        RuleId::PermissionsBoundary,
        RuleId::InlinePolicyName,
        RuleId::ProviderRef,
        RuleId::ProviderConfig,
    ];

    /// The (rule, path) of every finding of the object rules.
    fn found(kind: Kind, object: &Value) -> Vec<(RuleId, String)> {
        engine()
            .check(kind, object, None)
            .into_iter()
            .filter(|f| OBJECT_RULES.contains(&f.rule))
            .map(|f| (f.rule, f.path))
            .collect()
    }

    fn schema_findings(kind: Kind, object: &Value) -> Vec<Finding> {
        engine()
            .check(kind, object, None)
            .into_iter()
            .filter(|f| f.rule == RuleId::Schema)
            .collect()
    }

    fn schema_paths(kind: Kind, object: &Value) -> Vec<String> {
        schema_findings(kind, object)
            .into_iter()
            .map(|f| f.path)
            .collect()
    }

    #[test]
    fn a_valid_role_has_no_schema_findings() {
        let mut spec = role_spec();
        spec["description"] = Value::Null;
        spec["path"] = json!("/");
        spec["tags"] = json!({"Team": "platform", "kubernetes.io/name": "x"});
        spec["deletionPolicy"] = json!("Retain");
        spec["inlinePolicies"] = json!([{"policyName": "p", "policyDocument": PERMISSIONS}]);
        let mut object = role(spec);
        object["status"] = json!({"ready": true, "roleArn": null, "conditions": [{
            "type": "Ready", "status": "True", "reason": "Synced", "message": "",
            "lastTransitionTime": "2025-11-22T10:30:00Z"
        }]});
        assert_eq!(schema_paths(Kind::IAMRole, &object), Vec::<String>::new());
    }

    #[test]
    fn missing_role_name_is_reported_at_the_field() {
        let mut spec = role_spec();
        spec.as_object_mut().map(|s| s.remove("roleName"));
        let all = found(Kind::IAMRole, &role(spec));
        assert_eq!(all, [(RuleId::Schema, "spec.roleName".to_owned())]);
    }

    #[test]
    fn missing_spec_names_the_required_fields() {
        let mut object = role(Value::Null);
        object.as_object_mut().map(|o| o.remove("spec"));
        let findings = schema_findings(Kind::IAMRole, &object);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].path, "spec");
        assert!(
            findings[0].message.contains("roleName"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn unknown_enum_value_lists_the_allowed_ones() {
        let findings = schema_findings(
            Kind::IAMRole,
            &role_with("deletionPolicy", json!("Destroy")),
        );
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].path, "spec.deletionPolicy");
        assert!(findings[0].is_deny());
        let message = &findings[0].message;
        assert!(
            message.contains("`Destroy`") && message.contains("Delete, Retain"),
            "{message}"
        );
        assert!(!message.contains("null"), "{message}");
        assert_eq!(
            schema_paths(Kind::IAMRole, &role_with("deletionPolicy", Value::Null)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn unknown_fields_are_reported_with_a_suggestion() {
        assert_eq!(
            schema_paths(Kind::IAMRole, &role_with("foo", json!(1))),
            ["spec.foo"]
        );
        let mut spec = role_spec();
        let name = spec
            .as_object_mut()
            .and_then(|s| s.remove("roleName"))
            .unwrap_or_default();
        spec["roleNmae"] = name;
        let findings = schema_findings(Kind::IAMRole, &role(spec));
        let paths: Vec<&str> = findings.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths.len(), 2);
        assert!(
            paths.contains(&"spec.roleName") && paths.contains(&"spec.roleNmae"),
            "{paths:?}"
        );
        let typo = findings
            .iter()
            .find(|f| f.path == "spec.roleNmae")
            .map(|f| f.message.as_str());
        assert!(
            typo.is_some_and(|m| m.contains("did you mean `roleName`")),
            "{typo:?}"
        );
        let nested = role_with(
            "inlinePolicies",
            json!([{"policyName": "p", "policyDocument": PERMISSIONS, "extra": 1}]),
        );
        assert_eq!(
            schema_paths(Kind::IAMRole, &nested),
            ["spec.inlinePolicies[0].extra"]
        );
        let mut top = role(role_spec());
        top["spek"] = json!({});
        assert_eq!(schema_paths(Kind::IAMRole, &top), ["spek"]);
    }

    #[test]
    fn metadata_is_free_form_and_status_optional() {
        let mut object = role(role_spec());
        object["metadata"] =
            json!({"name": "r", "annotations": {"a": "b"}, "managedFields": [{"x": 1}]});
        assert_eq!(found(Kind::IAMRole, &object), []);
    }

    #[test]
    fn wrong_types_are_reported_with_what_to_write() {
        let findings = schema_findings(
            Kind::IAMRole,
            &role_with("maxSessionDuration", json!("3600")),
        );
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].path, "spec.maxSessionDuration");
        assert!(
            findings[0].message.contains("without quotes"),
            "{}",
            findings[0].message
        );
        let tags = role_with("tags", json!({"Team": 5, "ok": "yes"}));
        let findings = schema_findings(Kind::IAMRole, &tags);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].path, "spec.tags[Team]");
        assert!(
            findings[0].message.contains("quote the value"),
            "{}",
            findings[0].message
        );
        let slash = role_with("tags", json!({"kubernetes.io/name": true}));
        assert_eq!(
            schema_paths(Kind::IAMRole, &slash),
            ["spec.tags[kubernetes.io/name]"]
        );
        let arns = role_with(
            "managedPolicyArns",
            json!(["arn:aws:iam::aws:policy/ReadOnlyAccess", 7]),
        );
        assert_eq!(
            schema_paths(Kind::IAMRole, &arns),
            ["spec.managedPolicyArns[1]"]
        );
        assert_eq!(
            schema_paths(Kind::IAMRole, &role_with("roleName", Value::Null)),
            ["spec.roleName"]
        );
        assert_eq!(schema_paths(Kind::IAMRole, &role(json!("text"))), ["spec"]);
    }

    #[test]
    fn limits_of_fields_with_a_dedicated_rule_are_left_to_that_rule() {
        let cases = [
            (
                "roleName",
                json!("r".repeat(65)),
                RuleId::RoleName,
                "spec.roleName",
            ),
            ("path", json!("no-slashes"), RuleId::RolePath, "spec.path"),
            (
                "description",
                json!("d".repeat(1001)),
                RuleId::RoleDescription,
                "spec.description",
            ),
            (
                "maxSessionDuration",
                json!(900),
                RuleId::MaxSessionDuration,
                "spec.maxSessionDuration",
            ),
            (
                "providerRef",
                json!({"name": ""}),
                RuleId::ProviderRef,
                "spec.providerRef.name",
            ),
            (
                "inlinePolicy",
                json!({"policyName": "a b", "policyDocument": PERMISSIONS}),
                RuleId::InlinePolicyName,
                "spec.inlinePolicy.policyName",
            ),
        ];
        for (field, value, rule, path) in cases {
            assert_eq!(
                found(Kind::IAMRole, &role_with(field, value)),
                [(rule, path.to_owned())],
                "{field}"
            );
        }
        let many_tags: Map<String, Value> =
            (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            found(Kind::IAMRole, &role_with("tags", Value::Object(many_tags))),
            [(RuleId::Tags, "spec.tags".to_owned())]
        );
        let many_arns: Vec<String> = (0..21)
            .map(|i| format!("arn:aws:iam::123456789012:policy/p{i}"))
            .collect();
        assert_eq!(
            found(
                Kind::IAMRole,
                &role_with("managedPolicyArns", json!(many_arns))
            ),
            [(RuleId::ManagedPolicy, "spec.managedPolicyArns".to_owned())]
        );
        let region = provider(json!({"region": "Mars"}));
        assert_eq!(
            found(Kind::AWSProvider, &region),
            [(RuleId::ProviderConfig, "spec.region".to_owned())]
        );
        let secret = provider(json!({
            "region": "us-east-1",
            "accessKeyIDRef": {"name": "", "key": "id"},
            "secretAccessKeyRef": {"name": "creds", "key": "secret"},
        }));
        assert_eq!(
            found(Kind::AWSProvider, &secret),
            [(
                RuleId::ProviderConfig,
                "spec.accessKeyIDRef.name".to_owned()
            )]
        );
    }

    #[test]
    fn other_limits_are_schema_findings() {
        let empty = role_with("assumeRolePolicyDocument", json!(""));
        assert_eq!(
            schema_paths(Kind::IAMRole, &empty),
            ["spec.assumeRolePolicyDocument"]
        );
        let interval =
            provider(json!({"region": "us-east-1", "driftDetection": {"interval": "10x"}}));
        let findings = schema_findings(Kind::AWSProvider, &interval);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].path, "spec.driftDetection.interval");
        assert!(
            findings[0].message.contains("Go-style duration"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn provider_schema_findings() {
        assert_eq!(
            found(Kind::AWSProvider, &provider(json!({"region": "us-east-1"}))),
            []
        );
        assert_eq!(
            schema_paths(Kind::AWSProvider, &provider(json!({}))),
            ["spec.region"]
        );
        let typo =
            provider(json!({"region": "us-east-1", "roleArn": "arn:aws:iam::123456789012:role/x"}));
        let findings = schema_findings(Kind::AWSProvider, &typo);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].path, "spec.roleArn");
        assert!(
            findings[0].message.contains("did you mean `roleARN`"),
            "{}",
            findings[0].message
        );
        let tags = provider(json!({"region": "us-east-1", "defaultTags": {"env": ["a"]}}));
        assert_eq!(
            schema_paths(Kind::AWSProvider, &tags),
            ["spec.defaultTags[env]"]
        );
    }

    #[test]
    fn a_spec_serde_cannot_read_is_reported_once() {
        let huge = role_with("maxSessionDuration", json!(10_000_000_000_i64));
        let all = found(Kind::IAMRole, &huge);
        assert_eq!(
            all,
            [(RuleId::Schema, "spec.maxSessionDuration".to_owned())]
        );
        let float = role_with("maxSessionDuration", json!(3600.5));
        assert_eq!(
            found(Kind::IAMRole, &float),
            [(RuleId::Schema, "spec.maxSessionDuration".to_owned())]
        );
        let Err(error) = serde_path_to_error::deserialize::<_, u8>(json!(-1)) else {
            panic!("-1 is not a u8");
        };
        let mut out = vec![Finding::deny(
            RuleId::Schema,
            &FieldPath::root("spec").field("x"),
            "m",
        )];
        unreadable_spec(&error, &mut out);
        assert_eq!(out.len(), 1);
        let mut out = vec![Finding::deny(
            RuleId::Tags,
            &FieldPath::root("spec").field("tags"),
            "m",
        )];
        unreadable_spec(&error, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[1].rule, out[1].path.as_str()),
            (RuleId::Schema, "spec")
        );
    }

    #[test]
    fn paths_follow_the_schema_shape() {
        assert_eq!(locate(&json!({}), &[]).0.as_str(), "");
        let role_schema = ObjectSchemas::new().expect("compiles").role.schema;
        let segments = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let at = |s: &[&str]| locate(&role_schema, &segments(s)).0.to_string();
        assert_eq!(at(&["spec", "tags", "123"]), "spec.tags[123]");
        assert_eq!(
            at(&["spec", "inlinePolicies", "2", "policyName"]),
            "spec.inlinePolicies[2].policyName"
        );
        assert_eq!(at(&["spec", "unknown", "0"]), "spec.unknown[0]");
    }

    #[test]
    fn suggestions_need_a_close_name() {
        assert_eq!(edit_distance("roleNmae", "roleName"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("rolename", &["roleName", "path"]), Some("roleName"));
        assert_eq!(closest("foo", &["roleName", "path"]), None);
    }

    /// Every example manifest (the user documentation's examples) passes the object-level rules.
    #[test]
    fn every_example_manifest_passes_the_object_rules() {
        let engine = engine();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/examples");
        let mut checked = [0, 0];
        for entry in std::fs::read_dir(&dir).expect("examples directory") {
            let path = entry.expect("directory entry").path();
            let text = std::fs::read_to_string(&path).expect("example readable");
            for document in serde_norway::Deserializer::from_str(&text) {
                let object = Value::deserialize(document).expect("example is YAML");
                let Some(kind) = Kind::of(&object) else {
                    continue;
                };
                checked[usize::from(kind == Kind::AWSProvider)] += 1;
                let findings: Vec<Finding> = engine
                    .check(kind, &object, None)
                    .into_iter()
                    .filter(|f| OBJECT_RULES.contains(&f.rule))
                    .collect();
                assert!(findings.is_empty(), "{}: {findings:?}", path.display());
            }
        }
        assert!(
            checked[0] >= 10 && checked[1] >= 2,
            "examples checked: {checked:?}"
        );
    }
}
