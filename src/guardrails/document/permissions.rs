//! Rules only permission (inline) policies obey: `action-wildcard` (denied patterns and service
//! wildcards, however spelt), `passrole-wildcard`, `not-action-allow`, and `privilege-escalation`
//! (in [`super::escalation`]). An Allow with NotAction grants every action its list does not
//! exclude, and one with NotResource every resource its list does not exclude: both are judged by
//! what they leave over. Deny statements never produce findings here. Pure.

use serde_json::{Map, Value};

use super::super::arn::PARTITIONS;
use super::super::{Config, FieldPath, Finding, RuleId};
use super::TrustedBy;
use super::escalation::{self, Grant};
use super::glob::Coverage;
use super::model::{Listing, Statement, Values, statements};
use super::quote;

/// Runs every permission rule on each Allow statement of `document`.
pub fn check(
    document: &Map<String, Value>,
    root: &FieldPath,
    trusted_by: TrustedBy,
    config: &Config,
    coverage: &mut Coverage,
    out: &mut Vec<Finding>,
) {
    for statement in statements(document).filter(Statement::is_allow) {
        let path = statement.path(root);
        check_not_elements(&statement, &path, config, out);
        let Some(actions) = statement.actions() else {
            continue;
        };
        let mut denied = Vec::new();
        match actions {
            Listing::Only(values) => {
                for (j, action) in values.iter() {
                    if let Some(finding) =
                        check_action(action, config, coverage, || values.item_path(&path, j))
                    {
                        if finding.is_deny() {
                            denied.push(j);
                        }
                        out.push(finding);
                    }
                }
            }
            Listing::AllBut(values) => {
                if let Some(finding) = check_all_but(values, &path, config, coverage) {
                    denied.push(None);
                    out.push(finding);
                }
            }
        }
        let resources = statement.resources();
        let grant = Grant {
            path: &path,
            actions,
            resources,
            denied: &denied,
        };
        escalation::check(&grant, trusted_by, config, coverage, out);
        if let Some(resources) = resources {
            check_passrole(actions, resources, &path, coverage, out);
        }
    }
}

fn check_not_elements(
    statement: &Statement<'_>,
    path: &FieldPath,
    config: &Config,
    out: &mut Vec<Finding>,
) {
    let Some(severity) = config.level(RuleId::NotActionAllow).severity() else {
        return;
    };
    let messages = [
        (
            "NotAction",
            "an Allow with NotAction grants every action except those listed, including future ones; list the actions the role needs in Action",
        ),
        (
            "NotResource",
            "an Allow with NotResource grants every resource except those listed; list the resources the role needs in Resource",
        ),
    ];
    for (name, message) in messages {
        if statement.has(name) {
            out.push(Finding::new(
                RuleId::NotActionAllow,
                severity,
                &path.field(name),
                message,
            ));
        }
    }
}

/// What a service-wide wildcard grants.
enum Scope<'a> {
    /// Every action of one service (`s3:*`).
    Service(&'a str),
    /// Every action of several services (`s3*`, `*3:*`).
    Services,
}

/// The finding for one allowed action pattern, if any; `path` builds its path on demand.
fn check_action(
    action: &str,
    config: &Config,
    coverage: &mut Coverage,
    path: impl FnOnce() -> FieldPath,
) -> Option<Finding> {
    let settings = &config.action_wildcard;
    if let Some(denied) = settings
        .denied_actions
        .iter()
        .find(|d| coverage.covers(action, d))
    {
        return Some(Finding::deny(
            RuleId::ActionWildcard,
            &path(),
            format!(
                "Allow of {} grants {}; list the actions the role needs",
                quote(action),
                grants(denied)
            ),
        ));
    }
    let severity = settings.service_wildcards.severity()?;
    let scope = service_scope(action, coverage)?;
    let message = match scope {
        Scope::Service(service) => {
            if settings
                .allowed_services
                .iter()
                .any(|s| s.eq_ignore_ascii_case(service))
            {
                return None;
            }
            format!(
                "Allow of {} grants every {service} action; list the actions the role needs, or allow {service} in actionWildcard.allowedServices",
                quote(action)
            )
        }
        Scope::Services => format!(
            "Allow of {} grants every action of every service it matches; list the actions the role needs",
            quote(action)
        ),
    };
    Some(Finding::new(
        RuleId::ActionWildcard,
        severity,
        &path(),
        message,
    ))
}

