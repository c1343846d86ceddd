//! What the controllers' watches last saw (IAMRoles, AWSProviders), and the lookups across them:
//! the roles of a provider or of a namespace, the providers of a namespace, whether a provider
//! is usable. Reads the watch caches only; no I/O of its own.

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{AWSProvider, IAMRole};

/// The watch caches.
#[derive(Clone)]
pub struct Stores {
    /// Every IAMRole.
    pub roles: Store<IAMRole>,
    /// Every AWSProvider.
    pub providers: Store<AWSProvider>,
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

    /// The IAMRoles of `namespace`.
    pub fn roles_in(&self, namespace: &str) -> Vec<ObjectRef<IAMRole>> {
        in_namespace(&self.roles, namespace)
    }

    /// The AWSProviders of `namespace`.
    pub fn providers_in(&self, namespace: &str) -> Vec<ObjectRef<AWSProvider>> {
        in_namespace(&self.providers, namespace)
    }
}

fn in_namespace<K>(store: &Store<K>, namespace: &str) -> Vec<ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|object| object.namespace().as_deref() == Some(namespace))
        .map(|object| ObjectRef::from_obj(object.as_ref()))
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
        };
        assert_eq!(
            stores.roles_of_provider("a", "aws"),
            vec![ObjectRef::new("r1").within("a")]
        );
        assert!(stores.provider("a", "aws").is_some());
        assert!(stores.provider("b", "aws").is_none());
        let mut in_a = stores.roles_in("a");
        in_a.sort_by_key(|r| r.name.clone());
        assert_eq!(
            in_a,
            vec![
                ObjectRef::new("r1").within("a"),
                ObjectRef::new("r2").within("a")
            ]
        );
        assert_eq!(
            stores.providers_in("a"),
            vec![ObjectRef::new("aws").within("a")]
        );
        assert!(stores.providers_in("b").is_empty());
    }

    #[test]
    fn object_keys_name_kind_namespace_and_name() {
        assert_eq!(object_key("IAMRole", "ns", "app"), "IAMRole/ns/app");
    }
}
