//! Governance: which guardrails apply to a namespace. A fixed engine (a `--guardrails` file, for a
//! cluster with one team, and for tests), or the cluster's GuardrailPolicy objects — the one
//! governing each namespace chosen by [`select`], its engine built once per policy version by
//! [`live`]. The webhook and the reconciler ask the same [`Guardrails`].

pub mod live;
pub mod select;

use std::sync::Arc;

pub use live::ClusterGuardrails;

use crate::guardrails::Engine;
use crate::iam::workload_identity::ProviderFacts;

/// Where the guardrails of a namespace come from.
#[derive(Clone)]
pub enum Guardrails {
    /// The same engine for every namespace.
    Fixed(Arc<Engine>),
    /// The GuardrailPolicy governing each namespace.
    Cluster(Arc<ClusterGuardrails>),
}

/// The guardrails governing one namespace.
#[derive(Clone)]
pub struct Governed {
    /// The engine to check its objects with.
    pub engine: Arc<Engine>,
    /// The GuardrailPolicy it comes from (`None`: a fixed engine or the built-in defaults).
    pub policy: Option<String>,
}

/// Why the guardrails of a namespace are not known: whatever asked must refuse (fail closed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GovernanceError {
    /// The namespace is not in the watch cache yet (just created) or no longer exists.
    #[error("namespace `{0}` is not known to the operator yet; retry in a moment")]
    UnknownNamespace(String),
    /// The governing policy's settings are not valid.
    #[error(
        "GuardrailPolicy `{policy}`, which governs namespace `{namespace}`, is not valid \
         ({message}); nothing is admitted there until the platform team fixes it"
    )]
    InvalidPolicy {
        /// The policy.
        policy: String,
        /// The namespace.
        namespace: String,
        /// What is wrong with the policy.
        message: String,
    },
    /// The watches of GuardrailPolicies and Namespaces have not listed everything yet.
    #[error("the operator has not read the GuardrailPolicies yet; retry in a moment")]
    NotSynced,
}

impl From<Arc<Engine>> for Guardrails {
    fn from(engine: Arc<Engine>) -> Self {
        Guardrails::Fixed(engine)
    }
}

impl Guardrails {
    /// The guardrails governing `namespace`.
    pub fn governing(&self, namespace: &str) -> Result<Governed, GovernanceError> {
        match self {
            Guardrails::Fixed(engine) => Ok(Governed {
                engine: Arc::clone(engine),
                policy: None,
            }),
            Guardrails::Cluster(cluster) => cluster.governing(namespace),
        }
    }

    /// What the AWSProvider `name` of `namespace` says about the cluster and account, when the
    /// cluster's providers are watched and it is among them.
    pub fn provider(&self, namespace: &str, name: &str) -> Option<ProviderFacts> {
        match self {
            Guardrails::Fixed(_) => None,
            Guardrails::Cluster(cluster) => cluster.provider(namespace, name),
        }
    }

    /// Some engine, for what does not depend on a namespace (checking a GuardrailPolicy itself).
    pub fn any_engine(&self) -> Arc<Engine> {
        match self {
            Guardrails::Fixed(engine) => Arc::clone(engine),
            Guardrails::Cluster(cluster) => cluster.builtin(),
        }
    }
}