/// Words for what a denied pattern stands for: `every iam action`.
fn grants(denied: &str) -> String {
    if denied == "*" || denied == "*:*" {
        return "every action of every service".to_owned();
    }
    match denied.strip_suffix(":*") {
        Some(service) if !service.is_empty() && !service.contains(['*', '?', ':']) => {
            format!("every {service} action")
        }
        _ => format!("every action matching {}", quote(denied)),
    }
}

/// The finding for a NotAction list that leaves a denied pattern whole: no value of the list
/// excludes any action the pattern matches.
fn check_all_but(
    values: Values<'_>,
    path: &FieldPath,
    config: &Config,
    coverage: &mut Coverage,
) -> Option<Finding> {
    let denied = config
        .action_wildcard
        .denied_actions
        .iter()
        .find(|d| !values.iter().any(|(_, v)| coverage.intersects(v, d)))?;
    Some(Finding::deny(
        RuleId::ActionWildcard,
        &values.path(path),
        format!(
            "an Allow with NotAction grants every action its list does not exclude, here {}; list the actions the role needs in Action",
            grants(denied)
        ),
    ))
}

/// Whether `action` grants every action of a service, and of which.
fn service_scope<'a>(action: &'a str, coverage: &mut Coverage) -> Option<Scope<'a>> {
    match action.split_once(':') {
        Some((service, name)) => {
            if !coverage.covers(name, "*") {
                return None;
            }
            if service.is_empty() || service.contains(['*', '?']) {
                Some(Scope::Services)
            } else {
                Some(Scope::Service(service))
            }
        }
        None => {
            let wildcard = action.find(['*', '?'])?;
            coverage
                .covers_parts(action, &[&action[..wildcard], ":*"])
                .then_some(Scope::Services)
        }
    }
}

/// Reports an Allow statement that grants `iam:PassRole` (named, through a wildcard or left over by
/// NotAction) on every role ARN, in any partition: each such `Resource` value, or a NotResource that
/// does not take every role out.
fn check_passrole(
    actions: Listing<'_>,
    resources: Listing<'_>,
    path: &FieldPath,
    coverage: &mut Coverage,
    out: &mut Vec<Finding>,
) {
    let granted = match actions {
        Listing::Only(values) => {
            match values.iter().find(|(_, a)| coverage.matches(a, PASS_ROLE)) {
                Some((_, action)) => quote(action),
                None => return,
            }
        }
        Listing::AllBut(_) => {
            if !actions.includes(PASS_ROLE, coverage) {
                return;
            }
            "every action NotAction leaves out (iam:PassRole among them)".to_owned()
        }
    };
    let mut every_role = |resource: &str| {
        PARTITIONS.iter().any(|partition| {
            coverage.covers_parts(resource, &["arn:", partition, ":iam::*:role/*"])
        })
    };
    let hint = "lets the role hand any role to a service and so take its permissions; name the roles it may pass, e.g. arn:aws:iam::123456789012:role/app-*";
    match resources {
        Listing::Only(values) => {
            for (k, resource) in values.iter() {
                if every_role(resource) {
                    out.push(Finding::deny(
                        RuleId::PassroleWildcard,
                        &values.item_path(path, k),
                        format!("Allow of {granted} on {} {hint}", quote(resource)),
                    ));
                }
            }
        }
        Listing::AllBut(values) => {
            if !values.iter().any(|(_, r)| every_role(r)) {
                out.push(Finding::deny(
                    RuleId::PassroleWildcard,
                    &values.path(path),
                    format!("Allow of {granted} on every resource NotResource leaves out {hint}"),
                ));
            }
        }
    }
}

