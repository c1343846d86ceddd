//! The IAMRole reconcile: finalizer, provider, observe → plan → apply, status and Events; and the
//! cleanup when the object is deleted (`Delete`: the role is emptied and deleted in IAM; `Retain`:
//! it is left alone). A deletion that cannot proceed (no provider, AWS failing) keeps the object,
//! says why in its conditions and retries with backoff; switching `deletionPolicy` to `Retain`
//! releases it. Talks to the Kubernetes API and, through the provider's clients, to IAM.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::change::Change;
use super::context::{Context, object_key, provider_ready};
use super::desired::{DesiredRole, owner_value};
use super::drift::requeue_interval;
use super::error::{ADOPT_ANNOTATION, ROLE_CONFLICT, ROLE_EXISTS, ReconcileError, Retry};
use super::observed::ObservedRole;
use super::plan::{Ownership, ownership, plan};
use super::status::{RoleIdentity, RoleOutcome, role_status, status_changed};
use super::status_patch::write_status;
use crate::api::{AWSProvider, DeletionPolicy, DriftDetection, FINALIZER, IAMRole};
use crate::aws::{AwsError, AwsErrorKind, CreateRole, IamApi};

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
    role.annotations()
        .get(ADOPT_ANNOTATION)
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// Reconciles one IAMRole. Failures are reported in the status, as a Warning Event and in the
/// metrics, and answered with a requeue (backoff for transient ones, the next resync otherwise).
pub async fn reconcile(role: Arc<IAMRole>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let namespace = role
        .namespace()
        .ok_or(ReconcileError::InvalidObject("namespace"))?;
    let name = role.name_any();
    let key = object_key(KIND, &namespace, &name);
    let mut progress = Progress::new(&role);
    let run = Run {
        role: &role,
        ctx: &ctx,
        api: Api::namespaced(ctx.client.clone(), &namespace),
        namespace: namespace.clone(),
        name: name.clone(),
        reference: role.object_ref(&()),
    };
    let result = if role.metadata.deletion_timestamp.is_some() {
        run.cleanup(&mut progress).await
    } else {
        run.apply(&mut progress).await
    };
    let status_result = if progress.finalized {
        Ok(())
    } else {
        run.write_status(&progress, result.as_ref().err()).await
    };
    let result = result.and(status_result);
    ctx.metrics
        .observe_reconcile(KIND, result.is_ok(), started.elapsed());
    let action = match &result {
        Ok(()) if progress.finalized => {
            ctx.reset_backoff(&key);
            Action::await_change()
        }
        Ok(()) => {
            ctx.reset_backoff(&key);
            resync(progress.drift.as_ref(), &role)
        }
        Err(error) => {
            tracing::warn!(
                role = %key,
                reason = error.reason(),
                %error,
                "reconcile failed"
            );
            run.publish(
                EventType::Warning,
                error.reason(),
                "Reconcile",
                run.failure_message(error),
            );
            match error.retry() {
                Retry::Backoff => Action::requeue(ctx.next_backoff(&key)),
                Retry::AtResync => resync(progress.drift.as_ref(), &role),
            }
        }
    };
    Ok(action)
}

