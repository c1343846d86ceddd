//! The IAMRole reconcile, a thin loop: finalizer and provider, then observe → plan → execute
//! ([`super::sync`]), then one report step (status, Events, metrics) for success and failure
//! alike. Deleting an object with `deletionPolicy: Delete` empties and deletes its role; `Retain`
//! leaves it. A deletion that cannot proceed (no provider, AWS failing) keeps the object, says why
//! in its conditions and retries with backoff; switching `deletionPolicy` to `Retain` releases it.
//! Before any IAM write the namespace's guardrails judge the spec ([`judge_spec`]): a spec never
//! applied that they refuse is `GuardrailDenied` with nothing written; one applied before keeps
//! being healed and is reported as `GuardrailViolation` (condition, Event, metric).
//! Talks to the Kubernetes API and, through the provider's clients, to IAM.
//! The finalizer ([`super::finalizer`]) is in place before any IAM write.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use sha2::{Digest, Sha256};

use super::context::Context;
use super::finalizer;
use super::model::drift::requeue_interval;
use super::model::error::{ReconcileError, Retry};
use super::model::guard::{Verdict, findings_text, judge_found_role, judge_spec};
use super::model::plan::{ADOPT_ANNOTATION, Intent, Memory};
use super::model::status::{
    GUARDRAIL_VIOLATION, READY, REASON_GUARDRAIL_VIOLATION, RoleOutcome, add_violation,
    role_status, status_changed,
};
use super::service_accounts::ServiceAccounts;
use super::status_patch::write_status;
use super::stores::{object_key, provider_ready};
use super::sync::{Deleted, Done, SyncFailure, Synced, delete_role, sync_role};
use crate::api::{AWSProvider, DeletionPolicy, DriftDetection, IAMRole, WorkloadIdentityStatus};
use crate::guardrails::Finding;
use crate::iam::workload_identity::{ProviderFacts, assumable_by, effective_trust_policy};
use crate::iam::{Change, DesiredRole, ObservedRole, owner_value};

/// The kind, as metrics and logs name it.
pub const KIND: &str = "IAMRole";

/// What the watch passes on: a reconcile is triggered only when the generation (the spec, or the
/// start of deletion), the adopt annotation or the deletion state changes — never by a status write.
pub fn trigger_hash(role: &IAMRole) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    role.metadata.generation.hash(&mut hasher);
    role.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    adopt_requested(role).hash(&mut hasher);
    Some(hasher.finish())
}

/// Whether the object carries the adopt annotation set to `true`.
pub fn adopt_requested(role: &IAMRole) -> bool {
    crate::api::adopt_requested(role.annotations().get(ADOPT_ANNOTATION).map(String::as_str))
}

/// Reconciles one IAMRole; a failure is reported (status, Warning Event, metric) and returned, for
/// [`error_policy`] to schedule the retry.
pub async fn reconcile(role: Arc<IAMRole>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let object = RoleObject::new(&role, &ctx)?;
    let outcome = if role.metadata.deletion_timestamp.is_some() {
        object.cleanup().await
    } else {
        object.apply().await
    };
    let result = object.report(outcome).await;
    ctx.metrics
        .observe_reconcile(KIND, result.is_ok(), started.elapsed());
    if let Err(error) = &result {
        ctx.metrics.observe_error(KIND, error.reason());
    }
    result
}

/// After a failed reconcile: transient failures back off (per object, forgotten once the object
/// is gone); the rest wait for a change, or the next resync.
pub fn error_policy(role: Arc<IAMRole>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    match error.retry() {
        Retry::Backoff => Action::requeue(ctx.role_backoff.next(&role, &ctx.stores.roles)),
        Retry::AtResync => {
            let drift = ctx
                .stores
                .provider(
                    role.namespace().as_deref().unwrap_or_default(),
                    &role.spec.provider_ref.name,
                )
                .and_then(|p| p.spec.drift_detection.clone());
            resync(drift.as_ref(), &role)
        }
    }
}

/// When to look at the role again after a success: the provider's drift interval, jittered per
/// object; never when drift detection is off.
fn resync(drift: Option<&DriftDetection>, role: &IAMRole) -> Action {
    let mut hasher = DefaultHasher::new();
    role.uid()
        .unwrap_or_else(|| role.name_any())
        .hash(&mut hasher);
    match requeue_interval(drift, hasher.finish()) {
        Some(interval) => Action::requeue(interval),
        None => Action::await_change(),
    }
}

