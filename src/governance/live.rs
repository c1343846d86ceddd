//! The cluster's GuardrailPolicies and the labels of its Namespaces, as watched, and each policy
//! compiled once per version (selector parsed, engine built) when the watch sees it change, so a
//! review or a reconcile only reads a snapshot. The AWSProviders are watched too, reduced to what
//! the review of a role's `workloadIdentity` needs (region, cluster issuer, account). Runs the watches (Kubernetes API reads); everything else here reads the caches.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::core::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::select::{Candidate, NamespaceSelector, governing};
use super::{GovernanceError, Governed};
use crate::api::{AWSProvider, GuardrailPolicy};
use crate::guardrails::Engine;
use crate::iam::workload_identity::ProviderFacts;
use crate::serve::Shutdown;

/// The cluster's guardrails, kept current by [`ClusterGuardrails::run`].
pub struct ClusterGuardrails {
    policies: Store<GuardrailPolicy>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    providers: Store<DynamicObject>,
    /// The API resource of AWSProviders, for the untyped watch and its lookups.
    provider_resource: ApiResource,
    builtin: Arc<Engine>,
    /// Every policy parsed and its engine built, once per version; replaced on every change.
    compiled: RwLock<Arc<Vec<Compiled>>>,
    /// Woken on every change of a policy or a namespace.
    changed: Arc<Notify>,
    writers: Mutex<Option<Writers>>,
    /// Whether each watch has listed everything once.
    policies_listed: AtomicBool,
    namespaces_listed: AtomicBool,
    providers_listed: AtomicBool,
    client: Client,
}

struct Writers {
    policies: reflector::store::Writer<GuardrailPolicy>,
    namespaces: reflector::store::Writer<PartialObjectMeta<Namespace>>,
    providers: reflector::store::Writer<DynamicObject>,
}

