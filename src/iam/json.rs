//! The `policy-json` rule's parser: exactly one JSON object, read with serde_json into a [`Value`],
//! refusing any object that repeats a key (IAM and other parsers would disagree on which value
//! wins, so a repeated key could slip a grant past the guardrails); and the small readers of JSON
//! values the checks share. Pure.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// Parses `text` as exactly one JSON object without repeated keys; the result is always a
/// [`Value::Object`]. `\u` escapes are decoded, so every later check sees the value IAM would see.
pub fn parse_object(text: &str) -> Result<Value, String> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = StrictValue
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|e| match e.classify() {
            Category::Data => format!("{e}; keep one of them"),
            Category::Eof => format!("the JSON text is empty or cut short ({e})"),
            Category::Syntax | Category::Io => format!(
                "not valid JSON ({e}); a policy document is one JSON object, without comments, trailing commas or single quotes"
            ),
        })?;
    match value {
        Value::Object(_) => Ok(value),
        other => Err(format!(
            "the document is {}, not a JSON object",
            kind_of(&other)
        )),
    }
}

/// Objects with at most this many keys are searched key by key instead of by hash.
const SCANNED_KEYS: usize = 8;

/// The value under the object keys `names` of `value`, in turn: a JSON pointer of plain keys,
/// without parsing and unescaping one (and its allocations) on every lookup.
pub fn at<'v>(value: &'v Value, names: &[&str]) -> Option<&'v Value> {
    names
        .iter()
        .try_fold(value, |value, name| field(value.as_object()?, name))
}

/// The value under key `name` of `object`. The objects the checks read most (a statement, a
/// principal, a document's top level) have a handful of keys: comparing them costs less than
/// hashing `name` with the map's DoS-resistant hasher. An object with more keys is looked up by
/// hash, so an object of thousands of keys costs no more per lookup than before.
pub fn field<'v>(object: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    if object.len() <= SCANNED_KEYS {
        object
            .iter()
            .find_map(|(key, value)| (key == name).then_some(value))
    } else {
        object.get(name)
    }
}

/// A short English name of a JSON value's type, for messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Deserializes any JSON value, failing on a repeated object key.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            // One hash of the key: the entry both tells a repeated key and takes the value.
            match map.entry(key) {
                Entry::Occupied(repeated) => {
                    return Err(A::Error::custom(format_args!(
                        "the key {:?} appears twice in one object; IAM and other readers may each pick a different value",
                        repeated.key()
                    )));
                }
                Entry::Vacant(slot) => {
                    slot.insert(access.next_value_seed(StrictValue)?);
                }
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_follows_plain_keys_and_stops_at_anything_else() {
        let value: Value = serde_json::from_str(
            r#"{"metadata": {"annotations": {"example.com/a~b": "yes"}, "list": [1]}, "n": 3}"#,
        )
        .unwrap();
        assert_eq!(
            at(&value, &["metadata", "annotations", "example.com/a~b"]),
            Some(&Value::from("yes"))
        );
        assert_eq!(at(&value, &[]), Some(&value));
        assert_eq!(at(&value, &["metadata", "missing"]), None);
        // Not an object on the way: a list is not indexed by a key, a number has no keys.
        assert_eq!(at(&value, &["metadata", "list", "0"]), None);
        assert_eq!(at(&value, &["n", "x"]), None);
    }

    #[test]
    fn field_finds_what_get_finds_in_small_and_large_objects() {
        for keys in [0, 1, SCANNED_KEYS, SCANNED_KEYS + 1, 1_000] {
            let object: Map<String, Value> = (0..keys)
                .map(|i| (format!("k{i}"), Value::from(i)))
                .collect();
            for name in ["k0", "k7", "k8", "k999", "missing", "", "K0", "k0 "] {
                assert_eq!(
                    field(&object, name),
                    object.get(name),
                    "{keys} keys, {name:?}"
                );
            }
        }
        // A key repeated in the text is held once, with its last value: both reads agree on it.
        let repeated: Value = serde_json::from_str(r#"{"a": 1, "b": 2, "a": 3}"#).unwrap();
        assert_eq!(at(&repeated, &["a"]), Some(&Value::from(3)));
    }

    #[test]
    fn reads_one_object_and_decodes_escapes() {
        let map =
            parse_object(r#" {"Action": "iam:\u002A", "n": [1, -2, 0.5, true, null]} "#).unwrap();
        assert_eq!(map["Action"], "iam:*");
        assert_eq!(map["n"], serde_json::json!([1, -2, 0.5, true, null]));
    }

    #[test]
    fn refuses_repeated_keys_at_any_depth_even_when_spelt_differently() {
        let err = parse_object(r#"{"Action":"s3:GetObject","Action":"*"}"#).unwrap_err();
        assert!(err.contains("\"Action\" appears twice"), "{err}");
        let nested = r#"{"Statement":[{"Effect":"Allow","Cond":{"a":1,"\u0061":2}}]}"#;
        assert!(
            parse_object(nested)
                .unwrap_err()
                .contains("\"a\" appears twice")
        );
    }

    #[test]
    fn refuses_everything_that_is_not_exactly_one_object() {
        for text in [
            "",
            "   ",
            "{\"a\": 1,}",
            "{\"a\": 1 // comment\n}",
            "{'a': 1}",
            "{\"a\": 1",
            "{\"a\": 1} {}",
            "{\"a\": 1} x",
            "[]",
            "42",
            "\"text\"",
            "null",
        ] {
            assert!(parse_object(text).is_err(), "{text:?} was accepted");
        }
        assert_eq!(
            parse_object("[1]").unwrap_err(),
            "the document is a list, not a JSON object"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_object(&deep).is_err());
    }
}
