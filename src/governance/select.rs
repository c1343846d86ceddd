//! Which GuardrailPolicy governs a namespace: of the policies whose selector matches the
//! namespace's labels, the highest priority, ties broken by the first name in alphabetical order.
//! Pure, no I/O.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

/// A policy's selector in force: every namespace, the parsed selector, or none (unreadable).
#[derive(Clone, Debug)]
pub enum NamespaceSelector {
    /// No selector, or an empty one.
    Every,
    /// A selector with requirements.
    Matching(Selector),
    /// A selector that cannot be read (an unknown operator, values where none belong): matches
    /// nothing, and the policy is not accepted.
    Unreadable(String),
}

impl NamespaceSelector {
    /// The selector of a policy's spec.
    pub fn of(selector: Option<&LabelSelector>) -> Self {
        let Some(selector) = selector else {
            return NamespaceSelector::Every;
        };
        match Selector::try_from(selector.clone()) {
            Ok(parsed) if parsed.selects_all() => NamespaceSelector::Every,
            Ok(parsed) => NamespaceSelector::Matching(parsed),
            Err(error) => NamespaceSelector::Unreadable(error.to_string()),
        }
    }

    /// Whether a namespace with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            NamespaceSelector::Every => true,
            NamespaceSelector::Matching(selector) => selector.matches(labels),
            NamespaceSelector::Unreadable(_) => false,
        }
    }

    /// The selector as `kubectl` writes one (`team=a,tier in (x,y)`), `<all>` for every namespace.
    pub fn summary(&self) -> String {
        match self {
            NamespaceSelector::Every => "<all>".to_owned(),
            NamespaceSelector::Matching(selector) => selector.to_string(),
            NamespaceSelector::Unreadable(_) => "<invalid>".to_owned(),
        }
    }
}

/// What selection needs of a policy.
pub trait Candidate {
    /// The policy's name (ties go to the first in alphabetical order).
    fn name(&self) -> &str;
    /// Its priority (the highest governs).
    fn priority(&self) -> i32;
    /// Its namespace selector, parsed.
    fn selector(&self) -> &NamespaceSelector;
}

/// The policy governing a namespace with `labels`, if any matches.
pub fn governing<'p, C: Candidate>(
    policies: &'p [C],
    labels: &BTreeMap<String, String>,
) -> Option<&'p C> {
    policies
        .iter()
        .filter(|p| p.selector().matches(labels))
        .min_by(|a, b| {
            b.priority()
                .cmp(&a.priority())
                .then_with(|| a.name().cmp(b.name()))
        })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    struct Policy(&'static str, i32, NamespaceSelector);

    impl Candidate for Policy {
        fn name(&self) -> &str {
            self.0
        }
        fn priority(&self) -> i32 {
            self.1
        }
        fn selector(&self) -> &NamespaceSelector {
            &self.2
        }
    }

    fn policy(name: &'static str, priority: i32, selector: Option<LabelSelector>) -> Policy {
        Policy(name, priority, NamespaceSelector::of(selector.as_ref()))
    }

    fn team(value: &str) -> Option<LabelSelector> {
        Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("team".to_owned(), value.to_owned())])),
            match_expressions: None,
        })
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn name_of(policies: &[Policy], labels: &BTreeMap<String, String>) -> Option<&'static str> {
        governing(policies, labels).map(|p| p.0)
    }

    #[test]
    fn the_highest_priority_match_governs_and_ties_go_to_the_first_name() {
        let policies = vec![
            policy("default", 0, None),
            policy("team-a", 10, team("a")),
            policy("b-strict", 10, team("b")),
            policy("a-strict", 10, team("b")),
        ];
        assert_eq!(
            name_of(&policies, &labels(&[("team", "a")])),
            Some("team-a")
        );
        assert_eq!(
            name_of(&policies, &labels(&[("team", "b")])),
            Some("a-strict")
        );
        assert_eq!(
            name_of(&policies, &labels(&[("team", "c")])),
            Some("default")
        );
        assert_eq!(name_of(&policies[1..], &labels(&[])), None);
    }

    #[test]
    fn expressions_select_and_unreadable_selectors_select_nothing() {
        let expression = |operator: &str, values: Option<Vec<&str>>| {
            Some(LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "tier".to_owned(),
                    operator: operator.to_owned(),
                    values: values.map(|v| v.into_iter().map(str::to_owned).collect()),
                }]),
            })
        };
        let prod = NamespaceSelector::of(expression("In", Some(vec!["prod", "stage"])).as_ref());
        assert!(prod.matches(&labels(&[("tier", "prod")])));
        assert!(!prod.matches(&labels(&[("tier", "dev")])));
        assert_eq!(prod.summary(), "tier in (prod,stage)");
        let bad = NamespaceSelector::of(expression("Near", Some(vec!["x"])).as_ref());
        assert!(matches!(bad, NamespaceSelector::Unreadable(_)));
        assert!(!bad.matches(&labels(&[("tier", "x")])));
        let empty = Some(LabelSelector::default());
        assert_eq!(NamespaceSelector::of(empty.as_ref()).summary(), "<all>");
    }
}