/// How soon a role whose ServiceAccounts could not all be annotated looks again, at first.
const ANNOTATION_RETRY: Duration = Duration::from_secs(60);
/// The longest wait between two such looks (the default drift detection interval).
const MAX_ANNOTATION_RETRY: Duration = Duration::from_secs(10 * 60);

/// The wait before the next look after `looks` in a row found ServiceAccounts not annotated:
/// one minute, doubling up to ten.
fn annotation_retry(looks: u32) -> Duration {
    let doublings = looks.saturating_sub(1).min(4);
    (ANNOTATION_RETRY * 2u32.pow(doublings)).min(MAX_ANNOTATION_RETRY)
}

/// What a reconcile brought about beyond the role itself, for the status.
struct Applied<'a> {
    /// The managed policies this object attached.
    attached: &'a BTreeSet<String>,
    /// The workload identity as applied.
    workload: Option<WorkloadIdentityStatus>,
}

/// How a reconcile ended, before it is reported.
enum Outcome {
    /// The role matches the spec; `violation`: what the guardrails refuse in this spec applied
    /// before (empty: nothing).
    Synced {
        synced: Synced,
        drift: Option<DriftDetection>,
        violation: Vec<Finding>,
        workload: Option<Box<WorkloadIdentityStatus>>,
    },
    /// The object's cleanup is done and its finalizer gone: nothing left to write.
    Finalized { reason: &'static str, note: String },
}

/// One IAMRole object and what its reconcile needs.
struct RoleObject<'a> {
    role: &'a IAMRole,
    ctx: &'a Context,
    api: Api<IAMRole>,
    namespace: String,
    name: String,
}

impl<'a> RoleObject<'a> {
    fn new(role: &'a IAMRole, ctx: &'a Context) -> Result<Self, ReconcileError> {
        let namespace = role
            .namespace()
            .ok_or(ReconcileError::InvalidObject("namespace"))?;
        Ok(RoleObject {
            role,
            ctx,
            api: Api::namespaced(ctx.client.clone(), &namespace),
            name: role.name_any(),
            namespace,
        })
    }

    fn owner(&self) -> String {
        owner_value(&self.namespace, &self.name)
    }

    /// Brings IAM to the spec, if the guardrails of the namespace let it (see [`judge_spec`]).
    async fn apply(&self) -> Result<Outcome, SyncFailure> {
        finalizer::add(&self.api, self.role).await?;
        let provider = self.required_provider().await?;
        ensure_ready(&provider)?;
        let governed = self
            .ctx
            .guardrails
            .governing(&self.namespace)
            .map_err(ReconcileError::from)?;
        let engine = &governed.engine;
        let facts = ProviderFacts::of(&provider);
        let default_tags = provider.spec.default_tags.as_ref();
        let violation = match judge_spec(engine, self.role, default_tags, &facts) {
            Verdict::Clean => Vec::new(),
            Verdict::Violation(findings) => findings,
            Verdict::Denied(findings) => {
                return Err(SyncFailure::from(ReconcileError::GuardrailDenied {
                    namespace: self.namespace.clone(),
                    findings: findings_text(&findings),
                }));
            }
        };
        let trust = effective_trust_policy(&self.role.spec, &self.namespace, &facts)
            .map_err(ReconcileError::from)?;
        let clients = self.ctx.clients.get(&provider, engine).await?;
        let owner = self.owner();
        let desired = DesiredRole::new(&self.role.spec, trust, default_tags, &owner);
        let intent = Intent {
            desired: &desired,
            owner: &owner,
            adopt: adopt_requested(self.role),
        };
        let mut memory = memory(self.role);
        memory.name_taken = self.ctx.names_taken.get(self.role).unwrap_or_default();
        let adoptable = |found: &ObservedRole| {
            let refused = judge_found_role(engine, self.role, found);
            if refused.is_empty() {
                return Ok(());
            }
            Err(ReconcileError::GuardrailDenied {
                namespace: self.namespace.clone(),
                findings: format!(
                    "the existing IAM role is not adopted as it is: {}",
                    findings_text(&refused)
                ),
            })
        };
        let synced = sync_role(&clients.iam(), intent, &memory, &adoptable).await?;
        let workload = self
            .workload_identity(&desired.trust_policy, &synced.identity.arn)
            .await?;
        Ok(Outcome::Synced {
            synced,
            drift: provider.spec.drift_detection,
            violation,
            workload: workload.map(Box::new),
        })
    }

