//! Shared helpers of the integration tests: AdmissionReview bodies, the engine with the built-in
//! guardrails, a webhook served on 127.0.0.1 with certificates in a temporary directory, and small
//! HTTP(S) clients that report what the TLS handshake negotiated; the whole operator on a real
//! control plane in [`cluster`].

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

pub mod cluster;
pub mod hostile;
pub mod moto;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use infra_operator::admission::{self, AdmissionMetrics, Limits, WebhookConfig, WebhookError};
use infra_operator::certs::{trust_roots, write_certs};
use infra_operator::guardrails::{Config, Engine};
use infra_operator::serve::{AdminServer, Metrics, Readiness, Shutdown};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ProtocolVersion, SupportedProtocolVersion};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// Upper bound of every wait in these tests; generous, since only a hang should hit it.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The `apiVersion` of our kinds.
pub const API_VERSION: &str = "aws-infra-operator.runner.codes/v1alpha1";

/// The engine with the committed default guardrails.
pub fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(Config::builtin()).expect("built-in schemas compile"))
}

/// An `admission.k8s.io/v1` AdmissionReview about `object` (and `old` on UPDATE/DELETE).
pub fn review(
    uid: &str,
    kind: &str,
    operation: &str,
    object: Value,
    old: Value,
    dry_run: bool,
) -> Value {
    let (group, version) = API_VERSION.split_once('/').unwrap_or_default();
    let name = object
        .pointer("/metadata/name")
        .or_else(|| old.pointer("/metadata/name"))
        .cloned()
        .unwrap_or(json!(""));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": format!("{}s", kind.to_lowercase())},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "name": name,
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// An IAMRole object in namespace `default` with `spec`.
pub fn iamrole(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "IAMRole",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec
    })
}

/// The spec of the user documentation's EC2 example role, which the guardrails accept.
pub fn ec2_role_spec() -> Value {
    json!({
        "providerRef": {"name": "localstack"},
        "roleName": "e2e-ec2-service-role",
        "description": "IAM role for EC2 instances - E2E testing",
        "path": "/e2e/",
        "maxSessionDuration": 3600,
        "assumeRolePolicyDocument": "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\n      \"Effect\": \"Allow\",\n      \"Principal\": {\"Service\": \"ec2.amazonaws.com\"},\n      \"Action\": \"sts:AssumeRole\"\n    }\n  ]\n}\n",
        "managedPolicyArns": [
            "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
            "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"
        ],
        "tags": {"environment": "test", "managed-by": "infra-operator", "purpose": "e2e-testing"},
        "deletionPolicy": "Delete"
    })
}

/// A webhook and its admin server serving on 127.0.0.1 (ports chosen by the OS), as
/// `infra-operator webhook` serves them, until [`Served::stop`].
pub struct Served {
    /// The HTTPS webhook.
    pub https: SocketAddr,
    /// The plain-HTTP admin server.
    pub admin: SocketAddr,
    /// The directory the certificate is read from.
    pub cert_dir: PathBuf,
    /// The CA that signed the serving certificate.
    pub ca_cert: PathBuf,
    /// The token that stops both servers.
    pub shutdown: Shutdown,
    task: JoinHandle<Result<(), WebhookError>>,
    _dir: tempfile::TempDir,
}

/// Writes a CA and serving certificate for 127.0.0.1 into a fresh directory (or lays it out with
/// `layout`), then binds and serves the webhook.
pub async fn serve_with(layout: impl FnOnce(&Path) -> PathBuf) -> Served {
    serve_engine(layout, engine(), Limits::default()).await
}

/// [`serve`] with an engine of the given guardrails.
pub async fn serve_config(config: Config) -> Served {
    let engine = Arc::new(Engine::new(config).expect("built-in schemas compile"));
    serve_engine(default_layout, engine, Limits::default()).await
}

/// [`serve`] with the given limits.
pub async fn serve_limits(limits: Limits) -> Served {
    serve_engine(default_layout, engine(), limits).await
}

fn default_layout(root: &Path) -> PathBuf {
    let files = write_certs(&root.join("certs"), &hosts()).expect("certificates");
    files.ca_cert
}

async fn serve_engine(
    layout: impl FnOnce(&Path) -> PathBuf,
    engine: Arc<Engine>,
    limits: Limits,
) -> Served {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca_cert = layout(dir.path());
    let cert_dir = dir.path().join("certs");
    let config = WebhookConfig {
        cert_dir: cert_dir.clone(),
        bind: "127.0.0.1:0".parse().expect("address"),
        limits,
    };
    let mut metrics = Metrics::new();
    let webhook_metrics = AdmissionMetrics::register(metrics.registry_mut());
    let bound = admission::bind(&config, engine, webhook_metrics)
        .await
        .expect("webhook binds");
    let admin_server =
        AdminServer::bind("127.0.0.1:0".parse().expect("address")).expect("admin binds");
    let (https, admin) = (bound.https_addr(), admin_server.local_addr());
    let shutdown = Shutdown::new();
    let readiness = Readiness::default();
    let admin_thread = admin_server
        .spawn(Arc::new(metrics), readiness.clone(), shutdown.clone())
        .expect("admin server starts");
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let served = bound.serve(readiness, stop.clone()).await;
        stop.cancel();
        admin_thread.stopped().await;
        served
    });
    Served {
        https,
        admin,
        cert_dir,
        ca_cert,
        shutdown,
        task,
        _dir: dir,
    }
}

/// [`serve_with`] with `tls.crt`/`tls.key` written directly into `<tmp>/certs`.
pub async fn serve() -> Served {
    serve_with(default_layout).await
}

/// The hosts test certificates are made for.
pub fn hosts() -> Vec<String> {
    vec!["127.0.0.1".to_owned(), "localhost".to_owned()]
}

