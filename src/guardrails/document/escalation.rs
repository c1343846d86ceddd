//! The `privilege-escalation` rule: an Allow statement that lets the role raise its own or another
//! principal's permissions — change a role's, user's or group's policies, trust or boundary, rewrite a
//! managed policy, mint a user's credentials, assume a role, or run code as a function's role — on
//! every role, user, group, policy or function of an account (or more). The actions may be named,
//! reached through a wildcard (`iam:Put*`, `iam:*Policy`) or left over by NotAction; the resources
//! through `*`, a wildcard ARN or NotResource. Grants on named resources stay allowed. Pure.
//!
//! A role that only the guardrails' role managers can assume (the operator's own role) may manage
//! other roles: that is its job.

use super::super::arn::PARTITIONS;
use super::super::{Config, FieldPath, Finding, RuleId};
use super::TrustedBy;
use super::glob::{Coverage, has_wildcard};
use super::model::{Listing, Values};
use super::quote;

/// What an escalating action changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Role,
    User,
    Group,
    Policy,
    Function,
}

impl Target {
    /// Service and resource type of the ARNs naming every target of one account: `iam`, `role/`.
    fn arn_parts(self) -> (&'static str, &'static str) {
        match self {
            Target::Role => ("iam", "role/"),
            Target::User => ("iam", "user/"),
            Target::Group => ("iam", "group/"),
            Target::Policy => ("iam", "policy/"),
            Target::Function => ("lambda", "function:"),
        }
    }
}

/// One escalating action.
struct Escalation {
    action: &'static str,
    target: Target,
    /// Whether it is one of the role-management calls a role manager makes.
    manages_roles: bool,
}

const fn escalation(action: &'static str, target: Target, manages_roles: bool) -> Escalation {
    Escalation {
        action,
        target,
        manages_roles,
    }
}

/// Every action this rule looks for: the privilege-escalation paths of Rhino Security Labs' list,
/// pmapper and Cloudsplaining that a role's own policy opens without passing a role (`iam:PassRole`
/// is `passrole-wildcard`'s).
const ESCALATIONS: &[Escalation] = &[
    escalation("iam:AttachRolePolicy", Target::Role, true),
    escalation("iam:PutRolePolicy", Target::Role, true),
    escalation("iam:UpdateAssumeRolePolicy", Target::Role, true),
    escalation("iam:PutRolePermissionsBoundary", Target::Role, true),
    escalation("iam:DeleteRolePermissionsBoundary", Target::Role, true),
    escalation("sts:AssumeRole", Target::Role, false),
    escalation("iam:AttachUserPolicy", Target::User, false),
    escalation("iam:PutUserPolicy", Target::User, false),
    escalation("iam:PutUserPermissionsBoundary", Target::User, false),
    escalation("iam:DeleteUserPermissionsBoundary", Target::User, false),
    escalation("iam:CreateAccessKey", Target::User, false),
    escalation("iam:CreateLoginProfile", Target::User, false),
    escalation("iam:UpdateLoginProfile", Target::User, false),
    escalation("iam:AttachGroupPolicy", Target::Group, false),
    escalation("iam:PutGroupPolicy", Target::Group, false),
    escalation("iam:AddUserToGroup", Target::Group, false),
    escalation("iam:CreatePolicyVersion", Target::Policy, false),
    escalation("iam:SetDefaultPolicyVersion", Target::Policy, false),
    escalation("lambda:UpdateFunctionCode", Target::Function, false),
];

/// One Allow statement as this rule reads it.
pub struct Grant<'s, 'a> {
    /// The statement's path.
    pub path: &'s FieldPath,
    /// Its Action or NotAction.
    pub actions: Listing<'a>,
    /// Its Resource or NotResource, if any.
    pub resources: Option<Listing<'a>>,
    /// Positions of the Action values (or `None` for the whole element) already denied by
    /// `action-wildcard`: they are not reported twice.
    pub denied: &'s [Option<usize>],
}

