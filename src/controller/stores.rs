//! What the controllers' watches last saw (IAMRoles, AWSProviders, the metadata of Secrets), and
//! the lookups across them: the roles of a provider, the providers of a Secret, whether a provider
//! is usable. Reads the watch caches only; no I/O of its own.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{AWSProvider, IAMRole};
use crate::aws::ProviderSettings;

/// The watch caches.
#[derive(Clone)]
pub struct Stores {
    /// Every IAMRole.
    pub roles: Store<IAMRole>,
    /// Every AWSProvider.
    pub providers: Store<AWSProvider>,
    /// The metadata of every Secret (never its data).
    pub secrets: Store<PartialObjectMeta<Secret>>,
}

impl Stores {
    /// The provider `namespace/name` as the watch last saw it.
    pub fn provider(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<AWSProvider>> {
        self.providers.get(&ObjectRef::new(name).within(namespace))
    }

    /// The IAMRoles that reference the provider `namespace/name`.
    pub fn roles_of_provider(&self, namespace: &str, name: &str) -> Vec<ObjectRef<IAMRole>> {
        self.roles
            .state()
            .iter()
            .filter(|role| role.namespace().as_deref() == Some(namespace))
            .filter(|role| role.spec.provider_ref.name == name)
            .map(|role| ObjectRef::from_obj(role.as_ref()))
            .collect()
    }
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

/// Whether the provider authenticated at its current generation.
pub fn provider_ready(provider: &AWSProvider) -> bool {
    let status = provider.status.as_ref();
    status.is_some_and(|s| s.ready)
        && status.and_then(|s| s.observed_generation) == provider.metadata.generation
}

/// The key of an object in logs and failure counts: `Kind/namespace/name`.
pub fn object_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;
    use kube::runtime::watcher;

    use super::*;
    use crate::api::{AWSProviderSpec, IAMRoleSpec, ProviderRef, SecretKeyRef};

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
        let (roles, mut role_writer) = reflector::store::<IAMRole>();
        role_writer.apply_watcher_event(&watcher::Event::Apply(role("a", "r1", "aws")));
        role_writer.apply_watcher_event(&watcher::Event::Apply(role("a", "r2", "other")));
        role_writer.apply_watcher_event(&watcher::Event::Apply(role("b", "r3", "aws")));
        let (providers, mut provider_writer) = reflector::store::<AWSProvider>();
        let (secrets, _secret_writer) = reflector::store::<PartialObjectMeta<Secret>>();
        let mut provider = AWSProvider::new(
            "aws",
            AWSProviderSpec {
                access_key_id_ref: Some(SecretKeyRef {
                    name: "creds".to_owned(),
                    key: "id".to_owned(),
                }),
                secret_access_key_ref: Some(SecretKeyRef {
                    name: "creds".to_owned(),
                    key: "secret".to_owned(),
                }),
                ..AWSProviderSpec::default()
            },
        );
        provider.metadata.namespace = Some("a".to_owned());
        provider_writer.apply_watcher_event(&watcher::Event::Apply(provider));
        let stores = Stores {
            roles,
            providers: providers.clone(),
            secrets,
        };
        assert_eq!(
            stores.roles_of_provider("a", "aws"),
            vec![ObjectRef::new("r1").within("a")]
        );
        assert!(stores.provider("a", "aws").is_some());
        assert!(stores.provider("b", "aws").is_none());
        assert_eq!(
            providers_of_secret(&providers, "a", "creds"),
            vec![ObjectRef::new("aws").within("a")]
        );
        assert!(providers_of_secret(&providers, "b", "creds").is_empty());
        assert!(providers_of_secret(&providers, "a", "other").is_empty());
    }

    #[test]
    fn object_keys_name_kind_namespace_and_name() {
        assert_eq!(object_key("IAMRole", "ns", "app"), "IAMRole/ns/app");
    }
}
