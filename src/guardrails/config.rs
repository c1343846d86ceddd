//! The platform team's guardrail settings — the spec of a GuardrailPolicy, of which
//! `policies/guardrails.yaml` is the default one: severities of the configurable rules, quotas,
//! lists, limits and tenancy. Parsing and checking only; reading the file is the caller's job.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tenancy::Tenancy;
use super::{RuleId, Severity, denied_policy};
use crate::api::API_VERSION;
use crate::iam::SESSION_DURATION_RANGE;

/// IAM's own ceiling for a trust policy (after a quota increase), in non-whitespace characters.
pub const IAM_MAX_TRUST_POLICY_SIZE: usize = 4096;
/// IAM's ceiling for a role's inline policies together, in non-whitespace characters.
pub const IAM_MAX_INLINE_POLICIES_SIZE: usize = 10240;
/// IAM's ceiling for managed policies attached to one role (after a quota increase).
pub const IAM_MAX_MANAGED_POLICIES: usize = 20;
/// IAM's ceiling for one policy document, in characters counting whitespace.
pub const IAM_MAX_DOCUMENT_LENGTH: usize = 131_072;
/// The longest action name (or pattern) the engine reads; IAM's own names are far shorter.
pub const MAX_ACTION_LENGTH: usize = 128;
/// IAM's ceiling for an ARN, in characters.
pub const IAM_MAX_ARN_LENGTH: usize = 2048;
/// The rules whose severity the platform team may change with `severities:`.
pub const CONFIGURABLE_RULES: &[RuleId] = &[
    RuleId::PrivilegeEscalation,
    RuleId::TrustExternalId,
    RuleId::NotActionAllow,
];
/// The Kubernetes service account the operator runs as (`manifests/deploy`), as an OIDC `:sub` value.
pub const OPERATOR_SERVICE_ACCOUNT: &str =
    "system:serviceaccount:infra-operator-system:infra-operator-controller-manager";

/// The defaults, as committed in `policies/guardrails.yaml`.
pub const DEFAULT_GUARDRAILS_YAML: &str = include_str!("../../policies/guardrails.yaml");

/// Severity a configurable rule (or a class of findings) is given, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Refuse the object.
    Deny,
    /// Admit it with a warning.
    Warn,
    /// Do not report.
    #[serde(alias = "allow")]
    Off,
}

impl JsonSchema for Level {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Level".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "enum": ["deny", "warn", "off", "allow"]})
    }
}

impl Level {
    /// The severity of a finding at this level, `None` when the rule is off.
    pub fn severity(self) -> Option<Severity> {
        match self {
            Level::Deny => Some(Severity::Deny),
            Level::Warn => Some(Severity::Warn),
            Level::Off => None,
        }
    }
}

/// Guardrail settings. Every field has the default of DESIGN.md, so an empty file is valid. Unknown
/// settings are refused by [`Config::from_yaml`] and, in a GuardrailPolicy, by the `schema` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Config {
    /// Severity of each configurable rule: privilege-escalation, trust-external-id,
    /// not-action-allow (deny, warn or off).
    #[schemars(with = "BTreeMap<String, Level>")]
    pub severities: BTreeMap<RuleId, Level>,
    /// Size and count quotas.
    pub quotas: Quotas,
    /// Allowed range of `maxSessionDuration` (may only narrow IAM's 3600–43200).
    pub max_session_duration: SessionRange,
    /// Which action patterns an Allow statement may grant.
    pub action_wildcard: ActionWildcard,
    /// Managed policies no role may attach: a policy name (denied in every partition and account) or
    /// a policy ARN (denied in every partition).
    pub denied_managed_policies: Vec<String>,
    /// Settings of the `privilege-escalation` rule.
    pub privilege_escalation: EscalationPolicy,
    /// Permissions boundary requirements.
    pub permissions_boundary: BoundaryPolicy,
    /// Tags the mutating webhook adds to every IAMRole (the role's own tags win).
    pub default_tags: BTreeMap<String, String>,
    /// The organisation's own account IDs: their principals need no `sts:ExternalId` (`trust-external-id`).
    pub trusted_accounts: Vec<String>,
    /// What the governed namespaces may reach through the operator.
    pub tenancy: Tenancy,
}

