//! Everything a reconcile needs besides the object itself, for one leadership term: the
//! Kubernetes client, the watch caches, the providers' AWS clients, the Event queue, the metrics,
//! the per-object backoff, the guardrails, and the channel that requeues IAMRoles when their
//! provider or their guardrails change.
//! Reads AWSProviders from the API server when the cache cannot answer.

use std::sync::Arc;

use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};
use tokio::sync::mpsc;

use super::backoff::Backoff;
use super::clients::ProviderClients;
use super::events::Events;
use super::metrics::ControllerMetrics;
use super::model::error::ReconcileError;
use super::per_object::PerObject;
use super::stores::{Stores, provider_ready};
use crate::api::{AWSProvider, IAMRole};
use crate::governance::Guardrails;

/// State shared by every reconcile of one leadership term.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// The watch caches.
    pub stores: Stores,
    /// The AWS clients of each provider.
    pub clients: ProviderClients,
    /// Events about IAMRoles and AWSProviders.
    pub events: Events,
    /// Reconcile and AWS call metrics.
    pub metrics: ControllerMetrics,
    /// Retry delays of failing IAMRoles.
    pub role_backoff: Backoff<IAMRole>,
    /// Retry delays of failing AWSProviders.
    pub provider_backoff: Backoff<AWSProvider>,
    /// IAMRoles whose role name was found taken by a role that is not theirs: their next
    /// reconcile reads IAM before trying CreateRole.
    pub names_taken: PerObject<IAMRole, bool>,
    /// IAMRoles whose ServiceAccounts are not all annotated: how many looks in a row found so,
    /// which spaces out the next ones.
    pub annotation_retries: PerObject<IAMRole, u32>,
    /// Requeues IAMRoles (when their provider or their guardrails change).
    pub role_triggers: mpsc::UnboundedSender<ObjectRef<IAMRole>>,
    /// Requeues AWSProviders (when their guardrails change, or a role finds their Secret changed).
    pub provider_triggers: mpsc::UnboundedSender<ObjectRef<AWSProvider>>,
    /// The guardrails governing each namespace.
    pub guardrails: Guardrails,
}

impl Context {
    /// The AWSProvider `namespace/name` as the watch last saw it, if that copy is Ready at its
    /// generation; otherwise (missing, not Ready, or not seen yet) read from the API server, so
    /// that a provider that just became Ready is never taken for one that is not.
    pub async fn provider(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<AWSProvider>, ReconcileError> {
        if let Some(cached) = self.stores.provider(namespace, name)
            && provider_ready(&cached)
        {
            return Ok(Some(Arc::unwrap_or_clone(cached)));
        }
        let api: Api<AWSProvider> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name)
            .await
            .map_err(|e| ReconcileError::kube("read the AWSProvider", e))
    }
}
