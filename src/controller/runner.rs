//! Runs the reconciler: takes part in leader election and, while this replica leads, runs the
//! AWSProvider and IAMRole controllers (watches filtered so that status writes trigger nothing;
//! providers requeue their roles; a change of the guardrails governing a namespace requeues its
//! roles and providers, and the GuardrailPolicies' status is kept, by [`policies`]). The
//! controllers stop when leadership is lost or on shutdown. Talks to the Kubernetes API.

use std::path::PathBuf;
use std::sync::Arc;

use futures::{StreamExt, future};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Config, Controller, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource};
use tokio::sync::{mpsc, oneshot, watch};

use super::backoff::Backoff;
use super::clients::{ClientCache, ProviderClients};
use super::context::Context;
use super::events::Events;
use super::leader::{self, LeaseSettings};
use super::metrics::ControllerMetrics;
use super::stores::Stores;
use super::{policies, provider, role};
use crate::api::{AWSProvider, IAMRole};
use crate::aws::{RateConfig, RateLimits};
use crate::governance::Guardrails;
use crate::serve::Shutdown;

/// Name of this controller in Events (`reportingController`).
pub const CONTROLLER_NAME: &str = "infra-operator";

/// How the reconciler runs.
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// Leader election: where the Lease lives, this replica's identity, timings.
    pub lease: LeaseSettings,
    /// How many objects of each kind are reconciled at once.
    pub concurrency: u16,
    /// The web identity token file for providers with `roleARN` (IRSA).
    pub web_identity_token_file: Option<PathBuf>,
    /// Rate and burst of every AWS account's IAM rate limiter.
    pub iam_rate: RateConfig,
}

/// Runs leader election and, while leading, the controllers, until `shutdown` is cancelled. Returns
/// once the controllers stopped and the Lease was released.
pub async fn run(
    client: Client,
    guardrails: Guardrails,
    settings: ControllerSettings,
    metrics: ControllerMetrics,
    shutdown: Shutdown,
) {
    let (leading_sender, leading) = watch::channel(false);
    let election = tokio::spawn(leader::run(
        client.clone(),
        settings.lease.clone(),
        leading_sender,
        shutdown.clone(),
    ));
    let lasting = Lasting {
        cache: Arc::new(ClientCache::default()),
        limits: RateLimits::new(settings.iam_rate, Some(metrics.rate_observer())),
        guardrails,
    };
    loop {
        let mut until_leading = leading.clone();
        let lead = tokio::select! {
            result = until_leading.wait_for(|lead| *lead) => result.is_ok(),
            () = shutdown.cancelled() => false,
        };
        if !lead || shutdown.is_cancelled() {
            break;
        }
        tracing::info!(identity = %settings.lease.identity, "leading: starting the controllers");
        let (stop_providers, providers_stopped) = oneshot::channel::<()>();
        let (stop_roles, roles_stopped) = oneshot::channel::<()>();
        let mut lost = leading.clone();
        let stop = shutdown.clone();
        let term_end = tokio::spawn(async move {
            tokio::select! {
                _ = lost.wait_for(|lead| !*lead) => {}
                () = stop.cancelled() => {}
            }
            let _ = stop_providers.send(());
            let _ = stop_roles.send(());
        });
        run_controllers(
            client.clone(),
            &settings,
            metrics.clone(),
            lasting.clone(),
            async move {
                let _ = providers_stopped.await;
            },
            async move {
                let _ = roles_stopped.await;
            },
        )
        .await;
        term_end.abort();
        if shutdown.is_cancelled() {
            break;
        }
        tracing::info!("leadership lost: controllers stopped");
    }
    if let Err(error) = election.await {
        tracing::warn!(%error, "leader election ended abnormally");
    }
    tracing::info!("reconciler stopped");
}

/// What outlives a leadership term: the providers' AWS clients, the accounts' rate limiters and
/// the guardrails.
#[derive(Clone)]
struct Lasting {
    cache: Arc<ClientCache>,
    limits: RateLimits,
    guardrails: Guardrails,
}

