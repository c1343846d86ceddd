//! State shared by every reconcile: the Kubernetes client, the Event queue, the metrics, the
//! watch caches, the AWS clients of each provider (cached per provider generation and Secret
//! versions), the failure counts that drive backoff, and the channel that requeues IAMRoles when
//! their provider changes. Talks to the Kubernetes API (AWSProviders and Secrets when the caches
//! cannot answer, Events); AWS clients are built here but called elsewhere.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;

use super::error::{ReconcileError, backoff};
use super::metrics::ControllerMetrics;
use crate::api::{AWSProvider, IAMRole, SecretKeyRef};
use crate::aws::{AwsClients, ProviderSettings};

/// What identifies one build of a provider's AWS clients: when any part changes (the provider's
/// spec, or a referenced Secret), the clients are built again.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ClientsKey {
    generation: Option<i64>,
    /// Referenced Secret names with their resourceVersion (`None`: the Secret is missing).
    secret_versions: Vec<(String, Option<String>)>,
}

/// AWS clients per provider (`namespace/name`), kept across leadership terms.
#[derive(Default)]
pub struct ClientCache {
    entries: Mutex<HashMap<String, (ClientsKey, AwsClients)>>,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let providers = self.entries.lock().map_or(0, |entries| entries.len());
        f.debug_struct("ClientCache")
            .field("providers", &providers)
            .finish()
    }
}

/// What the controllers' watches last saw.
#[derive(Clone)]
pub struct Stores {
    /// Every IAMRole.
    pub roles: Store<IAMRole>,
    /// Every AWSProvider.
    pub providers: Store<AWSProvider>,
    /// The metadata of every Secret (never its data).
    pub secrets: Store<PartialObjectMeta<Secret>>,
}

