//! Rules only a role's trust policy obeys: `trust-principal`, `trust-principal-wildcard`,
//! `trust-action`, `trust-oidc-conditions` (in [`super::web_identity`]) and `trust-external-id`.
//! Pure.

use serde_json::{Map, Value};

use super::super::{Config, FieldPath, Finding, RuleId, Severity, arn};
use super::model::{Principal, Statement, statements};
use super::quote;
use super::statement::{condition_keys, is_account_id};
use super::web_identity;

/// The actions a trust policy may allow.
const ASSUME_ROLE: &str = "sts:AssumeRole";
const WEB_IDENTITY: &str = "sts:AssumeRoleWithWebIdentity";
const SAML: &str = "sts:AssumeRoleWithSAML";
const TRUST_ACTIONS: &[&str] = &[
    ASSUME_ROLE,
    WEB_IDENTITY,
    SAML,
    "sts:TagSession",
    "sts:SetSourceIdentity",
    "sts:SetContext",
];

/// Runs every trust rule on each statement of `document`.
pub fn check(
    document: &Map<String, Value>,
    root: &FieldPath,
    config: &Config,
    out: &mut Vec<Finding>,
) {
    let external_id = config.level(RuleId::TrustExternalId).severity();
    for statement in statements(document) {
        let path = statement.path(root);
        check_principal_presence(&statement, &path, out);
        if statement.has("NotAction") {
            out.push(Finding::deny(
                RuleId::TrustAction,
                &path.field("NotAction"),
                "NotAction is not allowed in a trust policy; list the sts: actions the principal may use in Action",
            ));
        }
        if !statement.is_allow() {
            continue;
        }
        let principal = Principal::of(&statement, "Principal");
        let kinds = principal.as_ref().map(Kinds::of).unwrap_or_default();
        check_actions(&statement, &path, &kinds, out);
        if let Some(principal) = &principal {
            check_wildcard(principal, &path, out);
            web_identity::check(&statement, principal, &path, out);
            if let Some(severity) = external_id {
                check_external_id(&statement, principal, &path, config, severity, out);
            }
        }
    }
}

fn check_principal_presence(statement: &Statement<'_>, path: &FieldPath, out: &mut Vec<Finding>) {
    if statement.has("NotPrincipal") {
        out.push(Finding::deny(
            RuleId::TrustPrincipal,
            &path.field("NotPrincipal"),
            "NotPrincipal is not allowed in a trust policy; name who may assume the role in Principal",
        ));
    } else if !statement.has("Principal") {
        out.push(Finding::deny(
            RuleId::TrustPrincipal,
            &path.field("Principal"),
            "a trust statement needs a Principal naming who may assume the role; add one, e.g. {\"Service\": \"ec2.amazonaws.com\"}",
        ));
    }
    for name in ["Resource", "NotResource"] {
        if statement.has(name) {
            out.push(Finding::deny(
                RuleId::TrustPrincipal,
                &path.field(name),
                format!("{name} is not allowed in a trust policy, which always applies to the role itself; remove it"),
            ));
        }
    }
}

/// Which kinds of principal a statement names.
#[derive(Default)]
struct Kinds {
    /// `AWS` or `Service` principals (use sts:AssumeRole).
    direct: bool,
    /// Any web identity provider: an OIDC provider ARN or a well-known IdP.
    web_identity: bool,
    /// A SAML provider ARN (`saml-provider/`).
    saml: bool,
}

impl Kinds {
    fn of(principal: &Principal<'_>) -> Self {
        let mut kinds = Kinds {
            direct: principal.values("AWS").is_some() || principal.values("Service").is_some(),
            ..Kinds::default()
        };
        for (_, federated) in principal.values("Federated").iter().flat_map(|v| v.iter()) {
            if web_identity::oidc_host(federated).is_some()
                || web_identity::is_public_provider(federated)
            {
                kinds.web_identity = true;
            } else if arn::parse(federated)
                .is_ok_and(|a| a.service == "iam" && a.resource.starts_with("saml-provider/"))
            {
                kinds.saml = true;
            }
        }
        kinds
    }

    fn known(&self) -> bool {
        self.direct || self.web_identity || self.saml
    }
}