    /// Brings the ServiceAccount annotations of `spec.workloadIdentity` to the role `arn` (set on
    /// the listed ones, released from those that left the list or when annotating is switched
    /// off), and says what its status is to show.
    async fn workload_identity(
        &self,
        trust: &str,
        arn: &str,
    ) -> Result<Option<WorkloadIdentityStatus>, ReconcileError> {
        let identity = self.role.spec.workload_identity.as_ref();
        let wanted: Vec<String> = identity
            .filter(|i| i.annotate_service_accounts == Some(true) && i.mode.irsa())
            .map(|i| i.service_accounts.clone())
            .unwrap_or_default();
        let accounts = ServiceAccounts::new(self.ctx.client.clone(), &self.namespace);
        let previously = annotated(self.role);
        let leaving: Vec<String> = previously
            .iter()
            .filter(|name| !wanted.contains(name))
            .cloned()
            .collect();
        accounts
            .release_all(&leaving, arn)
            .await
            .map_err(|e| ReconcileError::kube("release a ServiceAccount annotation", e))?;
        let Some(identity) = identity else {
            return Ok(None);
        };
        let annotation = accounts.annotate(&wanted, arn, &previously).await;
        Ok(Some(WorkloadIdentityStatus {
            trust_policy_hash: Some(trust_policy_hash(trust)),
            assumable_by: assumable_by(identity, &self.namespace),
            annotated_service_accounts: annotation.annotated.into_iter().collect(),
            annotation_message: (!annotation.problems.is_empty())
                .then(|| annotation.problems.join("; ")),
        }))
    }

    /// Cleans up after deletion, per `deletionPolicy`, then removes the finalizer.
    async fn cleanup(&self) -> Result<Outcome, SyncFailure> {
        if !finalizer::has_finalizer(self.role) {
            return Ok(Outcome::Finalized {
                reason: "",
                note: String::new(),
            });
        }
        let role_name = &self.role.spec.role_name;
        let (reason, note) = match self.role.spec.deletion_policy.unwrap_or_default() {
            DeletionPolicy::Retain => (
                "Retained",
                format!("deletionPolicy is Retain: IAM role {role_name} is left in IAM"),
            ),
            DeletionPolicy::Delete => {
                let provider = self.required_provider().await?;
                let governed = self
                    .ctx
                    .guardrails
                    .governing(&self.namespace)
                    .map_err(ReconcileError::from)?;
                let clients = self
                    .ctx
                    .clients
                    .get_for_cleanup(&provider, &governed.engine)
                    .await?;
                let deleted = delete_role(&clients.iam(), role_name, &self.owner()).await?;
                if !matches!(deleted, Deleted::NotOurs) {
                    self.release_service_accounts().await?;
                }
                let note = match deleted {
                    Deleted::Deleted(arn) => format!("deleted IAM role {arn}"),
                    Deleted::Gone => format!("IAM role {role_name} no longer exists"),
                    Deleted::NotOurs => format!(
                        "IAM role {role_name} is not managed by this object and was left untouched"
                    ),
                };
                ("Deleted", note)
            }
        };
        finalizer::remove(&self.api, self.role).await?;
        Ok(Outcome::Finalized { reason, note })
    }

    /// Removes the annotation from every ServiceAccount the object annotated, where it still
    /// names the role.
    async fn release_service_accounts(&self) -> Result<(), ReconcileError> {
        let Some(arn) = self
            .role
            .status
            .as_ref()
            .and_then(|s| s.role_arn.as_deref())
        else {
            return Ok(());
        };
        ServiceAccounts::new(self.ctx.client.clone(), &self.namespace)
            .release_all(&annotated(self.role), arn)
            .await
            .map_err(|e| ReconcileError::kube("release a ServiceAccount annotation", e))
    }

