//! A read-only view of a parsed policy document: its statements and their elements, borrowed from
//! the JSON value, with the field path of each. Lenient: whatever does not fit the grammar is simply
//! absent here (the grammar check reports it), and so is what lies past the engine's bounds: a
//! document's statements after the first [`MAX_STATEMENTS`], and every string longer than its
//! element's cap (the `policy-size` check in [`super::limits`] reports both). So no rule ever matches
//! more than a bounded amount of text. Pure, allocation-free until a path is built.

use serde_json::{Map, Value};

use super::super::FieldPath;
use super::super::config::{IAM_MAX_ARN_LENGTH, IAM_MAX_INLINE_POLICIES_SIZE, MAX_ACTION_LENGTH};
use super::glob::Coverage;
use crate::iam::json;

/// The shortest statement IAM accepts, with the comma separating it from the next.
const SHORTEST_STATEMENT: &str = r#"{"Effect":"Deny","Action":"*","Resource":"*"},"#;

/// The most statements a document within IAM's size limits can hold; later ones are not examined.
pub const MAX_STATEMENTS: usize = IAM_MAX_INLINE_POLICIES_SIZE / SHORTEST_STATEMENT.len();

/// One statement of a document.
pub struct Statement<'a> {
    /// Position in the `Statement` list, `None` when `Statement` is a single object.
    index: Option<usize>,
    fields: &'a Map<String, Value>,
}

/// The statements of a document that are objects, in order.
pub fn statements(document: &Map<String, Value>) -> impl Iterator<Item = Statement<'_>> {
    let (single, list) = match json::field(document, "Statement") {
        Some(Value::Object(fields)) => (
            Some(Statement {
                index: None,
                fields,
            }),
            None,
        ),
        Some(Value::Array(items)) => (None, Some(items)),
        _ => (None, None),
    };
    let listed = list
        .into_iter()
        .flatten()
        .take(MAX_STATEMENTS)
        .enumerate()
        .filter_map(|(i, item)| {
            item.as_object().map(|fields| Statement {
                index: Some(i),
                fields,
            })
        });
    single.into_iter().chain(listed)
}

impl<'a> Statement<'a> {
    /// The statement's path under the document's path: `…Statement` or `…Statement[i]`.
    pub fn path(&self, document: &FieldPath) -> FieldPath {
        let path = document.field("Statement");
        match self.index {
            Some(i) => path.index(i),
            None => path,
        }
    }

    /// Whether `Effect` is exactly `Allow`.
    pub fn is_allow(&self) -> bool {
        json::field(self.fields, "Effect").and_then(Value::as_str) == Some("Allow")
    }

    /// Whether the statement has the element `name`, whatever its value.
    pub fn has(&self, name: &str) -> bool {
        json::field(self.fields, name).is_some()
    }

    /// The raw value of element `name`.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        json::field(self.fields, name)
    }

    /// The string values of a string-or-list element such as `Action` or `Resource`.
    pub fn values(&self, name: &'static str) -> Option<Values<'a>> {
        Values::of(name, json::field(self.fields, name)?)
    }

    /// What the statement's `Action` or `NotAction` names.
    pub fn actions(&self) -> Option<Listing<'a>> {
        self.listing("Action", "NotAction")
    }

    /// What the statement's `Resource` or `NotResource` names.
    pub fn resources(&self) -> Option<Listing<'a>> {
        self.listing("Resource", "NotResource")
    }

    fn listing(&self, only: &'static str, all_but: &'static str) -> Option<Listing<'a>> {
        match self.values(only) {
            Some(values) => Some(Listing::Only(values)),
            None => self.values(all_but).map(Listing::AllBut),
        }
    }

    /// The `Condition` block, when it is an object.
    pub fn condition(&self) -> Option<&'a Map<String, Value>> {
        json::field(self.fields, "Condition").and_then(Value::as_object)
    }
}

/// An element and its negation: `Action` or `NotAction`, `Resource` or `NotResource`.
#[derive(Clone, Copy)]
pub enum Listing<'a> {
    /// `Action`/`Resource`: what the values match.
    Only(Values<'a>),
    /// `NotAction`/`NotResource`: everything the values do not match.
    AllBut(Values<'a>),
}

impl<'a> Listing<'a> {
    /// Whether the element takes in `name` (an action name or an ARN, without wildcards).
    pub fn includes(&self, name: &str, coverage: &mut Coverage) -> bool {
        match self {
            Listing::Only(values) => values.iter().any(|(_, v)| coverage.matches(v, name)),
            Listing::AllBut(values) => !values.iter().any(|(_, v)| coverage.matches(v, name)),
        }
    }
}

/// The values of a string-or-list element: `"s3:GetObject"` or `["s3:GetObject", …]`.
#[derive(Clone, Copy)]
pub struct Values<'a> {
    name: &'a str,
    value: &'a Value,
    max_length: usize,
}