/// Reports each action value (or NotAction) of `grant` that opens an escalation.
pub fn check(
    grant: &Grant<'_, '_>,
    trusted_by: TrustedBy,
    config: &Config,
    coverage: &mut Coverage,
    out: &mut Vec<Finding>,
) {
    let Some(severity) = config.level(RuleId::PrivilegeEscalation).severity() else {
        return;
    };
    let Some(resources) = grant.resources else {
        return;
    };
    let relevant = |e: &&Escalation| !(trusted_by == TrustedBy::RoleManagers && e.manages_roles);
    let mut report = |at: FieldPath, granted: &str, found: Vec<&'static str>, on: String| {
        out.push(Finding::new(
            RuleId::PrivilegeEscalation,
            severity,
            &at,
            format!(
                "Allow of {granted} on {on} lets the role raise its own or another principal's permissions ({}); name the roles, users, groups or policies it may change, e.g. arn:aws:iam::123456789012:role/app-worker",
                found.join(", ")
            ),
        ));
    };
    match grant.actions {
        Listing::Only(values) => {
            for (j, action) in values.iter() {
                if grant.denied.contains(&j) || !may_escalate(action) {
                    continue;
                }
                let literal = !has_wildcard(action);
                let granted: Vec<&Escalation> = ESCALATIONS
                    .iter()
                    .filter(|e| {
                        if literal {
                            e.action.eq_ignore_ascii_case(action)
                        } else {
                            coverage.matches(action, e.action)
                        }
                    })
                    .filter(relevant)
                    .collect();
                let (found, on) = escalations(&granted, resources, coverage);
                if !found.is_empty() {
                    report(values.item_path(grant.path, j), &quote(action), found, on);
                }
            }
        }
        Listing::AllBut(values) => {
            if grant.denied.contains(&None) {
                return;
            }
            let granted: Vec<&Escalation> = ESCALATIONS
                .iter()
                .filter(relevant)
                .filter(|e| grant.actions.includes(e.action, coverage))
                .collect();
            let (found, on) = escalations(&granted, resources, coverage);
            if !found.is_empty() {
                report(
                    values.path(grant.path),
                    "every action NotAction leaves out",
                    found,
                    on,
                );
            }
        }
    }
}

/// The services of [`ESCALATIONS`].
const SERVICES: [&str; 3] = ["iam", "sts", "lambda"];

/// Whether `action` may match an escalating action: false for a plain other service (`s3:…`).
fn may_escalate(action: &str) -> bool {
    match action.split_once(':') {
        Some((service, _)) if !service.contains(['*', '?']) => {
            SERVICES.iter().any(|s| s.eq_ignore_ascii_case(service))
        }
        _ => true,
    }
}

/// The granted escalations whose targets `resources` reach wholesale, and words for the resources.
fn escalations(
    granted: &[&Escalation],
    resources: Listing<'_>,
    coverage: &mut Coverage,
) -> (Vec<&'static str>, String) {
    let mut found = Vec::new();
    let mut on = String::new();
    let mut checked: Vec<(Target, Option<String>)> = Vec::new();
    for escalation in granted {
        let reach = match checked.iter().find(|(t, _)| *t == escalation.target) {
            Some((_, reach)) => reach.clone(),
            None => {
                let reach = every_target(resources, escalation.target, coverage);
                checked.push((escalation.target, reach.clone()));
                reach
            }
        };
        if let Some(reach) = reach {
            if on.is_empty() {
                on = reach;
            }
            found.push(escalation.action);
        }
    }
    (found, on)
}

/// Words for the resources when they take in every `target` of an account: the value that does, or
/// NotResource's leftover.
fn every_target(resources: Listing<'_>, target: Target, coverage: &mut Coverage) -> Option<String> {
    match resources {
        Listing::Only(values) => values
            .iter()
            .find(|(_, r)| covers_every(r, target, Account::Written, coverage))
            .map(|(_, r)| quote(r)),
        Listing::AllBut(values) => (!excludes_every(values, target, coverage))
            .then(|| "every resource NotResource leaves out".to_owned()),
    }
}

/// Whether some NotResource value takes out every `target` of every account.
fn excludes_every(values: Values<'_>, target: Target, coverage: &mut Coverage) -> bool {
    values
        .iter()
        .any(|(_, r)| covers_every(r, target, Account::Any, coverage))
}

/// Which account's targets a resource pattern must cover.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Account {
    /// The account (and region) the pattern names, when it names one; any account otherwise.
    Written,
    /// Every account.
    Any,
}

