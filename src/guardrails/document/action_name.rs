//! The `policy-grammar` check of action names: IAM reads an action as ASCII `service:action`
//! (letters, digits, `-` and `_`; `*` and `?` as wildcards), so a look-alike letter (`ıam:*` with a
//! dotless i), full-width punctuation (`iam：*`) or a space names no action at all — and a rule
//! comparing it with `iam:*` would miss what it was meant to be. Each bad character is shown with its
//! code point. Pure.

use serde_json::{Map, Value};

use super::super::{FieldPath, Finding, RuleId};
use super::model::statements;
use super::quote;

/// Denies every action of `document` that is not an IAM action name or pattern.
pub fn check(document: &Map<String, Value>, root: &FieldPath, out: &mut Vec<Finding>) {
    for statement in statements(document) {
        for name in ["Action", "NotAction"] {
            let Some(actions) = statement.values(name) else {
                continue;
            };
            for (j, action) in actions.iter() {
                if let Some(problem) = problem(action) {
                    out.push(Finding::deny(
                        RuleId::PolicyGrammar,
                        &actions.item_path(&statement.path(root), j),
                        format!("{} {problem}", quote(action)),
                    ));
                }
            }
        }
    }
}

/// Whether `c` may appear in an action name or pattern.
fn is_action_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '?' | ':')
}

/// What is wrong with `action`, or `None` for an IAM action name or pattern.
fn problem(action: &str) -> Option<String> {
    if let Some((at, bad)) = action
        .chars()
        .enumerate()
        .find(|(_, c)| !is_action_char(*c))
    {
        let shown = if bad.is_whitespace() || bad.is_control() {
            String::new()
        } else {
            format!(" {bad:?}")
        };
        return Some(format!(
            "holds{shown} (U+{:04X}) at character {}; an action is ASCII service:action (letters, digits, `-`, `_`, wildcards `*` and `?`), e.g. \"s3:GetObject\": retype it",
            u32::from(bad),
            at + 1
        ));
    }
    let shape_ok = match action.split_once(':') {
        Some((service, name)) => !service.is_empty() && !name.is_empty() && !name.contains(':'),
        None => action.contains(['*', '?']),
    };
    (!shape_ok).then(|| {
        "is not service:action with one colon, e.g. \"s3:GetObject\" or \"s3:Get*\"".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_action_names_and_patterns_pass() {
        for action in [
            "s3:GetObject",
            "execute-api:Invoke",
            "aws-marketplace:ViewSubscriptions",
            "iam:*",
            "*",
            "i*",
            "ec2:Describe*",
            "s3:?etObject",
            "a4b:Get_Thing",
        ] {
            assert_eq!(problem(action), None, "{action}");
        }
    }

    #[test]
    fn look_alikes_and_spaces_are_shown_by_code_point() {
        let cases = [
            ("\u{131}am:*", "holds 'ı' (U+0131) at character 1"),
            ("iam\u{ff1a}*", "holds '：' (U+FF1A) at character 4"),
            (" iam:*", "holds (U+0020) at character 1"),
            ("iam:*\u{a0}", "holds (U+00A0) at character 6"),
            (
                "s3:Get\u{200b}Object",
                "holds '\\u{200b}' (U+200B) at character 7",
            ),
            ("iam:Pass/Role", "holds '/' (U+002F) at character 9"),
        ];
        for (action, expected) in cases {
            let message = problem(action).unwrap_or_default();
            assert!(message.starts_with(expected), "{action:?}: {message}");
        }
    }

    #[test]
    fn an_action_needs_one_colon_between_service_and_name() {
        for action in ["iam", "iam:", ":PassRole", "iam:Pass:Role", "s3GetObject"] {
            assert!(problem(action).is_some(), "{action}");
        }
    }
}
