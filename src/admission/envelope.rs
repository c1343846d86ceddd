//! The AdmissionReview request, read in one pass over the body and keeping only what a decision
//! reads: the envelope's type, the request's uid, kind, sub-resource, operation, namespace and name
//! (borrowed from the body where the JSON has no escapes), and the object and stored object as JSON
//! without `metadata.managedFields` and the `kubectl.kubernetes.io/last-applied-configuration`
//! annotation, which the API server and kubectl add to every object and no guardrail reads. Those
//! two are skipped while parsing (validated as JSON, never built), and the rest of the request
//! (`userInfo`, `options`, `resource`, …) is skipped the same way. Pure.

use std::borrow::Cow;
use std::fmt;

use kube::core::admission::Operation;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Number, Value};

/// The annotation kubectl writes on `apply`: the whole last applied manifest, again.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An `admission.k8s.io` AdmissionReview as sent by the API server.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'b> {
    /// `admission.k8s.io/v1` (or `v1beta1`).
    #[serde(borrow, default)]
    pub api_version: Cow<'b, str>,
    /// `AdmissionReview`.
    #[serde(borrow, default)]
    pub kind: Cow<'b, str>,
    /// The request; absent or null in a body that is not a request.
    #[serde(borrow, default)]
    pub request: Option<Request<'b>>,
}

/// The part of `request` a decision reads. `resource` and `userInfo` must be present, as the API
/// server always sends them, but are not read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'b> {
    /// Echoed in the response.
    pub uid: String,
    /// The kind of the object.
    #[serde(borrow)]
    pub kind: GroupVersionKind<'b>,
    /// The sub-resource (`status`, …), if any.
    #[serde(borrow, default)]
    pub sub_resource: Option<Cow<'b, str>>,
    /// What is being done.
    pub operation: Operation,
    /// The namespace of the request, if namespaced.
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'b, str>>,
    /// The object's name (empty when the API server generates it).
    #[serde(borrow, default)]
    pub name: Cow<'b, str>,
    /// The object as sent, on CREATE and UPDATE, lean; `None` when absent or null.
    #[serde(default, deserialize_with = "lean_object")]
    pub object: Option<Value>,
    /// The stored object, on UPDATE and DELETE, lean; `None` when absent or null.
    #[serde(default, deserialize_with = "lean_object")]
    pub old_object: Option<Value>,
    /// Required, not read.
    #[serde(rename = "resource")]
    _resource: IgnoredAny,
    /// Required, not read.
    #[serde(rename = "userInfo")]
    _user_info: IgnoredAny,
}

/// `group`, `version` and `kind` of a request.
#[derive(Debug, Deserialize)]
pub struct GroupVersionKind<'b> {
    /// The API group (empty for the core group).
    #[serde(borrow)]
    pub group: Cow<'b, str>,
    /// The version.
    #[serde(borrow)]
    pub version: Cow<'b, str>,
    /// The kind.
    #[serde(borrow)]
    pub kind: Cow<'b, str>,
}

/// An object under review, as JSON, without its managed fields and last-applied annotation. Any
/// JSON value is accepted (the guardrails judge its shape); only an object's `metadata` is lean.
struct ReviewedObject(Value);

impl<'de> Deserialize<'de> for ReviewedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(LeanValue(Level::Object))
            .map(ReviewedObject)
    }
}

/// A reviewed object, or `None` for JSON `null`.
fn lean_object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Option::<ReviewedObject>::deserialize(deserializer).map(|object| object.map(|o| o.0))
}

/// Where in the object a value is: which keys of it are left out.
#[derive(Clone, Copy)]
enum Level {
    /// The object itself: its `metadata` is lean.
    Object,
    /// `metadata`: `managedFields` is left out, `annotations` is lean.
    Metadata,
    /// `metadata.annotations`: the last-applied annotation is left out.
    Annotations,
    /// Anything else: kept whole.
    Whole,
}

impl Level {
    /// The level of the value under `key`, or `None` when that value is left out.
    fn of(self, key: &str) -> Option<Level> {
        match (self, key) {
            (Level::Object, "metadata") => Some(Level::Metadata),
            (Level::Metadata, "managedFields") => None,
            (Level::Metadata, "annotations") => Some(Level::Annotations),
            (Level::Annotations, LAST_APPLIED_ANNOTATION) => None,
            _ => Some(Level::Whole),
        }
    }
}

