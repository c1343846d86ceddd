//! The AWS clients of each provider, cached per provider generation and referenced Secret
//! versions, kept across leadership terms, paced by the rate limiter of the provider's account
//! (known from its status once authenticated, provisional before), and never built for a provider
//! that would send credentials where its namespace's guardrails do not allow. Reads the Secrets a
//! provider references by name from the API server (none is listed or watched) when the provider
//! checks its credentials, or when no clients exist yet; AWS clients are built here but called
//! elsewhere.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use super::metrics::ControllerMetrics;
use super::model::error::ReconcileError;
use crate::api::{AWSProvider, SecretKeyRef};
use crate::aws::{AwsClients, ClientOptions, ProviderSettings, RateLimits, provisional_key};
use crate::guardrails::Engine;

/// What identifies one build of a provider's AWS clients: when any part changes (the provider's
/// spec, or a referenced Secret), the clients are built again.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ClientsKey {
    generation: Option<i64>,
    /// Referenced Secret names with their resourceVersion (`None`: the Secret is missing).
    secret_versions: Vec<(String, Option<String>)>,
}

/// AWS clients per provider (`namespace/name`).
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

impl ClientCache {
    /// The cached clients of the provider `cache_key`, if they were built for `key`.
    fn cached(&self, cache_key: &str, key: &ClientsKey) -> Option<AwsClients> {
        let entries = self.entries.lock().ok()?;
        let (built_for, clients) = entries.get(cache_key)?;
        (built_for == key).then(|| clients.clone())
    }

    /// The cached clients of the provider `cache_key` if they were built for its `generation`
    /// (whatever versions of its Secrets).
    fn built_for(&self, cache_key: &str, generation: Option<i64>) -> Option<AwsClients> {
        let entries = self.entries.lock().ok()?;
        let (built_for, clients) = entries.get(cache_key)?;
        (built_for.generation == generation).then(|| clients.clone())
    }

    /// The clients last built for the provider `cache_key`, whatever they were built for.
    fn last(&self, cache_key: &str) -> Option<AwsClients> {
        let entries = self.entries.lock().ok()?;
        entries.get(cache_key).map(|(_, clients)| clients.clone())
    }

    fn remove(&self, cache_key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(cache_key);
        }
    }

    fn insert(&self, cache_key: String, key: ClientsKey, clients: AwsClients) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(cache_key, (key, clients));
        }
    }
}

/// Builds (or finds) the AWS clients of providers.
pub struct ProviderClients {
    client: Client,
    cache: std::sync::Arc<ClientCache>,
    metrics: ControllerMetrics,
    limits: RateLimits,
    /// The web identity token file for providers with `roleARN` (`AWS_WEB_IDENTITY_TOKEN_FILE`).
    web_identity_token_file: Option<PathBuf>,
}

impl ProviderClients {
    /// Clients built with `client` (to read Secrets), kept in `cache`, every AWS call and attempt
    /// reported to `metrics` and paced by `limits`.
    pub fn new(
        client: Client,
        cache: std::sync::Arc<ClientCache>,
        metrics: &ControllerMetrics,
        limits: RateLimits,
        web_identity_token_file: Option<PathBuf>,
    ) -> Self {
        ProviderClients {
            client,
            cache,
            metrics: metrics.clone(),
            limits,
            web_identity_token_file,
        }
    }

    /// The AWS clients of `provider` for its IAMRoles, if the guardrails of its namespace
    /// (`engine`) let it send credentials where it asks: those built for the provider's current
    /// generation, as its last check left them (no Secret is read), or built now when there are
    /// none.
    pub async fn get(
        &self,
        provider: &AWSProvider,
        engine: &Engine,
    ) -> Result<AwsClients, ReconcileError> {
        let admitted = Admitted::check(provider, engine)?;
        match self
            .cache
            .built_for(&admitted.cache_key, provider.metadata.generation)
        {
            Some(clients) => Ok(clients),
            None => self.build(provider, admitted).await,
        }
    }

    /// The AWS clients of `provider` as its Secrets are now, for checking its credentials: the
    /// Secrets it references are read (by name: the operator neither lists nor watches Secrets);
    /// the cached clients are kept while neither the provider's generation nor the
    /// resourceVersion of a Secret changed, and built afresh otherwise. Refused, like [`Self::get`],
    /// where the guardrails do not let the provider send credentials.
    pub async fn checked(
        &self,
        provider: &AWSProvider,
        engine: &Engine,
    ) -> Result<AwsClients, ReconcileError> {
        self.build(provider, Admitted::check(provider, engine)?)
            .await
    }

