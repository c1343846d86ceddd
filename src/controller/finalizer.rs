//! The operator's finalizer on IAMRoles and AWSProviders: added before anything depends on the
//! object, removed once its cleanup is done. Each write is a JSON Patch guarded by a `test` of the
//! value it replaces, so a concurrent change of the finalizers makes it fail instead of losing
//! someone else's finalizer. Talks to the Kubernetes API.
//!
//! `kube::runtime::finalizer` is not used: it adds the finalizer and then waits for the watch to
//! deliver the change before reconciling, while here the mutating webhook adds it to IAMRoles at
//! admission and the watches ignore metadata-only changes (so neither a status nor a finalizer
//! write triggers a reconcile); the reconcilers add it themselves, before anything depends on
//! the object, only where it is missing.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::model::error::ReconcileError;
use crate::api::FINALIZER;

/// Whether `object` carries the operator's finalizer.
pub fn has_finalizer<K: Resource>(object: &K) -> bool {
    object.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds the finalizer to `object` unless it has it.
pub async fn add<K>(api: &Api<K>, object: &K) -> Result<(), ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if has_finalizer(object) {
        return Ok(());
    }
    let finalizers = object.finalizers();
    let patch = if finalizers.is_empty() {
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": object.resource_version()},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        let mut wanted = finalizers.to_vec();
        wanted.push(FINALIZER.to_owned());
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
            {"op": "replace", "path": "/metadata/finalizers", "value": wanted},
        ])
    };
    patch_metadata(api, object, patch, "add the finalizer").await
}

/// Removes the finalizer from `object`, letting Kubernetes delete it; an object already gone
/// counts as done.
pub async fn remove<K>(api: &Api<K>, object: &K) -> Result<(), ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let finalizers = object.finalizers();
    let remaining: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
    let patch = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
        {"op": "replace", "path": "/metadata/finalizers", "value": remaining},
    ]);
    match patch_metadata(api, object, patch, "remove the finalizer").await {
        Err(ReconcileError::Kube {
            source: kube::Error::Api(status),
            ..
        }) if status.code == 404 => Ok(()),
        other => other,
    }
}

async fn patch_metadata<K>(
    api: &Api<K>,
    object: &K,
    patch: serde_json::Value,
    action: &'static str,
) -> Result<(), ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let patch: json_patch::Patch = serde_json::from_value(patch)
        .map_err(|e| ReconcileError::kube(action, kube::Error::SerdeError(e)))?;
    api.patch(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await
    .map(drop)
    .map_err(|e| ReconcileError::kube(action, e))
}
