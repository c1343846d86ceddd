//! Who an existing role belongs to (its owner tag), and the memory of which managed policies the
//! owning object attached (a tag of short digests, so that the memory stays with the role even
//! when the object's status is lost). Pure.

use std::collections::BTreeSet;

use super::tags::{OWNER_TAG_KEY, POLICIES_TAG_KEY, tag_value};

/// Who an existing role belongs to, according to its owner tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// The owner tag names this object.
    Ours,
    /// The role has no owner tag: created outside the operator.
    Unowned,
    /// The owner tag names another object (`namespace/name`).
    OwnedBy(String),
}

/// The ownership of a role carrying `tags`, for the object named `owner` (`namespace/name`). The
/// owner tag key compares ignoring case, as IAM compares tag keys.
pub fn ownership(tags: &std::collections::BTreeMap<String, String>, owner: &str) -> Ownership {
    match tag_value(tags, OWNER_TAG_KEY) {
        None => Ownership::Unowned,
        Some(value) if value == owner => Ownership::Ours,
        Some(value) => Ownership::OwnedBy(value.clone()),
    }
}

/// The value of the managed-policies tag for `arns`: the sorted, space-separated digests of each
/// ARN. Eight hex digits each keep IAM's largest quota (20 policies) under its 256-character limit
/// on a tag value.
pub fn policies_tag_value<'a>(arns: impl IntoIterator<Item = &'a String>) -> String {
    let digests: BTreeSet<String> = arns.into_iter().map(|arn| digest(arn)).collect();
    digests.into_iter().collect::<Vec<_>>().join(" ")
}

/// The ARNs among `attached` that the managed-policies tag of a role carrying `tags` names.
pub fn policies_in_tag(
    tags: &std::collections::BTreeMap<String, String>,
    attached: &BTreeSet<String>,
) -> BTreeSet<String> {
    let Some(value) = tag_value(tags, POLICIES_TAG_KEY) else {
        return BTreeSet::new();
    };
    let named: BTreeSet<&str> = value.split_ascii_whitespace().collect();
    attached
        .iter()
        .filter(|arn| named.contains(digest(arn).as_str()))
        .cloned()
        .collect()
}

/// FNV-1a (32 bits) of an ARN as eight hex digits: stable across versions and platforms.
fn digest(arn: &str) -> String {
    let hash = arn.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    format!("{hash:08x}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const S3: &str = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
    const LOGS: &str = "arn:aws:iam::aws:policy/CloudWatchLogsFullAccess";
    const FOREIGN: &str = "arn:aws:iam::123456789012:policy/AttachedByHand";

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn ownership_follows_the_owner_tag_ignoring_key_case() {
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(ownership(&tags(&[]), "ns/a"), Ownership::Unowned);
        assert_eq!(
            ownership(&tags(&[(&OWNER_TAG_KEY.to_uppercase(), "ns/a")]), "ns/a"),
            Ownership::Ours
        );
        assert_eq!(
            ownership(&tags(&[(OWNER_TAG_KEY, "ns/b")]), "ns/a"),
            Ownership::OwnedBy("ns/b".to_owned())
        );
    }

    #[test]
    fn the_policies_tag_names_exactly_the_policies_it_was_made_from() {
        let ours = set(&[S3, LOGS]);
        let value = policies_tag_value(&ours);
        assert_eq!(value.len(), 17, "{value}");
        let tags = BTreeMap::from([(POLICIES_TAG_KEY.to_owned(), value)]);
        assert_eq!(policies_in_tag(&tags, &set(&[S3, LOGS, FOREIGN])), ours);
        assert_eq!(policies_in_tag(&tags, &set(&[FOREIGN])), set(&[]));
        assert_eq!(policies_in_tag(&BTreeMap::new(), &ours), set(&[]));
        assert_eq!(policies_tag_value(&set(&[])), "");
    }

    #[test]
    fn twenty_policies_fit_in_one_tag_value() {
        let arns: BTreeSet<String> = (0..20)
            .map(|i| format!("arn:aws:iam::123456789012:policy/p{i}"))
            .collect();
        assert!(policies_tag_value(&arns).chars().count() <= 256);
        assert_eq!(digest("a"), "e40c292c", "FNV-1a must stay stable");
    }
}
