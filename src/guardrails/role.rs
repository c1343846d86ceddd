//! Rules on an IAMRole's own fields — `role-name`, `role-path`, `role-description`,
//! `max-session-duration`, `tags` (in [`super::tags`]), `managed-policy`, `permissions-boundary`,
//! `inline-policy-name`, `provider-ref` — and `immutable-field` on updates. Pure.

use std::collections::HashMap;

use crate::api::{IAMRoleSpec, ProviderRef};

use super::excerpt::quote;
use super::{
    BoundaryPolicy, Config, FieldPath, Finding, RuleId, SessionRange, arn, denied_policy, tags,
};
use crate::iam::defaults;

/// IAM's limit on a role name, in characters.
const MAX_ROLE_NAME: usize = 64;
/// IAM's limit on an inline policy name, in characters.
const MAX_POLICY_NAME: usize = 128;
/// IAM's limit on a role path, in characters.
const MAX_PATH: usize = 512;
/// IAM's limit on a role description, in characters.
const MAX_DESCRIPTION: usize = 1000;
/// Longest Kubernetes object name.
const MAX_OBJECT_NAME: usize = 253;

/// Characters IAM allows in role and policy names besides ASCII letters and digits.
const NAME_PUNCTUATION: &str = "_+=,.@-";

/// Checks every field rule of an IAMRole spec; `namespace` is the object's own, when known.
pub fn check_role(
    spec: &IAMRoleSpec,
    namespace: Option<&str>,
    config: &Config,
    out: &mut Vec<Finding>,
) {
    let spec_path = FieldPath::fixed("spec");
    check_name(
        RuleId::RoleName,
        "roleName",
        &spec.role_name,
        MAX_ROLE_NAME,
        &FieldPath::fixed("spec.roleName"),
        out,
    );
    if let Some(path) = &spec.path {
        check_path(path, &FieldPath::fixed("spec.path"), out);
    }
    if let Some(description) = &spec.description {
        check_description(description, &FieldPath::fixed("spec.description"), out);
    }
    if let Some(seconds) = spec.max_session_duration {
        check_session_duration(
            seconds,
            &config.max_session_duration,
            &FieldPath::fixed("spec.maxSessionDuration"),
            out,
        );
    }
    tags::check_tags(
        spec.tags.as_ref(),
        &config.default_tags,
        &FieldPath::fixed("spec.tags"),
        out,
    );
    if let Some(arns) = &spec.managed_policy_arns {
        check_managed_policies(
            arns,
            config,
            &FieldPath::fixed("spec.managedPolicyArns"),
            out,
        );
    }
    check_boundary(
        spec.permissions_boundary.as_deref(),
        &config.permissions_boundary,
        &FieldPath::fixed("spec.permissionsBoundary"),
        out,
    );
    check_inline_policy_names(spec, &spec_path, out);
    check_provider_ref(
        &spec.provider_ref,
        namespace,
        &FieldPath::fixed("spec.providerRef"),
        out,
    );
}

/// Checks that an UPDATE keeps roleName, path and providerRef.
pub fn check_immutable(new: &IAMRoleSpec, old: &IAMRoleSpec, out: &mut Vec<Finding>) {
    let spec_path = FieldPath::root("spec");
    let mut deny = |field: &str, message: String| {
        out.push(Finding::deny(
            RuleId::ImmutableField,
            &spec_path.field(field),
            message,
        ));
    };
    if new.role_name != old.role_name {
        deny(
            "roleName",
            format!(
                "roleName cannot change from {} to {}: IAM cannot rename a role; create a new IAMRole \
                 object with the new name instead",
                quote(&old.role_name),
                quote(&new.role_name)
            ),
        );
    }
    let role_path = |spec: &IAMRoleSpec| defaults::role_path(spec.path.as_deref()).to_owned();
    if role_path(new) != role_path(old) {
        deny(
            "path",
            format!(
                "path cannot change from {} to {}: IAM cannot move a role to another path; create a new \
                 IAMRole object with the new path instead",
                quote(&role_path(old)),
                quote(&role_path(new))
            ),
        );
    }
    let (new_ref, old_ref) = (&new.provider_ref, &old.provider_ref);
    let namespace = |r: &ProviderRef| r.namespace.clone().filter(|ns| !ns.is_empty());
    let namespace_changed = matches!(
        (namespace(new_ref), namespace(old_ref)),
        (Some(a), Some(b)) if a != b
    );
    if new_ref.name != old_ref.name || namespace_changed {
        deny(
            "providerRef",
            format!(
                "providerRef cannot change from {} to {}: a new provider means a new account, so a new \
                 role; create a new IAMRole object instead",
                quote(&old_ref.name),
                quote(&new_ref.name)
            ),
        );
    }
}

