//! The cluster's GuardrailPolicies and the labels of its Namespaces, as watched, and the engine of
//! each policy version (built on first use, shared by every review and reconcile until the policy
//! changes). Runs the watches (Kubernetes API reads); everything else here reads the caches.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Notify;

use super::select::{NamespaceSelector, governing};
use super::{GovernanceError, Governed};
use crate::api::GuardrailPolicy;
use crate::guardrails::Engine;
use crate::serve::Shutdown;

/// An engine built for one version of a policy, or why it could not be.
type Built = Result<Arc<Engine>, String>;

/// The cluster's guardrails, kept current by [`ClusterGuardrails::run`].
pub struct ClusterGuardrails {
    policies: Store<GuardrailPolicy>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    builtin: Arc<Engine>,
    /// Engines by policy name, with the resourceVersion they were built for.
    engines: Mutex<HashMap<String, (Option<String>, Built)>>,
    /// Woken on every change of a policy or a namespace.
    changed: Arc<Notify>,
    writers: Mutex<Option<Writers>>,
    /// Whether each watch has listed everything once.
    policies_listed: AtomicBool,
    namespaces_listed: AtomicBool,
    client: Client,
}

struct Writers {
    policies: reflector::store::Writer<GuardrailPolicy>,
    namespaces: reflector::store::Writer<PartialObjectMeta<Namespace>>,
}

impl ClusterGuardrails {
    /// Guardrails read from the cluster through `client`; `builtin` governs namespaces no policy
    /// selects (and lends its compiled schemas to every policy's engine). Nothing is known until
    /// [`ClusterGuardrails::run`] runs.
    pub fn new(client: Client, builtin: Arc<Engine>) -> Arc<Self> {
        let (policies, policy_writer) = reflector::store();
        let (namespaces, namespace_writer) = reflector::store();
        Arc::new(ClusterGuardrails {
            policies,
            namespaces,
            builtin,
            engines: Mutex::new(HashMap::new()),
            changed: Arc::new(Notify::new()),
            writers: Mutex::new(Some(Writers {
                policies: policy_writer,
                namespaces: namespace_writer,
            })),
            policies_listed: AtomicBool::new(false),
            namespaces_listed: AtomicBool::new(false),
            client,
        })
    }

    /// Watches GuardrailPolicies and the metadata of Namespaces until `shutdown`. Call once.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let Some(writers) = self.writers.lock().ok().and_then(|mut w| w.take()) else {
            return;
        };
        let policies = watcher(
            Api::<GuardrailPolicy>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writers.policies)
        .for_each(|event| {
            self.seen(event, "GuardrailPolicies", &self.policies_listed);
            futures::future::ready(())
        });
        let namespaces = watcher(
            Api::<PartialObjectMeta<Namespace>>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(|ns| {
            ns.metadata.managed_fields = None;
            ns.metadata.annotations = None;
        })
        .reflect(writers.namespaces)
        .for_each(|event| {
            self.seen(event, "Namespaces", &self.namespaces_listed);
            futures::future::ready(())
        });
        tokio::select! {
            _ = futures::future::join(policies, namespaces) => {}
            () = shutdown.cancelled() => {}
        }
    }

    /// Notes one watch event: a complete listing, or an error.
    fn seen<K>(
        &self,
        event: Result<watcher::Event<K>, watcher::Error>,
        what: &str,
        listed: &AtomicBool,
    ) {
        match event {
            Ok(watcher::Event::InitDone) => listed.store(true, Ordering::Release),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "watching {what}"),
        }
        self.changed.notify_waiters();
    }

    /// Waits until both watches have listed everything once.
    pub async fn synced(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_synced() {
                return;
            }
            notified.await;
        }
    }

    /// Whether both watches have listed everything once.
    fn is_synced(&self) -> bool {
        self.policies_listed.load(Ordering::Acquire)
            && self.namespaces_listed.load(Ordering::Acquire)
    }

    /// Resolves (without waiting) on the next change of a policy or a namespace.
    pub fn changed(&self) -> Arc<Notify> {
        Arc::clone(&self.changed)
    }

    /// The engine of the built-in defaults.
    pub fn builtin(&self) -> Arc<Engine> {
        Arc::clone(&self.builtin)
    }

    /// The guardrails governing `namespace`.
    pub fn governing(&self, namespace: &str) -> Result<Governed, GovernanceError> {
        let Some(labels) = self.labels(namespace)? else {
            return Err(GovernanceError::UnknownNamespace(namespace.to_owned()));
        };
        let policies = self.policies.state();
        let Some(policy) = governing(&policies, &labels) else {
            return Ok(Governed {
                engine: self.builtin(),
                policy: None,
            });
        };
        let name = policy.name_any();
        match self.engine_of(policy) {
            Ok(engine) => Ok(Governed {
                engine,
                policy: Some(name),
            }),
            Err(message) => Err(GovernanceError::InvalidPolicy {
                policy: name,
                namespace: namespace.to_owned(),
                message,
            }),
        }
    }

    /// For every namespace, the policy governing it (`None`: the built-in defaults) with the
    /// resourceVersion in force.
    pub fn assignments(&self) -> BTreeMap<String, Option<(String, Option<String>)>> {
        let policies = self.policies.state();
        self.namespaces
            .state()
            .iter()
            .map(|ns| {
                let labels = ns.labels();
                let policy =
                    governing(&policies, labels).map(|p| (p.name_any(), p.resource_version()));
                (ns.name_any(), policy)
            })
            .collect()
    }

    /// Every policy as watched.
    pub fn policies(&self) -> Vec<Arc<GuardrailPolicy>> {
        self.policies.state()
    }

    /// Why a policy's settings or selector cannot be used, if they cannot.
    pub fn problem(&self, policy: &GuardrailPolicy) -> Option<String> {
        if let NamespaceSelector::Unreadable(why) =
            NamespaceSelector::of(policy.spec.namespace_selector.as_ref())
        {
            return Some(format!("spec.namespaceSelector: {why}"));
        }
        self.engine_of(policy).err()
    }

    /// The labels of `namespace`; `Ok(None)` when it is not known.
    fn labels(&self, namespace: &str) -> Result<Option<BTreeMap<String, String>>, GovernanceError> {
        if !self.is_synced() {
            return Err(GovernanceError::NotSynced);
        }
        Ok(self
            .namespaces
            .get(&ObjectRef::new(namespace))
            .map(|ns| ns.labels().clone()))
    }

    /// The engine of a policy's current version, built on first use.
    fn engine_of(&self, policy: &GuardrailPolicy) -> Built {
        let name = policy.name_any();
        let version = policy.resource_version();
        let mut engines = self
            .engines
            .lock()
            .map_err(|_| "the engine cache is unusable".to_owned())?;
        if let Some((built_for, built)) = engines.get(&name)
            && *built_for == version
        {
            return built.clone();
        }
        let built = policy
            .spec
            .config()
            .map(|config| Arc::new(self.builtin.with_config(config)))
            .map_err(|e| e.to_string());
        engines.retain(|cached, _| self.policies.get(&ObjectRef::new(cached)).is_some());
        engines.insert(name, (version, built.clone()));
        built
    }
}
