//! The `tags` rule: an IAMRole's tags against IAM's limits — 50 in total (the role's own, the
//! guardrails' default tags and the operator's own two), key and value length and character set,
//! the reserved `aws:` prefix, keys equal ignoring case, and the operator's tag keys. Pure.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use regex::Regex;

use super::excerpt::quote;
use super::{FieldPath, Finding, RuleId};
use crate::iam::tags::{
    OPERATOR_TAGS, defaults_not_set, fold_tag_key, is_aws_tag, is_operator_tag,
};

/// IAM's limit on tags per role.
const MAX_TAGS: usize = 50;
/// IAM's limit on a tag key, in characters.
const MAX_KEY_CHARS: usize = 128;
/// IAM's limit on a tag value, in characters.
const MAX_VALUE_CHARS: usize = 256;

/// IAM's tag character set: Unicode letters, digits, separators (spaces) and `_ . : / = + - @`.
static TAG_TEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$").expect("constant pattern compiles")
});

/// What IAM allows in tag keys and values, for messages.
const CHARSET: &str = "letters, digits, spaces and `_ . : / = + - @`";

/// Checks a role's own tags (`spec.tags`, at `path`) together with the guardrails' default tags.
pub(super) fn check_tags(
    tags: Option<&BTreeMap<String, String>>,
    defaults: &BTreeMap<String, String>,
    path: &FieldPath,
    out: &mut Vec<Finding>,
) {
    let empty = BTreeMap::new();
    let tags = tags.unwrap_or(&empty);
    let added_defaults = defaults_not_set(defaults, tags.keys().map(String::as_str)).count();
    let total = tags.len() + added_defaults + OPERATOR_TAGS;
    if total > MAX_TAGS {
        out.push(Finding::deny(
            RuleId::Tags,
            path,
            format!(
                "the role would carry {total} tags ({} in spec.tags, {added_defaults} default tags of the \
                 guardrails, {OPERATOR_TAGS} tags of the operator); IAM allows {MAX_TAGS}: remove {}",
                tags.len(),
                total - MAX_TAGS
            ),
        ));
    }
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (key, value) in tags {
        let mut deny =
            |message: String| out.push(Finding::deny(RuleId::Tags, &path.key(key), message));
        check_text("key", key, 1, MAX_KEY_CHARS, &mut deny);
        check_text("value", value, 0, MAX_VALUE_CHARS, &mut deny);
        let folded = fold_tag_key(key);
        if is_aws_tag(key) {
            deny(format!(
                "tag key {} starts with `aws:`, which is reserved for AWS; rename the tag",
                quote(key)
            ));
        }
        if is_operator_tag(key) {
            deny(format!(
                "tag key {} is reserved for the operator's own tags; remove it (the operator sets it)",
                quote(key)
            ));
        } else if let Some(first) = seen.get(&folded) {
            deny(format!(
                "tag key {} equals {} ignoring case, and IAM compares tag keys ignoring case; keep one of them",
                quote(key),
                quote(first)
            ));
        }
        seen.entry(folded).or_insert(key);
    }
}

/// Whether `text` holds only IAM's tag characters: ASCII text is checked byte by byte (its letters,
/// digits and space are the ASCII members of the pattern's classes), the rest by the pattern.
fn is_tag_text(text: &str) -> bool {
    if text.is_ascii() {
        return text
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b" _.:/=+-@".contains(&c));
    }
    TAG_TEXT.is_match(text)
}