/// Checks a role or inline policy name: 1–`max` of ASCII letters, digits and `_+=,.@-`.
fn check_name(
    rule: RuleId,
    field: &str,
    name: &str,
    max: usize,
    path: &FieldPath,
    out: &mut Vec<Finding>,
) {
    let allowed = |c: char| c.is_ascii_alphanumeric() || NAME_PUNCTUATION.contains(c);
    let message = if name.is_empty() {
        format!("{field} is empty; IAM needs 1–{max} letters, digits or `{NAME_PUNCTUATION}`")
    } else if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        format!(
            "{field} {} contains {}, but IAM allows only letters, digits and `{NAME_PUNCTUATION}`; rename it",
            quote(name),
            quote(bad.encode_utf8(&mut [0; 4]))
        )
    } else if name.len() > max {
        format!(
            "{field} {} is {} characters long; IAM allows at most {max}: shorten it",
            quote(name),
            name.len()
        )
    } else {
        return;
    };
    out.push(Finding::deny(rule, path, message));
}

/// `role-path`: `/`, or `/…/` of printable ASCII without spaces, at most 512 characters.
fn check_path(role_path: &str, path: &FieldPath, out: &mut Vec<Finding>) {
    let printable = role_path.bytes().all(|b| (0x21..=0x7e).contains(&b));
    let shaped = role_path == "/"
        || (role_path.len() >= 3 && role_path.starts_with('/') && role_path.ends_with('/'));
    let message = if role_path.chars().count() > MAX_PATH {
        format!(
            "path is {} characters long; IAM allows at most {MAX_PATH}: shorten it",
            role_path.chars().count()
        )
    } else if !printable || !shaped {
        format!(
            "path {} must be `/` or start and end with `/` with printable ASCII and no spaces between, \
             such as `/service-roles/`; fix it",
            quote(role_path)
        )
    } else {
        return;
    };
    out.push(Finding::deny(RuleId::RolePath, path, message));
}

/// `role-description`: at most 1000 characters of tab, newlines and printable Latin-1.
fn check_description(description: &str, path: &FieldPath, out: &mut Vec<Finding>) {
    let allowed =
        |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{a1}'..='\u{ff}');
    let length = description.chars().count();
    if length > MAX_DESCRIPTION {
        out.push(Finding::deny(
            RuleId::RoleDescription,
            path,
            format!("description is {length} characters long; IAM allows at most {MAX_DESCRIPTION}: shorten it"),
        ));
    }
    if let Some(bad) = description.chars().find(|c| !allowed(*c)) {
        out.push(Finding::deny(
            RuleId::RoleDescription,
            path,
            format!(
                "description contains {} (U+{:04X}), outside IAM's description characters (printable \
                 Latin-1, tab and line breaks); replace it",
                quote(bad.encode_utf8(&mut [0; 4])),
                u32::from(bad)
            ),
        ));
    }
}

/// `max-session-duration`: inside the guardrails' range (IAM's 3600–43200 by default).
fn check_session_duration(
    seconds: i32,
    range: &SessionRange,
    path: &FieldPath,
    out: &mut Vec<Finding>,
) {
    let seconds = i64::from(seconds);
    if seconds < range.min || seconds > range.max {
        out.push(Finding::deny(
            RuleId::MaxSessionDuration,
            path,
            format!(
                "maxSessionDuration {seconds} is outside the allowed {}–{} seconds; set a value in that range \
                 (3600 is one hour)",
                range.min, range.max
            ),
        ));
    }
}