fn check_actions(
    statement: &Statement<'_>,
    path: &FieldPath,
    kinds: &Kinds,
    out: &mut Vec<Finding>,
) {
    let Some(actions) = statement.values("Action") else {
        return;
    };
    let (mut web_identity, mut saml, mut mismatched) = (false, false, false);
    for (j, action) in actions.iter() {
        let Some(known) = TRUST_ACTIONS
            .iter()
            .find(|a| a.eq_ignore_ascii_case(action))
        else {
            out.push(Finding::deny(
                RuleId::TrustAction,
                &actions.item_path(path, j),
                format!(
                    "{} is not allowed in a trust policy; use {} (with sts:TagSession, sts:SetSourceIdentity or sts:SetContext if needed)",
                    quote(action),
                    [ASSUME_ROLE, WEB_IDENTITY, SAML].join(", ")
                ),
            ));
            continue;
        };
        web_identity |= *known == WEB_IDENTITY;
        saml |= *known == SAML;
        let mismatch = match *known {
            ASSUME_ROLE if kinds.known() && !kinds.direct => Some(
                "is for AWS and Service principals; a web identity (OIDC) provider needs sts:AssumeRoleWithWebIdentity, a SAML provider sts:AssumeRoleWithSAML",
            ),
            WEB_IDENTITY if kinds.known() && !kinds.web_identity => Some(
                "is only for web identity (OIDC) providers named in Federated; use sts:AssumeRole for AWS and Service principals, sts:AssumeRoleWithSAML for SAML",
            ),
            SAML if kinds.known() && !kinds.saml => Some(
                "is only for SAML providers named in Federated; use sts:AssumeRole for AWS and Service principals, sts:AssumeRoleWithWebIdentity for OIDC",
            ),
            _ => None,
        };
        if let Some(why) = mismatch {
            mismatched = true;
            out.push(Finding::deny(
                RuleId::TrustAction,
                &actions.item_path(path, j),
                format!("{} {why}", quote(action)),
            ));
        }
    }
    let missing = if mismatched {
        None
    } else if kinds.web_identity && !web_identity {
        Some(
            "a web identity (OIDC) provider principal needs sts:AssumeRoleWithWebIdentity in Action",
        )
    } else if kinds.saml && !saml {
        Some("a SAML provider principal needs sts:AssumeRoleWithSAML in Action")
    } else {
        None
    };
    if let Some(message) = missing {
        out.push(Finding::deny(
            RuleId::TrustAction,
            &actions.path(path),
            message,
        ));
    }
}

fn check_wildcard(principal: &Principal<'_>, path: &FieldPath, out: &mut Vec<Finding>) {
    let principal_path = path.field("Principal");
    match principal {
        Principal::Text("*") => out.push(Finding::deny(
            RuleId::TrustPrincipalWildcard,
            &principal_path,
            "Principal \"*\" lets anyone assume the role; name the accounts, roles or services that may",
        )),
        Principal::Text(_) => {}
        Principal::Typed(_) => {
            let Some(aws) = principal.values("AWS") else {
                return;
            };
            for (j, value) in aws.iter().filter(|(_, v)| v.contains('*')) {
                out.push(Finding::deny(
                    RuleId::TrustPrincipalWildcard,
                    &aws.item_path(&principal_path, j),
                    format!(
                        "AWS principal {} lets any account assume the role; name the account or role ARN that may",
                        quote(value)
                    ),
                ));
            }
        }
    }
}