/// Runs both controllers until their stop futures complete (reconciles in flight finish first).
async fn run_controllers(
    client: Client,
    settings: &ControllerSettings,
    metrics: ControllerMetrics,
    lasting: Lasting,
    stop_providers: impl Future<Output = ()> + Send + Sync + 'static,
    stop_roles: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let config = Config::default().concurrency(settings.concurrency);
    let (role_reader, role_writer) = reflector::store::<IAMRole>();
    let roles = watcher(
        Api::<IAMRole>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(strip_bookkeeping)
    .reflect(role_writer)
    .applied_objects()
    .predicate_filter(role::trigger_hash, Default::default());
    let (provider_reader, provider_writer) = reflector::store::<AWSProvider>();
    let providers = watcher(
        Api::<AWSProvider>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(strip_bookkeeping)
    .reflect(provider_writer)
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());
    let (role_triggers, mut requeued_roles) = mpsc::unbounded_channel::<ObjectRef<IAMRole>>();
    let (provider_triggers, mut requeued_providers) =
        mpsc::unbounded_channel::<ObjectRef<AWSProvider>>();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: CONTROLLER_NAME.to_owned(),
            instance: Some(settings.lease.identity.clone()),
        },
    );
    let ctx = Arc::new(Context {
        clients: ProviderClients::new(
            client.clone(),
            lasting.cache,
            &metrics,
            lasting.limits,
            settings.web_identity_token_file.clone(),
        ),
        client,
        stores: Stores {
            roles: role_reader.clone(),
            providers: provider_reader.clone(),
        },
        events: Events::start(recorder),
        metrics,
        role_backoff: Backoff::default(),
        provider_backoff: Backoff::default(),
        names_taken: Default::default(),
        annotation_retries: Default::default(),
        role_triggers: role_triggers.clone(),
        provider_triggers: provider_triggers.clone(),
        guardrails: lasting.guardrails.clone(),
    });
    let governance = match &lasting.guardrails {
        Guardrails::Cluster(cluster) => Some(tokio::spawn(policies::run(
            Arc::clone(cluster),
            ctx.client.clone(),
            ctx.stores.clone(),
            role_triggers,
            provider_triggers,
        ))),
        Guardrails::Fixed(_) => None,
    };
    let provider_requeues = futures::stream::poll_fn(move |cx| requeued_providers.poll_recv(cx));
    let provider_controller = Controller::for_stream(providers, provider_reader)
        .reconcile_on(provider_requeues)
        .with_config(config.clone())
        .graceful_shutdown_on(stop_providers)
        .run(
            provider::reconcile,
            provider::error_policy,
            Arc::clone(&ctx),
        )
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "AWSProvider controller");
            }
            future::ready(())
        });
    let role_requeues = futures::stream::poll_fn(move |cx| requeued_roles.poll_recv(cx));
    let role_controller = Controller::for_stream(roles, role_reader)
        .reconcile_on(role_requeues)
        .with_config(config)
        .graceful_shutdown_on(stop_roles)
        .run(role::reconcile, role::error_policy, ctx)
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "IAMRole controller");
            }
            future::ready(())
        });
    tokio::join!(provider_controller, role_controller);
    if let Some(governance) = governance {
        governance.abort();
    }
}

/// Drops what the reconciler never reads — `managedFields` and kubectl's copy of the last applied
/// manifest — before an object is cached: together they are most of a cached object's memory, and
/// for a Secret made with `kubectl apply` that copy holds its data, which is never kept.
fn strip_bookkeeping<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
}

/// The annotation in which `kubectl apply` keeps the whole last applied manifest.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    use super::*;
    use crate::api::IAMRoleSpec;
    use crate::controller::model::plan::ADOPT_ANNOTATION;

    #[test]
    fn cached_objects_lose_bookkeeping_but_keep_what_the_reconciler_reads() {
        let mut role = IAMRole::new("r", IAMRoleSpec::default());
        role.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        role.metadata.annotations = Some(BTreeMap::from([
            (
                LAST_APPLIED_ANNOTATION.to_owned(),
                "{\"spec\":{}}".to_owned(),
            ),
            (ADOPT_ANNOTATION.to_owned(), "true".to_owned()),
        ]));
        role.metadata.finalizers = Some(vec!["f".to_owned()]);
        strip_bookkeeping(&mut role);
        assert_eq!(role.metadata.managed_fields, None);
        let annotations = role.metadata.annotations.clone().unwrap_or_default();
        assert!(!annotations.contains_key(LAST_APPLIED_ANNOTATION));
        assert_eq!(
            annotations.get(ADOPT_ANNOTATION).map(String::as_str),
            Some("true")
        );
        assert_eq!(role.metadata.finalizers, Some(vec!["f".to_owned()]));
    }
}
