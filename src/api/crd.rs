//! CRD manifests generated from the Rust types (the committed `manifests/crds/` must equal these).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{AWSProvider, GuardrailPolicy, IAMRole};

/// Every CRD this operator serves, with the file name it is committed under.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("awsproviders.yaml", AWSProvider::crd()),
        ("iamroles.yaml", IAMRole::crd()),
        (
            "guardrailpolicies.yaml",
            without_defaults(GuardrailPolicy::crd()),
        ),
    ]
}

/// The CRD without `default` values in its schema: a GuardrailPolicy stores only the settings it
/// sets, so the operator's own defaults (which may improve) apply to the rest.
fn without_defaults(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn strip(node: &mut serde_json::Value) {
        match node {
            serde_json::Value::Object(fields) => {
                fields.remove("default");
                fields.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            && let Ok(mut value) = serde_json::to_value(&*schema)
        {
            strip(&mut value);
            if let Ok(stripped) = serde_json::from_value(value) {
                *schema = stripped;
            }
        }
    }
    crd
}

/// Renders one CRD as the YAML committed under `manifests/crds/`.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_norway::Error> {
    serde_norway::to_string(crd)
}
