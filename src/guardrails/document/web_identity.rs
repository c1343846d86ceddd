//! What the conditions of a web identity trust statement let through: the `trust-oidc-conditions`
//! rule, and whether a role is assumable only by the guardrails' role managers. Pure.
//!
//! A condition restricts a provider's tokens only when it is keyed to that provider
//! (`<host>:sub` for the OIDC provider `…:oidc-provider/<host>`), sits under a positive string
//! operator (`StringEquals`, `StringEqualsIgnoreCase`, `StringLike`, or their `ForAnyValue:` forms —
//! not a negated operator, not `IfExists`, not `ForAllValues:`, which an empty set passes) and has
//! values that are not all wildcards (`StringLike "*"` lets everyone in).

use serde_json::{Map, Value};

use super::super::{Config, FieldPath, Finding, RuleId, Severity, arn};
use super::TrustedBy;
use super::model::{Principal, Statement, statements};
use super::statement::Operator;
use crate::iam::json;

/// A web identity provider IAM knows by domain name, and the condition keys naming its audience.
struct PublicProvider {
    domain: &'static str,
    audience: &'static [&'static str],
}

/// The public identity providers: any of their users can get a token, so the audience (the
/// application or identity pool) must be pinned.
const PUBLIC_PROVIDERS: &[PublicProvider] = &[
    PublicProvider {
        domain: "cognito-identity.amazonaws.com",
        audience: &["aud"],
    },
    PublicProvider {
        domain: "accounts.google.com",
        audience: &["aud", "app_id"],
    },
    PublicProvider {
        domain: "graph.facebook.com",
        audience: &["aud", "app_id"],
    },
    PublicProvider {
        domain: "www.amazon.com",
        audience: &["aud", "app_id"],
    },
];

/// Whether `federated` names one of the public identity providers.
pub fn is_public_provider(federated: &str) -> bool {
    public_provider(federated).is_some()
}

fn public_provider(federated: &str) -> Option<&'static PublicProvider> {
    PUBLIC_PROVIDERS
        .iter()
        .find(|p| p.domain.eq_ignore_ascii_case(federated))
}

/// The host of an IAM OIDC provider ARN (`…:oidc-provider/oidc.eks…/id/X` → `oidc.eks…/id/X`).
pub fn oidc_host(federated: &str) -> Option<&str> {
    let parsed = arn::parse(federated).ok()?;
    (parsed.service == "iam")
        .then_some(parsed.resource)?
        .strip_prefix("oidc-provider/")
}

/// Reports each web identity provider of an Allow statement's `principal` that its conditions do
/// not restrict.
pub fn check(
    statement: &Statement<'_>,
    principal: &Principal<'_>,
    path: &FieldPath,
    out: &mut Vec<Finding>,
) {
    let Some(federated) = principal.values("Federated") else {
        return;
    };
    let condition = statement.condition();
    let at = path.field("Condition");
    for (_, provider) in federated.iter() {
        if let Some(host) = oidc_host(provider) {
            if !restricted(condition, host, &["sub"], |_| true) {
                out.push(Finding::deny(
                    RuleId::TrustOidcConditions,
                    &at,
                    format!(
                        "nothing restricts which identities of the OIDC provider {host} may assume the role; add StringEquals (or StringLike) on {host}:sub, e.g. system:serviceaccount:<namespace>:<name> (a condition keyed to another provider, a negated operator or a bare \"*\" does not count)"
                    ),
                ));
            }
            if !restricted(condition, host, &["aud"], |_| true) {
                out.push(Finding::new(
                    RuleId::TrustOidcConditions,
                    Severity::Warn,
                    &at,
                    format!(
                        "no {host}:aud condition: tokens minted for any audience are accepted; add StringEquals on {host}:aud, e.g. sts.amazonaws.com"
                    ),
                ));
            }
        } else if let Some(public) = public_provider(provider)
            && !restricted(condition, public.domain, public.audience, |_| true)
        {
            let audience = if public.audience == ["aud"] {
                "identity pool"
            } else {
                "application"
            };
            out.push(Finding::deny(
                RuleId::TrustOidcConditions,
                &at,
                format!(
                    "{} is a public identity provider: without a {}:{} condition any of its users may assume the role; add StringEquals on it naming your {audience}",
                    public.domain,
                    public.domain,
                    public.audience.join(" or :"),
                ),
            ));
        }
    }
}