impl ClusterGuardrails {
    /// Guardrails read from the cluster through `client`; `builtin` governs namespaces no policy
    /// selects (and lends its compiled schemas to every policy's engine). Nothing is known until
    /// [`ClusterGuardrails::run`] runs.
    pub fn new(client: Client, builtin: Arc<Engine>) -> Arc<Self> {
        let (policies, policy_writer) = reflector::store();
        let (namespaces, namespace_writer) = reflector::store();
        let provider_resource = ApiResource::erase::<AWSProvider>(&());
        let provider_writer = reflector::store::Writer::new(provider_resource.clone());
        let providers = provider_writer.as_reader();
        Arc::new(ClusterGuardrails {
            policies,
            namespaces,
            providers,
            provider_resource,
            builtin,
            compiled: RwLock::new(Arc::new(Vec::new())),
            changed: Arc::new(Notify::new()),
            writers: Mutex::new(Some(Writers {
                policies: policy_writer,
                namespaces: namespace_writer,
                providers: provider_writer,
            })),
            policies_listed: AtomicBool::new(false),
            namespaces_listed: AtomicBool::new(false),
            providers_listed: AtomicBool::new(false),
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
            if matches!(
                event,
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone)
            ) {
                self.recompile();
            }
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
        // Read as untyped objects, so one provider that does not fit the API type cannot stall
        // the watch of all of them.
        let providers = watcher(
            Api::<DynamicObject>::all_with(self.client.clone(), &self.provider_resource),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(reduce_provider)
        .reflect(writers.providers)
        .for_each(|event| {
            self.seen(event, "AWSProviders", &self.providers_listed);
            futures::future::ready(())
        });
        tokio::select! {
            _ = futures::future::join3(policies, namespaces, providers) => {}
            () = shutdown.cancelled() => {}
        }
    }

    /// What the AWSProvider `name` of `namespace` says about the cluster and account, as watched;
    /// `None` when it is not known (not created yet, or not synced).
    pub fn provider(&self, namespace: &str, name: &str) -> Option<ProviderFacts> {
        let object = self
            .providers
            .get(&ObjectRef::new_with(name, self.provider_resource.clone()).within(namespace))?;
        let text = |pointer: &str| {
            object
                .data
                .pointer(pointer)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        Some(ProviderFacts {
            name: name.to_owned(),
            oidc_issuer: text(ISSUER),
            account_id: text(ACCOUNT).filter(|a| !a.is_empty()),
            region: text(REGION).unwrap_or_default(),
        })
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
            && self.providers_listed.load(Ordering::Acquire)
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
        resolve(&self.compiled(), &labels, &self.builtin, namespace)
    }

    /// For every namespace, the policy governing it (`None`: the built-in defaults) with the
    /// resourceVersion in force.
    pub fn assignments(&self) -> BTreeMap<String, Option<(String, Option<String>)>> {
        let compiled = self.compiled();
        self.namespaces
            .state()
            .iter()
            .map(|ns| {
                let policy =
                    governing(&compiled, ns.labels()).map(|p| (p.name.clone(), p.version.clone()));
                (ns.name_any(), policy)
            })
            .collect()
    }

    /// Every policy as watched, with why it cannot be used, if it cannot.
    pub fn policies(&self) -> Vec<(Arc<GuardrailPolicy>, Option<String>)> {
        let compiled = self.compiled();
        self.policies
            .state()
            .into_iter()
            .map(|policy| {
                let name = policy.name_any();
                let problem = compiled
                    .iter()
                    .find(|c| c.name == name)
                    .and_then(Compiled::problem);
                (policy, problem)
            })
            .collect()
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

    /// The compiled policies in force.
    fn compiled(&self) -> Arc<Vec<Compiled>> {
        self.compiled
            .read()
            .map(|c| Arc::clone(&c))
            .unwrap_or_default()
    }

    /// Compiles the watched policies again, reusing what did not change.
    fn recompile(&self) {
        let previous = self.compiled();
        let next = compile(&self.policies.state(), &previous, &self.builtin);
        if let Ok(mut compiled) = self.compiled.write() {
            *compiled = Arc::new(next);
        }
    }
}

/// Where a watched AWSProvider holds what [`ClusterGuardrails::provider`] reads.
const REGION: &str = "/spec/region";
const ISSUER: &str = "/spec/cluster/oidcIssuer";
const ACCOUNT: &str = "/status/accountID";

/// Keeps of a watched AWSProvider only what [`ClusterGuardrails::provider`] reads.
fn reduce_provider(object: &mut DynamicObject) {
    object.metadata.managed_fields = None;
    object.metadata.annotations = None;
    object.metadata.labels = None;
    let mut kept = Value::Null;
    for pointer in [REGION, ISSUER, ACCOUNT] {
        if let Some(value) = object.data.pointer(pointer) {
            set_pointer(&mut kept, pointer, value.clone());
        }
    }
    object.data = kept;
}

/// Sets `value` at `pointer` (of plain object keys) in `target`, making the objects on the way.
fn set_pointer(target: &mut Value, pointer: &str, value: Value) {
    let mut at = target;
    for key in pointer.split('/').skip(1) {
        if !at.is_object() {
            *at = json!({});
        }
        at = &mut at[key];
    }
    *at = value;
}

/// One policy as governance uses it: its selector parsed and its engine built, for one version.
#[derive(Clone)]
pub struct Compiled {
    name: String,
    version: Option<String>,
    priority: i32,
    selector: NamespaceSelector,
    engine: Result<Arc<Engine>, String>,
}

impl Compiled {
    /// Parses `policy` and builds its engine, lending it the compiled schemas of `builtin`.
    fn new(policy: &GuardrailPolicy, builtin: &Engine) -> Self {
        Compiled {
            name: policy.name_any(),
            version: policy.resource_version(),
            priority: policy.spec.priority,
            selector: NamespaceSelector::of(policy.spec.namespace_selector.as_ref()),
            engine: policy
                .spec
                .config()
                .map(|config| Arc::new(builtin.with_config(config)))
                .map_err(|e| e.to_string()),
        }
    }

    /// Why the policy cannot be used, if it cannot.
    fn problem(&self) -> Option<String> {
        if let NamespaceSelector::Unreadable(why) = &self.selector {
            return Some(format!("spec.namespaceSelector: {why}"));
        }
        self.engine.as_ref().err().cloned()
    }
}

impl Candidate for Compiled {
    fn name(&self) -> &str {
        &self.name
    }
    fn priority(&self) -> i32 {
        self.priority
    }
    fn selector(&self) -> &NamespaceSelector {
        &self.selector
    }
}

/// `policies` compiled, reusing the entries of `previous` whose version did not change.
fn compile(
    policies: &[Arc<GuardrailPolicy>],
    previous: &[Compiled],
    builtin: &Engine,
) -> Vec<Compiled> {
    policies
        .iter()
        .map(|policy| {
            let (name, version) = (policy.name_any(), policy.resource_version());
            previous
                .iter()
                .find(|c| c.name == name && c.version == version)
                .cloned()
                .unwrap_or_else(|| Compiled::new(policy, builtin))
        })
        .collect()
}

/// The guardrails of a namespace with `labels` under the compiled policies: the governing
/// policy's engine, the built-in defaults when none matches, a refusal when it cannot be used.
fn resolve(
    compiled: &[Compiled],
    labels: &BTreeMap<String, String>,
    builtin: &Arc<Engine>,
    namespace: &str,
) -> Result<Governed, GovernanceError> {
    let Some(policy) = governing(compiled, labels) else {
        return Ok(Governed {
            engine: Arc::clone(builtin),
            policy: None,
        });
    };
    match (&policy.engine, policy.problem()) {
        (Ok(engine), None) => Ok(Governed {
            engine: Arc::clone(engine),
            policy: Some(policy.name.clone()),
        }),
        (_, problem) => Err(GovernanceError::InvalidPolicy {
            policy: policy.name.clone(),
            namespace: namespace.to_owned(),
            message: problem.unwrap_or_default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_watched_provider_keeps_only_region_issuer_and_account() {
        let mut provider = DynamicObject::new("aws", &ApiResource::erase::<AWSProvider>(&()))
            .within("team-a")
            .data(json!({
                "spec": {"region": "us-east-1", "endpoint": "http://x", "defaultTags": {"k": "v".repeat(100_000)},
                         "cluster": {"oidcIssuer": "https://oidc.example.com/id/A"}},
                "status": {"accountID": "123456789012", "conditions": [{"message": "m".repeat(100_000)}]},
            }));
        provider.metadata.annotations = Some([("a".to_owned(), "b".repeat(100_000))].into());
        reduce_provider(&mut provider);
        assert_eq!(
            provider.data,
            json!({"spec": {"region": "us-east-1", "cluster": {"oidcIssuer": "https://oidc.example.com/id/A"}},
                   "status": {"accountID": "123456789012"}})
        );
        assert_eq!(provider.metadata.annotations, None);
        let mut bare = DynamicObject::new("aws", &ApiResource::erase::<AWSProvider>(&()))
            .data(json!({"spec": {"region": "eu-west-1"}}));
        reduce_provider(&mut bare);
        assert_eq!(bare.data, json!({"spec": {"region": "eu-west-1"}}));
    }
    use crate::api::GuardrailPolicySpec;
    use crate::guardrails::Config;

    fn policy(
        name: &str,
        version: &str,
        team: &str,
        settings: serde_json::Value,
    ) -> Arc<GuardrailPolicy> {
        let mut policy = GuardrailPolicy::new(
            name,
            GuardrailPolicySpec {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([("team".to_owned(), team.to_owned())])),
                    match_expressions: None,
                }),
                priority: 10,
                settings: settings.as_object().cloned().unwrap_or_default(),
            },
        );
        policy.metadata.resource_version = Some(version.to_owned());
        Arc::new(policy)
    }

    fn team(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("team".to_owned(), value.to_owned())])
    }

    #[test]
    fn a_namespace_gets_its_policys_engine_the_defaults_or_a_refusal() {
        let builtin = Arc::new(Engine::new(Config::default()).expect("engine"));
        let policies = [
            policy(
                "team-a",
                "1",
                "a",
                json!({"maxSessionDuration": {"min": 3600, "max": 7200}}),
            ),
            policy(
                "broken",
                "1",
                "b",
                json!({"tenancy": {"roleNames": ["{team}-*"]}}),
            ),
        ];
        let compiled = compile(&policies, &[], &builtin);
        let a = resolve(&compiled, &team("a"), &builtin, "ns-a").expect("governed");
        assert_eq!(a.policy.as_deref(), Some("team-a"));
        assert_eq!(a.engine.config().max_session_duration.max, 7200);
        let none = resolve(&compiled, &team("c"), &builtin, "ns-c").expect("defaults");
        assert_eq!(none.policy, None);
        assert!(Arc::ptr_eq(&none.engine, &builtin));
        match resolve(&compiled, &team("b"), &builtin, "ns-b") {
            Err(GovernanceError::InvalidPolicy {
                policy, message, ..
            }) => {
                assert_eq!(policy, "broken");
                assert!(message.contains("tenancy.roleNames[0]"), "{message}");
            }
            other => panic!("{:?}", other.map(|g| g.policy)),
        }
    }

    #[test]
    fn an_unchanged_version_keeps_its_engine_and_a_new_one_is_rebuilt() {
        let builtin = Arc::new(Engine::new(Config::default()).expect("engine"));
        let first = compile(&[policy("team-a", "1", "a", json!({}))], &[], &builtin);
        let same = compile(&[policy("team-a", "1", "a", json!({}))], &first, &builtin);
        let engine = |c: &[Compiled]| c[0].engine.clone().expect("valid");
        assert!(Arc::ptr_eq(&engine(&first), &engine(&same)));
        let edited = compile(
            &[policy(
                "team-a",
                "2",
                "a",
                json!({"trustedAccounts": ["123456789012"]}),
            )],
            &same,
            &builtin,
        );
        assert!(!Arc::ptr_eq(&engine(&same), &engine(&edited)));
        assert_eq!(engine(&edited).config().trusted_accounts, ["123456789012"]);
    }
}
