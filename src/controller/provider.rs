//! The AWSProvider reconcile: builds the provider's AWS clients (reading the Secrets it
//! references), proves them with STS GetCallerIdentity, writes the status when it changed, and
//! requeues the IAMRoles that reference the provider when its readiness or spec changed. A
//! provider carries the operator's finalizer: while IAMRoles still reference it, its deletion
//! waits (in-use protection). Talks to the Kubernetes API and STS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::context::Context;
use super::finalizer;
use super::model::error::ReconcileError;
use super::model::status::{
    ProviderOutcome, provider_in_use_status, provider_status, status_changed,
};
use super::status_patch::write_status;
use super::stores::object_key;
use crate::api::{AWSProvider, AWSProviderStatus};
use crate::aws::CallerIdentity;

/// The kind, as metrics and logs name it.
pub const KIND: &str = "AWSProvider";

/// How often working credentials are checked again — and the Secrets they come from read again
/// (the operator does not watch Secrets), so a rotated or removed key is noticed within this time.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Reconciles one AWSProvider: the outcome is reported once (status, an Event when it starts
/// failing or starts working, metrics); a failure is returned for [`error_policy`] to retry with
/// backoff.
pub async fn reconcile(
    provider: Arc<AWSProvider>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let namespace = provider
        .namespace()
        .ok_or(ReconcileError::InvalidObject("namespace"))?;
    let name = provider.name_any();
    if provider.metadata.deletion_timestamp.is_some() {
        let result = release(&provider, &ctx, &namespace, &name).await;
        ctx.metrics
            .observe_reconcile(KIND, result.is_ok(), started.elapsed());
        return result;
    }
    let api: Api<AWSProvider> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer::add(&api, &provider).await?;
    let authenticated = authenticate(&provider, &ctx).await;
    let result = report(&provider, &ctx, &namespace, &name, authenticated).await;
    ctx.metrics
        .observe_reconcile(KIND, result.is_ok(), started.elapsed());
    match &result {
        Ok(_) => ctx.provider_backoff.forget(&provider),
        Err(error) => ctx.metrics.observe_error(KIND, error.reason()),
    }
    result
}

/// Backs off after a failure, per provider (forgotten once the provider is gone).
pub fn error_policy(
    provider: Arc<AWSProvider>,
    _error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    Action::requeue(ctx.provider_backoff.next(&provider, &ctx.stores.providers))
}

/// How often a provider whose deletion waits for its IAMRoles looks again.
pub const IN_USE_RECHECK: Duration = Duration::from_secs(3);

