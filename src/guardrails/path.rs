//! Field paths in the form users see in findings: `spec.tags[Team]`,
//! `spec.inlinePolicies[1].policyDocument.Statement[0].Action[2]`. Pure.
//!
//! A name or key longer than any IAM or Kubernetes name ([`MAX_SEGMENT`] characters) is cut with `…`,
//! so a hostile key cannot make every finding under it as large as the key.

use std::borrow::Cow;
use std::fmt;

/// Longest name or key kept whole in a path, in characters (an OIDC condition key, the longest
/// name IAM allows, has at most 255 + 4).
const MAX_SEGMENT: usize = 320;

/// An exact path to a field of an object or of a policy document inside it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(Cow<'static, str>);

impl FieldPath {
    /// A path starting at a top-level field, such as `spec`.
    pub fn root(name: &str) -> Self {
        FieldPath(Cow::Owned(name.to_owned()))
    }

    /// A path written out in full (`spec.roleName`), held without a copy.
    pub const fn fixed(path: &'static str) -> Self {
        FieldPath(Cow::Borrowed(path))
    }

    /// The path of a named child field (`a.b`).
    pub fn field(&self, name: &str) -> Self {
        let name = segment(name);
        if self.0.is_empty() {
            return FieldPath(Cow::Owned(name.into_owned()));
        }
        self.extended(&[".", &name])
    }

    /// The path of a list element (`a[3]`).
    pub fn index(&self, i: usize) -> Self {
        let mut digits = [0; 20];
        let mut at = digits.len();
        let mut rest = i;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        let digits = std::str::from_utf8(&digits[at..]).unwrap_or_default();
        self.extended(&["[", digits, "]"])
    }

    /// The path of a map entry (`a[key]`).
    pub fn key(&self, key: &str) -> Self {
        self.extended(&["[", &segment(key), "]"])
    }

    /// This path followed by `parts`.
    fn extended(&self, parts: &[&str]) -> Self {
        let length = self.0.len() + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut path = String::with_capacity(length);
        path.push_str(&self.0);
        for part in parts {
            path.push_str(part);
        }
        FieldPath(Cow::Owned(path))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `name`, cut after [`MAX_SEGMENT`] characters.
fn segment(name: &str) -> Cow<'_, str> {
    if name.len() <= MAX_SEGMENT {
        return Cow::Borrowed(name);
    }
    match name.char_indices().nth(MAX_SEGMENT) {
        Some((cut, _)) => Cow::Owned(format!("{}…", &name[..cut])),
        None => Cow::Borrowed(name),
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::FieldPath;

    #[test]
    fn builds_kubernetes_style_paths() {
        let p = FieldPath::root("spec")
            .field("inlinePolicies")
            .index(1)
            .field("policyDocument")
            .field("Statement")
            .index(0)
            .field("Action")
            .index(2);
        assert_eq!(
            p.to_string(),
            "spec.inlinePolicies[1].policyDocument.Statement[0].Action[2]"
        );
        assert_eq!(
            FieldPath::root("spec").field("tags").key("Team").as_str(),
            "spec.tags[Team]"
        );
        assert_eq!(FieldPath::default().field("spec").as_str(), "spec");
        assert_eq!(
            FieldPath::fixed("spec.roleName"),
            FieldPath::root("spec").field("roleName")
        );
        assert_eq!(
            FieldPath::fixed("spec.tags").key("Team").as_str(),
            "spec.tags[Team]"
        );
        let root = FieldPath::root("a");
        for (i, text) in [
            (0, "a[0]"),
            (7, "a[7]"),
            (10, "a[10]"),
            (usize::MAX, "a[18446744073709551615]"),
        ] {
            assert_eq!(root.index(i).as_str(), text);
        }
    }

    #[test]
    fn names_longer_than_any_iam_name_are_cut() {
        let key = "k".repeat(100_000);
        let field = FieldPath::root("c").field(&key);
        assert_eq!(field.as_str().chars().count(), 2 + 320 + 1);
        assert!(field.as_str().ends_with("k…"));
        let entry = FieldPath::root("t").key(&"é".repeat(400));
        assert_eq!(entry.as_str(), format!("t[{}…]", "é".repeat(320)));
        let oidc = format!("{}:sub", "h".repeat(255));
        assert_eq!(
            FieldPath::root("c").field(&oidc).as_str(),
            format!("c.{oidc}")
        );
    }
}