/// The action `passrole-wildcard` is about.
const PASS_ROLE: &str = "iam:PassRole";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::super::{Level, Severity};
    use super::super::PolicyChecker;
    use super::*;

    /// Every finding of `rule` for the permission policy holding `statement`.
    fn findings(statement: Value, config: &Config, rule: RuleId) -> Vec<Finding> {
        let document = json!({"Version": "2012-10-17", "Statement": statement}).to_string();
        PolicyChecker::new()
            .unwrap()
            .permission_findings(
                &[(FieldPath::root("doc"), document.as_str())],
                TrustedBy::Others,
                config,
            )
            .into_iter()
            .filter(|f| f.rule == rule)
            .collect()
    }

    /// `(path, severity)` of every finding of `rule`.
    fn found(statement: Value, config: &Config, rule: RuleId) -> Vec<(String, Severity)> {
        findings(statement, config, rule)
            .into_iter()
            .map(|f| (f.path, f.severity))
            .collect()
    }

    fn deny(path: &str) -> (String, Severity) {
        (path.to_owned(), Severity::Deny)
    }

    fn warn(path: &str) -> (String, Severity) {
        (path.to_owned(), Severity::Warn)
    }

    fn allow(actions: Value, resource: Value) -> Value {
        json!([{"Effect": "Allow", "Action": actions, "Resource": resource}])
    }

    #[test]
    fn action_wildcard_denies_every_spelling_of_a_denied_pattern() {
        let c = Config::default();
        let spellings = [
            "IAM:*",
            "iam:\u{2a}",
            "i*",
            "iam*",
            "*am:*",
            "ia?:*",
            "**",
            "*:*",
            "*",
            "sts:*",
            "Organizations:*",
            "o*",
        ];
        let mut actions = vec![json!("s3:GetObject")];
        actions.extend(spellings.iter().map(|s| json!(s)));
        let expected: Vec<_> = (1..=spellings.len())
            .map(|j| deny(&format!("doc.Statement[0].Action[{j}]")))
            .collect();
        assert_eq!(
            found(
                allow(json!(actions), json!("*")),
                &c,
                RuleId::ActionWildcard
            ),
            expected
        );
        let single = json!({"Effect": "Allow", "Action": "*", "Resource": "*"});
        assert_eq!(
            found(single, &c, RuleId::ActionWildcard),
            [deny("doc.Statement.Action")]
        );
    }

    #[test]
    fn action_wildcard_names_the_pattern_and_what_it_grants() {
        let found = findings(
            allow(json!(["IAM:*"]), json!("*")),
            &Config::default(),
            RuleId::ActionWildcard,
        );
        assert_eq!(
            found[0].message,
            "Allow of \"IAM:*\" grants every iam action; list the actions the role needs"
        );
        let found = findings(
            allow(json!("*"), json!("*")),
            &Config::default(),
            RuleId::ActionWildcard,
        );
        assert_eq!(
            found[0].message,
            "Allow of \"*\" grants every action of every service; list the actions the role needs"
        );
    }

    #[test]
    fn action_wildcard_ignores_deny_statements_and_precise_actions() {
        let c = Config::default();
        let deny_all = json!([{"Effect": "Deny", "Action": "*", "Resource": "*"},
            {"Effect": "Allow", "Action": ["iam:GetRole", "iam:List*", "s3:Get*", "sts:GetCallerIdentity"], "Resource": "*"}]);
        assert!(found(deny_all, &c, RuleId::ActionWildcard).is_empty());
    }

    #[test]
    fn service_wildcards_warn_unless_allowed_or_configured() {
        let c = Config::default();
        let statement = || {
            allow(
                json!(["s3:GetObject", "s3:*", "DynamoDB:*"]),
                json!("arn:aws:s3:::b/*"),
            )
        };
        assert_eq!(
            found(statement(), &c, RuleId::ActionWildcard),
            [
                warn("doc.Statement[0].Action[1]"),
                warn("doc.Statement[0].Action[2]")
            ]
        );
        let mut allowed = Config::default();
        allowed.action_wildcard.allowed_services = vec!["S3".to_owned(), "dynamodb".to_owned()];
        assert!(found(statement(), &allowed, RuleId::ActionWildcard).is_empty());
        let mut strict = Config::default();
        strict.action_wildcard.service_wildcards = Level::Deny;
        assert_eq!(
            found(statement(), &strict, RuleId::ActionWildcard),
            [
                deny("doc.Statement[0].Action[1]"),
                deny("doc.Statement[0].Action[2]")
            ]
        );
        let mut off = Config::default();
        off.action_wildcard.service_wildcards = Level::Off;
        assert!(found(statement(), &off, RuleId::ActionWildcard).is_empty());
        let several = allow(json!(["s3*", "*3:*"]), json!("*"));
        assert_eq!(
            found(several, &allowed, RuleId::ActionWildcard),
            [
                warn("doc.Statement[0].Action[0]"),
                warn("doc.Statement[0].Action[1]")
            ],
            "a pattern spanning several services is never an allowed service"
        );
    }

    #[test]
    fn denied_actions_come_from_the_configuration() {
        let mut c = Config::default();
        c.action_wildcard.denied_actions = vec!["s3:Delete*".to_owned()];
        let statement = allow(json!(["s3:DeleteObject", "s3:Del*", "iam:*"]), json!("*"));
        let found = findings(statement, &c, RuleId::ActionWildcard);
        let summary: Vec<(&str, Severity)> = found
            .iter()
            .map(|f| (f.path.as_str(), f.severity))
            .collect();
        assert_eq!(
            summary,
            [
                ("doc.Statement[0].Action[1]", Severity::Deny),
                ("doc.Statement[0].Action[2]", Severity::Warn)
            ]
        );
        assert!(
            found[0]
                .message
                .contains("grants every action matching \"s3:Delete*\""),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn passrole_on_every_role_is_denied_as_well_as_the_wildcard() {
        let c = Config::default();
        assert_eq!(
            found(
                allow(json!("iam:PassRole"), json!("*")),
                &c,
                RuleId::PassroleWildcard
            ),
            [deny("doc.Statement[0].Resource")]
        );
        let roles = allow(
            json!(["s3:GetObject", "IAM:Pass*"]),
            json!([
                "arn:aws:s3:::b/*",
                "arn:aws:iam::*:role/*",
                "arn:aws-cn:iam::*:*"
            ]),
        );
        assert_eq!(
            found(roles, &c, RuleId::PassroleWildcard),
            [
                deny("doc.Statement[0].Resource[1]"),
                deny("doc.Statement[0].Resource[2]")
            ]
        );
        let everything = allow(json!("*"), json!("*"));
        assert_eq!(
            found(everything.clone(), &c, RuleId::PassroleWildcard),
            [deny("doc.Statement[0].Resource")]
        );
        assert_eq!(
            found(everything, &c, RuleId::ActionWildcard),
            [deny("doc.Statement[0].Action")]
        );
        let named = allow(
            json!("iam:PassRole"),
            json!([
                "arn:aws:iam::123456789012:role/app-*",
                "arn:aws:iam::*:role/ci"
            ]),
        );
        assert!(found(named, &c, RuleId::PassroleWildcard).is_empty());
        let other_actions = allow(json!(["iam:GetRole", "iam:CreateRole"]), json!("*"));
        assert!(found(other_actions, &c, RuleId::PassroleWildcard).is_empty());
        let denied = json!([{"Effect": "Deny", "Action": "iam:PassRole", "Resource": "*"}]);
        assert!(found(denied, &c, RuleId::PassroleWildcard).is_empty());
    }

    #[test]
    fn not_action_and_not_resource_in_an_allow_warn_by_default() {
        let statement = || {
            json!([{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
                {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::secret/*"},
                {"Effect": "Deny", "NotAction": "s3:GetObject", "NotResource": "arn:aws:s3:::b/*"}])
        };
        let c = Config::default();
        assert_eq!(
            found(statement(), &c, RuleId::NotActionAllow),
            [
                warn("doc.Statement[0].NotAction"),
                warn("doc.Statement[1].NotResource")
            ]
        );
        let mut strict = Config::default();
        strict
            .severities
            .insert(RuleId::NotActionAllow, Level::Deny);
        assert_eq!(
            found(statement(), &strict, RuleId::NotActionAllow),
            [
                deny("doc.Statement[0].NotAction"),
                deny("doc.Statement[1].NotResource")
            ]
        );
        let mut off = Config::default();
        off.severities.insert(RuleId::NotActionAllow, Level::Off);
        assert!(found(statement(), &off, RuleId::NotActionAllow).is_empty());
        let plain = allow(json!("s3:GetObject"), json!("*"));
        assert!(found(plain, &c, RuleId::NotActionAllow).is_empty());
    }
}
