//! The status of IAMRole and AWSProvider objects, computed from the outcome of a reconcile, and the
//! time-insensitive comparison that decides whether it needs writing. Pure, no I/O.
//!
//! A condition keeps its previous `lastTransitionTime` while its status, reason and message stay the
//! same, so recomputing the status of an unchanged object yields the stored status again.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::api::{AWSProviderStatus, IAMRoleStatus};
use crate::iam::RoleIdentity;

/// Condition type: the resource exists and matches its spec (for a provider: its credentials work).
pub const READY: &str = "Ready";
/// Condition type: the last reconcile of an IAMRole succeeded.
pub const SYNCED: &str = "Synced";
/// Condition type (and reason) on an AWSProvider whose deletion waits for the IAMRoles using it.
pub const IN_USE: &str = "InUse";

/// Condition type (and reason) on an IAMRole whose spec, applied before, the guardrails refuse now.
pub const GUARDRAIL_VIOLATION: &str = "GuardrailViolation";
/// Reason of the `GuardrailViolation` condition and of its Warning Event.
pub const REASON_GUARDRAIL_VIOLATION: &str = "GuardrailViolation";

/// Reason of `Ready=True` on an IAMRole.
pub const REASON_AVAILABLE: &str = "Available";
/// Reason of `Synced=True` on an IAMRole.
pub const REASON_RECONCILE_SUCCESS: &str = "ReconcileSuccess";
/// Reason of `Ready=True` on an AWSProvider.
pub const REASON_AUTHENTICATED: &str = "Authenticated";
/// Reason used when the one given is not a valid condition reason.
pub const REASON_FALLBACK: &str = "Error";

/// Kubernetes' limit on a condition reason, in characters.
const MAX_REASON_LEN: usize = 1024;
/// Kubernetes' limit on a condition message, in bytes.
const MAX_MESSAGE_LEN: usize = 32768;

/// How a reconcile of an IAMRole ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleOutcome {
    /// The role exists and matches the spec.
    Synced(RoleIdentity),
    /// The role could not be brought to the spec (an error, a foreign role, a provider not ready…).
    NotSynced {
        /// The role, when it was seen; `None` keeps what the previous status said.
        role: Option<RoleIdentity>,
        /// PascalCase reason (the error's `reason()`).
        reason: String,
        /// What happened and what to do, for people.
        message: String,
    },
}

/// How a check of an AWSProvider's credentials ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderOutcome {
    /// STS `GetCallerIdentity` succeeded.
    Authenticated {
        /// The account the credentials belong to.
        account_id: String,
        /// ARN of the caller identity.
        caller_identity: String,
    },
    /// The credentials could not be used.
    Failed {
        /// PascalCase reason (the error's `reason()`).
        reason: String,
        /// What happened and what to do, for people; never a secret.
        message: String,
    },
}

/// The status of an IAMRole at `generation` after `outcome`, `previous` being the stored status.
/// `attachedPolicyArns` is carried over from `previous`; the caller records what it attached.
pub fn role_status(
    previous: Option<&IAMRoleStatus>,
    outcome: &RoleOutcome,
    generation: Option<i64>,
    now: &Time,
) -> IAMRoleStatus {
    let old_conditions = previous.map_or(&[][..], |p| p.conditions.as_slice());
    let make = |type_: &str, ok: bool, reason: &str, message: String| {
        condition(old_conditions, type_, ok, reason, message, generation, now)
    };
    let (role, conditions) = match outcome {
        RoleOutcome::Synced(role) => (
            Some(role),
            vec![
                make(
                    READY,
                    true,
                    REASON_AVAILABLE,
                    format!("IAM role {} exists and matches the spec", role.arn),
                ),
                make(
                    SYNCED,
                    true,
                    REASON_RECONCILE_SUCCESS,
                    "the IAM role was reconciled with the spec".to_owned(),
                ),
            ],
        ),
        RoleOutcome::NotSynced {
            role,
            reason,
            message,
        } => (
            role.as_ref(),
            vec![
                make(READY, false, reason, message.clone()),
                make(SYNCED, false, reason, message.clone()),
            ],
        ),
    };
    let kept =
        |field: fn(&IAMRoleStatus) -> &Option<String>| previous.and_then(|p| field(p).clone());
    IAMRoleStatus {
        role_arn: role
            .map(|r| r.arn.clone())
            .or_else(|| kept(|p| &p.role_arn)),
        role_id: role
            .map(|r| r.role_id.clone())
            .or_else(|| kept(|p| &p.role_id)),
        create_date: role
            .map(|r| r.create_date.clone())
            .or_else(|| kept(|p| &p.create_date)),
        ready: matches!(outcome, RoleOutcome::Synced(_)),
        conditions,
        observed_generation: generation,
        applied_generation: match outcome {
            RoleOutcome::Synced(_) => generation,
            RoleOutcome::NotSynced { .. } => previous.and_then(|p| p.applied_generation),
        },
        workload_identity: previous.and_then(|p| p.workload_identity.clone()),
        attached_policy_arns: previous
            .map(|p| p.attached_policy_arns.clone())
            .unwrap_or_default(),
    }
}

