//! The AWSProvider reconcile: builds the provider's AWS clients (reading the Secrets it
//! references), proves them with STS GetCallerIdentity, writes the status when it changed, and
//! requeues the IAMRoles that reference the provider when its readiness or spec changed. Talks to
//! the Kubernetes API and STS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::context::{Context, object_key, roles_of_provider};
use super::error::ReconcileError;
use super::status::{ProviderOutcome, provider_status, status_changed};
use super::status_patch::write_status;
use crate::api::{AWSProvider, AWSProviderStatus};

/// The kind, as metrics and logs name it.
pub const KIND: &str = "AWSProvider";

/// How often working credentials are checked again.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(300);

/// Reconciles one AWSProvider. A failure to authenticate is reported in the status (and as a
/// Warning Event when it starts) and retried with backoff.
pub async fn reconcile(
    provider: Arc<AWSProvider>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let namespace = provider
        .namespace()
        .ok_or(ReconcileError::InvalidObject("namespace"))?;
    let name = provider.name_any();
    let key = object_key(KIND, &namespace, &name);
    let outcome = authenticate(&provider, &ctx).await;
    let previous = provider.status.as_ref();
    let now = Time(Timestamp::now());
    let status = provider_status(previous, &outcome, provider.metadata.generation, &now);
    let written = if status_changed(previous, &status) {
        let api: Api<AWSProvider> = Api::namespaced(ctx.client.clone(), &namespace);
        write_status(&api, &name, previous, &status)
            .await
            .map_err(|e| ReconcileError::kube("write the AWSProvider status", e))
    } else {
        Ok(())
    };
    if written.is_ok() && roles_need_requeue(previous, &status) {
        for role in roles_of_provider(&ctx.stores.roles, &namespace, &name) {
            // The receiver lives as long as the IAMRole controller; a closed channel means it
            // is shutting down and there is nothing left to requeue.
            let _closed = ctx.role_triggers.send(role);
        }
    }
    let became = previous.is_none_or(|p| p.ready != status.ready);
    match &outcome {
        ProviderOutcome::Authenticated {
            account_id,
            caller_identity,
        } if became => {
            tracing::info!(provider = %key, account = %account_id, "AWSProvider authenticated");
            ctx.publish(
                &provider.object_ref(&()),
                EventType::Normal,
                "Authenticated",
                "GetCallerIdentity",
                format!("authenticated as {caller_identity} in account {account_id}"),
            );
        }
        ProviderOutcome::Failed { reason, message } => {
            tracing::warn!(
                provider = %key,
                reason = %reason,
                %message,
                "AWSProvider cannot authenticate"
            );
            ctx.publish(
                &provider.object_ref(&()),
                EventType::Warning,
                reason,
                "GetCallerIdentity",
                message.clone(),
            );
        }
        ProviderOutcome::Authenticated { .. } => {}
    }
    let success = written.is_ok() && matches!(outcome, ProviderOutcome::Authenticated { .. });
    ctx.metrics
        .observe_reconcile(KIND, success, started.elapsed());
    written?;
    if success {
        ctx.reset_backoff(&key);
        Ok(Action::requeue(RECHECK_INTERVAL))
    } else {
        Ok(Action::requeue(ctx.next_backoff(&key)))
    }
}

/// Backs off after an error the reconcile could not report itself.
pub fn error_policy(
    provider: Arc<AWSProvider>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let key = object_key(
        KIND,
        provider.namespace().as_deref().unwrap_or_default(),
        &provider.name_any(),
    );
    tracing::warn!(provider = %key, reason = error.reason(), %error, "reconcile failed");
    Action::requeue(ctx.next_backoff(&key))
}

/// Builds the clients and calls STS GetCallerIdentity.
async fn authenticate(provider: &AWSProvider, ctx: &Context) -> ProviderOutcome {
    let result = match ctx.provider_clients(provider).await {
        Ok(clients) => clients.caller_identity().await.map_err(ReconcileError::aws),
        Err(error) => Err(error),
    };
    match result {
        Ok(identity) => ProviderOutcome::Authenticated {
            account_id: identity.account,
            caller_identity: identity.arn,
        },
        Err(error) => ProviderOutcome::Failed {
            reason: error.reason().to_owned(),
            message: error.to_string(),
        },
    }
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
