//! Field paths in the form users see in findings: `spec.tags[Team]`,
//! `spec.inlinePolicies[1].policyDocument.Statement[0].Action[2]`. Pure.

use std::fmt;

/// An exact path to a field of an object or of a policy document inside it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    /// A path starting at a top-level field, such as `spec`.
    pub fn root(name: &str) -> Self {
        FieldPath(name.to_owned())
    }

    /// The path of a named child field (`a.b`).
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            return FieldPath(name.to_owned());
        }
        FieldPath(format!("{}.{name}", self.0))
    }

    /// The path of a list element (`a[3]`).
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }

    /// The path of a map entry (`a[key]`).
    pub fn key(&self, key: &str) -> Self {
        FieldPath(format!("{}[{key}]", self.0))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
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
    }
}