/// Builds a [`Value`] like `Value`'s own deserializer, leaving out what [`Level`] says.
#[derive(Clone, Copy)]
struct LeanValue(Level);

impl<'de> DeserializeSeed<'de> for LeanValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.0 {
            Level::Whole => Value::deserialize(deserializer),
            _ => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for LeanValue {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match self.0.of(&key) {
                Some(level) => {
                    let value = map.next_value_seed(LeanValue(level))?;
                    object.insert(key, value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                    // A key seen twice keeps its last value, as in `Value`: a dropped one is gone.
                    object.shift_remove(&key);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// Parses `body` as an AdmissionReview envelope. A body that is UTF-8 throughout (as the API server
/// sends it) is checked as such once, in one fast pass, and parsed as text, so that no string in it
/// is checked again; any other body is parsed as bytes, which tells where it goes wrong.
pub fn parse(body: &[u8]) -> Result<Envelope<'_>, serde_json::Error> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}

/// Whether a parse error means the body is not JSON at all (rather than JSON of another shape).
pub fn not_json(error: &serde_json::Error) -> bool {
    !matches!(error.classify(), serde_json::error::Category::Data)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lean(object: Value) -> Value {
        serde_json::from_value::<ReviewedObject>(object).unwrap().0
    }

    #[test]
    fn managed_fields_and_last_applied_are_left_out_and_the_rest_kept() {
        let object = json!({
            "apiVersion": "aws-infra-operator.runner.codes/v1alpha1",
            "kind": "IAMRole",
            "metadata": {
                "name": "r",
                "namespace": "team-a",
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                "annotations": {
                    LAST_APPLIED_ANNOTATION: "{\"spec\":{}}",
                    "aws-infra-operator.runner.codes/adopt": "true"
                },
                "labels": {"app": "x"}
            },
            "spec": {"roleName": "r", "managedFields": [1], "metadata": {"managedFields": 2}},
            "status": {"annotations": {LAST_APPLIED_ANNOTATION: "kept"}}
        });
        let mut expected = object.clone();
        let metadata = expected["metadata"].as_object_mut().unwrap();
        metadata.remove("managedFields");
        metadata["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(LAST_APPLIED_ANNOTATION);
        assert_eq!(lean(object), expected);
    }

    #[test]
    fn any_shape_is_kept_for_the_guardrails_to_judge() {
        for odd in [
            json!(null),
            json!("text"),
            json!(-3),
            json!(2.5),
            json!(u64::MAX),
            json!([1, {"metadata": {"managedFields": 1}}]),
            json!({"metadata": "text"}),
            json!({"metadata": {"annotations": [1, 2]}}),
            json!({"metadata": {"annotations": null}}),
        ] {
            assert_eq!(lean(odd.clone()), odd);
        }
    }

    #[test]
    fn a_dropped_key_seen_twice_is_dropped() {
        let body = br#"{"metadata": {"managedFields": 1, "name": "a", "managedFields": 2}}"#;
        let object: ReviewedObject = serde_json::from_slice(body).unwrap();
        assert_eq!(object.0, json!({"metadata": {"name": "a"}}));
        let body = br#"{"metadata": {"name": "a", "name": "b"}}"#;
        let object: ReviewedObject = serde_json::from_slice(body).unwrap();
        assert_eq!(object.0, json!({"metadata": {"name": "b"}}));
    }

    #[test]
    fn the_envelope_borrows_and_skips_what_is_not_read() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"u-1","kind":{"group":"g","version":"v1","kind":"K"},
            "resource":{"group":"g","version":"v1","resource":"ks"},"subResource":"status",
            "name":"n","namespace":"ns","operation":"UPDATE","userInfo":{"username":"alice","extra":{"a":["b"]}},
            "options":{"kind":"UpdateOptions"},"dryRun":true,"object":{"a":1},"oldObject":null}}"#;
        let envelope = parse(body).unwrap();
        assert!(matches!(envelope.api_version, Cow::Borrowed(_)));
        let request = envelope.request.unwrap();
        assert_eq!(request.uid, "u-1");
        assert_eq!(request.kind.kind, "K");
        assert_eq!(request.sub_resource.as_deref(), Some("status"));
        assert_eq!(request.operation, Operation::Update);
        assert_eq!(request.namespace.as_deref(), Some("ns"));
        assert_eq!(request.name, "n");
        assert_eq!(request.object, Some(json!({"a": 1})));
        assert!(request.old_object.is_none());
    }

    fn review_with(object: &str) -> Vec<u8> {
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u",
            "kind":{{"group":"g","version":"v1","kind":"K"}},"resource":{{}},"operation":"CREATE",
            "userInfo":{{}},"object":{object}}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn hostile_nesting_is_bounded_wherever_it_hides() {
        let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        // Under a skipped key, serde_json skips without recursing: dropped, at no depth cost.
        for object in [
            format!(r#"{{"metadata":{{"managedFields":{}}}}}"#, deep(100_000)),
            format!(
                r#"{{"metadata":{{"annotations":{{"{LAST_APPLIED_ANNOTATION}":{}}}}}}}"#,
                deep(100_000)
            ),
        ] {
            let body = review_with(&object);
            let request = parse(&body).unwrap().request.unwrap();
            let metadata = &request.object.unwrap()["metadata"];
            assert!(metadata.get("managedFields").is_none(), "{metadata}");
        }
        // Under a kept key, built as `Value`: refused at serde_json's depth limit, no overflow.
        for object in [
            format!(r#"{{"spec":{}}}"#, deep(100_000)),
            format!(r#"{{"metadata":{{"labels":{}}}}}"#, deep(100_000)),
        ] {
            let error = parse(&review_with(&object)).unwrap_err();
            assert!(error.to_string().contains("recursion limit"), "{error}");
        }
    }

    #[test]
    fn a_body_that_is_not_utf8_is_parsed_as_bytes() {
        let with_byte = |object: &str, byte: u8| {
            let mut body = review_with(object);
            let at = body.iter().position(|&b| b == b'~').unwrap();
            body[at] = byte;
            body
        };
        // In a string that is read: refused where the byte is, as before.
        let body = with_byte(r#"{"spec":{"roleName":"r~"}}"#, 0xff);
        let error = parse(&body).unwrap_err();
        assert!(error.to_string().contains("invalid unicode"), "{error}");
        assert!(not_json(&error));
        // In what is skipped: the rest is read, as before.
        let body = with_byte(r#"{"metadata":{"managedFields":["~"],"name":"n"}}"#, 0xff);
        let object = parse(&body).unwrap().request.unwrap().object.unwrap();
        assert_eq!(object, json!({"metadata": {"name": "n"}}));
        // The same bodies in UTF-8 take the text path to the same result.
        let body = with_byte(r#"{"metadata":{"managedFields":["~"],"name":"n"}}"#, b'x');
        assert!(std::str::from_utf8(&body).is_ok());
        let object = parse(&body).unwrap().request.unwrap().object.unwrap();
        assert_eq!(object, json!({"metadata": {"name": "n"}}));
    }

    #[test]
    fn a_huge_last_applied_annotation_is_skipped_not_kept() {
        let annotation = "x".repeat(2 << 20);
        let object = format!(
            r#"{{"metadata":{{"annotations":{{"{LAST_APPLIED_ANNOTATION}":"{annotation}","keep":"me"}}}}}}"#
        );
        let body = review_with(&object);
        let request = parse(&body).unwrap().request.unwrap();
        assert_eq!(
            request.object,
            Some(json!({"metadata": {"annotations": {"keep": "me"}}}))
        );
    }

    #[test]
    fn bodies_that_are_not_json_are_told_from_other_shapes() {
        assert!(not_json(&parse(b"{nope").unwrap_err()));
        assert!(not_json(&parse(b"{}  trailing").unwrap_err()));
        assert!(!not_json(&parse(b"7").unwrap_err()));
        let missing_user = br#"{"request":{"uid":"u","kind":{"group":"","version":"v1","kind":"K"},"resource":{},"operation":"CREATE"}}"#;
        assert!(!not_json(&parse(missing_user).unwrap_err()));
    }
}