/// Checks a tag key or value against IAM's length and character set.
fn check_text(what: &str, text: &str, min: usize, max: usize, deny: &mut impl FnMut(String)) {
    let chars = text.chars().count();
    if chars < min {
        deny(format!(
            "tag {what} is empty; IAM needs {min}–{max} characters"
        ));
    } else if chars > max {
        deny(format!(
            "tag {what} {} is {chars} characters long; IAM allows at most {max}: shorten it",
            quote(text)
        ));
    }
    if !is_tag_text(text) {
        let bad = text
            .chars()
            .find(|c| !TAG_TEXT.is_match(c.encode_utf8(&mut [0; 4])))
            .map(|c| {
                format!(
                    " {} (U+{:04X})",
                    quote(c.encode_utf8(&mut [0; 4])),
                    u32::from(c)
                )
            })
            .unwrap_or_default();
        deny(format!(
            "tag {what} {} contains{bad} outside IAM's tag characters ({CHARSET}); replace it",
            quote(text)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::{OWNER_TAG_KEY, POLICIES_TAG_KEY};

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn numbered(n: usize) -> BTreeMap<String, String> {
        (0..n)
            .map(|i| (format!("key{i:02}"), "v".to_owned()))
            .collect()
    }

    #[test]
    fn ascii_text_is_judged_as_the_pattern_judges_it() {
        for byte in 0..=127u8 {
            let one = char::from(byte).to_string();
            let text = format!("Key-{one}-9");
            assert_eq!(is_tag_text(&one), TAG_TEXT.is_match(&one), "{byte:#04x}");
            assert_eq!(is_tag_text(&text), TAG_TEXT.is_match(&text), "{text:?}");
        }
        for text in [
            "Équipe",
            "naïve key",
            "a\u{a0}b",
            "a\u{2028}b",
            "ключ",
            "日本",
        ] {
            assert_eq!(is_tag_text(text), TAG_TEXT.is_match(text), "{text:?}");
        }
        assert!(!is_tag_text("a\tb"));
    }

    fn paths(tags: &BTreeMap<String, String>, defaults: &BTreeMap<String, String>) -> Vec<String> {
        let mut out = Vec::new();
        check_tags(
            Some(tags),
            defaults,
            &FieldPath::root("spec").field("tags"),
            &mut out,
        );
        assert!(out.iter().all(|f| f.rule == RuleId::Tags && f.is_deny()));
        out.into_iter().map(|f| f.path).collect()
    }

    #[test]
    fn seed_tags_pass() {
        let seed = map(&[
            ("environment", "test"),
            ("managed-by", "infra-operator"),
            ("purpose", "e2e-testing"),
            ("SourceAccount", "111111111111"),
            ("Team", "platform"),
            ("Cluster", "production-eks"),
        ]);
        assert!(paths(&seed, &BTreeMap::new()).is_empty());
        let mut out = Vec::new();
        check_tags(
            None,
            &BTreeMap::new(),
            &FieldPath::root("spec").field("tags"),
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn fifty_tags_including_the_operators_is_the_limit() {
        assert!(paths(&numbered(48), &BTreeMap::new()).is_empty());
        assert_eq!(paths(&numbered(49), &BTreeMap::new()), ["spec.tags"]);
    }

    #[test]
    fn default_tags_count_unless_the_role_sets_the_same_key() {
        let defaults = map(&[("key00", "x"), ("cost-center", "42")]);
        assert_eq!(paths(&numbered(48), &defaults), ["spec.tags"]);
        assert!(paths(&numbered(47), &defaults).is_empty());
        let mut out = Vec::new();
        check_tags(
            None,
            &numbered(50),
            &FieldPath::root("spec").field("tags"),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].path, "spec.tags");
    }

    #[test]
    fn key_and_value_lengths() {
        let key128 = "k".repeat(128);
        let key129 = "k".repeat(129);
        assert!(paths(&map(&[(&key128, "v")]), &BTreeMap::new()).is_empty());
        assert_eq!(
            paths(&map(&[(&key129, "v")]), &BTreeMap::new()),
            [format!("spec.tags[{key129}]")]
        );
        assert_eq!(paths(&map(&[("", "v")]), &BTreeMap::new()), ["spec.tags[]"]);
        let value256 = "v".repeat(256);
        let value257 = "v".repeat(257);
        assert!(
            paths(
                &map(&[("Team", &value256), ("Empty", "")]),
                &BTreeMap::new()
            )
            .is_empty()
        );
        assert_eq!(
            paths(&map(&[("Team", &value257)]), &BTreeMap::new()),
            ["spec.tags[Team]"]
        );
    }

    #[test]
    fn character_set_is_iams() {
        let ok = map(&[
            ("Équipe données", "Müller 東京 ١٢"),
            ("kubernetes.io/name", "a:b=c+d-e@f_g"),
        ]);
        assert!(paths(&ok, &BTreeMap::new()).is_empty());
        assert_eq!(
            paths(&map(&[("Team", "a,b")]), &BTreeMap::new()),
            ["spec.tags[Team]"]
        );
        assert_eq!(
            paths(&map(&[("Team!", "x")]), &BTreeMap::new()),
            ["spec.tags[Team!]"]
        );
        assert_eq!(
            paths(&map(&[("Team", "line\nbreak")]), &BTreeMap::new()),
            ["spec.tags[Team]"]
        );
        let mut out = Vec::new();
        check_tags(
            Some(&map(&[("Team", "a*b")])),
            &BTreeMap::new(),
            &FieldPath::root("spec").field("tags"),
            &mut out,
        );
        assert!(
            out[0].message.contains("`*` (U+002A)"),
            "{}",
            out[0].message
        );
    }

    #[test]
    fn aws_prefix_is_reserved_in_any_case() {
        for key in ["aws:createdBy", "AWS:team", "Aws:x"] {
            assert_eq!(
                paths(&map(&[(key, "x")]), &BTreeMap::new()),
                [format!("spec.tags[{key}]")]
            );
        }
        assert!(paths(&map(&[("awsome", "x")]), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn keys_equal_ignoring_case_report_the_second() {
        assert_eq!(
            paths(&map(&[("Team", "a"), ("team", "b")]), &BTreeMap::new()),
            ["spec.tags[team]"]
        );
        // A role's own tag overrides a default tag of the same key in any case (it is not added).
        let defaults = map(&[("Owner", "platform")]);
        assert!(paths(&map(&[("owner", "me")]), &defaults).is_empty());
        assert!(paths(&map(&[("Owner", "me")]), &defaults).is_empty());
        assert!(paths(&numbered(48), &map(&[("KEY00", "x")])).is_empty());
    }

    #[test]
    fn operator_tag_keys_are_reserved() {
        assert_eq!(
            paths(&map(&[(POLICIES_TAG_KEY, "x")]), &BTreeMap::new()),
            [format!("spec.tags[{POLICIES_TAG_KEY}]")]
        );
        assert_eq!(
            paths(&map(&[(OWNER_TAG_KEY, "default/x")]), &BTreeMap::new()),
            [format!("spec.tags[{OWNER_TAG_KEY}]")]
        );
        let upper = OWNER_TAG_KEY.to_uppercase();
        assert_eq!(
            paths(&map(&[(&upper, "x")]), &BTreeMap::new()),
            [format!("spec.tags[{upper}]")]
        );
    }
}