/// Backs off after an error the reconcile could not report itself.
pub fn error_policy(role: Arc<IAMRole>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let key = object_key(
        KIND,
        role.namespace().as_deref().unwrap_or_default(),
        &role.name_any(),
    );
    tracing::warn!(role = %key, reason = error.reason(), %error, "reconcile failed");
    Action::requeue(ctx.next_backoff(&key))
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

/// What a reconcile learnt on its way, for the status.
struct Progress {
    /// The role in IAM, once known to be this object's.
    identity: Option<RoleIdentity>,
    /// Managed policy ARNs this object attached.
    managed: BTreeSet<String>,
    /// The provider's drift settings, once the provider was read.
    drift: Option<DriftDetection>,
    /// The finalizer is gone: the object is about to disappear, no status to write.
    finalized: bool,
}

impl Progress {
    fn new(role: &IAMRole) -> Self {
        Progress {
            identity: None,
            managed: role
                .status
                .iter()
                .flat_map(|s| s.attached_policy_arns.iter().cloned())
                .collect(),
            drift: None,
            finalized: false,
        }
    }
}

/// How a CreateRole ended, short of a failure.
enum Creation {
    /// The role was created, with its policies.
    Created,
    /// A role of that name already exists (the error IAM answered).
    NameTaken(AwsError),
}

/// Whether an earlier reconcile saw this object's IAM role: its ARN is in the status, or a role of
/// that name was found in the way (`RoleExists`, `RoleConflict`). Until then the role is most
/// likely absent, so CreateRole is tried before any read.
fn role_seen(role: &IAMRole) -> bool {
    role.status.as_ref().is_some_and(|status| {
        status.role_arn.is_some()
            || status
                .conditions
                .iter()
                .any(|c| ROLE_IN_THE_WAY.contains(&c.reason.as_str()))
    })
}

/// The condition reasons that mean a role of the object's name exists but is not its own.
const ROLE_IN_THE_WAY: [&str; 2] = [ROLE_EXISTS, ROLE_CONFLICT];

/// One reconcile of one object.
struct Run<'a> {
    role: &'a IAMRole,
    ctx: &'a Context,
    api: Api<IAMRole>,
    namespace: String,
    name: String,
    reference: ObjectReference,
}