/// Everything a reconcile needs besides the object itself.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Hands Events about IAMRoles and AWSProviders to the publishing task.
    events: mpsc::Sender<(Event, ObjectReference)>,
    /// Reconcile and AWS call metrics.
    pub metrics: ControllerMetrics,
    /// The watch caches.
    pub stores: Stores,
    /// Requeues IAMRoles (when their provider changes).
    pub role_triggers: mpsc::UnboundedSender<ObjectRef<IAMRole>>,
    /// The web identity token file for providers with `roleARN` (`AWS_WEB_IDENTITY_TOKEN_FILE`).
    pub web_identity_token_file: Option<PathBuf>,
    clients: Arc<ClientCache>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context for one leadership term; `clients` outlives it.
    pub fn new(
        client: Client,
        recorder: Recorder,
        metrics: ControllerMetrics,
        stores: Stores,
        role_triggers: mpsc::UnboundedSender<ObjectRef<IAMRole>>,
        web_identity_token_file: Option<PathBuf>,
        clients: Arc<ClientCache>,
    ) -> Self {
        Context {
            client,
            events: spawn_event_publisher(recorder),
            metrics,
            stores,
            role_triggers,
            web_identity_token_file,
            clients,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The AWSProvider `namespace/name` as the watch last saw it, if that copy is Ready at its
    /// generation; otherwise (missing, not Ready, or not seen yet) read from the API server, so
    /// that a provider that just became Ready is never taken for one that is not.
    pub async fn provider(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<AWSProvider>, ReconcileError> {
        let reference = ObjectRef::new(name).within(namespace);
        if let Some(cached) = self.stores.providers.get(&reference)
            && provider_ready(&cached)
        {
            return Ok(Some(cached.as_ref().clone()));
        }
        let api: Api<AWSProvider> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name)
            .await
            .map_err(|e| ReconcileError::kube("read the AWSProvider", e))
    }

    /// The AWS clients of `provider`: from the cache while neither the provider's generation nor
    /// the resourceVersion of a Secret it references changed, built afresh otherwise. The Secret
    /// versions come from the watch cache; the Secrets themselves are read only to build clients.
    pub async fn provider_clients(
        &self,
        provider: &AWSProvider,
    ) -> Result<AwsClients, ReconcileError> {
        let namespace = provider
            .namespace()
            .ok_or(ReconcileError::InvalidObject("namespace"))?;
        let name = provider.name_any();
        let cache_key = format!("{namespace}/{name}");
        let key_with = |secret_versions| ClientsKey {
            generation: provider.metadata.generation,
            secret_versions,
        };
        if let Some(watched) = self.watched_secret_versions(provider, &namespace)
            && let Some(clients) = self.cached(&cache_key, &key_with(watched))
        {
            return Ok(clients);
        }
        let secrets = self.referenced_secrets(provider, &namespace).await?;
        let key = key_with(
            secrets
                .iter()
                .map(|(name, secret)| {
                    let version = secret.as_ref().and_then(|s| s.resource_version());
                    (name.clone(), version)
                })
                .collect(),
        );
        if let Some(clients) = self.cached(&cache_key, &key) {
            return Ok(clients);
        }
        let settings = ProviderSettings::from_spec(
            &provider.spec,
            self.web_identity_token_file.as_deref(),
            |reference| secret_value(&secrets, reference),
        )
        .map_err(|source| ReconcileError::Settings {
            name: name.clone(),
            source,
        })?;
        let clients = AwsClients::new(&settings, Some(self.metrics.call_observer())).await;
        if let Ok(mut entries) = self.clients.entries.lock() {
            entries.insert(cache_key, (key, clients.clone()));
        }
        Ok(clients)
    }

    /// The resourceVersion of every Secret the provider references, by name, as the watch last saw
    /// them; `None` when one of them is not in the watch cache (missing, or not seen yet).
    fn watched_secret_versions(
        &self,
        provider: &AWSProvider,
        namespace: &str,
    ) -> Option<Vec<(String, Option<String>)>> {
        secret_names(provider)
            .into_iter()
            .map(|name| {
                let secret = self
                    .stores
                    .secrets
                    .get(&ObjectRef::new(name).within(namespace))?;
                Some((name.to_owned(), secret.resource_version()))
            })
            .collect()
    }

    /// The cached clients of the provider `cache_key`, if they were built for `key`.
    fn cached(&self, cache_key: &str, key: &ClientsKey) -> Option<AwsClients> {
        let entries = self.clients.entries.lock().ok()?;
        let (built_for, clients) = entries.get(cache_key)?;
        (built_for == key).then(|| clients.clone())
    }

    /// Every Secret the provider references, by name (`None` when missing).
    async fn referenced_secrets(
        &self,
        provider: &AWSProvider,
        namespace: &str,
    ) -> Result<BTreeMap<String, Option<Secret>>, ReconcileError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let mut secrets = BTreeMap::new();
        for name in secret_names(provider) {
            let secret = api.get_opt(name).await.map_err(|e| {
                ReconcileError::kube("read a Secret referenced by the AWSProvider", e)
            })?;
            secrets.insert(name.to_owned(), secret);
        }
        Ok(secrets)
    }

    /// Queues an Event about `regarding` for the publishing task, so that a reconcile never waits
    /// for it. Events are best effort, as in Kubernetes' own clients: when [`EVENTS_QUEUED`] are
    /// already waiting the Event is dropped (and logged); a failure to publish is logged, never fatal.
    pub fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate_note(note)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.events.try_send((event, regarding.clone())) {
            tracing::warn!(reason, %error, "Event dropped");
        }
    }

    /// Counts one more failure of the object `key` and returns the delay before retrying it.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return backoff(1);
        };
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        backoff(*count)
    }

    /// Forgets the failures of the object `key` after a success.
    pub fn reset_backoff(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

/// The names of the Secrets the provider references, each once.
fn secret_names(provider: &AWSProvider) -> BTreeSet<&str> {
    ProviderSettings::secret_refs(&provider.spec)
        .into_iter()
        .map(|(_, reference)| reference.name.as_str())
        .collect()
}

/// Whether the provider authenticated at its current generation.
pub fn provider_ready(provider: &AWSProvider) -> bool {
    let status = provider.status.as_ref();
    status.is_some_and(|s| s.ready)
        && status.and_then(|s| s.observed_generation) == provider.metadata.generation
}

/// How many Events are sent to the API server at once: enough to keep up with the reconciles,
/// few enough that a burst of failures (thousands of objects at once) queues small Events instead
/// of holding thousands of requests open.
const EVENTS_IN_FLIGHT: usize = 4;

/// How many Events may wait to be published before new ones are dropped.
const EVENTS_QUEUED: usize = 256;

/// Starts the task that publishes queued Events, at most [`EVENTS_IN_FLIGHT`] at once; it ends
/// once the returned sender (the context) is dropped and the queue is drained.
fn spawn_event_publisher(recorder: Recorder) -> mpsc::Sender<(Event, ObjectReference)> {
    let (sender, mut receiver) = mpsc::channel::<(Event, ObjectReference)>(EVENTS_QUEUED);
    let queued = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    tokio::spawn(
        queued.for_each_concurrent(EVENTS_IN_FLIGHT, move |(event, regarding)| {
            let recorder = recorder.clone();
            async move {
                if let Err(error) = recorder.publish(&event, &regarding).await {
                    tracing::warn!(%error, reason = %event.reason, "cannot publish an Event");
                }
            }
        }),
    );
    sender
}

/// Longest Event note Kubernetes accepts, in bytes.
const MAX_NOTE_BYTES: usize = 1024;

fn truncate_note(mut note: String) -> String {
    if note.len() > MAX_NOTE_BYTES {
        let mut end = MAX_NOTE_BYTES - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}

/// The value of a Secret key, from Secrets read beforehand. The error names what is missing and
/// never holds a value.
fn secret_value(
    secrets: &BTreeMap<String, Option<Secret>>,
    reference: &SecretKeyRef,
) -> Result<String, String> {
    let secret = secrets
        .get(&reference.name)
        .and_then(Option::as_ref)
        .ok_or_else(|| "the Secret does not exist".to_owned())?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|data| data.get(&reference.key))
        .map(|value| value.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|data| data.get(&reference.key))
                .map(|value| value.clone().into_bytes())
        })
        .ok_or_else(|| "the Secret has no such key".to_owned())?;
    String::from_utf8(bytes).map_err(|_| "the value is not UTF-8 text".to_owned())
}

