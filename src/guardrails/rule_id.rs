//! The stable guardrail rule IDs: the contract with users (`[rule-id]` in every finding). Pure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! rule_ids {
    ($($variant:ident => $id:literal: $doc:literal,)*) => {
        /// A guardrail rule, named by its stable ID.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum RuleId {
            $(#[doc = $doc] #[serde(rename = $id)] $variant,)*
        }

        impl RuleId {
            /// Every rule, in the order of the design's table.
            pub const ALL: &'static [RuleId] = &[$(RuleId::$variant,)*];

            /// The stable ID, e.g. `action-wildcard`.
            pub fn as_str(self) -> &'static str {
                match self { $(RuleId::$variant => $id,)* }
            }
        }

        impl FromStr for RuleId {
            type Err = UnknownRuleId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($id => Ok(RuleId::$variant),)* _ => Err(UnknownRuleId(s.to_owned())) }
            }
        }
    };
}

rule_ids! {
    Schema => "schema": "The object does not fit the CRD schema.",
    PrivilegeEscalation => "privilege-escalation": "An Allow letting the role raise its own or another principal's permissions.",
    Tenancy => "tenancy": "Something the namespace's GuardrailPolicy does not allow: a role name or path, adoption, an endpoint, a roleARN or the operator's identity.",
    WorkloadIdentity => "workload-identity": "A `workloadIdentity` that cannot be generated: no ServiceAccounts, a name that is no ServiceAccount's, IRSA without the cluster's OIDC issuer.",
    PolicyJson => "policy-json": "A policy document that is not one JSON object.",
    PolicyGrammar => "policy-grammar": "A policy document outside the IAM policy grammar.",
    PolicySize => "policy-size": "A document, string or statement list over IAM's limits, or policies over the size quota.",
    PolicySid => "policy-sid": "A Sid that is not alphanumeric or is duplicated.",
    PolicyCondition => "policy-condition": "An unknown condition operator, or `Null` with `IfExists`.",
    PolicyArn => "policy-arn": "A malformed ARN in Resource or Principal.",
    TrustPrincipal => "trust-principal": "A trust statement without Principal, with NotPrincipal, or with Resource.",
    TrustPrincipalWildcard => "trust-principal-wildcard": "A trust policy letting anyone assume the role.",
    TrustAction => "trust-action": "A trust action that is not an sts: assume/tag action or does not fit the principal.",
    TrustOidcConditions => "trust-oidc-conditions": "A web identity trust whose conditions do not restrict who may use it.",
    TrustExternalId => "trust-external-id": "Another account's principal without an `sts:ExternalId` condition.",
    ActionWildcard => "action-wildcard": "An Allow statement granting a denied action pattern.",
    PassroleWildcard => "passrole-wildcard": "`iam:PassRole` on every role.",
    NotActionAllow => "not-action-allow": "An Allow statement with NotAction or NotResource.",
    RoleName => "role-name": "A role name outside IAM's rules.",
    RolePath => "role-path": "A role path outside IAM's rules.",
    RoleDescription => "role-description": "A description outside IAM's rules.",
    MaxSessionDuration => "max-session-duration": "A maxSessionDuration outside the allowed range.",
    Tags => "tags": "Tags outside IAM's rules.",
    ManagedPolicy => "managed-policy": "A malformed, excess or denied managed policy.",
    PermissionsBoundary => "permissions-boundary": "A malformed, missing or disallowed permissions boundary.",
    InlinePolicyName => "inline-policy-name": "A malformed or duplicated inline policy name.",
    ProviderRef => "provider-ref": "A providerRef without a name or in another namespace.",
    ImmutableField => "immutable-field": "An update changing roleName, path or providerRef.",
    ProviderConfig => "provider-config": "An AWSProvider with a bad region, credentials, endpoint or roleARN.",
}

/// A rule ID that is not one of [`RuleId::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown rule id `{0}`")]
pub struct UnknownRuleId(pub String);

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::RuleId;

    #[test]
    fn there_are_29_rules_and_ids_round_trip() {
        assert_eq!(RuleId::ALL.len(), 29);
        for rule in RuleId::ALL {
            assert_eq!(rule.as_str().parse::<RuleId>().unwrap(), *rule);
        }
        assert!("no-such-rule".parse::<RuleId>().is_err());
    }
}