impl Run<'_> {
    fn owner(&self) -> String {
        owner_value(&self.namespace, &self.name)
    }

    fn publish(&self, type_: EventType, reason: &str, action: &str, note: String) {
        self.ctx
            .publish(&self.reference, type_, reason, action, note);
    }

    /// Brings IAM to the spec.
    async fn apply(&self, progress: &mut Progress) -> Result<(), ReconcileError> {
        self.ensure_finalizer().await?;
        let provider = self.required_provider(progress).await?;
        ensure_ready(&provider)?;
        let iam = self.ctx.provider_clients(&provider).await?.iam();
        let desired = DesiredRole::new(
            &self.role.spec,
            provider.spec.default_tags.as_ref(),
            &self.owner(),
        );
        // A role this object never saw is most likely absent: CreateRole first saves the GetRole,
        // and when the name is taken (a crash after CreateRole, a role to adopt, someone else's)
        // the role is read and handled as any existing one.
        if !role_seen(self.role)
            && let Creation::Created = self.create(&iam, &desired, progress).await?
        {
            return Ok(());
        }
        match iam
            .observe_role(&desired.name)
            .await
            .map_err(ReconcileError::aws)?
        {
            None => match self.create(&iam, &desired, progress).await? {
                Creation::Created => Ok(()),
                // Created by someone else since we looked: look again soon.
                Creation::NameTaken(source) => Err(ReconcileError::Aws {
                    source,
                    transient: true,
                }),
            },
            Some(observed) => self.converge(&iam, &desired, observed, progress).await,
        }
    }

    /// Creates the role with everything CreateRole takes, then attaches and puts the rest; changes
    /// nothing when a role of that name already exists.
    async fn create(
        &self,
        iam: &IamApi,
        desired: &DesiredRole,
        progress: &mut Progress,
    ) -> Result<Creation, ReconcileError> {
        let created = match iam
            .create_role(&CreateRole {
                name: desired.name.clone(),
                path: desired.path.clone(),
                trust_policy: desired.trust_policy.clone(),
                description: desired.description.clone(),
                max_session_duration: desired.max_session_duration,
                permissions_boundary: desired.permissions_boundary.clone(),
                tags: desired.tags.clone(),
            })
            .await
        {
            Ok(created) => created,
            Err(source) if source.kind() == AwsErrorKind::EntityAlreadyExists => {
                return Ok(Creation::NameTaken(source));
            }
            Err(source) => return Err(ReconcileError::aws(source)),
        };
        progress.identity = Some(RoleIdentity {
            arn: created.arn.clone(),
            role_id: created.role_id,
            create_date: created.create_date,
        });
        progress.managed.clear();
        tracing::info!(role = %self.owner(), arn = %created.arn, "IAM role created");
        self.publish(
            EventType::Normal,
            "Created",
            "CreateRole",
            format!("created IAM role {}", created.arn),
        );
        for arn in &desired.managed_policies {
            let change = Change::AttachPolicy { arn: arn.clone() };
            apply_change(iam, &desired.name, &change, progress, true).await?;
        }
        for (name, document) in &desired.inline_policies {
            let change = Change::PutInlinePolicy {
                name: name.clone(),
                document: document.clone(),
            };
            apply_change(iam, &desired.name, &change, progress, true).await?;
        }
        Ok(Creation::Created)
    }

    /// Brings an existing role to the spec, if it is this object's.
    async fn converge(
        &self,
        iam: &IamApi,
        desired: &DesiredRole,
        observed: ObservedRole,
        progress: &mut Progress,
    ) -> Result<(), ReconcileError> {
        match ownership(&observed.tags, &self.owner()) {
            Ownership::Ours => {}
            Ownership::Unowned if adopt_requested(self.role) => {
                self.publish(
                    EventType::Normal,
                    "Adopted",
                    "TagRole",
                    format!(
                        "adopting the existing IAM role {} (annotation {ADOPT_ANNOTATION})",
                        observed.arn
                    ),
                );
            }
            Ownership::Unowned => {
                return Err(ReconcileError::RoleExists {
                    role_name: desired.name.clone(),
                });
            }
            Ownership::OwnedBy(owner) => {
                return Err(ReconcileError::RoleConflict {
                    role_name: desired.name.clone(),
                    owner,
                });
            }
        }
        progress.identity = Some(RoleIdentity {
            arn: observed.arn.clone(),
            role_id: observed.role_id.clone(),
            create_date: observed.create_date.clone(),
        });
        // A policy declared in the spec and already attached is this object's from now on.
        progress.managed.extend(
            desired
                .managed_policies
                .intersection(&observed.managed_policies)
                .cloned(),
        );
        let changes = plan(desired, &observed, &progress.managed)?;
        for change in &changes {
            apply_change(iam, &desired.name, change, progress, false).await?;
        }
        if !changes.is_empty() {
            let operations: Vec<&str> = changes.iter().map(Change::operation).collect();
            tracing::info!(role = %self.owner(), changes = ?operations, "IAM role updated");
            self.publish(
                EventType::Normal,
                "Updated",
                "UpdateRole",
                format!(
                    "updated IAM role {}: {}",
                    observed.arn,
                    describe_changes(&changes)
                ),
            );
        }
        Ok(())
    }

    /// Cleans up after deletion: per `deletionPolicy`, then removes the finalizer.
    async fn cleanup(&self, progress: &mut Progress) -> Result<(), ReconcileError> {
        if !self.role.finalizers().iter().any(|f| f == FINALIZER) {
            progress.finalized = true;
            return Ok(());
        }
        let policy = self.role.spec.deletion_policy.unwrap_or_default();
        let role_name = &self.role.spec.role_name;
        let note = match policy {
            DeletionPolicy::Retain => {
                format!("deletionPolicy is Retain: IAM role {role_name} is left in IAM")
            }
            DeletionPolicy::Delete => self.delete_in_iam(progress).await?,
        };
        self.remove_finalizer().await?;
        progress.finalized = true;
        let reason = match policy {
            DeletionPolicy::Retain => "Retained",
            DeletionPolicy::Delete => "Deleted",
        };
        self.publish(EventType::Normal, reason, "DeleteRole", note);
        Ok(())
    }

    /// Deletes the role in IAM if it is this object's; returns what happened, for the Event.
    async fn delete_in_iam(&self, progress: &mut Progress) -> Result<String, ReconcileError> {
        let role_name = self.role.spec.role_name.clone();
        let provider = self.required_provider(progress).await?;
        let iam = self.ctx.provider_clients(&provider).await?.iam();
        let Some(observed) = iam
            .observe_role(&role_name)
            .await
            .map_err(ReconcileError::aws)?
        else {
            return Ok(format!("IAM role {role_name} no longer exists"));
        };
        if ownership(&observed.tags, &self.owner()) != Ownership::Ours {
            return Ok(format!(
                "IAM role {role_name} is not managed by this object and was left untouched"
            ));
        }
        delete_role(&iam, &observed, &role_name).await?;
        Ok(format!("deleted IAM role {}", observed.arn))
    }

    /// The referenced AWSProvider, its drift settings recorded in `progress`; `ProviderNotFound` when
    /// it does not exist.
    async fn required_provider(
        &self,
        progress: &mut Progress,
    ) -> Result<AWSProvider, ReconcileError> {
        let provider = self
            .ctx
            .provider(&self.namespace, &self.role.spec.provider_ref.name)
            .await?
            .ok_or_else(|| ReconcileError::ProviderNotFound {
                namespace: self.namespace.clone(),
                name: self.role.spec.provider_ref.name.clone(),
            })?;
        progress.drift = provider.spec.drift_detection.clone();
        Ok(provider)
    }

    /// Adds the finalizer (before anything is created in IAM).
    async fn ensure_finalizer(&self) -> Result<(), ReconcileError> {
        let finalizers = self.role.finalizers();
        if finalizers.iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let patch = if finalizers.is_empty() {
            json!([
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": self.role.resource_version(),
                },
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ])
        } else {
            let mut wanted = finalizers.to_vec();
            wanted.push(FINALIZER.to_owned());
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                {"op": "replace", "path": "/metadata/finalizers", "value": wanted},
            ])
        };
        self.patch_metadata(patch, "add the finalizer").await
    }

    /// Removes the finalizer, letting Kubernetes delete the object.
    async fn remove_finalizer(&self) -> Result<(), ReconcileError> {
        let finalizers = self.role.finalizers();
        let remaining: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
            {"op": "replace", "path": "/metadata/finalizers", "value": remaining},
        ]);
        match self.patch_metadata(patch, "remove the finalizer").await {
            Err(ReconcileError::Kube {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 404 => Ok(()),
            other => other,
        }
    }

    async fn patch_metadata(
        &self,
        patch: serde_json::Value,
        action: &'static str,
    ) -> Result<(), ReconcileError> {
        let patch: json_patch::Patch = serde_json::from_value(patch)
            .map_err(|e| ReconcileError::kube(action, kube::Error::SerdeError(e)))?;
        self.api
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
            .map(drop)
            .map_err(|e| ReconcileError::kube(action, e))
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

    /// Writes the status computed from the outcome, when it changed.
    async fn write_status(
        &self,
        progress: &Progress,
        error: Option<&ReconcileError>,
    ) -> Result<(), ReconcileError> {
        let outcome = match (error, &progress.identity) {
            (None, Some(identity)) => RoleOutcome::Synced(identity.clone()),
            (None, None) => return Ok(()),
            (Some(error), identity) => RoleOutcome::NotSynced {
                role: identity.clone(),
                reason: error.reason().to_owned(),
                message: self.failure_message(error),
            },
        };
        let previous = self.role.status.as_ref();
        let now = Time(Timestamp::now());
        let mut status = role_status(previous, &outcome, self.role.metadata.generation, &now);
        status.attached_policy_arns = progress.managed.iter().cloned().collect();
        if !status_changed(previous, &status) {
            return Ok(());
        }
        write_status(&self.api, &self.name, previous, &status)
            .await
            .map_err(|e| ReconcileError::kube("write the IAMRole status", e))
    }
}

/// Fails unless the provider authenticated at its current generation.
fn ensure_ready(provider: &AWSProvider) -> Result<(), ReconcileError> {
    if provider_ready(provider) {
        return Ok(());
    }
    let message = provider
        .status
        .as_ref()
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == super::status::READY)
        })
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

