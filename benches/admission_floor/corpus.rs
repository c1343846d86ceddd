//! The request bodies: one CREATE AdmissionReview (`admission.k8s.io/v1`) for every IAMRole of
//! `manifests/examples/`, shaped as the API server sends it after `kubectl apply` (client-side):
//! the object carries its uid, creation time, generation 1, kubectl's last-applied-configuration
//! annotation, a `managedFields` entry of `kubectl-client-side-apply` covering every field it set,
//! and the CRD's structural defaults; the request carries the user, the CreateOptions, the kinds and
//! resources. Also checks answers against the corpus. Reads the examples; no other I/O.

use std::fs;
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine as _;
use infra_operator::admission::envelope::LAST_APPLIED_ANNOTATION;
use infra_operator::guardrails::Kind;
use infra_operator::validate::parse_documents;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Namespace of every review (the examples that name one name this one).
const NAMESPACE: &str = "default";
/// Group and version of the IAMRole CRD.
const GROUP: &str = "aws-infra-operator.runner.codes";
const VERSION: &str = "v1alpha1";
/// Field manager of `kubectl apply` (client-side), as it reaches the API server.
const FIELD_MANAGER: &str = "kubectl-client-side-apply";
/// When every object was created (fixed, so that every run sends the same bytes).
const CREATED_AT: &str = "2026-12-01T09:30:00Z";

/// One request body and the uid its answer must carry.
pub struct Review {
    /// The IAMRole's name.
    pub name: String,
    /// `request.uid`, distinct for every review.
    pub uid: String,
    /// The serialized AdmissionReview.
    pub body: Vec<u8>,
}

/// Which handler of the webhook an answer came from: `/mutate` answers carry a JSONPatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Validate,
    Mutate,
}

impl Endpoint {
    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Validate => "/validate",
            Endpoint::Mutate => "/mutate",
        }
    }
}

/// Smallest, largest and mean body size in bytes.
pub struct Sizes {
    pub min: usize,
    pub max: usize,
    pub mean: usize,
}

/// The reviews sent, every one of which must be admitted.
pub struct Corpus {
    pub reviews: Vec<Review>,
}

impl Corpus {
    /// A review for every IAMRole of `manifests/examples/`, in file name order.
    pub fn from_examples() -> anyhow::Result<Corpus> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/examples");
        let mut files: Vec<_> = fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        let mut reviews = Vec::new();
        for file in files {
            let text =
                fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let documents =
                parse_documents(&text).with_context(|| format!("parsing {}", file.display()))?;
            for manifest in documents {
                if Kind::of(&manifest) == Some(Kind::IAMRole) {
                    reviews
                        .push(create_review(manifest).with_context(|| file.display().to_string())?);
                }
            }
        }
        if reviews.is_empty() {
            bail!("no IAMRole in {}", dir.display());
        }
        Ok(Corpus { reviews })
    }

    pub fn sizes(&self) -> Sizes {
        let lengths = self.reviews.iter().map(|r| r.body.len());
        Sizes {
            min: lengths.clone().min().unwrap_or(0),
            max: lengths.clone().max().unwrap_or(0),
            mean: lengths.sum::<usize>() / self.reviews.len().max(1),
        }
    }

    /// Checks one answer: HTTP 200, an `admission.k8s.io/v1` AdmissionReview whose `response.uid`
    /// is the uid of one of the reviews, admitting it (every example must be admitted), and for
    /// `/mutate` a JSONPatch. Returns the index of the review answered.
    pub fn check(&self, endpoint: Endpoint, status: u16, body: &[u8]) -> Result<usize, String> {
        if status != 200 {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(format!("HTTP {status}: {text}"));
        }
        let answer: Value = serde_json::from_slice(body).map_err(|e| {
            format!(
                "answer is not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )
        })?;
        let field = |pointer: &str| answer.pointer(pointer).and_then(Value::as_str);
        if field("/apiVersion") != Some("admission.k8s.io/v1")
            || field("/kind") != Some("AdmissionReview")
        {
            return Err(format!(
                "not an admission.k8s.io/v1 AdmissionReview: {answer}"
            ));
        }
        let uid = field("/response/uid").ok_or_else(|| format!("no response.uid: {answer}"))?;
        let index = self
            .reviews
            .iter()
            .position(|r| r.uid == uid)
            .ok_or_else(|| format!("response.uid {uid} is the uid of no review sent"))?;
        if answer.pointer("/response/allowed") != Some(&Value::Bool(true)) {
            return Err(format!(
                "{} (uid {uid}) not admitted: {}",
                self.reviews[index].name,
                answer.pointer("/response").unwrap_or(&Value::Null)
            ));
        }
        if endpoint == Endpoint::Mutate {
            let patch = field("/response/patch")
                .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
                .and_then(|p| serde_json::from_slice::<Vec<Value>>(&p).ok());
            if field("/response/patchType") != Some("JSONPatch")
                || patch.is_none_or(|p| p.is_empty())
            {
                return Err(format!(
                    "/mutate of {} (uid {uid}) answered without a JSONPatch",
                    self.reviews[index].name
                ));
            }
        }
        Ok(index)
    }
}