/// Adds the `GuardrailViolation` condition (status True, the findings as message) to a status.
pub fn add_violation(
    status: &mut IAMRoleStatus,
    previous: Option<&IAMRoleStatus>,
    findings: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let old_conditions = previous.map_or(&[][..], |p| p.conditions.as_slice());
    status.conditions.push(condition(
        old_conditions,
        GUARDRAIL_VIOLATION,
        true,
        REASON_GUARDRAIL_VIOLATION,
        format!(
            "the guardrails governing this namespace refuse this spec, which was applied before; \
             the role keeps being reconciled: {findings}"
        ),
        generation,
        now,
    ));
}

/// The status of an AWSProvider at `generation` after `outcome`, `previous` being the stored status.
///
/// `lastAuthenticationTime` is set to `now` when the credentials start working (or start naming
/// another identity) and kept while they keep working, so that re-checking working credentials does
/// not change the status; after a failure the last known identity and time are kept.
pub fn provider_status(
    previous: Option<&AWSProviderStatus>,
    outcome: &ProviderOutcome,
    generation: Option<i64>,
    now: &Time,
) -> AWSProviderStatus {
    let old_conditions = previous.map_or(&[][..], |p| p.conditions.as_slice());
    match outcome {
        ProviderOutcome::Authenticated {
            account_id,
            caller_identity,
        } => {
            let unchanged = previous.is_some_and(|p| {
                p.ready
                    && p.account_id.as_ref() == Some(account_id)
                    && p.caller_identity.as_ref() == Some(caller_identity)
            });
            let last_authentication_time = previous
                .filter(|_| unchanged)
                .and_then(|p| p.last_authentication_time.clone())
                .unwrap_or_else(|| rfc3339(now));
            let message = format!("authenticated as {caller_identity} in account {account_id}");
            AWSProviderStatus {
                ready: true,
                account_id: Some(account_id.clone()),
                caller_identity: Some(caller_identity.clone()),
                last_authentication_time: Some(last_authentication_time),
                conditions: vec![condition(
                    old_conditions,
                    READY,
                    true,
                    REASON_AUTHENTICATED,
                    message,
                    generation,
                    now,
                )],
                observed_generation: generation,
            }
        }
        ProviderOutcome::Failed { reason, message } => AWSProviderStatus {
            ready: false,
            account_id: previous.and_then(|p| p.account_id.clone()),
            caller_identity: previous.and_then(|p| p.caller_identity.clone()),
            last_authentication_time: previous.and_then(|p| p.last_authentication_time.clone()),
            conditions: vec![condition(
                old_conditions,
                READY,
                false,
                reason,
                message.clone(),
                generation,
                now,
            )],
            observed_generation: generation,
        },
    }
}

/// The status of an AWSProvider being deleted while `dependents` (IAMRoles, `namespace/name`)
/// still use it: everything `previous` said, plus an `InUse` condition naming how many and which.
pub fn provider_in_use_status(
    previous: Option<&AWSProviderStatus>,
    dependents: &[String],
    generation: Option<i64>,
    now: &Time,
) -> AWSProviderStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let shown: Vec<&str> = dependents.iter().take(10).map(String::as_str).collect();
    let more = dependents.len().saturating_sub(shown.len());
    let message = format!(
        "deletion waits for {} IAMRole(s) that still use this provider: {}{}; they are deleted \
         (or released with deletionPolicy Retain) first, with this provider's credentials",
        dependents.len(),
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    let in_use = condition(
        &status.conditions,
        IN_USE,
        true,
        IN_USE,
        message,
        generation,
        now,
    );
    status.conditions.retain(|c| c.type_ != IN_USE);
    status.conditions.push(in_use);
    status
}