    /// The one report step: Events, status and log for the outcome; the action for a success, the
    /// error for a failure.
    async fn report(
        &self,
        outcome: Result<Outcome, SyncFailure>,
    ) -> Result<Action, ReconcileError> {
        let key = object_key(KIND, &self.namespace, &self.name);
        match outcome {
            Ok(Outcome::Finalized { reason, note }) => {
                self.ctx
                    .metrics
                    .record_violations(&self.namespace, &self.name, BTreeSet::new());
                if !reason.is_empty() {
                    self.publish(EventType::Normal, reason, "DeleteRole", note);
                }
                self.ctx.role_backoff.forget(self.role);
                Ok(Action::await_change())
            }
            Ok(Outcome::Synced {
                synced,
                drift,
                violation,
                workload,
            }) => {
                self.publish_done(&synced);
                let rules = violation.iter().map(|f| f.rule).collect();
                self.ctx
                    .metrics
                    .record_violations(&self.namespace, &self.name, rules);
                let violation = (!violation.is_empty()).then(|| findings_text(&violation));
                if let Some(findings) = &violation
                    && !has_violation(self.role)
                {
                    tracing::warn!(role = %key, %findings, "applied spec violates the guardrails now");
                    self.publish(
                        EventType::Warning,
                        REASON_GUARDRAIL_VIOLATION,
                        "Reconcile",
                        format!(
                            "the guardrails of namespace {} refuse this spec, applied before; the \
                             role keeps being reconciled: {findings}",
                            self.namespace
                        ),
                    );
                }
                let annotations_pending = workload
                    .as_ref()
                    .is_some_and(|w| w.annotation_message.is_some());
                self.write_status(
                    RoleOutcome::Synced(synced.identity.clone()),
                    Some(Applied {
                        attached: &synced.attached,
                        workload: workload.map(|w| *w),
                    }),
                    violation.as_deref(),
                )
                .await?;
                self.ctx.role_backoff.forget(self.role);
                self.ctx.names_taken.forget(self.role);
                if !annotations_pending {
                    self.ctx.annotation_retries.forget(self.role);
                    return Ok(resync(drift.as_ref(), self.role));
                }
                // A ServiceAccount created later is annotated at the next look: soon at first,
                // then less and less often, so a list that stays unresolvable costs the API
                // server little.
                let looks = self.ctx.annotation_retries.update(
                    self.role,
                    &self.ctx.stores.roles,
                    |looks| *looks = looks.saturating_add(1),
                );
                Ok(Action::requeue(annotation_retry(looks)))
            }
            Err(sync) => {
                let error = sync.error;
                if let ReconcileError::Plan(plan) = &error
                    && plan.name_taken()
                {
                    let live = &self.ctx.stores.roles;
                    self.ctx
                        .names_taken
                        .update(self.role, live, |taken| *taken = true);
                }
                if let ReconcileError::Settings { .. } = &error {
                    // The provider's Secret changed under it (no Secret is watched): let the
                    // provider check its credentials now rather than at its next recheck.
                    let provider =
                        ObjectRef::new(&self.role.spec.provider_ref.name).within(&self.namespace);
                    let _ = self.ctx.provider_triggers.send(provider);
                }
                let message = self.failure_message(&error);
                tracing::warn!(role = %key, reason = error.reason(), %error, "reconcile failed");
                self.publish(
                    EventType::Warning,
                    error.reason(),
                    "Reconcile",
                    message.clone(),
                );
                let outcome = RoleOutcome::NotSynced {
                    role: sync.identity,
                    reason: error.reason().to_owned(),
                    message,
                };
                let applied = sync.attached.as_ref().map(|attached| Applied {
                    attached,
                    workload: self
                        .role
                        .status
                        .as_ref()
                        .and_then(|s| s.workload_identity.clone()),
                });
                self.write_status(outcome, applied, None).await?;
                Err(error)
            }
        }
    }

    /// The Normal Event of a successful sync that wrote something.
    fn publish_done(&self, synced: &Synced) {
        let arn = &synced.identity.arn;
        let describe = |changes: &[Change]| {
            changes
                .iter()
                .map(Change::describe)
                .collect::<Vec<_>>()
                .join("; ")
        };
        match &synced.done {
            Done::Created(_) => {
                tracing::info!(role = %self.owner(), %arn, "IAM role created");
                self.publish(
                    EventType::Normal,
                    "Created",
                    "CreateRole",
                    format!("created IAM role {arn}"),
                );
            }
            Done::Adopted(changes) => self.publish(
                EventType::Normal,
                "Adopted",
                "TagRole",
                format!(
                    "adopted the existing IAM role {arn} (annotation {ADOPT_ANNOTATION}): {}",
                    describe(changes)
                ),
            ),
            Done::Updated(changes) => {
                tracing::info!(role = %self.owner(), changes = %describe(changes), "IAM role updated");
                self.publish(
                    EventType::Normal,
                    "Updated",
                    "UpdateRole",
                    format!("updated IAM role {arn}: {}", describe(changes)),
                );
            }
            Done::Unchanged => {}
        }
    }