/// The deletion of a provider: it waits (finalizer kept, `InUse` condition naming them) while
/// IAMRoles still reference it, so that they can still be deleted in IAM with its credentials
/// (the clients built last stay cached even when its Secret is gone); then the finalizer goes.
async fn release(
    provider: &AWSProvider,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Action, ReconcileError> {
    let api: Api<AWSProvider> = Api::namespaced(ctx.client.clone(), namespace);
    if !finalizer::has_finalizer(provider) {
        return Ok(Action::await_change());
    }
    let mut dependents: Vec<String> = ctx
        .stores
        .roles_of_provider(namespace, name)
        .into_iter()
        .map(|role| format!("{namespace}/{}", role.name))
        .collect();
    dependents.sort();
    if dependents.is_empty() {
        finalizer::remove(&api, provider).await?;
        ctx.clients.forget(namespace, name);
        return Ok(Action::await_change());
    }
    let previous = provider.status.as_ref();
    let now = Time(Timestamp::now());
    let status = provider_in_use_status(previous, &dependents, provider.metadata.generation, &now);
    if status_changed(previous, &status) {
        write_status(&api, name, previous, &status)
            .await
            .map_err(|e| ReconcileError::kube("write the AWSProvider status", e))?;
    }
    Ok(Action::requeue(IN_USE_RECHECK))
}

/// Writes the status of the outcome, publishes its Event, and requeues the provider's IAMRoles
/// when its readiness or spec changed.
async fn report(
    provider: &AWSProvider,
    ctx: &Context,
    namespace: &str,
    name: &str,
    authenticated: Result<CallerIdentity, ReconcileError>,
) -> Result<Action, ReconcileError> {
    let outcome = match &authenticated {
        Ok(identity) => ProviderOutcome::Authenticated {
            account_id: identity.account.clone(),
            caller_identity: identity.arn.clone(),
        },
        Err(error) => ProviderOutcome::Failed {
            reason: error.reason().to_owned(),
            message: error.to_string(),
        },
    };
    let previous = provider.status.as_ref();
    let now = Time(Timestamp::now());
    let status = provider_status(previous, &outcome, provider.metadata.generation, &now);
    if status_changed(previous, &status) {
        let api: Api<AWSProvider> = Api::namespaced(ctx.client.clone(), namespace);
        write_status(&api, name, previous, &status)
            .await
            .map_err(|e| ReconcileError::kube("write the AWSProvider status", e))?;
    }
    if roles_need_requeue(previous, &status) {
        for role in ctx.stores.roles_of_provider(namespace, name) {
            // The receiver lives as long as the IAMRole controller; a closed channel means it
            // is shutting down and there is nothing left to requeue.
            let _closed = ctx.role_triggers.send(role);
        }
    }
    let key = object_key(KIND, namespace, name);
    let regarding = provider.object_ref(&());
    match authenticated {
        Ok(identity) => {
            if previous.is_none_or(|p| !p.ready) {
                tracing::info!(provider = %key, account = %identity.account, "AWSProvider authenticated");
                ctx.events.publish(
                    &regarding,
                    EventType::Normal,
                    "Authenticated",
                    "GetCallerIdentity",
                    format!(
                        "authenticated as {} in account {}",
                        identity.arn, identity.account
                    ),
                );
            }
            Ok(Action::requeue(RECHECK_INTERVAL))
        }
        Err(error) => {
            tracing::warn!(provider = %key, reason = error.reason(), %error, "AWSProvider cannot authenticate");
            ctx.events.publish(
                &regarding,
                EventType::Warning,
                error.reason(),
                "GetCallerIdentity",
                error.to_string(),
            );
            Err(error)
        }
    }
}

/// Builds the clients (if the namespace's guardrails let the provider send credentials where it
/// asks) and calls STS GetCallerIdentity.
async fn authenticate(
    provider: &AWSProvider,
    ctx: &Context,
) -> Result<CallerIdentity, ReconcileError> {
    let namespace = provider.namespace().unwrap_or_default();
    let governed = ctx.guardrails.governing(&namespace)?;
    let clients = ctx.clients.checked(provider, &governed.engine).await?;
    clients.caller_identity().await.map_err(ReconcileError::aws)
}

/// Whether the IAMRoles of the provider should be looked at again: the provider became ready or
/// stopped being ready, or its spec changed (default tags, drift settings, credentials).
fn roles_need_requeue(previous: Option<&AWSProviderStatus>, new: &AWSProviderStatus) -> bool {
    match previous {
        None => new.ready,
        Some(previous) => {
            previous.ready != new.ready
                || (new.ready && previous.observed_generation != new.observed_generation)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(ready: bool, generation: i64) -> AWSProviderStatus {
        AWSProviderStatus {
            ready,
            observed_generation: Some(generation),
            ..AWSProviderStatus::default()
        }
    }

    #[test]
    fn roles_are_requeued_when_readiness_or_the_spec_changes() {
        assert!(roles_need_requeue(None, &status(true, 1)));
        assert!(!roles_need_requeue(None, &status(false, 1)));
        assert!(roles_need_requeue(
            Some(&status(false, 1)),
            &status(true, 1)
        ));
        assert!(roles_need_requeue(
            Some(&status(true, 1)),
            &status(false, 1)
        ));
        assert!(roles_need_requeue(Some(&status(true, 1)), &status(true, 2)));
        assert!(!roles_need_requeue(
            Some(&status(true, 2)),
            &status(true, 2)
        ));
        assert!(!roles_need_requeue(
            Some(&status(false, 1)),
            &status(false, 2)
        ));
    }
}