/// `managed-policy`: well-formed policy ARNs, within the quota, not denied, not repeated.
fn check_managed_policies(
    arns: &[String],
    config: &Config,
    path: &FieldPath,
    out: &mut Vec<Finding>,
) {
    let quota = config.quotas.managed_policies;
    if arns.len() > quota {
        out.push(Finding::deny(
            RuleId::ManagedPolicy,
            path,
            format!(
                "{} managed policies are listed; the quota is {quota} per role: remove some or combine them \
                 into one customer managed policy",
                arns.len()
            ),
        ));
    }
    let mut first_index: HashMap<&str, usize> = HashMap::new();
    for (i, policy_arn) in arns.iter().enumerate() {
        let item = path.index(i);
        let mut deny =
            |message: String| out.push(Finding::deny(RuleId::ManagedPolicy, &item, message));
        if let Some(why) = not_a_policy_arn(policy_arn) {
            deny(format!(
                "{} is not a managed policy ARN ({why}); use one such as `arn:aws:iam::aws:policy/ReadOnlyAccess`",
                quote(policy_arn)
            ));
        }
        if let Some(entry) = denied_policy::denied_by(&config.denied_managed_policies, policy_arn) {
            deny(format!(
                "{} is denied by the platform guardrails (deniedManagedPolicies: {}); attach a narrower policy instead",
                quote(policy_arn),
                quote(entry)
            ));
        }
        if let Some(first) = first_index.get(policy_arn.as_str()) {
            deny(format!(
                "{} is already listed at managedPolicyArns[{first}]; remove the duplicate",
                quote(policy_arn)
            ));
        } else {
            first_index.insert(policy_arn, i);
        }
    }
}

/// Why `text` is not a concrete IAM managed policy ARN, or `None` when it is one.
fn not_a_policy_arn(text: &str) -> Option<String> {
    match arn::parse(text) {
        Ok(parsed) if parsed.is_policy() => None,
        Ok(_) => Some(
            "it does not name an IAM managed policy: arn:PARTITION:iam::ACCOUNT_ID|aws:policy/NAME"
                .to_owned(),
        ),
        Err(e) => Some(e.to_string()),
    }
}

/// `permissions-boundary`: a policy ARN; present when required; one of the allowed when listed.
fn check_boundary(
    boundary: Option<&str>,
    policy: &BoundaryPolicy,
    path: &FieldPath,
    out: &mut Vec<Finding>,
) {
    let mut deny =
        |message: String| out.push(Finding::deny(RuleId::PermissionsBoundary, path, message));
    let allowed_list = || policy.allowed.join(", ");
    let Some(boundary) = boundary.filter(|b| !b.is_empty()) else {
        if policy.required {
            let choice = if policy.allowed.is_empty() {
                String::new()
            } else {
                format!(" (one of: {})", allowed_list())
            };
            deny(format!(
                "no permissionsBoundary is set, but the platform guardrails require one; set it to a boundary \
                 policy ARN{choice}"
            ));
        }
        return;
    };
    if let Some(why) = not_a_policy_arn(boundary) {
        deny(format!(
            "permissionsBoundary {} is not a managed policy ARN ({why}); use one such as \
             `arn:aws:iam::123456789012:policy/DeveloperBoundary`",
            quote(boundary)
        ));
    } else if !policy.allowed.is_empty() && !policy.allowed.iter().any(|a| a == boundary) {
        deny(format!(
            "permissionsBoundary {} is not one of the boundaries the platform guardrails allow; use one of: {}",
            quote(boundary),
            allowed_list()
        ));
    }
}