    fn publish(&self, type_: EventType, reason: &str, action: &str, note: String) {
        self.ctx
            .events
            .publish(&self.role.object_ref(&()), type_, reason, action, note);
    }

    /// The referenced AWSProvider; `ProviderNotFound` when it does not exist.
    async fn required_provider(&self) -> Result<AWSProvider, ReconcileError> {
        let name = &self.role.spec.provider_ref.name;
        self.ctx
            .provider(&self.namespace, name)
            .await?
            .ok_or_else(|| ReconcileError::ProviderNotFound {
                namespace: self.namespace.clone(),
                name: name.clone(),
            })
    }

    /// What a failure means, for people. While the object is being deleted with `deletionPolicy:
    /// Delete`, the message also names the way out: switching to `Retain`.
    fn failure_message(&self, error: &ReconcileError) -> String {
        if self.role.metadata.deletion_timestamp.is_none() {
            return error.to_string();
        }
        format!(
            "cannot delete IAM role {}: {error}. The object is kept until the role is deleted; \
             set spec.deletionPolicy to Retain to release it and leave the role in IAM",
            self.role.spec.role_name
        )
    }

    /// Writes the status computed from the outcome, when it changed; `applied` replaces the
    /// status' `attachedPolicyArns` and `workloadIdentity` when known.
    async fn write_status(
        &self,
        outcome: RoleOutcome,
        applied: Option<Applied<'_>>,
        violation: Option<&str>,
    ) -> Result<(), ReconcileError> {
        let previous = self.role.status.as_ref();
        let now = Time(Timestamp::now());
        let generation = self.role.metadata.generation;
        let mut status = role_status(previous, &outcome, generation, &now);
        if let Some(findings) = violation {
            add_violation(&mut status, previous, findings, generation, &now);
        }
        if let Some(applied) = applied {
            status.attached_policy_arns = applied.attached.iter().cloned().collect();
            status.workload_identity = applied.workload;
        }
        if !status_changed(previous, &status) {
            return Ok(());
        }
        write_status(&self.api, &self.name, previous, &status)
            .await
            .map_err(|e| ReconcileError::kube("write the IAMRole status", e))
    }
}

/// What the object remembers of its role, from its status (whether its name was found taken is
/// kept in memory by the context).
fn memory(role: &IAMRole) -> Memory {
    let status = role.status.as_ref();
    Memory {
        role_id: status.and_then(|s| s.role_id.clone()),
        attached: status
            .map(|s| s.attached_policy_arns.iter().cloned().collect())
            .unwrap_or_default(),
        name_taken: false,
    }
}

/// The ServiceAccounts whose annotation the object set, from its status.
fn annotated(role: &IAMRole) -> Vec<String> {
    role.status
        .as_ref()
        .and_then(|s| s.workload_identity.as_ref())
        .map(|w| w.annotated_service_accounts.clone())
        .unwrap_or_default()
}

/// The SHA-256 of a trust policy document, as `sha256:<hex>`.
fn trust_policy_hash(document: &str) -> String {
    let digest = Sha256::digest(document.as_bytes());
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in digest {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// Whether the stored status already reports a guardrail violation.
fn has_violation(role: &IAMRole) -> bool {
    role.status
        .as_ref()
        .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == GUARDRAIL_VIOLATION))
}