/// A status type carrying conditions.
pub trait WithConditions: Clone + PartialEq {
    /// The conditions, to be compared without their times.
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
}

impl WithConditions for IAMRoleStatus {
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

impl WithConditions for AWSProviderStatus {
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

/// Whether `new` differs from the stored status `old` in anything but the conditions'
/// `lastTransitionTime` and their order: whether the status needs writing.
pub fn status_changed<S: WithConditions>(old: Option<&S>, new: &S) -> bool {
    old.is_none_or(|old| without_times(old) != without_times(new))
}

fn without_times<S: WithConditions>(status: &S) -> S {
    let mut status = status.clone();
    let conditions = status.conditions_mut();
    for condition in conditions.iter_mut() {
        condition.last_transition_time = Time(Timestamp::UNIX_EPOCH);
    }
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    status
}

/// A condition, keeping the previous one's `lastTransitionTime` when status, reason and message are
/// the same.
fn condition(
    previous: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if ok { "True" } else { "False" }.to_owned();
    let reason = valid_reason(reason);
    let message = truncated(message);
    let last_transition_time = previous
        .iter()
        .find(|c| {
            c.type_ == type_ && c.status == status && c.reason == reason && c.message == message
        })
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        last_transition_time,
        message,
        observed_generation: generation,
        reason,
        status,
        type_: type_.to_owned(),
    }
}

/// `reason` if Kubernetes accepts it as a condition reason (a letter, then letters, digits, `_`, `,`
/// or `:`, ending in a letter, digit or `_`; at most 1024), else [`REASON_FALLBACK`].
fn valid_reason(reason: &str) -> String {
    let starts = reason
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic());
    let ends = reason
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let body = reason
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | ':'));
    if starts && ends && body && reason.len() <= MAX_REASON_LEN {
        reason.to_owned()
    } else {
        REASON_FALLBACK.to_owned()
    }
}