/// `inline-policy-name`: each name valid, and no two equal ignoring case across `inlinePolicies`
/// and `inlinePolicy`.
fn check_inline_policy_names(spec: &IAMRoleSpec, spec_path: &FieldPath, out: &mut Vec<Finding>) {
    let listed = spec
        .inline_policies
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, policy)| {
            let path = spec_path
                .field("inlinePolicies")
                .index(i)
                .field("policyName");
            (path, policy.policy_name.as_str())
        });
    let single = spec.inline_policy.iter().map(|policy| {
        (
            spec_path.field("inlinePolicy").field("policyName"),
            policy.policy_name.as_str(),
        )
    });
    let mut seen: HashMap<String, FieldPath> = HashMap::new();
    for (path, name) in listed.chain(single) {
        check_name(
            RuleId::InlinePolicyName,
            "policyName",
            name,
            MAX_POLICY_NAME,
            &path,
            out,
        );
        let folded = name.to_lowercase();
        if let Some(first) = seen.get(&folded) {
            out.push(Finding::deny(
                RuleId::InlinePolicyName,
                &path,
                format!(
                    "policyName {} is already used at {first} (names compare ignoring case); rename one of them",
                    quote(name)
                ),
            ));
        } else {
            seen.insert(folded, path);
        }
    }
}

