//! Role tags as IAM treats them: keys compare ignoring case, keys starting with `aws:` (any case)
//! belong to AWS, and the operator's own tags (the owner, and the managed policies the object
//! attached) sit beside the role's. One merge rule for the webhook's defaults, the guardrails'
//! count and the reconciler's desired tags. Pure.

use std::collections::BTreeMap;

/// Tag key naming the object (`namespace/name`) that manages the role.
pub const OWNER_TAG_KEY: &str = "aws-infra-operator.runner.codes/owner";

/// Tag key listing (as short digests) the managed policies the owning object attached: the memory
/// of what it may detach, kept with the role so that it survives a lost object status.
pub const POLICIES_TAG_KEY: &str = "aws-infra-operator.runner.codes/managed-policies";

/// How many tags the operator may add to a role it manages (the owner, and the managed policies
/// while there are any); the guardrails reserve both of IAM's 50.
pub const OPERATOR_TAGS: usize = 2;

/// The owner tag value naming the object `namespace/name`.
pub fn owner_value(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Whether a tag key is reserved for AWS (`aws:` in any case); such tags are never written nor removed.
pub fn is_aws_tag(key: &str) -> bool {
    key.get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("aws:"))
}

/// Whether a tag key is one the operator sets itself (ignoring case).
pub fn is_operator_tag(key: &str) -> bool {
    same_tag_key(key, OWNER_TAG_KEY) || same_tag_key(key, POLICIES_TAG_KEY)
}

/// Tag keys equal for IAM (which compares them ignoring case).
pub fn same_tag_key(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    fold_tag_key(a) == fold_tag_key(b)
}

/// `key` as IAM compares tag keys, lower-cased (`str::to_lowercase`; ASCII keys without the
/// Unicode tables): two keys are the same tag when their folds are equal.
pub fn fold_tag_key(key: &str) -> String {
    if key.is_ascii() {
        key.to_ascii_lowercase()
    } else {
        key.to_lowercase()
    }
}

/// The value of `key` in `tags`, the key compared ignoring case.
pub fn tag_value<'a>(tags: &'a BTreeMap<String, String>, key: &str) -> Option<&'a String> {
    tags.iter()
        .find(|(existing, _)| same_tag_key(existing, key))
        .map(|(_, value)| value)
}

/// Sets `key` to `value`, replacing any key equal to it ignoring case; `aws:` keys are skipped.
pub fn set_tag(tags: &mut BTreeMap<String, String>, key: &str, value: &str) {
    if is_aws_tag(key) {
        return;
    }
    tags.retain(|existing, _| !same_tag_key(existing, key));
    tags.insert(key.to_owned(), value.to_owned());
}

/// The default tags a role does not set itself: those whose key equals none of `own`'s ignoring
/// case (the role's own spelling and value win).
pub fn defaults_not_set<'a>(
    defaults: &'a BTreeMap<String, String>,
    own: impl IntoIterator<Item = &'a str> + Clone,
) -> impl Iterator<Item = (&'a String, &'a String)> {
    defaults.iter().filter(move |(key, _)| {
        !own.clone()
            .into_iter()
            .any(|own_key| same_tag_key(own_key, key))
    })
}

/// Default tags under a role's own: a role tag replaces a default whose key equals it ignoring
/// case; `aws:` keys are left out.
pub fn merge_tags(
    defaults: Option<&BTreeMap<String, String>>,
    own: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for (key, value) in defaults
        .into_iter()
        .flatten()
        .chain(own.into_iter().flatten())
    {
        set_tag(&mut tags, key, value);
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn aws_tag_keys_are_recognised_in_any_case() {
        assert!(is_aws_tag("aws:x"));
        assert!(is_aws_tag("AwS:x"));
        assert!(!is_aws_tag("aws"));
        assert!(!is_aws_tag("awsx:y"));
        assert!(!is_aws_tag("é"));
        assert!(same_tag_key("CostCenter", "costcenter"));
        assert!(!same_tag_key("CostCenter", "Cost-Center"));
        assert!(same_tag_key("ÉQUIPE", "équipe"));
        assert!(!same_tag_key("équipe", "equipe"));
        assert_eq!(fold_tag_key("CostCenter"), "costcenter");
        assert_eq!(fold_tag_key("ΣΑΣ"), "ΣΑΣ".to_lowercase());
        assert!(is_operator_tag(&OWNER_TAG_KEY.to_uppercase()));
        assert!(is_operator_tag(POLICIES_TAG_KEY));
        assert!(!is_operator_tag("owner"));
    }

    #[test]
    fn role_tags_win_over_defaults_ignoring_case_and_aws_keys_are_dropped() {
        let defaults = map(&[
            ("Environment", "prod"),
            ("team", "platform"),
            ("AWS:x", "y"),
        ]);
        let own = map(&[
            ("environment", "dev"),
            ("App", "x"),
            ("aws:cloudformation:stack", "s"),
        ]);
        assert_eq!(
            merge_tags(Some(&defaults), Some(&own)),
            map(&[("App", "x"), ("environment", "dev"), ("team", "platform")])
        );
        let missing: Vec<&String> = defaults_not_set(&defaults, own.keys().map(String::as_str))
            .map(|(key, _)| key)
            .collect();
        assert_eq!(missing, ["AWS:x", "team"]);
        assert_eq!(tag_value(&own, "APP").map(String::as_str), Some("x"));
    }

    #[test]
    fn owner_value_is_namespace_slash_name() {
        assert_eq!(owner_value("default", "app"), "default/app");
    }
}
