//! Semantic comparison of IAM policy documents, so that a policy IAM returns reformatted is not
//! mistaken for a changed one. Pure, no I/O.
//!
//! Both documents are parsed and brought to a canonical form in which:
//! - whitespace and the order of object keys do not matter;
//! - every array is a set (order and repetitions do not matter) and a one-element array is the same
//!   as its element (`"s3:GetObject"` ≡ `["s3:GetObject"]`), as everywhere in the IAM policy grammar;
//! - numbers and booleans equal their text (`10` ≡ `"10"`), as IAM evaluates them;
//! - action names (`Action`, `NotAction`) compare ignoring case, as IAM matches them;
//! - an `AWS` principal naming an account root (`arn:aws:iam::123456789012:root`) equals the bare
//!   account ID, which IAM rewrites into that form.
//!
//! Element names and every other value compare as written. Documents are read with the same strict
//! parser as the guardrails ([`super::json::parse_object`]); a document it refuses on either side
//! compares as raw text.

use std::collections::BTreeMap;

use serde_json::Value;

use super::arn;
use super::json::parse_object;

/// Whether two policy documents mean the same to IAM (see the module documentation).
pub fn policies_equal(a: &str, b: &str) -> bool {
    match (parse_object(a), parse_object(b)) {
        (Ok(a), Ok(b)) => document(&a) == document(&b),
        _ => a == b,
    }
}

/// A policy value in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Canonical {
    /// JSON `null`.
    Null,
    /// A string, number or boolean, as text.
    Text(String),
    /// An array: sorted, without repetitions, never of exactly one element.
    Set(Vec<Canonical>),
    /// An object.
    Map(BTreeMap<String, Canonical>),
}

/// How the strings of a value are read.
#[derive(Clone, Copy)]
enum Strings {
    /// As written.
    AsWritten,
    /// Action names: ignoring case.
    Actions,
    /// `AWS` principals: an account root ARN is its account ID.
    AwsPrincipals,
}

/// The canonical form of a whole document: statements are read as statements.
fn document(value: &Value) -> Canonical {
    let Value::Object(map) = value else {
        return canonical(value, Strings::AsWritten);
    };
    let entries = map.iter().map(|(key, value)| {
        let canonical = if key == "Statement" {
            set(match value {
                Value::Array(items) => items.iter().map(statement).collect(),
                single => vec![statement(single)],
            })
        } else {
            canonical(value, Strings::AsWritten)
        };
        (key.clone(), canonical)
    });
    Canonical::Map(entries.collect())
}

/// The canonical form of one statement.
fn statement(value: &Value) -> Canonical {
    let Value::Object(map) = value else {
        return canonical(value, Strings::AsWritten);
    };
    let entries = map.iter().map(|(key, value)| {
        let canonical = match key.as_str() {
            "Action" | "NotAction" => canonical(value, Strings::Actions),
            "Principal" | "NotPrincipal" => principal(value),
            _ => canonical(value, Strings::AsWritten),
        };
        (key.clone(), canonical)
    });
    Canonical::Map(entries.collect())
}

/// The canonical form of a `Principal` element.
fn principal(value: &Value) -> Canonical {
    let Value::Object(map) = value else {
        return canonical(value, Strings::AsWritten);
    };
    let entries = map.iter().map(|(kind, value)| {
        let strings = if kind == "AWS" {
            Strings::AwsPrincipals
        } else {
            Strings::AsWritten
        };
        (kind.clone(), canonical(value, strings))
    });
    Canonical::Map(entries.collect())
}

/// The canonical form of any value, its strings read as `strings` says.
fn canonical(value: &Value, strings: Strings) -> Canonical {
    match value {
        Value::Null => Canonical::Null,
        Value::Bool(b) => Canonical::Text(b.to_string()),
        Value::Number(n) => Canonical::Text(n.to_string()),
        Value::String(s) => Canonical::Text(match strings {
            Strings::AsWritten => s.clone(),
            Strings::Actions => s.to_ascii_lowercase(),
            Strings::AwsPrincipals => account_of_root(s).unwrap_or(s).to_owned(),
        }),
        Value::Array(items) => set(items.iter().map(|v| canonical(v, strings)).collect()),
        Value::Object(map) => Canonical::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), canonical(v, Strings::AsWritten)))
                .collect(),
        ),
    }
}

/// Items as a set; a single item stands for itself.
fn set(mut items: Vec<Canonical>) -> Canonical {
    items.sort();
    items.dedup();
    if items.len() == 1 {
        items.swap_remove(0)
    } else {
        Canonical::Set(items)
    }
}

