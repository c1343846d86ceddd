//! Keeps the guardrails in force while this replica leads: when the GuardrailPolicy governing a
//! namespace changes (a policy added, edited or removed, a namespace relabelled), the namespace's
//! IAMRoles and AWSProviders are reconciled again at once, so that a stricter policy shows up in
//! their status without waiting for the drift interval; and every GuardrailPolicy's status says how
//! many namespaces it governs, its selector and whether it is `Accepted`. Reads the governance
//! caches; writes GuardrailPolicy status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc::UnboundedSender;

use super::stores::Stores;
use crate::api::{AWSProvider, GuardrailPolicy, GuardrailPolicyStatus, IAMRole};
use crate::governance::ClusterGuardrails;
use crate::governance::select::NamespaceSelector;

/// Condition type on a GuardrailPolicy: whether its settings and selector can be used.
pub const ACCEPTED: &str = "Accepted";
/// How long changes are gathered before acting on them.
const SETTLE: Duration = Duration::from_secs(1);
/// How often the assignments are compared even without a change notice.
const RECHECK: Duration = Duration::from_secs(60);

/// Which policy (name and resourceVersion) governs each namespace; `None`: the built-in defaults.
type Assignments = BTreeMap<String, Option<(String, Option<String>)>>;

/// Runs until aborted.
pub async fn run(
    cluster: Arc<ClusterGuardrails>,
    client: Client,
    stores: Stores,
    roles: UnboundedSender<ObjectRef<IAMRole>>,
    providers: UnboundedSender<ObjectRef<AWSProvider>>,
) {
    let api: Api<GuardrailPolicy> = Api::all(client);
    let changed = cluster.changed();
    let mut previous: Option<Assignments> = None;
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let assignments = cluster.assignments();
        if let Some(previous) = &previous {
            for namespace in changed_namespaces(previous, &assignments) {
                tracing::info!(%namespace, "guardrails changed: reconciling the namespace's objects");
                for role in stores.roles_in(&namespace) {
                    let _ = roles.send(role);
                }
                for provider in stores.providers_in(&namespace) {
                    let _ = providers.send(provider);
                }
            }
        }
        write_statuses(&api, &cluster, &assignments).await;
        previous = Some(assignments);
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(RECHECK) => {}
        }
        tokio::time::sleep(SETTLE).await;
    }
}

/// The namespaces governed by another policy (or another version of it) than before, and the new
/// ones.
fn changed_namespaces(previous: &Assignments, now: &Assignments) -> Vec<String> {
    now.iter()
        .filter(|(namespace, policy)| previous.get(*namespace) != Some(*policy))
        .map(|(namespace, _)| namespace.clone())
        .collect()
}

/// Writes the status of every policy whose status changed.
async fn write_statuses(
    api: &Api<GuardrailPolicy>,
    cluster: &ClusterGuardrails,
    assignments: &Assignments,
) {
    let now = Time(Timestamp::now());
    for (policy, problem) in cluster.policies() {
        let name = policy.name_any();
        let governed = assignments
            .values()
            .filter(|p| p.as_ref().is_some_and(|(n, _)| *n == name))
            .count();
        let status = policy_status(&policy, governed, problem.as_deref(), &now);
        if policy.status.as_ref() == Some(&status) {
            continue;
        }
        let patch = Patch::Merge(json!({"status": status}));
        if let Err(error) = api
            .patch_status(&name, &PatchParams::default(), &patch)
            .await
        {
            tracing::warn!(policy = %name, %error, "cannot write the GuardrailPolicy status");
        }
    }
}

/// The status of `policy` governing `governed` namespaces, `problem` being why it cannot be used.
/// A condition unchanged keeps its transition time, so an unchanged policy's status is unchanged.
fn policy_status(
    policy: &GuardrailPolicy,
    governed: usize,
    problem: Option<&str>,
    now: &Time,
) -> GuardrailPolicyStatus {
    let (status, reason, message) = match problem {
        None => (
            "True",
            "Valid",
            "the policy governs the namespaces its selector matches".to_owned(),
        ),
        Some(problem) => (
            "False",
            "Invalid",
            format!("{problem}; every object of the namespaces it governs is refused until fixed"),
        ),
    };
    let previous = policy
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == ACCEPTED));
    let last_transition_time = previous
        .filter(|c| c.status == status && c.reason == reason && c.message == message)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    GuardrailPolicyStatus {
        namespaces: i64::try_from(governed).unwrap_or(i64::MAX),
        selector: NamespaceSelector::of(policy.spec.namespace_selector.as_ref()).summary(),
        conditions: vec![Condition {
            type_: ACCEPTED.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: policy.metadata.generation,
            last_transition_time,
        }],
        observed_generation: policy.metadata.generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GuardrailPolicySpec;

    fn assigned(pairs: &[(&str, Option<(&str, &str)>)]) -> Assignments {
        pairs
            .iter()
            .map(|(ns, p)| {
                (
                    (*ns).to_owned(),
                    p.map(|(name, version)| (name.to_owned(), Some(version.to_owned()))),
                )
            })
            .collect()
    }

    #[test]
    fn namespaces_whose_policy_or_its_version_changed_are_reconciled() {
        let before = assigned(&[
            ("a", Some(("team", "1"))),
            ("b", None),
            ("c", Some(("team", "1"))),
        ]);
        let after = assigned(&[
            ("a", Some(("team", "2"))),
            ("b", None),
            ("c", Some(("strict", "5"))),
            ("d", None),
        ]);
        assert_eq!(changed_namespaces(&before, &after), ["a", "c", "d"]);
        assert!(changed_namespaces(&after, &after).is_empty());
    }

    #[test]
    fn an_unchanged_policy_gets_the_same_status() {
        let mut policy = GuardrailPolicy::new("team", GuardrailPolicySpec::default());
        policy.metadata.generation = Some(2);
        let first = policy_status(&policy, 3, None, &Time(Timestamp::UNIX_EPOCH));
        assert_eq!(first.namespaces, 3);
        assert_eq!(first.selector, "<all>");
        assert_eq!(first.conditions[0].status, "True");
        policy.status = Some(first.clone());
        let again = policy_status(&policy, 3, None, &Time(Timestamp::now()));
        assert_eq!(again, first);
        let invalid = policy_status(
            &policy,
            3,
            Some("tenancy.roleNames[0]: bad"),
            &Time(Timestamp::now()),
        );
        assert_eq!(invalid.conditions[0].status, "False");
        assert!(
            invalid.conditions[0]
                .message
                .contains("tenancy.roleNames[0]")
        );
    }
}