/// The key of an object in the failure counts: `Kind/namespace/name`.
pub fn object_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

/// The IAMRoles that reference the provider `namespace/name`.
pub fn roles_of_provider(
    roles: &Store<IAMRole>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<IAMRole>> {
    roles
        .state()
        .iter()
        .filter(|role| role.namespace().as_deref() == Some(namespace))
        .filter(|role| role.spec.provider_ref.name == name)
        .map(|role| ObjectRef::from_obj(role.as_ref()))
        .collect()
}

/// The AWSProviders in `providers` that reference the Secret `namespace/name`.
pub fn providers_of_secret(
    providers: &Store<AWSProvider>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<AWSProvider>> {
    providers
        .state()
        .iter()
        .filter(|provider| provider.namespace().as_deref() == Some(namespace))
        .filter(|provider| {
            ProviderSettings::secret_refs(&provider.spec)
                .iter()
                .any(|(_, reference)| reference.name == name)
        })
        .map(|provider| ObjectRef::from_obj(provider.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use kube::runtime::reflector;
    use kube::runtime::watcher;

    use super::*;
    use crate::api::{AWSProviderSpec, IAMRoleSpec, ProviderRef};

    fn secret(pairs: &[(&str, &[u8])]) -> Option<Secret> {
        Some(Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        })
    }

    fn key_ref(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.to_owned(),
            key: key.to_owned(),
        }
    }

    #[test]
    fn secret_values_are_read_and_failures_never_show_a_value() {
        let secrets = BTreeMap::from([
            (
                "creds".to_owned(),
                secret(&[("id", b"AKIAVALUE"), ("bad", &[0xff])]),
            ),
            ("gone".to_owned(), None),
        ]);
        assert_eq!(
            secret_value(&secrets, &key_ref("creds", "id")),
            Ok("AKIAVALUE".to_owned())
        );
        for (reference, expected) in [
            (key_ref("creds", "missing"), "the Secret has no such key"),
            (key_ref("gone", "id"), "the Secret does not exist"),
            (key_ref("unknown", "id"), "the Secret does not exist"),
            (key_ref("creds", "bad"), "the value is not UTF-8 text"),
        ] {
            assert_eq!(secret_value(&secrets, &reference), Err(expected.to_owned()));
        }
    }

    #[test]
    fn each_referenced_secret_is_named_once() {
        let mut provider = AWSProvider::new(
            "aws",
            AWSProviderSpec {
                access_key_id_ref: Some(key_ref("creds", "id")),
                secret_access_key_ref: Some(key_ref("creds", "secret")),
                session_token_ref: Some(key_ref("token", "value")),
                ..AWSProviderSpec::default()
            },
        );
        assert_eq!(secret_names(&provider), BTreeSet::from(["creds", "token"]));
        provider.spec = AWSProviderSpec::default();
        assert!(secret_names(&provider).is_empty());
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let note = "é".repeat(MAX_NOTE_BYTES);
        let cut = truncate_note(note);
        assert!(cut.len() <= MAX_NOTE_BYTES);
        assert!(cut.ends_with("..."));
        assert_eq!(truncate_note("short".to_owned()), "short");
    }

    fn role(namespace: &str, name: &str, provider: &str) -> IAMRole {
        let mut role = IAMRole::new(
            name,
            IAMRoleSpec {
                provider_ref: ProviderRef {
                    name: provider.to_owned(),
                    namespace: None,
                },
                ..IAMRoleSpec::default()
            },
        );
        role.metadata.namespace = Some(namespace.to_owned());
        role
    }

    #[test]
    fn roles_and_providers_are_found_by_reference() {
        let (reader, mut writer) = reflector::store::<IAMRole>();
        writer.apply_watcher_event(&watcher::Event::Apply(role("a", "r1", "aws")));
        writer.apply_watcher_event(&watcher::Event::Apply(role("a", "r2", "other")));
        writer.apply_watcher_event(&watcher::Event::Apply(role("b", "r3", "aws")));
        let found = roles_of_provider(&reader, "a", "aws");
        assert_eq!(found, vec![ObjectRef::new("r1").within("a")]);

        let (reader, mut writer) = reflector::store::<AWSProvider>();
        let mut provider = AWSProvider::new(
            "aws",
            AWSProviderSpec {
                access_key_id_ref: Some(key_ref("creds", "id")),
                secret_access_key_ref: Some(key_ref("creds", "secret")),
                ..AWSProviderSpec::default()
            },
        );
        provider.metadata.namespace = Some("a".to_owned());
        writer.apply_watcher_event(&watcher::Event::Apply(provider));
        assert_eq!(
            providers_of_secret(&reader, "a", "creds"),
            vec![ObjectRef::new("aws").within("a")]
        );
        assert!(providers_of_secret(&reader, "b", "creds").is_empty());
        assert!(providers_of_secret(&reader, "a", "other").is_empty());
    }

    #[test]
    fn object_keys_name_kind_namespace_and_name() {
        assert_eq!(object_key("IAMRole", "ns", "app"), "IAMRole/ns/app");
    }
}