/// Who may assume the role whose trust policy is `document`: only the role managers when every
/// Allow statement names OIDC providers alone, each restricted by `StringEquals` on its `:sub` to
/// role managers.
pub fn trusted_by(document: &Map<String, Value>, config: &Config) -> TrustedBy {
    let managers = &config.privilege_escalation.role_managers;
    let mut allows = statements(document).filter(Statement::is_allow).peekable();
    if managers.is_empty() || allows.peek().is_none() {
        return TrustedBy::Others;
    }
    let only_managers = allows.all(|statement| {
        let Some(Principal::Typed(principal)) = Principal::of(&statement, "Principal") else {
            return false;
        };
        let Some(Value::String(provider)) = json::field(principal, "Federated") else {
            return false;
        };
        let Some(host) = oidc_host(provider) else {
            return false;
        };
        principal.len() == 1
            && restricted(statement.condition(), host, &["sub"], |operator| {
                operator == "StringEquals"
            })
            && statement
                .condition()
                .into_iter()
                .flatten()
                .filter_map(|(_, block)| block.as_object())
                .flat_map(|block| block.iter())
                .filter(|(key, _)| keyed_to(key, host, &["sub"]))
                .all(|(_, value)| all_strings_in(value, managers))
    });
    if only_managers {
        TrustedBy::RoleManagers
    } else {
        TrustedBy::Others
    }
}

/// Whether `condition` holds a restricting condition on `<host>:<name>` for one of `names`, under an
/// operator `accept` also agrees to.
fn restricted(
    condition: Option<&Map<String, Value>>,
    host: &str,
    names: &[&str],
    accept: impl Fn(&str) -> bool,
) -> bool {
    condition.into_iter().flatten().any(|(operator, block)| {
        let Some(like) = positive(operator).filter(|_| accept(operator)) else {
            return false;
        };
        block.as_object().is_some_and(|block| {
            block
                .iter()
                .any(|(key, value)| keyed_to(key, host, names) && restricts(value, like))
        })
    })
}

/// For a positive string operator, whether it is a `…Like` one; `None` for any other operator.
fn positive(name: &str) -> Option<bool> {
    if name.starts_with("ForAllValues:") {
        return None;
    }
    let operator = Operator::parse(name);
    if operator.if_exists {
        return None;
    }
    match operator.base {
        "StringEquals" | "StringEqualsIgnoreCase" => Some(false),
        "StringLike" => Some(true),
        _ => None,
    }
}