impl<'a> Values<'a> {
    /// The values of element `name` holding `value`, when it is a string or a list.
    pub fn of(name: &'a str, value: &'a Value) -> Option<Self> {
        let max_length = match name {
            "Action" | "NotAction" => MAX_ACTION_LENGTH,
            _ => IAM_MAX_ARN_LENGTH,
        };
        matches!(value, Value::String(_) | Value::Array(_)).then_some(Values {
            name,
            value,
            max_length,
        })
    }

    /// Each string value with its position in the list (`None` for a single string); non-strings
    /// and strings longer than the element's cap are skipped.
    pub fn iter(&self) -> impl Iterator<Item = (Option<usize>, &'a str)> + 'a {
        let max_length = self.max_length;
        self.all()
            .filter(move |(_, s)| length_within(s, max_length))
    }

    /// Each string value longer than the element's cap, with its position and length in characters.
    pub fn oversized(&self) -> impl Iterator<Item = (Option<usize>, usize)> + 'a {
        let max_length = self.max_length;
        self.all()
            .filter(move |(_, s)| !length_within(s, max_length))
            .map(|(i, s)| (i, s.chars().count()))
    }

    /// The longest value the element may hold, in characters.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    fn all(&self) -> impl Iterator<Item = (Option<usize>, &'a str)> + 'a {
        let (single, list) = match self.value {
            Value::String(s) => (Some((None, s.as_str())), None),
            Value::Array(items) => (None, Some(items)),
            _ => (None, None),
        };
        let listed = list
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, item)| item.as_str().map(|s| (Some(i), s)));
        single.into_iter().chain(listed)
    }

    /// The path of the whole element under `parent`: `…Action`.
    pub fn path(&self, parent: &FieldPath) -> FieldPath {
        parent.field(self.name)
    }

    /// The path of one value: `…Action` for a single string, `…Action[j]` in a list.
    pub fn item_path(&self, parent: &FieldPath, index: Option<usize>) -> FieldPath {
        let path = parent.field(self.name);
        match index {
            Some(j) => path.index(j),
            None => path,
        }
    }
}

/// Whether `text` has at most `max` characters (bytes are counted first: they are never fewer).
pub fn length_within(text: &str, max: usize) -> bool {
    text.len() <= max || text.chars().count() <= max
}

/// The number of statements of a document, examined or not.
pub fn statement_count(document: &Map<String, Value>) -> usize {
    match json::field(document, "Statement") {
        Some(Value::Array(items)) => items.len(),
        Some(_) => 1,
        None => 0,
    }
}