/// Executes one change and keeps track of the managed policies this object attached.
async fn apply_change(
    iam: &IamApi,
    role_name: &str,
    change: &Change,
    progress: &mut Progress,
    just_created: bool,
) -> Result<(), ReconcileError> {
    iam.apply(role_name, change).await.map_err(|e| {
        if just_created {
            ReconcileError::aws_after_create(e)
        } else {
            ReconcileError::aws(e)
        }
    })?;
    match change {
        Change::AttachPolicy { arn } => {
            progress.managed.insert(arn.clone());
        }
        Change::DetachPolicy { arn } => {
            progress.managed.remove(arn);
        }
        _ => {}
    }
    Ok(())
}

/// Empties and deletes a role: out of its instance profiles, managed policies detached, inline
/// policies deleted, then DeleteRole. Anything already gone counts as done.
async fn delete_role(
    iam: &IamApi,
    observed: &ObservedRole,
    role_name: &str,
) -> Result<(), ReconcileError> {
    let gone_is_done = |result: Result<(), AwsError>| match result {
        Err(e) if e.kind() == AwsErrorKind::NoSuchEntity => Ok(()),
        other => other.map_err(ReconcileError::aws),
    };
    let profiles = match iam.instance_profiles_for_role(role_name).await {
        Ok(profiles) => profiles,
        Err(e) if e.kind() == AwsErrorKind::NoSuchEntity => return Ok(()),
        Err(e) => return Err(ReconcileError::aws(e)),
    };
    for profile in &profiles {
        gone_is_done(
            iam.remove_role_from_instance_profile(profile, role_name)
                .await,
        )?;
    }
    for arn in &observed.managed_policies {
        let change = Change::DetachPolicy { arn: arn.clone() };
        gone_is_done(iam.apply(role_name, &change).await)?;
    }
    for name in observed.inline_policies.keys() {
        let change = Change::DeleteInlinePolicy { name: name.clone() };
        gone_is_done(iam.apply(role_name, &change).await)?;
    }
    gone_is_done(iam.delete_role(role_name).await)
}

