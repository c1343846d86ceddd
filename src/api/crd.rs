//! CRD manifests generated from the Rust types (the committed `manifests/crds/` must equal these).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{AWSProvider, IAMRole};

/// Every CRD this operator serves, with the file name it is committed under.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("awsproviders.yaml", AWSProvider::crd()),
        ("iamroles.yaml", IAMRole::crd()),
    ]
}

/// Renders one CRD as the YAML committed under `manifests/crds/`.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_norway::Error> {
    serde_norway::to_string(crd)
}