/// A principal element (`Principal` or `NotPrincipal`).
pub enum Principal<'a> {
    /// A bare string, meaningful only as `"*"`.
    Text(&'a str),
    /// `{"AWS": …, "Service": …}`: each principal type with its values.
    Typed(&'a Map<String, Value>),
}

impl<'a> Principal<'a> {
    /// The principal element `name` of a statement, when it is a string or an object.
    pub fn of(statement: &Statement<'a>, name: &str) -> Option<Self> {
        match statement.get(name)? {
            Value::String(s) => Some(Principal::Text(s)),
            Value::Object(map) => Some(Principal::Typed(map)),
            _ => None,
        }
    }

    /// The values of principal type `kind` (`AWS`, `Federated`, ...).
    pub fn values(&self, kind: &'static str) -> Option<Values<'a>> {
        match self {
            Principal::Typed(map) => Values::of(kind, json::field(map, kind)?),
            Principal::Text(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::super::super::{Config, FieldPath, RuleId};
    use super::super::{PolicyChecker, TrustedBy};
    use super::*;

    /// Real action names of iam, sts, s3, ec2 and lambda.
    const ACTION_NAMES: &str = include_str!("../../../tests/data/iam-actions.txt");

    fn action_names() -> Vec<&'static str> {
        ACTION_NAMES
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    }

    /// IAM's wildcard matching, written the plain recursive way.
    fn brute_matches(pattern: &[u8], name: &[u8]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some((b'*', rest)) => (0..=name.len()).any(|k| brute_matches(rest, &name[k..])),
            Some((&p, rest)) => name.split_first().is_some_and(|(&c, tail)| {
                (p == b'?' || p.eq_ignore_ascii_case(&c)) && brute_matches(rest, tail)
            }),
        }
    }

    /// An action pattern made from a real name: whole, with a stretch replaced by `*`, with letters
    /// replaced by `?`, case changed, or a service wildcard.
    fn action_pattern() -> impl Strategy<Value = String> {
        let names = action_names();
        (
            0..names.len(),
            0..6u8,
            any::<prop::sample::Index>(),
            0..8usize,
        )
            .prop_map(move |(i, how, at, length)| {
                let name = names[i];
                let start = at.index(name.len() + 1);
                let end = (start + length).min(name.len());
                match how {
                    0 => name.to_owned(),
                    1 => format!("{}*{}", &name[..start], &name[end..]),
                    2 => format!(
                        "{}{}{}",
                        &name[..start],
                        "?".repeat(end - start),
                        &name[end..]
                    ),
                    3 => name.to_uppercase(),
                    4 => format!("{}*", name.split(':').next().unwrap_or_default()),
                    _ => format!("*{}", &name[end..]),
                }
            })
    }

    fn statement_of(patterns: &[String], negated: bool) -> Map<String, Value> {
        let element = if negated { "NotAction" } else { "Action" };
        object(json!({"Statement": {"Effect": "Allow", element: patterns, "Resource": "*"}}))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// For Action and NotAction lists, whether the statement grants each real action agrees
        /// with the plain matcher.
        #[test]
        fn granted_actions_agree_with_the_plain_matcher(
            patterns in proptest::collection::vec(action_pattern(), 1..5),
            negated in any::<bool>(),
        ) {
            let document = statement_of(&patterns, negated);
            let statement = statements(&document).next().unwrap();
            let actions = statement.actions().unwrap();
            let mut coverage = Coverage::default();
            for name in action_names() {
                let listed = patterns.iter().any(|p| brute_matches(p.as_bytes(), name.as_bytes()));
                prop_assert_eq!(actions.includes(name, &mut coverage), listed != negated, "{}", name);
            }
        }

        /// A NotAction statement is denied for a denied pattern only when it excludes none of the
        /// pattern's real actions, and always when it plainly excludes none of them.
        #[test]
        fn not_action_is_denied_by_what_it_leaves_over(
            excluded in proptest::collection::vec(action_pattern(), 1..4),
            denied in action_pattern(),
        ) {
            let mut config = Config::default();
            config.action_wildcard.denied_actions = vec![denied.clone()];
            let document = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "NotAction": excluded, "Resource": "arn:aws:s3:::b/*"}]}).to_string();
            let found = PolicyChecker::new().unwrap()
                .permission_findings(&[(FieldPath::root("d"), &document)], TrustedBy::Others, &config)
                .into_iter()
                .any(|f| f.rule == RuleId::ActionWildcard && f.is_deny());
            let names = action_names();
            let mut in_denied = names.iter().filter(|n| brute_matches(denied.as_bytes(), n.as_bytes()));
            let leaves_out_one = in_denied
                .any(|n| excluded.iter().any(|e| brute_matches(e.as_bytes(), n.as_bytes())));
            if leaves_out_one {
                prop_assert!(!found, "{excluded:?} excludes part of {denied}");
            }
            let disjoint = excluded.iter().all(|e| !e.contains(['*', '?']))
                && !denied.contains(['*', '?'])
                && !excluded.iter().any(|e| e.eq_ignore_ascii_case(&denied));
            if disjoint {
                prop_assert!(found, "{excluded:?} leaves {denied} whole");
            }
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_single_statement_has_no_index_and_lists_skip_non_objects() {
        let root = FieldPath::root("doc");
        let single = object(json!({"Statement": {"Effect": "Allow"}}));
        let paths: Vec<String> = statements(&single)
            .map(|s| s.path(&root).to_string())
            .collect();
        assert_eq!(paths, ["doc.Statement"]);
        let list = object(json!({"Statement": [1, {"Effect": "Deny"}, {"Effect": "Allow"}]}));
        let found: Vec<(String, bool)> = statements(&list)
            .map(|s| (s.path(&root).to_string(), s.is_allow()))
            .collect();
        assert_eq!(
            found,
            [
                ("doc.Statement[1]".to_owned(), false),
                ("doc.Statement[2]".to_owned(), true)
            ]
        );
        assert_eq!(statements(&object(json!({"Statement": "x"}))).count(), 0);
    }

    #[test]
    fn values_carry_their_index_and_path() {
        let doc = object(json!({"Statement": {"Action": ["a", 3, "b"], "Resource": "*"}}));
        let statement = statements(&doc).next().unwrap();
        let parent = FieldPath::root("s");
        let actions = statement.values("Action").unwrap();
        let items: Vec<(String, &str)> = actions
            .iter()
            .map(|(j, a)| (actions.item_path(&parent, j).to_string(), a))
            .collect();
        assert_eq!(
            items,
            [
                ("s.Action[0]".to_owned(), "a"),
                ("s.Action[2]".to_owned(), "b")
            ]
        );
        let resources = statement.values("Resource").unwrap();
        let (j, r) = resources.iter().next().unwrap();
        assert_eq!(
            (resources.item_path(&parent, j).to_string(), r),
            ("s.Resource".to_owned(), "*")
        );
        assert!(statement.values("NotAction").is_none());
    }

    #[test]
    fn principals_are_text_or_typed() {
        let doc = object(
            json!({"Statement": [{"Principal": "*"}, {"Principal": {"AWS": ["1", "2"]}}, {"Principal": 4}]}),
        );
        let all: Vec<Statement> = statements(&doc).collect();
        assert!(matches!(
            Principal::of(&all[0], "Principal"),
            Some(Principal::Text("*"))
        ));
        let typed = Principal::of(&all[1], "Principal").unwrap();
        assert_eq!(typed.values("AWS").unwrap().iter().count(), 2);
        assert!(typed.values("Service").is_none());
        assert!(Principal::of(&all[2], "Principal").is_none());
    }
}