/// A short description of the changes for an Event: each operation with what it touched.
fn describe_changes(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|change| match change {
            Change::UpdateRole { .. } => "UpdateRole (description, maxSessionDuration)".to_owned(),
            Change::UpdateTrustPolicy { .. } => "UpdateAssumeRolePolicy".to_owned(),
            Change::AttachPolicy { arn } => format!("AttachRolePolicy {arn}"),
            Change::DetachPolicy { arn } => format!("DetachRolePolicy {arn}"),
            Change::PutInlinePolicy { name, .. } => format!("PutRolePolicy {name}"),
            Change::DeleteInlinePolicy { name } => format!("DeleteRolePolicy {name}"),
            Change::PutBoundary { arn } => format!("PutRolePermissionsBoundary {arn}"),
            Change::DeleteBoundary => "DeleteRolePermissionsBoundary".to_owned(),
            Change::TagRole { tags } => {
                let keys: Vec<&str> = tags.keys().map(String::as_str).collect();
                format!("TagRole {}", keys.join(","))
            }
            Change::UntagRole { keys } => format!("UntagRole {}", keys.join(",")),
        })
        .collect::<Vec<_>>()
        .join("; ")
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

    fn condition(reason: &str) -> Condition {
        Condition {
            type_: "Ready".to_owned(),
            status: "False".to_owned(),
            reason: reason.to_owned(),
            message: String::new(),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn create_role_comes_first_only_while_no_role_was_seen() {
        let mut role = role();
        assert!(!role_seen(&role), "no status yet");
        role.status = Some(IAMRoleStatus {
            conditions: vec![condition("ProviderNotReady")],
            ..IAMRoleStatus::default()
        });
        assert!(!role_seen(&role), "failed before reaching IAM");
        role.status = Some(IAMRoleStatus {
            role_arn: Some("arn:aws:iam::123456789012:role/app".to_owned()),
            ..IAMRoleStatus::default()
        });
        assert!(role_seen(&role), "created or adopted");
        for error in [
            ReconcileError::RoleExists {
                role_name: "app".to_owned(),
            },
            ReconcileError::RoleConflict {
                role_name: "app".to_owned(),
                owner: "other/app".to_owned(),
            },
        ] {
            role.status = Some(IAMRoleStatus {
                conditions: vec![condition(error.reason())],
                ..IAMRoleStatus::default()
            });
            assert!(role_seen(&role), "{}", error.reason());
        }
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

    #[test]
    fn change_descriptions_name_what_was_touched() {
        let text = describe_changes(&[
            Change::AttachPolicy {
                arn: "arn:aws:iam::aws:policy/A".to_owned(),
            },
            Change::UntagRole {
                keys: vec!["a".to_owned(), "b".to_owned()],
            },
            Change::DeleteBoundary,
        ]);
        assert_eq!(
            text,
            "AttachRolePolicy arn:aws:iam::aws:policy/A; UntagRole a,b; DeleteRolePermissionsBoundary"
        );
    }
}