fn check_external_id(
    statement: &Statement<'_>,
    principal: &Principal<'_>,
    path: &FieldPath,
    config: &Config,
    severity: Severity,
    out: &mut Vec<Finding>,
) {
    let Some(aws) = principal.values("AWS") else {
        return;
    };
    let has_external_id = condition_keys(statement.condition(), |_| true)
        .any(|k| k.eq_ignore_ascii_case("sts:ExternalId"));
    if has_external_id {
        return;
    }
    let principal_path = path.field("Principal");
    for (j, value) in aws.iter() {
        let account = if is_account_id(value) {
            Some(value)
        } else {
            arn::parse(value)
                .ok()
                .map(|a| a.account)
                .filter(|a| is_account_id(a))
        };
        let Some(account) = account else {
            continue;
        };
        if config
            .trusted_accounts
            .iter()
            .any(|trusted| trusted == account)
        {
            continue;
        }
        out.push(Finding::new(
            RuleId::TrustExternalId,
            severity,
            &aws.item_path(&principal_path, j),
            format!(
                "principal {} of account {account} may assume the role without an sts:ExternalId condition; add one, or list the account in trustedAccounts",
                quote(value)
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::super::{Level, Severity};
    use super::super::PolicyChecker;
    use super::*;

    /// `(path, severity)` of every finding of `rule` for the trust policy `document`.
    fn found(document: &Value, config: &Config, rule: RuleId) -> Vec<(String, Severity)> {
        let mut out = Vec::new();
        let checker = PolicyChecker::new().unwrap();
        checker.check_trust(
            &document.to_string(),
            &FieldPath::root("doc"),
            config,
            &mut out,
        );
        out.into_iter()
            .filter(|f| f.rule == rule)
            .map(|f| (f.path, f.severity))
            .collect()
    }

    fn deny(path: &str) -> (String, Severity) {
        (path.to_owned(), Severity::Deny)
    }

    fn warn(path: &str) -> (String, Severity) {
        (path.to_owned(), Severity::Warn)
    }

    fn policy(statement: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": statement})
    }

    fn service_statement() -> Value {
        json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"})
    }

    const OIDC: &str =
        "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC123";

    #[test]
    fn trust_principal_needs_a_principal_and_no_resource() {
        let c = Config::default();
        assert!(
            found(
                &policy(json!([service_statement()])),
                &c,
                RuleId::TrustPrincipal
            )
            .is_empty()
        );
        let missing = policy(json!([{"Effect": "Allow", "Action": "sts:AssumeRole"}]));
        assert_eq!(
            found(&missing, &c, RuleId::TrustPrincipal),
            [deny("doc.Statement[0].Principal")]
        );
        let not_principal = policy(
            json!([{"Effect": "Deny", "NotPrincipal": {"AWS": "123456789012"},
            "Action": "sts:AssumeRole"}]),
        );
        assert_eq!(
            found(&not_principal, &c, RuleId::TrustPrincipal),
            [deny("doc.Statement[0].NotPrincipal")]
        );
        let mut with_resource = service_statement();
        with_resource["Resource"] = json!("*");
        assert_eq!(
            found(&policy(with_resource), &c, RuleId::TrustPrincipal),
            [deny("doc.Statement.Resource")]
        );
    }

    #[test]
    fn trust_principal_wildcard_refuses_anyone() {
        let c = Config::default();
        let star =
            policy(json!([{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}]));
        assert_eq!(
            found(&star, &c, RuleId::TrustPrincipalWildcard),
            [deny("doc.Statement[0].Principal")]
        );
        let listed = policy(json!([{"Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": ["arn:aws:iam::123456789012:root", "*"]}}]));
        assert_eq!(
            found(&listed, &c, RuleId::TrustPrincipalWildcard),
            [deny("doc.Statement[0].Principal.AWS[1]")]
        );
        let any_account = policy(json!({"Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": "arn:aws:iam::*:root"}}));
        assert_eq!(
            found(&any_account, &c, RuleId::TrustPrincipalWildcard),
            [deny("doc.Statement.Principal.AWS")]
        );
        let deny_everyone = policy(json!([service_statement(),
            {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"}]));
        assert!(found(&deny_everyone, &c, RuleId::TrustPrincipalWildcard).is_empty());
        let named = policy(json!([{"Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/ci"}}]));
        assert!(found(&named, &c, RuleId::TrustPrincipalWildcard).is_empty());
    }

    #[test]
    fn trust_action_allows_only_sts_assume_and_tag_actions() {
        let c = Config::default();
        let good = policy(
            json!([{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": ["STS:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity", "sts:SetContext"]}]),
        );
        assert!(found(&good, &c, RuleId::TrustAction).is_empty());
        let wildcard = policy(
            json!([{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:*"}]),
        );
        assert_eq!(
            found(&wildcard, &c, RuleId::TrustAction),
            [deny("doc.Statement[0].Action")]
        );
        let other = policy(
            json!([{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": ["sts:AssumeRole", "s3:GetObject", "*"]}]),
        );
        assert_eq!(
            found(&other, &c, RuleId::TrustAction),
            [
                deny("doc.Statement[0].Action[1]"),
                deny("doc.Statement[0].Action[2]")
            ]
        );
        let not_action = policy(
            json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
            "NotAction": "s3:*"}),
        );
        assert_eq!(
            found(&not_action, &c, RuleId::TrustAction),
            [deny("doc.Statement.NotAction")]
        );
    }

    #[test]
    fn trust_action_must_fit_the_principal_type() {
        let c = Config::default();
        let oidc_ok = policy(json!([{"Effect": "Allow", "Principal": {"Federated": OIDC},
            "Action": ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"],
            "Condition": {"StringEquals": {"x:sub": "s", "x:aud": "sts.amazonaws.com"}}}]));
        assert!(found(&oidc_ok, &c, RuleId::TrustAction).is_empty());
        let oidc_assume = policy(json!([{"Effect": "Allow", "Principal": {"Federated": OIDC},
            "Action": "sts:AssumeRole"}]));
        assert_eq!(
            found(&oidc_assume, &c, RuleId::TrustAction),
            [deny("doc.Statement[0].Action")]
        );
        let oidc_tag_only = policy(json!([{"Effect": "Allow", "Principal": {"Federated": OIDC},
            "Action": ["sts:TagSession"]}]));
        assert_eq!(
            found(&oidc_tag_only, &c, RuleId::TrustAction),
            [deny("doc.Statement[0].Action")]
        );
        let google = policy(
            json!([{"Effect": "Allow", "Principal": {"Federated": "accounts.google.com"},
            "Action": ["sts:AssumeRoleWithWebIdentity", "sts:AssumeRoleWithSAML"]}]),
        );
        assert_eq!(
            found(&google, &c, RuleId::TrustAction),
            [deny("doc.Statement[0].Action[1]")]
        );
        let saml = "arn:aws:iam::123456789012:saml-provider/Okta";
        let saml_ok = policy(json!([{"Effect": "Allow", "Principal": {"Federated": saml},
            "Action": "sts:AssumeRoleWithSAML"}]));
        assert!(found(&saml_ok, &c, RuleId::TrustAction).is_empty());
        let saml_web = policy(json!([{"Effect": "Allow", "Principal": {"Federated": saml},
            "Action": ["sts:TagSession", "sts:AssumeRoleWithWebIdentity"]}]));
        assert_eq!(
            found(&saml_web, &c, RuleId::TrustAction),
            [deny("doc.Statement[0].Action[1]")]
        );
        let service_web = policy(
            json!([{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"]}]),
        );
        assert_eq!(
            found(&service_web, &c, RuleId::TrustAction),
            [deny("doc.Statement[0].Action[1]")]
        );
        let aws_saml = policy(
            json!([{"Effect": "Allow", "Principal": {"AWS": "123456789012"},
            "Action": "sts:AssumeRoleWithSAML", "Condition": {"StringEquals": {"sts:ExternalId": "x"}}}]),
        );
        assert_eq!(
            found(&aws_saml, &c, RuleId::TrustAction),
            [deny("doc.Statement[0].Action")]
        );
    }

    #[test]
    fn trust_external_id_warns_for_other_accounts_by_default() {
        let statement = |principal: Value, condition: Value| {
            let mut s = json!({"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"});
            if !condition.is_null() {
                s["Condition"] = condition;
            }
            policy(json!([s]))
        };
        let c = Config::default();
        let root = statement(json!("arn:aws:iam::111111111111:root"), Value::Null);
        assert_eq!(
            found(&root, &c, RuleId::TrustExternalId),
            [warn("doc.Statement[0].Principal.AWS")]
        );
        let listed = statement(
            json!(["arn:aws:iam::111111111111:role/a", "222222222222"]),
            Value::Null,
        );
        assert_eq!(
            found(&listed, &c, RuleId::TrustExternalId),
            [
                warn("doc.Statement[0].Principal.AWS[0]"),
                warn("doc.Statement[0].Principal.AWS[1]")
            ]
        );
        let with_id = statement(
            json!("111111111111"),
            json!({"StringEquals": {"STS:EXTERNALID": "x"}}),
        );
        assert!(found(&with_id, &c, RuleId::TrustExternalId).is_empty());

        let trusted = Config {
            trusted_accounts: vec!["111111111111".to_owned()],
            ..Config::default()
        };
        assert!(found(&root, &trusted, RuleId::TrustExternalId).is_empty());
        assert_eq!(
            found(&listed, &trusted, RuleId::TrustExternalId),
            [warn("doc.Statement[0].Principal.AWS[1]")]
        );

        let mut strict = Config::default();
        strict
            .severities
            .insert(RuleId::TrustExternalId, Level::Deny);
        assert_eq!(
            found(&root, &strict, RuleId::TrustExternalId),
            [deny("doc.Statement[0].Principal.AWS")]
        );
        let mut off = Config::default();
        off.severities.insert(RuleId::TrustExternalId, Level::Off);
        assert!(found(&root, &off, RuleId::TrustExternalId).is_empty());
    }
}