/// Size and count quotas (may be lowered; raised only up to IAM's ceilings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Quotas {
    /// Trust policy size in non-whitespace characters.
    pub trust_policy_size: usize,
    /// Inline policies of one role together, in non-whitespace characters.
    pub inline_policies_size: usize,
    /// Managed policies attached to one role.
    pub managed_policies: usize,
}

/// Allowed range of `maxSessionDuration`, in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SessionRange {
    /// Smallest allowed value.
    pub min: i64,
    /// Largest allowed value.
    pub max: i64,
}

/// Settings of the `action-wildcard` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ActionWildcard {
    /// Action patterns an Allow statement may never grant (compared case-insensitively).
    pub denied_actions: Vec<String>,
    /// What a service-wide wildcard such as `s3:*` gets: `deny`, `warn` or `allow`.
    pub service_wildcards: Level,
    /// Services whose wildcard (`s3:*`) is always allowed, e.g. `s3`.
    pub allowed_services: Vec<String>,
}

/// Settings of the `privilege-escalation` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EscalationPolicy {
    /// OIDC `:sub` values (Kubernetes service accounts) of the identities whose job is managing roles,
    /// such as the operator itself: a role that only they can assume may change other roles' policies.
    pub role_managers: Vec<String>,
}

impl Default for EscalationPolicy {
    fn default() -> Self {
        EscalationPolicy {
            role_managers: vec![OPERATOR_SERVICE_ACCOUNT.to_owned()],
        }
    }
}

/// Settings of the `permissions-boundary` rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BoundaryPolicy {
    /// Whether every role must have a permissions boundary.
    pub required: bool,
    /// When not empty, the only boundaries allowed.
    pub allowed: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            severities: BTreeMap::from([
                (RuleId::PrivilegeEscalation, Level::Deny),
                (RuleId::TrustExternalId, Level::Warn),
                (RuleId::NotActionAllow, Level::Warn),
            ]),
            quotas: Quotas::default(),
            max_session_duration: SessionRange::default(),
            action_wildcard: ActionWildcard::default(),
            denied_managed_policies: ["AdministratorAccess", "IAMFullAccess"]
                .map(str::to_owned)
                .to_vec(),
            privilege_escalation: EscalationPolicy::default(),
            permissions_boundary: BoundaryPolicy::default(),
            default_tags: BTreeMap::new(),
            trusted_accounts: Vec::new(),
            tenancy: Tenancy::default(),
        }
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            trust_policy_size: 2048,
            inline_policies_size: IAM_MAX_INLINE_POLICIES_SIZE,
            managed_policies: 10,
        }
    }
}

impl Default for SessionRange {
    fn default() -> Self {
        SessionRange {
            min: SESSION_DURATION_RANGE.0,
            max: SESSION_DURATION_RANGE.1,
        }
    }
}

impl Default for ActionWildcard {
    fn default() -> Self {
        ActionWildcard {
            denied_actions: ["*", "*:*", "iam:*", "sts:*", "organizations:*"]
                .map(str::to_owned)
                .to_vec(),
            service_wildcards: Level::Warn,
            allowed_services: Vec::new(),
        }
    }
}