/// `message` cut to Kubernetes' limit on a character boundary.
fn truncated(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

/// `time` in RFC 3339, to the second, as Kubernetes writes times.
fn rfc3339(time: &Time) -> String {
    k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", time.0)
        .unwrap_or_else(|_| time.0.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Time {
        Time(Timestamp::constant(second, 0))
    }

    fn identity() -> RoleIdentity {
        RoleIdentity {
            arn: "arn:aws:iam::123456789012:role/app".to_owned(),
            role_id: "AROAEXAMPLE".to_owned(),
            create_date: "2024-01-01T00:00:00Z".to_owned(),
        }
    }

    fn failed(reason: &str, message: &str) -> RoleOutcome {
        RoleOutcome::NotSynced {
            role: None,
            reason: reason.to_owned(),
            message: message.to_owned(),
        }
    }

    #[test]
    fn a_provider_in_use_names_its_dependents_and_keeps_the_rest() {
        let previous = provider_status(
            None,
            &ProviderOutcome::Authenticated {
                account_id: "123456789012".to_owned(),
                caller_identity: "arn:aws:iam::123456789012:user/op".to_owned(),
            },
            Some(1),
            &at(1),
        );
        let dependents: Vec<String> = (0..12).map(|i| format!("ns/role-{i}")).collect();
        let status = provider_in_use_status(Some(&previous), &dependents, Some(2), &at(2));
        assert!(status.ready, "still usable for the deletions");
        let in_use = find(&status.conditions, IN_USE);
        assert_eq!(in_use.status, "True");
        assert!(
            in_use.message.contains("12 IAMRole(s)"),
            "{}",
            in_use.message
        );
        assert!(in_use.message.contains("ns/role-0") && in_use.message.contains("and 2 more"));
        let again = provider_in_use_status(Some(&status), &dependents, Some(2), &at(3));
        assert!(
            !status_changed(Some(&status), &again),
            "nothing to write twice"
        );
    }

    fn find<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
        conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition in {conditions:?}"))
    }

    #[test]
    fn a_synced_role_is_ready_with_its_identity() {
        let status = role_status(None, &RoleOutcome::Synced(identity()), Some(3), &at(100));
        assert!(status.ready);
        assert_eq!(status.role_arn.as_deref(), Some(identity().arn.as_str()));
        assert_eq!(status.role_id.as_deref(), Some("AROAEXAMPLE"));
        assert_eq!(status.create_date.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(status.observed_generation, Some(3));
        let ready = find(&status.conditions, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Available")
        );
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(ready.last_transition_time, at(100));
        let synced = find(&status.conditions, SYNCED);
        assert_eq!(
            (synced.status.as_str(), synced.reason.as_str()),
            ("True", "ReconcileSuccess")
        );
    }

    #[test]
    fn a_failure_is_not_ready_keeps_the_known_identity_and_names_the_reason() {
        let synced = role_status(None, &RoleOutcome::Synced(identity()), Some(1), &at(100));
        let status = role_status(
            Some(&synced),
            &failed("Throttling", "rate exceeded; retrying"),
            Some(1),
            &at(200),
        );
        assert!(!status.ready);
        assert_eq!(status.role_arn, synced.role_arn);
        assert_eq!(status.role_id, synced.role_id);
        assert_eq!(status.create_date, synced.create_date);
        let attached = IAMRoleStatus {
            attached_policy_arns: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".to_owned()],
            ..synced.clone()
        };
        let kept = role_status(
            Some(&attached),
            &failed("Throttling", "m"),
            Some(1),
            &at(200),
        );
        assert_eq!(kept.attached_policy_arns, attached.attached_policy_arns);
        for type_ in [READY, SYNCED] {
            let condition = find(&status.conditions, type_);
            assert_eq!(condition.status, "False");
            assert_eq!(condition.reason, "Throttling");
            assert_eq!(condition.message, "rate exceeded; retrying");
            assert_eq!(condition.last_transition_time, at(200));
        }
        let seen = RoleOutcome::NotSynced {
            role: Some(RoleIdentity {
                arn: "arn:aws:iam::123456789012:role/other".to_owned(),
                ..identity()
            }),
            reason: "RoleExists".to_owned(),
            message: "m".to_owned(),
        };
        let status = role_status(Some(&synced), &seen, Some(1), &at(300));
        assert_eq!(
            status.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/other")
        );
        let fresh = role_status(None, &failed("ProviderNotReady", "m"), None, &at(1));
        assert_eq!(fresh.role_arn, None);
    }

    #[test]
    fn transition_times_are_kept_until_status_reason_or_message_change() {
        let first = role_status(None, &failed("Throttling", "slow down"), Some(1), &at(100));
        let again = role_status(
            Some(&first),
            &failed("Throttling", "slow down"),
            Some(2),
            &at(200),
        );
        assert_eq!(find(&again.conditions, READY).last_transition_time, at(100));
        assert_eq!(find(&again.conditions, READY).observed_generation, Some(2));
        for (reason, message) in [("Throttling", "other"), ("AccessDenied", "slow down")] {
            let changed = role_status(Some(&first), &failed(reason, message), Some(1), &at(300));
            assert_eq!(
                find(&changed.conditions, READY).last_transition_time,
                at(300)
            );
        }
        let synced = role_status(
            Some(&first),
            &RoleOutcome::Synced(identity()),
            Some(1),
            &at(400),
        );
        assert_eq!(
            find(&synced.conditions, SYNCED).last_transition_time,
            at(400)
        );
    }

    #[test]
    fn recomputing_an_unchanged_status_changes_nothing() {
        let first = role_status(None, &RoleOutcome::Synced(identity()), Some(1), &at(100));
        let second = role_status(
            Some(&first),
            &RoleOutcome::Synced(identity()),
            Some(1),
            &at(500),
        );
        assert_eq!(second, first);
        assert!(!status_changed(Some(&first), &second));
        assert!(status_changed(None, &second));
    }

    #[test]
    fn status_changed_ignores_only_transition_times_and_condition_order() {
        let base = role_status(None, &RoleOutcome::Synced(identity()), Some(1), &at(100));
        let mut retimed = base.clone();
        for condition in &mut retimed.conditions {
            condition.last_transition_time = at(999);
        }
        retimed.conditions.reverse();
        assert!(!status_changed(Some(&base), &retimed));

        let newer = role_status(
            Some(&base),
            &RoleOutcome::Synced(identity()),
            Some(2),
            &at(100),
        );
        assert!(status_changed(Some(&base), &newer));
        let failing = role_status(Some(&base), &failed("Throttling", "m"), Some(1), &at(100));
        assert!(status_changed(Some(&base), &failing));
        let mut reworded = base.clone();
        if let Some(condition) = reworded.conditions.first_mut() {
            condition.message.push('!');
        }
        assert!(status_changed(Some(&base), &reworded));
    }

    #[test]
    fn invalid_reasons_are_replaced_and_long_messages_cut() {
        let status = role_status(
            None,
            &failed("not pascal case!", &"é".repeat(MAX_MESSAGE_LEN)),
            None,
            &at(1),
        );
        let ready = find(&status.conditions, READY);
        assert_eq!(ready.reason, REASON_FALLBACK);
        assert!(ready.message.len() <= MAX_MESSAGE_LEN);
        assert!(ready.message.len() > MAX_MESSAGE_LEN - 4);
        assert_eq!(valid_reason("RoleExists"), "RoleExists");
        assert_eq!(valid_reason("Iam:Throttling_2"), "Iam:Throttling_2");
        assert_eq!(valid_reason(""), REASON_FALLBACK);
        assert_eq!(valid_reason("2Fast"), REASON_FALLBACK);
        assert_eq!(valid_reason("Ends,"), REASON_FALLBACK);
    }

    fn authenticated(account: &str) -> ProviderOutcome {
        ProviderOutcome::Authenticated {
            account_id: account.to_owned(),
            caller_identity: format!("arn:aws:sts::{account}:assumed-role/op/s"),
        }
    }

    #[test]
    fn a_provider_with_working_credentials_is_ready_and_stays_unchanged() {
        let first = provider_status(None, &authenticated("123456789012"), Some(1), &at(60));
        assert!(first.ready);
        assert_eq!(first.account_id.as_deref(), Some("123456789012"));
        assert_eq!(
            first.caller_identity.as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/op/s")
        );
        assert_eq!(
            first.last_authentication_time.as_deref(),
            Some("1970-01-01T00:01:00Z")
        );
        let ready = find(&first.conditions, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", REASON_AUTHENTICATED)
        );
        let again = provider_status(
            Some(&first),
            &authenticated("123456789012"),
            Some(1),
            &at(600),
        );
        assert_eq!(again, first);
        assert!(!status_changed(Some(&first), &again));
        let moved = provider_status(
            Some(&first),
            &authenticated("210987654321"),
            Some(1),
            &at(600),
        );
        assert_eq!(
            moved.last_authentication_time.as_deref(),
            Some("1970-01-01T00:10:00Z")
        );
        assert!(status_changed(Some(&first), &moved));
    }

    #[test]
    fn a_failing_provider_is_not_ready_and_keeps_the_last_known_identity() {
        let working = provider_status(None, &authenticated("123456789012"), Some(1), &at(60));
        let outcome = ProviderOutcome::Failed {
            reason: "InvalidClientTokenId".to_owned(),
            message: "the access key is not valid".to_owned(),
        };
        let failing = provider_status(Some(&working), &outcome, Some(2), &at(120));
        assert!(!failing.ready);
        assert_eq!(failing.account_id, working.account_id);
        assert_eq!(
            failing.last_authentication_time,
            working.last_authentication_time
        );
        assert_eq!(failing.observed_generation, Some(2));
        let ready = find(&failing.conditions, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "InvalidClientTokenId")
        );
        assert_eq!(ready.last_transition_time, at(120));
        assert!(status_changed(Some(&working), &failing));
        let recovered = provider_status(
            Some(&failing),
            &authenticated("123456789012"),
            Some(2),
            &at(180),
        );
        assert_eq!(
            recovered.last_authentication_time.as_deref(),
            Some("1970-01-01T00:03:00Z")
        );
        let never = provider_status(None, &outcome, None, &at(1));
        assert_eq!(never.account_id, None);
        assert_eq!(never.last_authentication_time, None);
    }
}