/// The account ID of an account root ARN (`arn:<partition>:iam::<12 digits>:root`).
fn account_of_root(text: &str) -> Option<&str> {
    let parsed = arn::parse(text).ok()?;
    let is_root = parsed.service == "iam"
        && parsed.region.is_empty()
        && parsed.resource == "root"
        && parsed.account.len() == 12
        && parsed.account.bytes().all(|b| b.is_ascii_digit());
    is_root.then_some(parsed.account)
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;

    /// `text` as IAM might hand it back: object keys reversed, arrays rotated by `seed` (and reversed
    /// on odd seeds), one-element arrays unwrapped and lone strings wrapped where the grammar allows
    /// arrays, serialized compactly. Text that is not JSON comes back unchanged.
    pub(crate) fn reformat(text: &str, seed: u64) -> String {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => reformat_value(&value, seed, false).to_string(),
            Err(_) => text.to_owned(),
        }
    }

    fn reformat_value(value: &Value, seed: u64, array_allowed: bool) -> Value {
        match value {
            Value::Array(items) => {
                let mut items: Vec<Value> = items
                    .iter()
                    .map(|v| reformat_value(v, seed / 3, false))
                    .collect();
                if !items.is_empty() {
                    let len = items.len();
                    items.rotate_left(usize::try_from(seed).unwrap_or(0) % len);
                }
                if seed % 2 == 1 {
                    items.reverse();
                }
                match items.as_slice() {
                    [single] if seed % 4 < 2 => single.clone(),
                    _ => Value::Array(items),
                }
            }
            Value::String(_) if array_allowed && seed % 4 >= 2 => Value::Array(vec![value.clone()]),
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, item) in map.iter().rev() {
                    let arrays = matches!(
                        key.as_str(),
                        "Action" | "NotAction" | "Resource" | "NotResource" | "AWS" | "Service"
                    ) || item.is_string()
                        && !matches!(
                            key.as_str(),
                            "Version" | "Id" | "Effect" | "Sid" | "Principal" | "NotPrincipal"
                        );
                    out.insert(key.clone(), reformat_value(item, seed / 5 + 7, arrays));
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    fn action() -> impl Strategy<Value = String> {
        ("[a-z0-9]{1,8}", "[A-Za-z*]{1,10}").prop_map(|(service, name)| format!("{service}:{name}"))
    }

    fn statement() -> impl Strategy<Value = Value> {
        (
            prop::bool::ANY,
            prop::collection::btree_set(action(), 1..5),
            prop::collection::btree_set("arn:aws:s3:::[a-z*/]{1,12}", 1..4),
            prop::option::of("[a-z]{1,8}"),
        )
            .prop_map(|(allow, actions, resources, condition)| {
                let mut statement = json!({
                    "Effect": if allow { "Allow" } else { "Deny" },
                    "Action": actions.into_iter().collect::<Vec<_>>(),
                    "Resource": resources.into_iter().collect::<Vec<_>>(),
                });
                if let (Some(value), Some(map)) = (condition, statement.as_object_mut()) {
                    map.insert(
                        "Condition".to_owned(),
                        json!({"StringEquals": {"aws:PrincipalTag/team": [value]}}),
                    );
                }
                statement
            })
    }

    fn document_strategy() -> impl Strategy<Value = Value> {
        prop::collection::vec(statement(), 1..4)
            .prop_map(|statements| json!({"Version": "2012-10-17", "Statement": statements}))
    }

    fn pretty(value: &Value) -> String {
        serde_json::to_string_pretty(value).unwrap_or_default()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn a_document_equals_itself_reformatted(document in document_strategy(), seed in any::<u64>()) {
            let text = pretty(&document);
            let reformatted = reformat(&text, seed);
            prop_assert!(policies_equal(&text, &reformatted), "{text}\nvs\n{reformatted}");
            prop_assert!(policies_equal(&reformatted, &text));
        }

        #[test]
        fn adding_an_action_makes_a_different_document(
            document in document_strategy(),
            extra in "[a-z]{1,8}:Extra[0-9]{1,3}",
            seed in any::<u64>(),
        ) {
            let text = pretty(&document);
            let mut changed = document.clone();
            if let Some(actions) = changed
                .pointer_mut("/Statement/0/Action")
                .and_then(Value::as_array_mut)
            {
                actions.push(Value::from(extra));
            }
            prop_assert!(!policies_equal(&text, &reformat(&changed.to_string(), seed)));
        }

        #[test]
        fn any_text_compares_without_panicking(a in "\\PC{0,40}", b in "\\PC{0,40}") {
            prop_assert_eq!(policies_equal(&a, &a), true);
            prop_assert_eq!(policies_equal(&a, &b), policies_equal(&b, &a));
        }
    }

    #[test]
    fn whitespace_key_order_and_statement_order_do_not_matter() {
        let a = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:GetObject","Resource":"*"},
            {"Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"}]}"#;
        let b = r#"{ "Statement" : [ { "Resource":"*","Action":["s3:DeleteObject"],"Effect":"Deny" },
            {"Effect":"Allow","Resource":["*"],"Action":"s3:GetObject"} ], "Version":"2012-10-17" }"#;
        assert!(policies_equal(a, b));
    }

    #[test]
    fn a_single_statement_object_equals_a_one_statement_array() {
        let a = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#;
        let b = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        assert!(policies_equal(a, b));
    }

    #[test]
    fn actions_compare_ignoring_case_but_resources_do_not() {
        let with = |action: &str, resource: &str| {
            json!({"Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]})
                .to_string()
        };
        assert!(policies_equal(
            &with("S3:GetObject", "arn:aws:s3:::b/k"),
            &with("s3:getobject", "arn:aws:s3:::b/k")
        ));
        assert!(!policies_equal(
            &with("s3:GetObject", "arn:aws:s3:::b/K"),
            &with("s3:GetObject", "arn:aws:s3:::b/k")
        ));
        assert!(!policies_equal(
            &with("s3:GetObject", "*"),
            &with("s3:PutObject", "*")
        ));
    }

    #[test]
    fn element_names_and_other_values_compare_as_written() {
        let a = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        assert!(!policies_equal(
            a,
            r#"{"Statement":[{"effect":"Allow","Action":"s3:*","Resource":"*"}]}"#
        ));
        assert!(!policies_equal(
            a,
            r#"{"Statement":[{"Effect":"allow","Action":"s3:*","Resource":"*"}]}"#
        ));
        assert!(!policies_equal(
            a,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#
        ));
    }

    #[test]
    fn condition_values_are_sets_and_scalars_equal_their_text() {
        let a = r#"{"Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*",
            "Condition":{"NumericLessThanEquals":{"s3:max-keys":10},"Bool":{"aws:SecureTransport":true},
            "StringEquals":{"aws:PrincipalTag/team":["b","a"]}}}]}"#;
        let b = r#"{"Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*",
            "Condition":{"StringEquals":{"aws:PrincipalTag/team":["a","b","a"]},
            "Bool":{"aws:SecureTransport":"true"},"NumericLessThanEquals":{"s3:max-keys":["10"]}}}]}"#;
        assert!(policies_equal(a, b));
        let c = b.replace(r#"["a","b","a"]"#, r#"["a","c"]"#);
        assert!(!policies_equal(a, &c));
    }

    #[test]
    fn an_account_id_principal_equals_its_root_arn() {
        let with = |aws: Value| {
            json!({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": aws}}]})
            .to_string()
        };
        assert!(policies_equal(
            &with(json!("111111111111")),
            &with(json!(["arn:aws:iam::111111111111:root"]))
        ));
        assert!(!policies_equal(
            &with(json!("111111111111")),
            &with(json!("arn:aws:iam::111111111111:role/x"))
        ));
        assert!(!policies_equal(
            &with(json!("111111111111")),
            &with(json!("arn:aws:iam::222222222222:root"))
        ));
        assert_eq!(account_of_root("arn:aws:iam::11111111111:root"), None);
        assert_eq!(account_of_root("arn:aws:iam::111111111111:root:x"), None);
        assert_eq!(account_of_root("arn:aws:sts::111111111111:root"), None);
    }

    #[test]
    fn service_principal_values_are_sets() {
        let a = r#"{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole",
            "Principal":{"Service":["lambda.amazonaws.com","ec2.amazonaws.com"]}}]}"#;
        let b = r#"{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole",
            "Principal":{"Service":["ec2.amazonaws.com","lambda.amazonaws.com"]}}]}"#;
        assert!(policies_equal(a, b));
        let c = r#"{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole",
            "Principal":{"Service":"ec2.amazonaws.com"}}]}"#;
        assert!(!policies_equal(a, c));
    }

    #[test]
    fn unparseable_documents_compare_as_raw_text() {
        let good = r#"{"Statement":[]}"#;
        assert!(policies_equal("{not json", "{not json"));
        assert!(!policies_equal("{not json", "{not  json"));
        assert!(!policies_equal("{not json", good));
        assert!(!policies_equal(good, "{not json"));
    }
}