/// Why a guardrails file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML of the expected shape.
    #[error("guardrails file is not valid: {0}")]
    Parse(String),
    /// A setting outside what IAM allows or what this engine supports.
    #[error("guardrails file: {field}: {message}")]
    Invalid {
        /// The offending setting.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The fields of a GuardrailPolicy's spec that choose namespaces rather than set guardrails.
const SELECTION_FIELDS: [&str; 2] = ["namespaceSelector", "priority"];

impl Config {
    /// Parses and checks a guardrails file: a GuardrailPolicy document, or its spec alone.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let parse = |e: &dyn std::fmt::Display| ConfigError::Parse(e.to_string());
        let document: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_norway::from_str(text).map_err(|e| parse(&e))?
        };
        let settings = match document.get("kind") {
            None => document,
            Some(kind) if kind == "GuardrailPolicy" && document["apiVersion"] == API_VERSION => {
                return Config::from_spec(document.get("spec").unwrap_or(&Value::Null));
            }
            Some(kind) => {
                return Err(parse(&format!(
                    "a guardrails file holds a {API_VERSION} GuardrailPolicy (or its spec), not {kind}"
                )));
            }
        };
        Config::from_spec(&settings)
    }

    /// Reads and checks the settings of a GuardrailPolicy's spec (its selection fields aside).
    pub fn from_spec(spec: &Value) -> Result<Self, ConfigError> {
        let mut settings = match spec {
            Value::Null => Value::Object(Default::default()),
            other => other.clone(),
        };
        if let Some(fields) = settings.as_object_mut() {
            for field in SELECTION_FIELDS {
                fields.remove(field);
            }
        }
        let known = serde_json::to_value(Config::default()).unwrap_or_default();
        if let (Some(given), Some(known)) = (settings.as_object(), known.as_object())
            && let Some(unknown) = given.keys().find(|k| !known.contains_key(k.as_str()))
        {
            return Err(ConfigError::Parse(format!(
                "unknown setting `{unknown}`; the settings are {}",
                known
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let config: Config = serde_path_to_error::deserialize(settings)
            .map_err(|e| ConfigError::Parse(format!("{}: {}", e.path(), e.inner())))?;
        config.check()?;
        Ok(config)
    }

    /// The committed defaults of `policies/guardrails.yaml`.
    pub fn builtin() -> Self {
        Config::from_yaml(DEFAULT_GUARDRAILS_YAML).unwrap_or_default()
    }

    /// The level of a configurable rule (deny when not set).
    pub fn level(&self, rule: RuleId) -> Level {
        self.severities.get(&rule).copied().unwrap_or(Level::Deny)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            field: field.to_owned(),
            message,
        };
        if let Some(rule) = self
            .severities
            .keys()
            .find(|r| !CONFIGURABLE_RULES.contains(r))
        {
            return Err(invalid(
                &format!("severities.{rule}"),
                format!(
                    "only {} can be reconfigured; IAM limits and the other rules always deny",
                    CONFIGURABLE_RULES
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let q = &self.quotas;
        if q.trust_policy_size == 0 || q.trust_policy_size > IAM_MAX_TRUST_POLICY_SIZE {
            return Err(invalid(
                "quotas.trustPolicySize",
                format!("must be 1–{IAM_MAX_TRUST_POLICY_SIZE}"),
            ));
        }
        if q.inline_policies_size == 0 || q.inline_policies_size > IAM_MAX_INLINE_POLICIES_SIZE {
            return Err(invalid(
                "quotas.inlinePoliciesSize",
                format!("must be 1–{IAM_MAX_INLINE_POLICIES_SIZE}"),
            ));
        }
        if q.managed_policies > IAM_MAX_MANAGED_POLICIES {
            return Err(invalid(
                "quotas.managedPolicies",
                format!("must be 0–{IAM_MAX_MANAGED_POLICIES}"),
            ));
        }
        let r = &self.max_session_duration;
        let (lo, hi) = SESSION_DURATION_RANGE;
        if r.min < lo || r.max > hi || r.min > r.max {
            return Err(invalid(
                "maxSessionDuration",
                format!("min and max must satisfy {lo} <= min <= max <= {hi}"),
            ));
        }
        for (i, entry) in self.denied_managed_policies.iter().enumerate() {
            if let Some(problem) = denied_policy::entry_problem(entry) {
                return Err(invalid(
                    &format!("deniedManagedPolicies[{i}]"),
                    format!("{entry:?} {problem}"),
                ));
            }
        }
        for (i, action) in self.action_wildcard.denied_actions.iter().enumerate() {
            if action.is_empty() || action.chars().count() > MAX_ACTION_LENGTH {
                return Err(invalid(
                    &format!("actionWildcard.deniedActions[{i}]"),
                    format!("must be an action pattern of 1–{MAX_ACTION_LENGTH} characters"),
                ));
            }
        }
        if let Some(i) = self
            .privilege_escalation
            .role_managers
            .iter()
            .position(String::is_empty)
        {
            return Err(invalid(
                &format!("privilegeEscalation.roleManagers[{i}]"),
                "must be an OIDC subject such as system:serviceaccount:NAMESPACE:NAME".to_owned(),
            ));
        }
        if let Some((field, message)) = self.tenancy.problem() {
            return Err(invalid(&field, message));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_defaults_equal_the_designed_ones() {
        let committed = Config::from_yaml(DEFAULT_GUARDRAILS_YAML).expect("committed file parses");
        assert_eq!(committed, Config::default());
    }

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(Config::from_yaml("").unwrap(), Config::default());
    }

    #[test]
    fn iam_limits_cannot_be_switched_off_or_widened() {
        let off = "severities:\n  action-wildcard: off\n";
        assert!(matches!(
            Config::from_yaml(off),
            Err(ConfigError::Invalid { .. })
        ));
        let wide = "maxSessionDuration: {min: 900, max: 43200}\n";
        assert!(Config::from_yaml(wide).is_err());
        let big = "quotas: {trustPolicySize: 9000}\n";
        assert!(Config::from_yaml(big).is_err());
    }

    #[test]
    fn configurable_rules_can_be_raised_or_lowered() {
        let c =
            Config::from_yaml("severities:\n  trust-external-id: deny\n  not-action-allow: off\n")
                .unwrap();
        assert_eq!(c.level(RuleId::TrustExternalId), Level::Deny);
        assert_eq!(c.level(RuleId::NotActionAllow), Level::Off);
    }

    #[test]
    fn privilege_escalation_is_configurable_and_denies_by_default() {
        assert_eq!(
            Config::default().level(RuleId::PrivilegeEscalation),
            Level::Deny
        );
        assert_eq!(
            Config::from_yaml("quotas: {}\n")
                .unwrap()
                .level(RuleId::PrivilegeEscalation),
            Level::Deny
        );
        let warn = Config::from_yaml("severities:\n  privilege-escalation: warn\n").unwrap();
        assert_eq!(warn.level(RuleId::PrivilegeEscalation), Level::Warn);
        let none = Config::from_yaml("privilegeEscalation: {roleManagers: []}\n").unwrap();
        assert!(none.privilege_escalation.role_managers.is_empty());
        assert!(Config::from_yaml("privilegeEscalation: {roleManagers: [\"\"]}\n").is_err());
    }

    #[test]
    fn denied_lists_hold_names_arns_and_bounded_patterns() {
        let c = Config::from_yaml(
            "deniedManagedPolicies: [PowerUserAccess, \"arn:aws:iam::123456789012:policy/BreakGlass\"]\n",
        )
        .unwrap();
        assert_eq!(c.denied_managed_policies.len(), 2);
        for bad in [
            "deniedManagedPolicies: [\"Power User\"]\n",
            "deniedManagedPolicies: [\"arn:aws:iam::123456789012:role/x\"]\n",
            "actionWildcard: {deniedActions: [\"\"]}\n",
        ] {
            assert!(
                matches!(Config::from_yaml(bad), Err(ConfigError::Invalid { .. })),
                "{bad}"
            );
        }
        let long = format!(
            "actionWildcard: {{deniedActions: [\"{}\"]}}\n",
            "a".repeat(129)
        );
        assert!(Config::from_yaml(&long).is_err());
    }

    #[test]
    fn a_guardrail_policy_document_is_read_like_its_spec() {
        let document = "apiVersion: aws-infra-operator.runner.codes/v1alpha1\nkind: GuardrailPolicy\n\
                        metadata: {name: team}\nspec:\n  priority: 5\n  namespaceSelector: {}\n  \
                        tenancy: {roleNames: [\"{namespace}-*\"]}\n";
        let config = Config::from_yaml(document).unwrap();
        assert_eq!(config.tenancy.role_names, ["{namespace}-*"]);
        assert!(Config::from_yaml("apiVersion: v1\nkind: ConfigMap\n").is_err());
        let bad = document.replace("{namespace}-*", "{team}-*");
        match Config::from_yaml(&bad) {
            Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, "tenancy.roleNames[0]"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_settings_are_refused() {
        assert!(matches!(
            Config::from_yaml("quotaz: {}\n"),
            Err(ConfigError::Parse(_))
        ));
    }
}