/// Whether the resource pattern `resource` covers every `target` of `account`.
fn covers_every(resource: &str, target: Target, account: Account, coverage: &mut Coverage) -> bool {
    if resource == "*" {
        return true;
    }
    let fields: Vec<&str> = match account {
        Account::Written => resource.splitn(6, ':').collect(),
        Account::Any => Vec::new(),
    };
    let concrete = |i: usize, ok: fn(&str) -> bool| {
        fields
            .get(i)
            .copied()
            .filter(|f| fields.len() == 6 && ok(f))
            .unwrap_or("*")
    };
    let region = concrete(3, |r| !r.is_empty() && !r.contains(['*', '?']));
    let account = concrete(4, |a| {
        a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
    });
    let (service, kind) = target.arn_parts();
    let region = if service == "iam" { "" } else { region };
    PARTITIONS.iter().any(|partition| {
        coverage.covers_parts(
            resource,
            &[
                "arn:", partition, ":", service, ":", region, ":", account, ":", kind, "*",
            ],
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::super::{Level, Severity};
    use super::super::PolicyChecker;
    use super::*;

    fn findings(statement: Value, trusted_by: TrustedBy, config: &Config) -> Vec<Finding> {
        let document = json!({"Version": "2012-10-17", "Statement": statement}).to_string();
        PolicyChecker::new()
            .unwrap()
            .permission_findings(
                &[(FieldPath::root("doc"), document.as_str())],
                trusted_by,
                config,
            )
            .into_iter()
            .filter(|f| f.rule == RuleId::PrivilegeEscalation)
            .collect()
    }

    fn paths(statement: Value) -> Vec<String> {
        findings(statement, TrustedBy::Others, &Config::default())
            .into_iter()
            .map(|f| f.path)
            .collect()
    }

    fn allow(action: Value, resource: Value) -> Value {
        json!([{"Effect": "Allow", "Action": action, "Resource": resource}])
    }

    #[test]
    fn every_escalating_action_is_of_a_listed_service() {
        for escalation in ESCALATIONS {
            let service = escalation.action.split(':').next().unwrap_or_default();
            assert!(SERVICES.contains(&service), "{}", escalation.action);
        }
        assert!(!may_escalate("s3:GetObject"));
        assert!(may_escalate("IAM:GetRole"));
        assert!(may_escalate("i*:x"));
        assert!(may_escalate("*"));
    }

    #[test]
    fn every_escalating_action_on_every_resource_is_denied() {
        for escalation in ESCALATIONS {
            let found = findings(
                allow(json!(["s3:GetObject", escalation.action]), json!("*")),
                TrustedBy::Others,
                &Config::default(),
            );
            assert_eq!(found.len(), 1, "{}", escalation.action);
            assert_eq!(found[0].path, "doc.Statement[0].Action[1]");
            assert_eq!(found[0].severity, Severity::Deny);
            assert!(found[0].message.contains(escalation.action));
        }
    }

    #[test]
    fn wildcards_reach_escalating_actions() {
        let found = findings(
            allow(
                json!([
                    "iam:Put*",
                    "IAM:*Policy",
                    "iam:Attach?olePolicy",
                    "iam:Get*"
                ]),
                json!("*"),
            ),
            TrustedBy::Others,
            &Config::default(),
        );
        let summary: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.path.as_str(), f.message.as_str()))
            .collect();
        assert_eq!(summary.len(), 3, "{summary:?}");
        assert!(summary[0].1.contains(
            "(iam:PutRolePolicy, iam:PutRolePermissionsBoundary, iam:PutUserPolicy, iam:PutUserPermissionsBoundary, iam:PutGroupPolicy)"
        ), "{}", summary[0].1);
        assert!(
            summary[1]
                .1
                .contains("iam:AttachRolePolicy, iam:PutRolePolicy, iam:UpdateAssumeRolePolicy")
        );
        assert_eq!(summary[2].0, "doc.Statement[0].Action[2]");
    }

    #[test]
    fn wildcards_of_targets_are_denied_and_named_targets_allowed() {
        let denied = [
            ("iam:PutRolePolicy", "arn:aws:iam::123456789012:role/*"),
            ("iam:PutRolePolicy", "arn:aws-us-gov:iam::*:role/*"),
            ("iam:PutRolePolicy", "arn:aws:iam::123456789012:*"),
            ("sts:AssumeRole", "arn:aws:iam::*:role/*"),
            ("iam:CreateAccessKey", "arn:aws:iam::123456789012:user/*"),
            ("iam:AddUserToGroup", "arn:aws:iam::123456789012:group/*"),
            (
                "iam:CreatePolicyVersion",
                "arn:aws:iam::123456789012:policy/*",
            ),
            (
                "lambda:UpdateFunctionCode",
                "arn:aws:lambda:us-east-1:123456789012:function:*",
            ),
            ("lambda:UpdateFunctionCode", "arn:aws:lambda:*:*:*"),
        ];
        for (action, resource) in denied {
            assert_eq!(
                paths(allow(json!(action), json!(["arn:aws:s3:::b", resource]))),
                ["doc.Statement[0].Action"],
                "{action} on {resource}"
            );
        }
        let allowed = [
            (
                "iam:PutRolePolicy",
                "arn:aws:iam::123456789012:role/app-worker",
            ),
            ("iam:PutRolePolicy", "arn:aws:iam::123456789012:role/app-*"),
            ("sts:AssumeRole", "arn:aws:iam::111111111111:role/deployer"),
            ("iam:CreateAccessKey", "arn:aws:iam::123456789012:role/*"),
            ("iam:AttachRolePolicy", "arn:aws:iam::123456789012:user/*"),
            (
                "lambda:UpdateFunctionCode",
                "arn:aws:lambda:us-east-1:123456789012:function:app-*",
            ),
            ("iam:PassRole", "*"),
            ("iam:GetRole", "*"),
        ];
        for (action, resource) in allowed {
            assert!(
                paths(allow(json!(action), json!(resource))).is_empty(),
                "{action} on {resource}"
            );
        }
    }

    #[test]
    fn not_action_and_not_resource_leave_escalations_over() {
        let not_action = json!([{"Effect": "Allow", "NotAction": ["sts:*", "organizations:*", "iam:List*"], "Resource": "*"}]);
        assert_eq!(paths(not_action), ["doc.Statement[0].NotAction"]);
        let excluded = json!([{"Effect": "Allow", "NotAction": ["iam:*", "sts:*", "organizations:*", "lambda:*"], "Resource": "*"}]);
        assert!(paths(excluded).is_empty());
        let not_resource = json!([{"Effect": "Allow", "Action": "iam:AttachUserPolicy", "NotResource": "arn:aws:iam::123456789012:user/admin"}]);
        assert_eq!(paths(not_resource), ["doc.Statement[0].Action"]);
        let not_users = json!([{"Effect": "Allow", "Action": "iam:AttachUserPolicy", "NotResource": "arn:aws:iam::*:user/*"}]);
        assert!(paths(not_users).is_empty());
        let deny = json!([{"Effect": "Deny", "NotAction": "s3:GetObject", "Resource": "*"}]);
        assert!(paths(deny).is_empty());
    }

    #[test]
    fn what_action_wildcard_denies_is_not_reported_again() {
        assert!(paths(allow(json!(["iam:*", "*"]), json!("*"))).is_empty());
        let not_action =
            json!([{"Effect": "Allow", "NotAction": "iam:ListRoles", "Resource": "*"}]);
        assert!(paths(not_action).is_empty());
    }

    #[test]
    fn role_managers_may_manage_roles_and_nothing_more() {
        let operator = allow(
            json!([
                "iam:CreateRole",
                "iam:AttachRolePolicy",
                "iam:PutRolePolicy",
                "iam:UpdateAssumeRolePolicy"
            ]),
            json!("*"),
        );
        assert!(
            findings(
                operator.clone(),
                TrustedBy::RoleManagers,
                &Config::default()
            )
            .is_empty()
        );
        assert_eq!(
            findings(operator, TrustedBy::Others, &Config::default()).len(),
            3
        );
        let more = allow(
            json!([
                "iam:AttachRolePolicy",
                "iam:AttachUserPolicy",
                "sts:AssumeRole"
            ]),
            json!("*"),
        );
        let found = findings(more, TrustedBy::RoleManagers, &Config::default());
        let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["doc.Statement[0].Action[1]", "doc.Statement[0].Action[2]"]
        );
    }

    #[test]
    fn severity_is_configurable() {
        let statement = allow(json!("iam:CreateLoginProfile"), json!("*"));
        let mut warn = Config::default();
        warn.severities
            .insert(RuleId::PrivilegeEscalation, Level::Warn);
        let found = findings(statement.clone(), TrustedBy::Others, &warn);
        assert_eq!(found[0].severity, Severity::Warn);
        let mut off = Config::default();
        off.severities
            .insert(RuleId::PrivilegeEscalation, Level::Off);
        assert!(findings(statement, TrustedBy::Others, &off).is_empty());
    }
}