    /// The clients of a provider the guardrails admitted, from its Secrets as they are now.
    async fn build(
        &self,
        provider: &AWSProvider,
        admitted: Admitted,
    ) -> Result<AwsClients, ReconcileError> {
        let Admitted {
            namespace,
            cache_key,
        } = admitted;
        let name = provider.name_any();
        let secrets = self.referenced_secrets(provider, &namespace).await?;
        let key = ClientsKey {
            generation: provider.metadata.generation,
            secret_versions: secrets
                .iter()
                .map(|(name, secret)| {
                    let version = secret.as_ref().and_then(|s| s.resource_version());
                    (name.clone(), version)
                })
                .collect(),
        };
        if let Some(clients) = self.cache.cached(&cache_key, &key) {
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
        let account = provider
            .status
            .as_ref()
            .and_then(|status| status.account_id.clone())
            .filter(|account| !account.is_empty())
            .unwrap_or_else(|| provisional_key(&settings));
        let options = ClientOptions {
            calls: Some(self.metrics.call_observer()),
            attempts: Some(self.metrics.attempt_observer()),
            limiter: Some(self.limits.limiter(&account)),
        };
        let clients = AwsClients::with_options(&settings, options).await;
        self.cache.insert(cache_key, key, clients.clone());
        Ok(clients)
    }

    /// The clients of `provider` for deleting its IAMRoles: as [`Self::get`], or — when they can
    /// no longer be built (its Secret deleted first, as `kubectl delete -f dir/` or a namespace
    /// deletion do) — the clients built last, kept in memory until the provider is released.
    /// Never when the guardrails no longer let the provider send credentials where it asks.
    pub async fn get_for_cleanup(
        &self,
        provider: &AWSProvider,
        engine: &Engine,
    ) -> Result<AwsClients, ReconcileError> {
        match self.get(provider, engine).await {
            Ok(clients) => Ok(clients),
            Err(refused @ ReconcileError::ProviderRefused { .. }) => Err(refused),
            Err(error) => {
                let key = cache_key(
                    &provider.namespace().unwrap_or_default(),
                    &provider.name_any(),
                );
                self.cache.last(&key).ok_or(error)
            }
        }
    }

    /// Drops the clients of the provider `namespace/name` (released: nothing depends on it).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.cache.remove(&cache_key(namespace, name));
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
}

/// A provider the guardrails of its namespace let send credentials where it asks.
struct Admitted {
    namespace: String,
    cache_key: String,
}

impl Admitted {
    /// Checks `provider` with its namespace's guardrails (`engine`).
    fn check(provider: &AWSProvider, engine: &Engine) -> Result<Admitted, ReconcileError> {
        let namespace = provider
            .namespace()
            .ok_or(ReconcileError::InvalidObject("namespace"))?;
        allowed(provider, &namespace, engine)?;
        Ok(Admitted {
            cache_key: cache_key(&namespace, &provider.name_any()),
            namespace,
        })
    }
}

/// Refuses a provider that would send credentials where its namespace's guardrails do not allow
/// (an endpoint, a role to assume, the operator's own identity), whatever the webhook admitted.
fn allowed(provider: &AWSProvider, namespace: &str, engine: &Engine) -> Result<(), ReconcileError> {
    let refusals = engine
        .config()
        .tenancy
        .provider_refusals(&provider.spec, namespace);
    if refusals.is_empty() {
        return Ok(());
    }
    Err(ReconcileError::ProviderRefused {
        name: provider.name_any(),
        message: refusals
            .iter()
            .map(|r| format!("[tenancy] {}: {}", r.path, r.message))
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// The key of the provider `namespace/name` in the client cache.
fn cache_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The names of the Secrets the provider references, each once.
fn secret_names(provider: &AWSProvider) -> BTreeSet<&str> {
    ProviderSettings::secret_refs(&provider.spec)
        .into_iter()
        .map(|(_, reference)| reference.name.as_str())
        .collect()
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

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;
    use crate::api::AWSProviderSpec;

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
}
