//! The findings of one object, at most [`MAX_FINDINGS`] of them: past that, findings are counted by
//! rule and summed up in one last finding (`and N more: rule-a ×k, rule-b ×m`), refusals kept before
//! warnings. A hostile object thus gets a small answer, and the engine never holds more than one
//! document's findings beyond the cap. Pure.

use std::collections::BTreeMap;

use super::{FieldPath, Finding, RuleId, Severity};

/// The most findings reported for one object, besides the summary of the rest.
pub const MAX_FINDINGS: usize = 100;

/// Findings gathered for one object.
#[derive(Debug, Default)]
pub struct Report {
    findings: Vec<Finding>,
    dropped: BTreeMap<RuleId, usize>,
    dropped_deny: bool,
    /// The longest path prefix (whole fields) every dropped finding shares.
    dropped_under: Option<String>,
}

impl Report {
    /// Where checks add their findings.
    pub fn findings(&mut self) -> &mut Vec<Finding> {
        &mut self.findings
    }

    /// Keeps at most [`MAX_FINDINGS`] findings, refusals first, counting the others.
    pub fn trim(&mut self) {
        if self.findings.len() <= MAX_FINDINGS {
            return;
        }
        self.findings.sort_by_key(|f| f.severity);
        for finding in self.findings.split_off(MAX_FINDINGS) {
            *self.dropped.entry(finding.rule).or_default() += 1;
            self.dropped_deny |= finding.is_deny();
            self.dropped_under = Some(match self.dropped_under.take() {
                None => finding.path,
                Some(under) => common_fields(&under, &finding.path).to_owned(),
            });
        }
    }

    /// The findings kept, then one summing up the others, if any.
    pub fn into_findings(mut self) -> Vec<Finding> {
        self.trim();
        let Some(&rule) = self
            .dropped
            .iter()
            .max_by_key(|(rule, count)| (**count, std::cmp::Reverse(**rule)))
            .map(|(rule, _)| rule)
        else {
            return self.findings;
        };
        let mut counts: Vec<(RuleId, usize)> = self.dropped.into_iter().collect();
        counts.sort_by_key(|(rule, count)| (std::cmp::Reverse(*count), *rule));
        let total: usize = counts.iter().map(|(_, n)| n).sum();
        let tally: Vec<String> = counts
            .iter()
            .map(|(rule, n)| format!("{rule} ×{n}"))
            .collect();
        let under = self
            .dropped_under
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "spec".to_owned());
        let severity = if self.dropped_deny {
            Severity::Deny
        } else {
            Severity::Warn
        };
        self.findings.push(Finding::new(
            rule,
            severity,
            &FieldPath::root(&under),
            format!(
                "and {total} more: {}; fix the findings above and check again",
                tally.join(", ")
            ),
        ));
        self.findings
    }
}

/// The longest prefix of `a` and `b` made of whole fields (ending before a `.` or `[`, or at the end
/// of both).
fn common_fields<'a>(a: &'a str, b: &str) -> &'a str {
    let shared = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let boundary = |s: &str, at: usize| at == s.len() || matches!(s.as_bytes()[at], b'.' | b'[');
    if boundary(a, shared) && boundary(b, shared) {
        return &a[..shared];
    }
    let cut = a[..shared].rfind(['.', '[']).unwrap_or(0);
    &a[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: RuleId, severity: Severity, path: &str) -> Finding {
        Finding::new(rule, severity, &FieldPath::root(path), "m")
    }

    #[test]
    fn small_reports_are_untouched() {
        let mut report = Report::default();
        report
            .findings()
            .push(finding(RuleId::Tags, Severity::Warn, "spec.tags[a]"));
        report.trim();
        assert_eq!(report.into_findings().len(), 1);
    }

    #[test]
    fn past_the_cap_refusals_are_kept_and_the_rest_counted() {
        let mut report = Report::default();
        for i in 0..150 {
            report.findings().push(finding(
                RuleId::ActionWildcard,
                Severity::Warn,
                &format!("spec.inlinePolicies[0].policyDocument.Statement[{i}].Action"),
            ));
        }
        report.trim();
        for i in 0..120 {
            report.findings().push(finding(
                RuleId::PolicyGrammar,
                Severity::Deny,
                &format!("spec.inlinePolicies[1].policyDocument.Statement[{i}]"),
            ));
        }
        report.findings().push(finding(
            RuleId::PolicySid,
            Severity::Deny,
            "spec.inlinePolicies[12].policyDocument",
        ));
        let findings = report.into_findings();
        assert_eq!(findings.len(), MAX_FINDINGS + 1);
        assert!(findings[..MAX_FINDINGS].iter().all(Finding::is_deny));
        let last = &findings[MAX_FINDINGS];
        assert_eq!(last.rule, RuleId::ActionWildcard);
        assert_eq!(last.severity, Severity::Deny);
        assert_eq!(last.path, "spec.inlinePolicies");
        assert_eq!(
            last.message,
            "and 171 more: action-wildcard ×150, policy-grammar ×20, policy-sid ×1; fix the findings above and check again"
        );
    }

    #[test]
    fn common_prefixes_stop_at_whole_fields() {
        assert_eq!(common_fields("spec.tags[ab]", "spec.tags[ac]"), "spec.tags");
        assert_eq!(common_fields("spec.a.b", "spec.a.b"), "spec.a.b");
        assert_eq!(common_fields("spec.a.b", "spec.a.bc"), "spec.a");
        assert_eq!(common_fields("spec.a.b", "spec.a"), "spec.a");
        assert_eq!(common_fields("spec", "metadata"), "");
        assert_eq!(common_fields("s[1]", "s[10]"), "s");
    }
}