impl Served {
    /// Triggers shutdown and waits (bounded) for the server to finish.
    pub async fn stop(mut self) -> Result<(), WebhookError> {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("webhook stops in time")
            .expect("webhook task does not panic")
    }

    /// A client configuration trusting only this server's CA.
    pub fn client(&self) -> Arc<ClientConfig> {
        client_config(
            &self.ca_cert,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            &[],
        )
    }
}

/// A rustls client trusting only the CA in `ca_pem`, speaking `versions`, offering `alpn`.
pub fn client_config(
    ca_pem: &Path,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let roots = trust_roots(ca_pem).expect("CA file");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions supported")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// What one HTTPS exchange saw.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response body.
    pub body: Vec<u8>,
    /// DER of the server's leaf certificate.
    pub peer_cert: Vec<u8>,
    /// The negotiated TLS version.
    pub version: Option<ProtocolVersion>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// POSTs `body` to `https://addr/path` over a new TLS connection (HTTP/2 when ALPN picks `h2`).
pub async fn https_post(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    path: &str,
    body: Vec<u8>,
) -> Result<Reply, String> {
    bounded(async move {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let server_name = ServerName::IpAddress(addr.ip().into());
        let tls = TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let (_, session) = tls.get_ref();
        let peer_cert = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let version = session.protocol_version();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let request = Request::post(path)
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = if alpn.as_deref() == Some(b"h2") {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            tokio::spawn(connection);
            sender.send_request(request).await
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP/1 handshake: {e}"))?;
            tokio::spawn(connection);
            sender.send_request(request).await
        }
        .map_err(|e| format!("request: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        Ok(Reply {
            status,
            body: body.to_bytes().to_vec(),
            peer_cert,
            version,
            alpn,
        })
    })
    .await
}

/// The leaf certificate (DER) a new TLS connection to `addr` is given.
pub async fn peer_certificate(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> Result<Vec<u8>, String> {
    bounded(async move {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let tls = TlsConnector::from(config)
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let (_, session) = tls.get_ref();
        session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.to_vec())
            .ok_or_else(|| "no peer certificate".to_owned())
    })
    .await
}

/// GETs `http://addr/path`; returns the status and the body as text.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(StatusCode, String), String> {
    bounded(async move {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP/1 handshake: {e}"))?;
        tokio::spawn(connection);
        let request = Request::get(path)
            .header("host", addr.to_string())
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        Ok((
            status,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        ))
    })
    .await
}

/// The value of one sample line (`name{labels}`) in a Prometheus text exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Polls `check` until it yields `Some`, at most [`PATIENCE`]; `None` when it never did.
pub async fn eventually<T, F, Fut>(mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bounded<T>(work: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(PATIENCE, work)
        .await
        .unwrap_or_else(|_| Err("timed out".to_owned()))
}

/// An AdmissionReview response read strictly as the API server's `admission.k8s.io/v1` types
/// define it: no unknown field anywhere, `patch` a base64 string of a JSON Patch array.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StrictReview {
    /// Must be `admission.k8s.io/v1`.
    pub api_version: String,
    /// Must be `AdmissionReview`.
    pub kind: String,
    /// The response.
    pub response: StrictResponse,
}

/// `response` of [`StrictReview`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StrictResponse {
    /// The request's uid.
    pub uid: String,
    /// Whether the object is admitted.
    pub allowed: bool,
    /// The refusal.
    #[serde(default)]
    pub status: Option<StrictStatus>,
    /// Base64 of a JSON Patch.
    #[serde(default)]
    pub patch: Option<String>,
    /// `JSONPatch` when there is a patch.
    #[serde(default)]
    pub patch_type: Option<String>,
    /// Warnings.
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
    /// Audit annotations.
    #[serde(default)]
    pub audit_annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// `metav1.Status` as a refusal carries it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrictStatus {
    /// `Failure`.
    #[serde(default)]
    pub status: Option<String>,
    /// The message shown to the user.
    #[serde(default)]
    pub message: Option<String>,
    /// A machine-readable reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// An HTTP-like code.
    #[serde(default)]
    pub code: Option<u16>,
}

/// Reads `body` as a [`StrictReview`] and checks what the types cannot say: the envelope's
/// `apiVersion` and `kind`, and that a patch comes with `patchType: JSONPatch` and decodes from
/// base64 to a JSON Patch array. Returns the review and the patch.
pub fn strict_review(body: &[u8]) -> Result<(StrictReview, Option<json_patch::Patch>), String> {
    let review: StrictReview =
        serde_json::from_slice(body).map_err(|e| format!("not a strict AdmissionReview: {e}"))?;
    if review.api_version != "admission.k8s.io/v1" || review.kind != "AdmissionReview" {
        return Err(format!("envelope {} {}", review.api_version, review.kind));
    }
    let response = &review.response;
    let patch = match (&response.patch, response.patch_type.as_deref()) {
        (None, None) => None,
        (Some(patch), Some("JSONPatch")) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(patch)
                .map_err(|e| format!("patch is not base64: {e}"))?;
            let operations: Vec<Value> = serde_json::from_slice(&bytes)
                .map_err(|e| format!("patch is not a JSON array: {e}"))?;
            let patch = serde_json::from_value(Value::Array(operations))
                .map_err(|e| format!("patch is not a JSON Patch: {e}"))?;
            Some(patch)
        }
        (patch, kind) => return Err(format!("patch {patch:?} with patchType {kind:?}")),
    };
    if response.allowed == response.status.is_some() {
        return Err(format!(
            "allowed is {} with status {:?}",
            response.allowed, response.status
        ));
    }
    Ok((review, patch))
}