/// Whether `key` is `<host>:<name>` for one of `names`, ignoring ASCII case.
fn keyed_to(key: &str, host: &str, names: &[&str]) -> bool {
    key.split_at_checked(host.len())
        .is_some_and(|(head, tail)| {
            head.eq_ignore_ascii_case(host)
                && tail
                    .strip_prefix(':')
                    .is_some_and(|name| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
        })
}

/// Whether the condition values restrict anything: one or more strings, none of them (under a
/// `…Like` operator) made only of wildcards.
fn restricts(value: &Value, like: bool) -> bool {
    let restricting = |v: &Value| {
        v.as_str()
            .is_some_and(|s| !like || s.chars().any(|c| c != '*' && c != '?'))
    };
    match value {
        Value::Array(items) => !items.is_empty() && items.iter().all(restricting),
        other => restricting(other),
    }
}

/// Whether `value` is one string or a list of strings, each one of `allowed`.
fn all_strings_in(value: &Value, allowed: &[String]) -> bool {
    let listed = |v: &Value| v.as_str().is_some_and(|s| allowed.iter().any(|a| a == s));
    match value {
        Value::Array(items) => !items.is_empty() && items.iter().all(listed),
        other => listed(other),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::PolicyChecker;
    use super::*;

    const HOST: &str = "oidc.eks.us-east-1.amazonaws.com/id/ABC123";
    const OIDC: &str =
        "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC123";

    /// `(severity, message)` of every `trust-oidc-conditions` finding, and who may assume the role.
    fn run(
        principal: &str,
        condition: Value,
        config: &Config,
    ) -> (Vec<(Severity, String)>, TrustedBy) {
        let mut statement = json!({"Effect": "Allow", "Principal": {"Federated": principal},
            "Action": "sts:AssumeRoleWithWebIdentity"});
        if !condition.is_null() {
            statement["Condition"] = condition;
        }
        let document = json!({"Version": "2012-10-17", "Statement": [statement]}).to_string();
        let mut out = Vec::new();
        let trusted_by = PolicyChecker::new().unwrap().check_trust(
            &document,
            &FieldPath::root("doc"),
            config,
            &mut out,
        );
        let found = out
            .into_iter()
            .filter(|f| f.rule == RuleId::TrustOidcConditions)
            .inspect(|f| assert_eq!(f.path, "doc.Statement[0].Condition"))
            .map(|f| (f.severity, f.message))
            .collect();
        (found, trusted_by)
    }

    fn severities(principal: &str, condition: Value) -> Vec<Severity> {
        run(principal, condition, &Config::default())
            .0
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    }

    fn key(name: &str) -> String {
        format!("{HOST}:{name}")
    }

    #[test]
    fn sub_and_aud_keyed_to_the_provider_pass() {
        let conditions = [
            json!({"StringEquals": {key("sub"): "system:serviceaccount:a:b", key("aud"): "sts.amazonaws.com"}}),
            json!({"StringLike": {key("SUB"): ["system:serviceaccount:a:*"]},
                "ForAnyValue:StringEquals": {key("aud"): "sts.amazonaws.com"}}),
            json!({"ForAnyValue:StringLike": {key("sub"): "repo:org/app:*"},
                "StringEqualsIgnoreCase": {key("aud").to_uppercase(): "sts.amazonaws.com"}}),
        ];
        for condition in conditions {
            assert!(
                severities(OIDC, condition.clone()).is_empty(),
                "{condition}"
            );
        }
    }

    #[test]
    fn a_sub_that_restricts_nothing_is_denied() {
        let aud = || json!({"StringEquals": {key("aud"): "sts.amazonaws.com"}});
        let with = |operator: &str, sub_key: String, value: Value| {
            let mut condition = aud();
            let block = condition
                .as_object_mut()
                .unwrap()
                .entry(operator)
                .or_insert(json!({}));
            block[sub_key] = value;
            condition
        };
        let bad = [
            with(
                "StringNotEquals",
                key("sub"),
                json!("system:serviceaccount:a:b"),
            ),
            with("StringLike", key("sub"), json!("*")),
            with(
                "StringLike",
                key("sub"),
                json!(["system:serviceaccount:a:b", "*?"]),
            ),
            with(
                "StringEquals",
                "token.actions.githubusercontent.com:sub".to_owned(),
                json!("repo:o/r:*"),
            ),
            with(
                "StringEqualsIfExists",
                key("sub"),
                json!("system:serviceaccount:a:b"),
            ),
            with(
                "ForAllValues:StringEquals",
                key("sub"),
                json!("system:serviceaccount:a:b"),
            ),
            with("Null", key("sub"), json!("false")),
            with("StringEquals", key("sub"), json!([])),
            with("StringEquals", format!("x{}", key("sub")), json!("s")),
            aud(),
        ];
        for condition in bad {
            assert_eq!(
                severities(OIDC, condition.clone()),
                [Severity::Deny],
                "{condition}"
            );
        }
        let (found, _) = run(OIDC, aud(), &Config::default());
        assert!(
            found[0].1.contains(&format!("on {HOST}:sub")),
            "{}",
            found[0].1
        );
    }

    #[test]
    fn a_missing_aud_warns() {
        let sub = json!({"StringEquals": {key("sub"): "system:serviceaccount:a:b",
            "other.example.com:aud": "sts.amazonaws.com"}});
        assert_eq!(severities(OIDC, sub), [Severity::Warn]);
        assert_eq!(
            severities(OIDC, Value::Null),
            [Severity::Deny, Severity::Warn]
        );
    }

    #[test]
    fn public_providers_need_their_audience() {
        let cognito = "cognito-identity.amazonaws.com";
        assert_eq!(severities(cognito, Value::Null), [Severity::Deny]);
        assert_eq!(
            severities(
                cognito,
                json!({"StringEquals": {"cognito-identity.amazonaws.com:sub": "x"}})
            ),
            [Severity::Deny]
        );
        assert_eq!(
            severities(
                cognito,
                json!({"StringEquals": {"cognito-identity.amazonaws.com:app_id": "x"}})
            ),
            [Severity::Deny],
            "a Cognito identity pool is named by :aud"
        );
        let pool = json!({"StringEquals": {"cognito-identity.amazonaws.com:aud": "us-east-1:12345678-1234-1234-1234-123456789012"},
            "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "authenticated"}});
        assert!(severities(cognito, pool).is_empty());
        for (provider, key) in [
            ("accounts.google.com", "accounts.google.com:aud"),
            ("graph.facebook.com", "graph.facebook.com:app_id"),
            ("www.amazon.com", "www.amazon.com:app_id"),
            ("Accounts.Google.com", "accounts.google.com:aud"),
        ] {
            assert_eq!(
                severities(provider, Value::Null),
                [Severity::Deny],
                "{provider}"
            );
            assert_eq!(
                severities(provider, json!({"StringLike": {key: "*"}})),
                [Severity::Deny],
                "{provider}"
            );
            assert!(
                severities(provider, json!({"StringEquals": {key: "app-123"}})).is_empty(),
                "{provider}"
            );
        }
        let (found, _) = run("accounts.google.com", Value::Null, &Config::default());
        assert!(
            found[0].1.contains("accounts.google.com:aud or :app_id"),
            "{}",
            found[0].1
        );
    }

    #[test]
    fn roles_only_role_managers_assume_are_recognised() {
        let c = Config::default();
        let operator = json!({"StringEquals": {key("sub"): crate::guardrails::config::OPERATOR_SERVICE_ACCOUNT,
            key("aud"): "sts.amazonaws.com"}});
        assert_eq!(run(OIDC, operator.clone(), &c).1, TrustedBy::RoleManagers);
        let other = json!({"StringEquals": {key("sub"): "system:serviceaccount:default:app"}});
        assert_eq!(run(OIDC, other, &c).1, TrustedBy::Others);
        let both = json!({"StringEquals": {key("sub"): [crate::guardrails::config::OPERATOR_SERVICE_ACCOUNT, "system:serviceaccount:default:app"]}});
        assert_eq!(run(OIDC, both, &c).1, TrustedBy::Others);
        let like = json!({"StringLike": {key("sub"): crate::guardrails::config::OPERATOR_SERVICE_ACCOUNT}});
        assert_eq!(run(OIDC, like, &c).1, TrustedBy::Others);
        let no_managers = Config {
            privilege_escalation: crate::guardrails::EscalationPolicy {
                role_managers: Vec::new(),
            },
            ..Config::default()
        };
        assert_eq!(run(OIDC, operator, &no_managers).1, TrustedBy::Others);
        assert_eq!(
            run("accounts.google.com", json!({"StringEquals": {"accounts.google.com:sub": crate::guardrails::config::OPERATOR_SERVICE_ACCOUNT}}), &c).1,
            TrustedBy::Others
        );
    }
}