/// The AdmissionReview the API server sends for `kubectl apply` creating `manifest`.
fn create_review(mut manifest: Value) -> anyhow::Result<Review> {
    let metadata = manifest
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .context("manifest without metadata")?;
    metadata.insert("namespace".to_owned(), json!(NAMESPACE));
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .context("manifest without metadata.name")?
        .to_owned();
    let object = stored_object(&manifest, &name)?;
    let uid = uuid(&format!("request/{name}"));
    // The API server writes the request from a Go struct (fields in this order, uid first) and the
    // object of a custom resource from a map (keys sorted).
    let review = json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": {"group": GROUP, "version": VERSION, "kind": "IAMRole"},
            "resource": {"group": GROUP, "version": VERSION, "resource": "iamroles"},
            "requestKind": {"group": GROUP, "version": VERSION, "kind": "IAMRole"},
            "requestResource": {"group": GROUP, "version": VERSION, "resource": "iamroles"},
            "name": name,
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "userInfo": {
                "username": "kubernetes-admin",
                "uid": uuid("user/kubernetes-admin"),
                "groups": ["kubeadm:cluster-admins", "system:authenticated"]
            },
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {
                "kind": "CreateOptions",
                "apiVersion": "meta.k8s.io/v1",
                "fieldManager": FIELD_MANAGER,
                "fieldValidation": "Strict"
            }
        }
    });
    Ok(Review {
        name,
        uid,
        body: serde_json::to_vec(&review)?,
    })
}

/// The metadata of a manifest, which must have a map of it.
fn metadata_mut(manifest: &mut Value) -> anyhow::Result<&mut Map<String, Value>> {
    manifest
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .context("manifest without metadata")
}

/// The object as the API server holds it when the admission webhooks are called: the manifest with
/// kubectl's annotation, the server-set metadata, managed fields and the schema's defaults.
fn stored_object(manifest: &Value, name: &str) -> anyhow::Result<Value> {
    // kubectl records the manifest as it sends it: with an (empty) annotations map.
    let mut applied = manifest.clone();
    metadata_mut(&mut applied)?
        .entry("annotations")
        .or_insert_with(|| json!({}));
    let last_applied = format!("{}\n", serde_json::to_string(&sorted(&applied))?);

    let mut object = applied;
    let metadata = metadata_mut(&mut object)?;
    metadata["annotations"]
        .as_object_mut()
        .context("metadata.annotations is not a map")?
        .insert(LAST_APPLIED_ANNOTATION.to_owned(), json!(last_applied));
    let managed = managed_fields(metadata, object_field(manifest, "spec"));
    metadata.insert("uid".to_owned(), json!(uuid(&format!("object/{name}"))));
    metadata.insert("creationTimestamp".to_owned(), json!(CREATED_AT));
    metadata.insert("generation".to_owned(), json!(1));
    metadata.insert("managedFields".to_owned(), json!([managed]));
    if let Some(identity) = object
        .pointer_mut("/spec/workloadIdentity")
        .and_then(Value::as_object_mut)
    {
        identity.entry("mode").or_insert_with(|| json!("IRSA"));
    }
    Ok(sorted(&object))
}

/// `value`'s field `name`, or null.
fn object_field<'a>(value: &'a Value, name: &str) -> &'a Value {
    value.get(name).unwrap_or(&Value::Null)
}

/// The `kubectl-client-side-apply` entry of `managedFields`: every label, annotation and spec field
/// the manifest set, in the API server's FieldsV1 format.
fn managed_fields(metadata: &Map<String, Value>, spec: &Value) -> Value {
    let mut owned_metadata = Map::new();
    for part in ["annotations", "labels"] {
        if let Some(value) = metadata.get(part) {
            owned_metadata.insert(format!("f:{part}"), fields_v1(value));
        }
    }
    json!({
        "manager": FIELD_MANAGER,
        "operation": "Update",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "time": CREATED_AT,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": owned_metadata, "f:spec": fields_v1(spec)}
    })
}

/// The FieldsV1 set of `value`: a map owns itself (`.`) and each of its fields (`f:<name>`); any
/// other value, lists included, is a leaf (`{}`).
fn fields_v1(value: &Value) -> Value {
    let mut fields = Map::new();
    if let Value::Object(map) = value {
        fields.insert(".".to_owned(), json!({}));
        for (key, child) in map {
            fields.insert(format!("f:{key}"), fields_v1(child));
        }
    }
    Value::Object(fields)
}

/// `value` with the keys of every map in sorted order, as Go writes a map.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// A version-4-shaped UUID derived from `label`, so that every run sends the same uids.
fn uuid(label: &str) -> String {
    let digest = Sha256::digest(label.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}