/// Fails unless the provider authenticated at its current generation.
fn ensure_ready(provider: &AWSProvider) -> Result<(), ReconcileError> {
    if provider_ready(provider) {
        return Ok(());
    }
    let message = provider
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY))
        .filter(|c| c.status != "True")
        .map_or_else(
            || "its credentials have not been checked yet".to_owned(),
            |c| format!("{}: {}", c.reason, c.message),
        );
    Err(ReconcileError::ProviderNotReady {
        name: provider.name_any(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    use super::*;
    use crate::api::{AWSProviderSpec, AWSProviderStatus, IAMRoleSpec, IAMRoleStatus};

    fn role() -> IAMRole {
        let mut role = IAMRole::new("app", IAMRoleSpec::default());
        role.metadata.generation = Some(1);
        role
    }

    #[test]
    fn status_writes_and_other_annotations_do_not_trigger_a_reconcile() {
        let base = role();
        let mut with_status = base.clone();
        with_status.status = Some(Default::default());
        with_status.metadata.resource_version = Some("42".to_owned());
        with_status.metadata.annotations =
            Some(BTreeMap::from([("unrelated".to_owned(), "x".to_owned())]));
        assert_eq!(trigger_hash(&base), trigger_hash(&with_status));

        let mut changed = base.clone();
        changed.metadata.generation = Some(2);
        assert_ne!(trigger_hash(&base), trigger_hash(&changed));

        let mut adopt = base.clone();
        adopt.metadata.annotations = Some(BTreeMap::from([(
            ADOPT_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]));
        assert!(adopt_requested(&adopt));
        assert_ne!(trigger_hash(&base), trigger_hash(&adopt));

        let mut deleting = base.clone();
        deleting.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert_ne!(trigger_hash(&base), trigger_hash(&deleting));
    }

    #[test]
    fn only_true_requests_adoption() {
        for (value, expected) in [
            ("true", true),
            ("True", true),
            ("false", false),
            ("", false),
        ] {
            let mut role = role();
            role.metadata.annotations = Some(BTreeMap::from([(
                ADOPT_ANNOTATION.to_owned(),
                value.to_owned(),
            )]));
            assert_eq!(adopt_requested(&role), expected, "{value:?}");
        }
        assert!(!adopt_requested(&self::role()));
    }

    #[test]
    fn the_memory_comes_from_the_status() {
        let mut role = role();
        assert_eq!(memory(&role), Memory::default());
        role.status = Some(IAMRoleStatus {
            role_id: Some("AROA1".to_owned()),
            attached_policy_arns: vec!["arn:aws:iam::aws:policy/A".to_owned()],
            ..IAMRoleStatus::default()
        });
        let memory = memory(&role);
        assert!(memory.observe_first());
        assert_eq!(
            memory.attached,
            BTreeSet::from(["arn:aws:iam::aws:policy/A".to_owned()])
        );
    }

    fn provider(status: Option<AWSProviderStatus>, generation: i64) -> AWSProvider {
        let mut provider = AWSProvider::new("aws", AWSProviderSpec::default());
        provider.metadata.generation = Some(generation);
        provider.status = status;
        provider
    }

    #[test]
    fn a_provider_is_usable_only_when_ready_at_its_generation() {
        let ready = AWSProviderStatus {
            ready: true,
            observed_generation: Some(2),
            ..AWSProviderStatus::default()
        };
        assert!(ensure_ready(&provider(Some(ready.clone()), 2)).is_ok());
        let stale = ensure_ready(&provider(Some(ready), 3)).expect_err("stale status");
        assert_eq!(stale.reason(), "ProviderNotReady");
        let unchecked = ensure_ready(&provider(None, 1)).expect_err("no status");
        assert!(unchecked.to_string().contains("not been checked yet"));
        let failed = AWSProviderStatus {
            ready: false,
            observed_generation: Some(1),
            conditions: vec![Condition {
                type_: "Ready".to_owned(),
                status: "False".to_owned(),
                reason: "InvalidCredentials".to_owned(),
                message: "the security token is invalid".to_owned(),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
                observed_generation: Some(1),
            }],
            ..AWSProviderStatus::default()
        };
        let error = ensure_ready(&provider(Some(failed), 1)).expect_err("failed");
        assert!(
            error
                .to_string()
                .contains("InvalidCredentials: the security token is invalid"),
            "{error}"
        );
    }

    #[test]
    fn unannotated_service_accounts_are_looked_at_less_and_less_often() {
        assert_eq!(annotation_retry(1), Duration::from_secs(60));
        assert_eq!(annotation_retry(2), Duration::from_secs(120));
        assert_eq!(annotation_retry(4), Duration::from_secs(480));
        assert_eq!(annotation_retry(5), Duration::from_secs(600));
        assert_eq!(annotation_retry(u32::MAX), Duration::from_secs(600));
    }

    #[test]
    fn a_resync_follows_the_provider_drift_settings() {
        let role = role();
        let off = DriftDetection {
            enabled: Some(false),
            interval: None,
        };
        assert_eq!(resync(Some(&off), &role), Action::await_change());
        let on = DriftDetection {
            enabled: Some(true),
            interval: Some("1h".to_owned()),
        };
        assert_ne!(resync(Some(&on), &role), Action::await_change());
        assert_eq!(resync(Some(&on), &role), resync(Some(&on), &role));
    }
}