/// `provider-ref`: a name, and no namespace other than the object's own (when both are known).
fn check_provider_ref(
    provider_ref: &ProviderRef,
    namespace: Option<&str>,
    path: &FieldPath,
    out: &mut Vec<Finding>,
) {
    let name = &provider_ref.name;
    if name.is_empty() {
        out.push(Finding::deny(
            RuleId::ProviderRef,
            &path.field("name"),
            "providerRef.name is empty; name the AWSProvider in this namespace whose credentials manage the role",
        ));
    } else if name.len() > MAX_OBJECT_NAME {
        out.push(Finding::deny(
            RuleId::ProviderRef,
            &path.field("name"),
            format!(
                "providerRef.name {} is {} characters long, but Kubernetes names have at most {MAX_OBJECT_NAME}; \
                 name an existing AWSProvider",
                quote(name),
                name.len()
            ),
        ));
    }
    let referenced = provider_ref
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty());
    if let (Some(referenced), Some(own)) = (referenced, namespace.filter(|ns| !ns.is_empty()))
        && referenced != own
    {
        out.push(Finding::deny(
            RuleId::ProviderRef,
            &path.field("namespace"),
            format!(
                "providerRef.namespace {} differs from the role's namespace {}; an IAMRole may only use an \
                 AWSProvider of its own namespace: remove providerRef.namespace or create the role in {}",
                quote(referenced),
                quote(own),
                quote(referenced)
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::InlinePolicy;

    const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

    fn spec() -> IAMRoleSpec {
        IAMRoleSpec {
            provider_ref: ProviderRef {
                name: "production-aws".to_owned(),
                namespace: None,
            },
            role_name: "e2e-ec2-service-role".to_owned(),
            assume_role_policy_document: Some(TRUST.to_owned()),
            ..IAMRoleSpec::default()
        }
    }

    fn policy(name: &str) -> InlinePolicy {
        InlinePolicy {
            policy_name: name.to_owned(),
            policy_document: "{}".to_owned(),
        }
    }

    fn check_with(
        spec: &IAMRoleSpec,
        namespace: Option<&str>,
        config: &Config,
    ) -> Vec<(RuleId, String)> {
        let mut out = Vec::new();
        check_role(spec, namespace, config, &mut out);
        assert!(out.iter().all(Finding::is_deny));
        assert!(out.iter().all(|f| !f.message.contains('\n')));
        out.into_iter().map(|f| (f.rule, f.path)).collect()
    }

    fn check(spec: &IAMRoleSpec) -> Vec<(RuleId, String)> {
        check_with(spec, Some("default"), &Config::default())
    }

    fn one(rule: RuleId, path: &str) -> Vec<(RuleId, String)> {
        vec![(rule, path.to_owned())]
    }

    fn tags(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// The IAMRole specs of the user documentation, as far as these rules look at them.
    fn seed_specs() -> Vec<IAMRoleSpec> {
        let arns = |list: &[&str]| Some(list.iter().map(|a| (*a).to_owned()).collect());
        vec![
            IAMRoleSpec {
                role_name: "e2e-ec2-service-role".to_owned(),
                provider_ref: ProviderRef {
                    name: "localstack".to_owned(),
                    namespace: None,
                },
                description: Some("IAM role for EC2 instances - E2E testing".to_owned()),
                path: Some("/e2e/".to_owned()),
                max_session_duration: Some(3600),
                managed_policy_arns: arns(&[
                    "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
                    "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy",
                ]),
                tags: tags(&[
                    ("environment", "test"),
                    ("managed-by", "infra-operator"),
                    ("purpose", "e2e-testing"),
                ]),
                ..spec()
            },
            IAMRoleSpec {
                role_name: "e2e-lambda-execution-role".to_owned(),
                description: Some(
                    "Lambda execution role with custom inline policy - E2E testing".to_owned(),
                ),
                path: Some("/lambda/".to_owned()),
                max_session_duration: Some(7200),
                managed_policy_arns: arns(&[
                    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                ]),
                inline_policy: Some(policy("CustomDynamoDBAccess")),
                ..spec()
            },
            IAMRoleSpec {
                role_name: "application-service-role".to_owned(),
                path: Some("/service-roles/".to_owned()),
                managed_policy_arns: arns(&[
                    "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
                    "arn:aws:iam::aws:policy/CloudWatchLogsFullAccess",
                ]),
                inline_policies: Some(vec![
                    policy("dynamodb-access"),
                    policy("secretsmanager-access"),
                ]),
                permissions_boundary: Some("arn:aws:iam::aws:policy/PowerUserAccess".to_owned()),
                max_session_duration: Some(43200),
                tags: tags(&[
                    ("Environment", "production"),
                    ("Team", "platform"),
                    ("CostCenter", "engineering"),
                    ("ManagedBy", "infra-operator"),
                ]),
                ..spec()
            },
            IAMRoleSpec {
                role_name: "CrossAccount-Production-Access".to_owned(),
                managed_policy_arns: arns(&["arn:aws:iam::aws:policy/ReadOnlyAccess"]),
                max_session_duration: Some(28800),
                tags: tags(&[
                    ("Purpose", "cross-account-access"),
                    ("SourceAccount", "111111111111"),
                ]),
                ..spec()
            },
            IAMRoleSpec {
                role_name: "Developer-Boundary-Role".to_owned(),
                managed_policy_arns: arns(&["arn:aws:iam::aws:policy/PowerUserAccess"]),
                permissions_boundary: Some(
                    "arn:aws:iam::123456789012:policy/DeveloperBoundaryPolicy".to_owned(),
                ),
                ..spec()
            },
            IAMRoleSpec {
                role_name: "ecsTaskExecutionRole".to_owned(),
                managed_policy_arns: arns(&[
                    "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
                ]),
                inline_policies: Some(vec![policy("ecr-access"), policy("secrets-access")]),
                ..spec()
            },
            IAMRoleSpec {
                role_name: "EC2-Application-Role".to_owned(),
                managed_policy_arns: arns(&[
                    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
                    "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy",
                    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
                ]),
                inline_policies: Some(vec![policy("s3-and-dynamodb")]),
                ..spec()
            },
        ]
    }

    #[test]
    fn seed_roles_pass_the_default_guardrails() {
        for seed in seed_specs() {
            assert_eq!(check(&seed), [], "{}", seed.role_name);
            assert_eq!(
                check_with(&seed, None, &Config::default()),
                [],
                "{}",
                seed.role_name
            );
        }
    }

    #[test]
    fn role_name_is_1_to_64_iam_name_characters() {
        let named = |name: &str| IAMRoleSpec {
            role_name: name.to_owned(),
            ..spec()
        };
        assert_eq!(check(&named(&"a".repeat(64))), []);
        assert_eq!(check(&named("a_b+c=d,e.f@g-h")), []);
        for bad in [
            "a".repeat(65),
            String::new(),
            "my role".to_owned(),
            "rôle".to_owned(),
            "a/b".to_owned(),
        ] {
            assert_eq!(
                check(&named(&bad)),
                one(RuleId::RoleName, "spec.roleName"),
                "{bad}"
            );
        }
    }

    #[test]
    fn role_path_is_slash_or_slash_delimited_printable_ascii() {
        let at = |path: &str| IAMRoleSpec {
            path: Some(path.to_owned()),
            ..spec()
        };
        for ok in ["/", "/e2e/", "/a/b/", "/!~/", "///"] {
            assert_eq!(check(&at(ok)), [], "{ok}");
        }
        let longest = format!("/{}/", "a".repeat(510));
        assert_eq!(check(&at(&longest)), []);
        let too_long = format!("/{}/", "a".repeat(511));
        for bad in [
            "",
            "e2e",
            "/e2e",
            "e2e/",
            "//",
            "/a b/",
            "/ä/",
            too_long.as_str(),
        ] {
            assert_eq!(check(&at(bad)), one(RuleId::RolePath, "spec.path"), "{bad}");
        }
    }

    #[test]
    fn description_is_at_most_1000_iam_characters() {
        let described = |d: &str| IAMRoleSpec {
            description: Some(d.to_owned()),
            ..spec()
        };
        assert_eq!(check(&described(&"d".repeat(1000))), []);
        assert_eq!(check(&described(&"é".repeat(1000))), []);
        assert_eq!(check(&described("line one\nline two\ttab\r¡ÿ")), []);
        let path = "spec.description";
        assert_eq!(
            check(&described(&"d".repeat(1001))),
            one(RuleId::RoleDescription, path)
        );
        for bad in [
            "en – dash",
            "emoji 🚀",
            "nul \u{0}",
            "del \u{7f}",
            "nbsp \u{a0}",
        ] {
            assert_eq!(
                check(&described(bad)),
                one(RuleId::RoleDescription, path),
                "{bad}"
            );
        }
    }

    #[test]
    fn session_duration_is_inside_the_configured_range() {
        let lasting = |s: i32| IAMRoleSpec {
            max_session_duration: Some(s),
            ..spec()
        };
        for ok in [3600, 43200, 7200] {
            assert_eq!(check(&lasting(ok)), [], "{ok}");
        }
        let path = "spec.maxSessionDuration";
        for bad in [3599, 43201, 900, 0, -1, i32::MAX] {
            assert_eq!(
                check(&lasting(bad)),
                one(RuleId::MaxSessionDuration, path),
                "{bad}"
            );
        }
        let narrow = Config {
            max_session_duration: SessionRange {
                min: 3600,
                max: 7200,
            },
            ..Config::default()
        };
        assert_eq!(check_with(&lasting(7200), None, &narrow), []);
        assert_eq!(
            check_with(&lasting(7201), None, &narrow),
            one(RuleId::MaxSessionDuration, path)
        );
    }

    #[test]
    fn tags_are_checked_with_the_default_tags_and_the_operators() {
        let many: BTreeMap<String, String> =
            (0..48).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert_eq!(
            check(&IAMRoleSpec {
                tags: Some(many.clone()),
                ..spec()
            }),
            []
        );
        let config = Config {
            default_tags: BTreeMap::from([("cost-center".to_owned(), "42".to_owned())]),
            ..Config::default()
        };
        let tagged = IAMRoleSpec {
            tags: Some(many),
            ..spec()
        };
        assert_eq!(
            check_with(&tagged, None, &config),
            one(RuleId::Tags, "spec.tags")
        );
        let bad = IAMRoleSpec {
            tags: tags(&[("aws:team", "x")]),
            ..spec()
        };
        assert_eq!(check(&bad), one(RuleId::Tags, "spec.tags[aws:team]"));
    }

    #[test]
    fn managed_policies_are_policy_arns_within_quota_not_denied_not_repeated() {
        let attached = |arns: &[&str]| IAMRoleSpec {
            managed_policy_arns: Some(arns.iter().map(|a| (*a).to_owned()).collect()),
            ..spec()
        };
        assert_eq!(
            check(&attached(&[
                "arn:aws:iam::123456789012:policy/team/Custom",
                "arn:aws-cn:iam::aws:policy/ReadOnlyAccess"
            ])),
            []
        );
        for bad in [
            "AmazonS3ReadOnlyAccess",
            "arn:aws:iam::aws:role/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::aws:policy/*",
            "arn:aws:iam::12345:policy/x",
        ] {
            let spec = attached(&["arn:aws:iam::aws:policy/ReadOnlyAccess", bad]);
            assert_eq!(
                check(&spec),
                one(RuleId::ManagedPolicy, "spec.managedPolicyArns[1]"),
                "{bad}"
            );
        }
        let admin = attached(&["arn:aws:iam::aws:policy/AdministratorAccess"]);
        assert_eq!(
            check(&admin),
            one(RuleId::ManagedPolicy, "spec.managedPolicyArns[0]")
        );
        let repeated = attached(&[
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
        ]);
        assert_eq!(
            check(&repeated),
            one(RuleId::ManagedPolicy, "spec.managedPolicyArns[2]")
        );
        let arns: Vec<String> = (0..11)
            .map(|i| format!("arn:aws:iam::123456789012:policy/p{i}"))
            .collect();
        let refs: Vec<&str> = arns.iter().map(String::as_str).collect();
        assert_eq!(check(&attached(&refs[..10])), []);
        assert_eq!(
            check(&attached(&refs)),
            one(RuleId::ManagedPolicy, "spec.managedPolicyArns")
        );
        let lower = Config {
            quotas: crate::guardrails::Quotas {
                managed_policies: 2,
                ..Default::default()
            },
            ..Config::default()
        };
        assert_eq!(
            check_with(&attached(&refs[..3]), None, &lower),
            one(RuleId::ManagedPolicy, "spec.managedPolicyArns")
        );
    }

    #[test]
    fn permissions_boundary_is_a_policy_arn_and_follows_the_guardrails() {
        let path = "spec.permissionsBoundary";
        let bounded = |b: Option<&str>| IAMRoleSpec {
            permissions_boundary: b.map(str::to_owned),
            ..spec()
        };
        assert_eq!(
            check(&bounded(Some("arn:aws:iam::123456789012:role/x"))),
            one(RuleId::PermissionsBoundary, path)
        );
        assert_eq!(
            check(&bounded(Some("PowerUserAccess"))),
            one(RuleId::PermissionsBoundary, path)
        );
        assert_eq!(check(&bounded(Some(""))), []);
        let required = Config {
            permissions_boundary: BoundaryPolicy {
                required: true,
                allowed: vec![
                    "arn:aws:iam::123456789012:policy/DeveloperBoundaryPolicy".to_owned(),
                ],
            },
            ..Config::default()
        };
        assert_eq!(
            check_with(&bounded(None), None, &required),
            one(RuleId::PermissionsBoundary, path)
        );
        assert_eq!(
            check_with(&bounded(Some("")), None, &required),
            one(RuleId::PermissionsBoundary, path)
        );
        let other = bounded(Some("arn:aws:iam::aws:policy/PowerUserAccess"));
        assert_eq!(
            check_with(&other, None, &required),
            one(RuleId::PermissionsBoundary, path)
        );
        let listed = bounded(Some(
            "arn:aws:iam::123456789012:policy/DeveloperBoundaryPolicy",
        ));
        assert_eq!(check_with(&listed, None, &required), []);
    }

    #[test]
    fn inline_policy_names_are_valid_and_unique_ignoring_case() {
        let named = |names: &[&str], single: Option<&str>| IAMRoleSpec {
            inline_policies: Some(names.iter().map(|n| policy(n)).collect()),
            inline_policy: single.map(policy),
            ..spec()
        };
        let longest = "p".repeat(128);
        assert_eq!(check(&named(&["a", &longest], Some("b"))), []);
        let too_long = "p".repeat(129);
        for bad in ["", "has space", too_long.as_str(), "a/b"] {
            assert_eq!(
                check(&named(&["ok", bad], None)),
                one(
                    RuleId::InlinePolicyName,
                    "spec.inlinePolicies[1].policyName"
                ),
                "{bad}"
            );
        }
        assert_eq!(
            check(&named(&[], Some("bad name"))),
            one(RuleId::InlinePolicyName, "spec.inlinePolicy.policyName")
        );
        assert_eq!(
            check(&named(&["S3-Access", "s3-access"], None)),
            one(
                RuleId::InlinePolicyName,
                "spec.inlinePolicies[1].policyName"
            )
        );
        assert_eq!(
            check(&named(&["data"], Some("DATA"))),
            one(RuleId::InlinePolicyName, "spec.inlinePolicy.policyName")
        );
    }

    #[test]
    fn provider_ref_needs_a_name_in_the_roles_namespace() {
        let referencing = |name: &str, ns: Option<&str>| IAMRoleSpec {
            provider_ref: ProviderRef {
                name: name.to_owned(),
                namespace: ns.map(str::to_owned),
            },
            ..spec()
        };
        assert_eq!(
            check(&referencing("", None)),
            one(RuleId::ProviderRef, "spec.providerRef.name")
        );
        assert_eq!(
            check(&referencing(&"p".repeat(254), None)),
            one(RuleId::ProviderRef, "spec.providerRef.name")
        );
        assert_eq!(check(&referencing("aws", Some("default"))), []);
        assert_eq!(check(&referencing("aws", Some(""))), []);
        let elsewhere = referencing("aws", Some("kube-system"));
        assert_eq!(
            check(&elsewhere),
            one(RuleId::ProviderRef, "spec.providerRef.namespace")
        );
        assert_eq!(check_with(&elsewhere, None, &Config::default()), []);
    }

    fn changes(new: &IAMRoleSpec, old: &IAMRoleSpec) -> Vec<(RuleId, String)> {
        let mut out = Vec::new();
        check_immutable(new, old, &mut out);
        assert!(out.iter().all(Finding::is_deny));
        out.into_iter().map(|f| (f.rule, f.path)).collect()
    }

    #[test]
    fn updates_keep_role_name_path_and_provider() {
        let old = IAMRoleSpec {
            path: Some("/e2e/".to_owned()),
            ..spec()
        };
        let edited = IAMRoleSpec {
            description: Some("new words".to_owned()),
            max_session_duration: Some(7200),
            ..old.clone()
        };
        assert_eq!(changes(&edited, &old), []);
        let renamed = IAMRoleSpec {
            role_name: "other".to_owned(),
            ..old.clone()
        };
        assert_eq!(
            changes(&renamed, &old),
            one(RuleId::ImmutableField, "spec.roleName")
        );
        let moved = IAMRoleSpec {
            path: Some("/other/".to_owned()),
            ..old.clone()
        };
        assert_eq!(
            changes(&moved, &old),
            one(RuleId::ImmutableField, "spec.path")
        );
        let rehomed = IAMRoleSpec {
            provider_ref: ProviderRef {
                name: "other-account".to_owned(),
                namespace: None,
            },
            ..old.clone()
        };
        assert_eq!(
            changes(&rehomed, &old),
            one(RuleId::ImmutableField, "spec.providerRef")
        );
        let mut out = Vec::new();
        check_immutable(&renamed, &old, &mut out);
        assert!(
            out[0].message.contains("IAM cannot rename a role"),
            "{}",
            out[0].message
        );
    }

    #[test]
    fn defaulted_path_and_namespace_are_not_changes() {
        let implicit = spec();
        let explicit = IAMRoleSpec {
            path: Some("/".to_owned()),
            provider_ref: ProviderRef {
                name: "production-aws".to_owned(),
                namespace: Some("default".to_owned()),
            },
            ..spec()
        };
        assert_eq!(changes(&explicit, &implicit), []);
        assert_eq!(changes(&implicit, &explicit), []);
        let other_ns = IAMRoleSpec {
            provider_ref: ProviderRef {
                name: "production-aws".to_owned(),
                namespace: Some("team-a".to_owned()),
            },
            ..spec()
        };
        assert_eq!(
            changes(&other_ns, &explicit),
            one(RuleId::ImmutableField, "spec.providerRef")
        );
    }
}
