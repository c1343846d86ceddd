//! Load on the admission webhook over TLS. The webhook is served in-process on 127.0.0.1 exactly as
//! `infra-operator webhook` serves it (`admission::bind` on its own runtime, certificates from
//! `certs::write_certs` in a temporary directory); the loader sends the seed IAMRoles of
//! `manifests/examples/` as CREATE AdmissionReviews (`admission.k8s.io/v1`), alternating `/validate`
//! and `/mutate`.
//!
//! Phases: open-loop fixed rates over a fixed set of keep-alive HTTP/1.1 connections (latency counted
//! from the intended send time, so a stalled server is not hidden by a waiting client), closed-loop
//! saturation over HTTP/1.1 and HTTP/2, and a new TLS connection (full handshake) per request. Every
//! response is checked (HTTP 200, an AdmissionReview echoing the uid sent, `response.allowed` as
//! expected); anything else is an error, never a measurement. Prints a Markdown table.
//!
//! `cargo bench --bench webhook_load` runs 5 s phases, `-- --quick` (or `LOAD_QUICK=1`) 1 s phases;
//! `LOAD_SECONDS`, `LOAD_SERVER_THREADS` and `LOAD_CLIENT_THREADS` override the phase length and the
//! runtime sizes (2 each by default). Without `--bench` (as `cargo test --all-targets` runs it) only a
//! smoke run of a few requests checks the answers. Network I/O on 127.0.0.1 only; reads the examples
//! and `/proc/self` (CPU time of each thread, to split the cost between webhook and loader, and the
//! process's resident memory), writes the certificates into a temporary directory.
//!
//! After those phases come the hostile-mix phases of [`hostile_mix`] (seed reviews with the worst
//! reviews, held connections and admin probes beside them, then the same without the hostile part);
//! `LOAD_HOSTILE_SECONDS` sets their length (the phase length by default). `-- --separate` (or
//! `LOAD_SEPARATE=1`) runs only those, against `infra-operator webhook` in a process of its own
//! pinned to another CPU than the loader ([`separate`]), for the webhook's own latency and memory.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use anyhow::{Context, bail, ensure};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::{http1, http2};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use infra_operator::admission::limits::SMALL_BODY_BYTES;
use infra_operator::admission::{self, AdmissionMetrics, Limits, WebhookConfig};
use infra_operator::certs::{trust_roots, write_certs};
use infra_operator::guardrails::{Config, Engine, Kind};
use infra_operator::serve::admin::AdminThread;
use infra_operator::serve::{AdminServer, Metrics, Readiness, Shutdown};
use infra_operator::validate::parse_documents;
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, mpsc};
use tokio_rustls::TlsConnector;

#[path = "webhook_load/hostile_mix.rs"]
mod hostile_mix;
// The machine's noise as the floor harness reads it: its clock ticks and steal time.
#[allow(dead_code)]
#[path = "admission_floor/noise.rs"]
mod noise;
#[path = "webhook_load/separate.rs"]
mod separate;
#[path = "../tests/support/mod.rs"]
mod support;
#[path = "support/webhook_process.rs"]
mod webhook_process;

use noise::CLOCK_TICKS;
use webhook_process::describe_tls;

/// Name of the webhook's runtime threads (CPU time is split between server and loader by name).
const SERVER_THREAD: &str = "webhook-server";
/// Name of the loader's runtime threads.
const CLIENT_THREAD: &str = "load-client";
/// Name of the thread that releases open-loop requests at their intended times.
const PACER_THREAD: &str = "load-pacer";
/// Request uids are this prefix and a zero-padded sequence number, spliced into a template body.
const UID_PREFIX: &str = "load-";
const UID_DIGITS: usize = 12;
/// Longest wait for one answer (only a hang should hit it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an open-loop phase may run past its length to send what is still queued.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests each keep-alive lane sends before a phase is timed.
const WARM_UP_REQUESTS: usize = 5;
/// Requests over the keep-alive HTTP/1.1 connection in the smoke run.
const SMOKE_REQUESTS: usize = 20;
/// Upper bound of the smoke run.
const SMOKE_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let workload = Arc::new(Workload::from_examples()?);
    if settings.separate && settings.length.is_some() {
        return separate::run(&settings, workload);
    }
    let server_rt = runtime(SERVER_THREAD, settings.server_threads)?;
    let client_rt = runtime(CLIENT_THREAD, settings.client_threads)?;
    let certs = tempfile::tempdir().context("temporary directory")?;
    let hosts = ["127.0.0.1".to_owned()];
    let files = write_certs(certs.path(), &hosts).context("certificates")?;
    let server = Server::start(&server_rt, certs.path())?;
    let roots = trust_roots(&files.ca_cert)?;
    let clients = Clients::new(server.addr, &roots);
    let worst = Arc::new(hostile_mix::Worst::new()?);

    let outcome = match settings.length {
        None => client_rt.block_on(async {
            let smoked = async {
                smoke(&clients, &workload).await?;
                hostile_mix::smoke(&clients, &worst, server.admin).await
            };
            tokio::time::timeout(SMOKE_TIMEOUT, smoked)
                .await
                .unwrap_or_else(|_| bail!("smoke run took over {SMOKE_TIMEOUT:?}"))
        }),
        Some(length) => client_rt.block_on(bench(
            &settings,
            length,
            &clients,
            &workload,
            &worst,
            server.admin,
        )),
    };
    let stopped = server.stop(&server_rt);
    outcome.and(stopped)
}

/// What to run, from the arguments and the environment.
struct Settings {
    /// Length of each phase; `None` for the smoke run.
    length: Option<Duration>,
    /// Length of each hostile-mix phase.
    hostile_length: Duration,
    /// `full` or `quick`.
    label: &'static str,
    server_threads: usize,
    client_threads: usize,
    /// Only the hostile mix, against `infra-operator webhook` in a process of its own
    /// ([`separate`]).
    separate: bool,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let args: Vec<String> = env::args().skip(1).collect();
        let flag = |name: &str| args.iter().any(|a| a == name);
        let quick = flag("--quick") || env::var("LOAD_QUICK").is_ok_and(|v| v == "1");
        let number =
            |name: &str, default: u64| -> anyhow::Result<u64> {
                match env::var(name) {
                    Ok(text) => text.parse().ok().filter(|n| *n > 0).with_context(|| {
                        format!("{name} must be a positive integer, not {text:?}")
                    }),
                    Err(_) => Ok(default),
                }
            };
        let seconds = number("LOAD_SECONDS", if quick { 1 } else { 5 })?;
        Ok(Settings {
            length: flag("--bench").then(|| Duration::from_secs(seconds)),
            hostile_length: Duration::from_secs(number("LOAD_HOSTILE_SECONDS", seconds)?),
            label: if quick { "quick" } else { "full" },
            server_threads: usize::try_from(number("LOAD_SERVER_THREADS", 2)?)?,
            client_threads: usize::try_from(number("LOAD_CLIENT_THREADS", 2)?)?,
            separate: flag("--separate") || env::var("LOAD_SEPARATE").is_ok_and(|v| v == "1"),
        })
    }
}

fn runtime(name: &str, threads: usize) -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("{name} runtime"))
}

/// The webhook serving on its own runtime, and the admin server on its own thread, until
/// [`Server::stop`].
struct Server {
    addr: SocketAddr,
    /// The plain-HTTP admin server (`/healthz`).
    admin: SocketAddr,
    stop: Shutdown,
    task: tokio::task::JoinHandle<Result<(), admission::WebhookError>>,
    admin_thread: AdminThread,
}

impl Server {
    fn start(rt: &Runtime, cert_dir: &Path) -> anyhow::Result<Server> {
        let engine = Arc::new(Engine::new(Config::builtin()).context("guardrail engine")?);
        let config = WebhookConfig {
            cert_dir: cert_dir.to_path_buf(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            limits: Limits::default(),
        };
        let metrics = AdmissionMetrics::unregistered();
        let bound = rt
            .block_on(admission::bind(&config, engine, metrics))
            .context("webhook binds")?;
        let addr = bound.https_addr();
        let stop = Shutdown::new();
        let readiness = Readiness::default();
        let admin_server =
            AdminServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).context("admin binds")?;
        let admin = admin_server.local_addr();
        let admin_thread = admin_server
            .spawn(Arc::new(Metrics::new()), readiness.clone(), stop.clone())
            .context("admin server starts")?;
        let task = rt.spawn(bound.serve(readiness, stop.clone()));
        Ok(Server {
            addr,
            admin,
            stop,
            task,
            admin_thread,
        })
    }

    fn stop(self, rt: &Runtime) -> anyhow::Result<()> {
        self.stop.cancel();
        let patience = admission::server::DRAIN_TIMEOUT + Duration::from_secs(5);
        let waited = rt.block_on(async {
            let waited = tokio::time::timeout(patience, self.task).await;
            tokio::time::timeout(patience, self.admin_thread.stopped())
                .await
                .context("admin server did not stop in time")?;
            anyhow::Ok(waited)
        })?;
        waited
            .context("webhook did not stop in time")?
            .context("webhook task failed")?
            .context("webhook failed")
    }
}

/// One AdmissionReview body with a placeholder uid, where it goes and the answer it must get.
#[derive(Clone)]
struct Template {
    body: Vec<u8>,
    uid_at: usize,
    path: &'static str,
    allowed: bool,
    /// Whether 503 (no memory for another large body now) is an acceptable answer.
    busy_ok: bool,
}

impl Template {
    /// The uid every template is built with, replaced by [`Template::prepare`].
    fn placeholder() -> String {
        format!("{UID_PREFIX}{:0UID_DIGITS$}", 0)
    }

    fn new(object: &Value, path: &'static str, allowed: bool) -> anyhow::Result<Template> {
        let placeholder = Template::placeholder();
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": placeholder,
                "kind": {"group": "aws-infra-operator.runner.codes", "version": "v1alpha1", "kind": "IAMRole"},
                "resource": {"group": "aws-infra-operator.runner.codes", "version": "v1alpha1", "resource": "iamroles"},
                "requestKind": {"group": "aws-infra-operator.runner.codes", "version": "v1alpha1", "kind": "IAMRole"},
                "name": object.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
                "namespace": "default",
                "operation": "CREATE",
                "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
                "object": object,
                "oldObject": null,
                "dryRun": false,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
            }
        });
        Template::from_body(serde_json::to_vec(&review)?, path, allowed, false)
    }

    /// A template from a serialized review whose uid is [`Template::placeholder`].
    fn from_body(
        body: Vec<u8>,
        path: &'static str,
        allowed: bool,
        busy_ok: bool,
    ) -> anyhow::Result<Template> {
        let quoted = format!("\"{}\"", Template::placeholder());
        let uid_at = body
            .windows(quoted.len())
            .position(|w| w == quoted.as_bytes())
            .context("uid placeholder in the serialized review")?
            + 1;
        Ok(Template {
            body,
            uid_at,
            path,
            allowed,
            busy_ok,
        })
    }

    /// The body with uid number `n`.
    fn prepare(&self, n: u64) -> Prepared {
        let uid = format!("{UID_PREFIX}{n:0UID_DIGITS$}");
        let mut body = self.body.clone();
        body[self.uid_at..self.uid_at + uid.len()].copy_from_slice(uid.as_bytes());
        Prepared {
            body: Bytes::from(body),
            uid,
            path: self.path,
            allowed: self.allowed,
            busy_ok: self.busy_ok,
        }
    }
}

/// A request ready to send and what its answer must say.
struct Prepared {
    body: Bytes,
    uid: String,
    path: &'static str,
    allowed: bool,
    busy_ok: bool,
}

/// Where a phase's requests come from.
trait Source: Send + Sync + 'static {
    fn next(&self) -> Prepared;
}

/// The request mix: each seed IAMRole to `/validate` then `/mutate`, round robin, numbered uids.
struct Workload {
    templates: Vec<Template>,
    sent: AtomicU64,
    /// A seed role with an invalid name, which `/validate` must deny (smoke run only).
    denied: Template,
    /// Smallest and largest body in bytes.
    sizes: (usize, usize),
}

impl Workload {
    fn from_examples() -> anyhow::Result<Workload> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/examples");
        let mut files: Vec<_> = fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        let mut roles = Vec::new();
        for file in files {
            let text =
                fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let documents =
                parse_documents(&text).with_context(|| format!("parsing {}", file.display()))?;
            for mut object in documents {
                if Kind::of(&object) == Some(Kind::IAMRole) {
                    if let Some(metadata) =
                        object.get_mut("metadata").and_then(Value::as_object_mut)
                    {
                        metadata.insert("namespace".to_owned(), json!("default"));
                    }
                    roles.push(object);
                }
            }
        }
        let Some(first) = roles.first() else {
            bail!("no IAMRole in {}", dir.display());
        };
        let mut bad = first.clone();
        bad.pointer_mut("/spec")
            .and_then(Value::as_object_mut)
            .context("the first seed IAMRole has no spec")?
            .insert("roleName".to_owned(), json!("bad name!"));
        let denied = Template::new(&bad, "/validate", false)?;
        let mut templates = Vec::new();
        for role in &roles {
            templates.push(Template::new(role, "/validate", true)?);
            templates.push(Template::new(role, "/mutate", true)?);
        }
        let lengths = templates.iter().map(|t| t.body.len());
        let sizes = (
            lengths.clone().min().unwrap_or(0),
            lengths.max().unwrap_or(0),
        );
        Ok(Workload {
            templates,
            sent: AtomicU64::new(0),
            denied,
            sizes,
        })
    }

    fn roles(&self) -> usize {
        self.templates.len() / 2
    }
}

impl Source for Workload {
    fn next(&self) -> Prepared {
        round_robin(&self.templates, &self.sent)
    }
}

/// The next of `templates` in turn, numbered by `sent`.
fn round_robin(templates: &[Template], sent: &AtomicU64) -> Prepared {
    let n = sent.fetch_add(1, Ordering::Relaxed);
    let index = usize::try_from(n % templates.len() as u64).unwrap_or(0);
    templates[index].prepare(n)
}

/// Why one request did not get the right answer.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("request failed: {0}")]
    Request(String),
    #[error("no answer within {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
    #[error("still queued {} s after the phase ended", DRAIN_TIMEOUT.as_secs())]
    Late,
    #[error("HTTP {0}: {1}")]
    Status(StatusCode, String),
    #[error("HTTP 503: no memory for another large body now")]
    Busy,
    #[error("closed by the server before the body was sent (a large body refused up front)")]
    Unread,
    #[error("refused: its checks overran the review deadline")]
    Overdue,
    #[error("wrong answer: {0}")]
    Answer(String),
}

/// The part of the answer that is checked.
#[derive(Deserialize)]
struct ReviewOut {
    kind: String,
    response: ResponseOut,
}

#[derive(Deserialize)]
struct ResponseOut {
    uid: String,
    allowed: bool,
    status: Option<StatusOut>,
}

#[derive(Deserialize)]
struct StatusOut {
    code: Option<u16>,
}

fn check(prepared: &Prepared, status: StatusCode, body: &[u8]) -> Result<(), Failure> {
    if status == StatusCode::SERVICE_UNAVAILABLE && prepared.busy_ok {
        return Err(Failure::Busy);
    }
    if status != StatusCode::OK {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(Failure::Status(status, text));
    }
    let review: ReviewOut = serde_json::from_slice(body)
        .map_err(|e| Failure::Answer(format!("not an AdmissionReview answer: {e}")))?;
    if review.kind != "AdmissionReview" {
        return Err(Failure::Answer(format!("kind {:?}", review.kind)));
    }
    if review.response.uid != prepared.uid {
        return Err(Failure::Answer(format!(
            "uid {} for request {}",
            review.response.uid, prepared.uid
        )));
    }
    let overdue = review.response.status.and_then(|s| s.code) == Some(504);
    if prepared.allowed && !review.response.allowed && overdue {
        // The webhook fails closed when it cannot check in time: an overloaded server, not a
        // wrong answer.
        return Err(Failure::Overdue);
    }
    if review.response.allowed != prepared.allowed {
        return Err(Failure::Answer(format!(
            "{} {}: allowed is {}, expected {}",
            prepared.path, prepared.uid, review.response.allowed, prepared.allowed
        )));
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// An open HTTP connection (for HTTP/2, a handle that may be shared by several lanes).
enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error> {
        match self {
            Sender::Http1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
            Sender::Http2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
        }
    }

    fn share(&self) -> Option<Sender> {
        match self {
            Sender::Http1(_) => None,
            Sender::Http2(sender) => Some(Sender::Http2(sender.clone())),
        }
    }
}

/// Why sending `prepared` failed. A large body the webhook refuses up front is answered 503 and its
/// connection closed before the body is read, so the client's write breaks first and the answer is
/// never seen: for a large review that may be answered 503, that is an expected refusal, not an
/// error. A smaller body is never refused before it is read, so a broken write is an error there.
fn sending_failed(prepared: &Prepared, error: &hyper::Error) -> Failure {
    let refusable = prepared.busy_ok && prepared.body.len() > SMALL_BODY_BYTES;
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            let closed = matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            );
            if closed && refusable {
                return Failure::Unread;
            }
        }
        source = cause.source();
    }
    Failure::Request(error.to_string())
}

/// How to reach the webhook: one client per kind of connection.
#[derive(Clone)]
struct Clients {
    http1: Arc<Client>,
    http2: Arc<Client>,
    /// HTTP/1.1 without TLS session resumption: every connection does a full handshake.
    fresh: Arc<Client>,
}

impl Clients {
    fn new(addr: SocketAddr, roots: &rustls::RootCertStore) -> Clients {
        let config = |alpn: &[u8], resume: bool| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.with_root_certificates(roots.clone())
                        .with_no_client_auth()
                });
            if let Ok(config) = &mut config {
                config.alpn_protocols = vec![alpn.to_vec()];
                if !resume {
                    config.resumption = Resumption::disabled();
                }
            }
            config.map(Arc::new)
        };
        let client = |protocol, alpn: &[u8], resume| {
            Arc::new(Client {
                addr,
                tls: config(alpn, resume),
                protocol,
            })
        };
        Clients {
            http1: client(Protocol::Http1, b"http/1.1", true),
            http2: client(Protocol::Http2, b"h2", true),
            fresh: client(Protocol::Http1, b"http/1.1", false),
        }
    }
}

struct Client {
    addr: SocketAddr,
    tls: Result<Arc<ClientConfig>, rustls::Error>,
    protocol: Protocol,
}

impl Client {
    /// A new TCP + TLS + HTTP connection.
    async fn open(&self) -> Result<Sender, Failure> {
        Ok(self.open_described().await?.0)
    }

    /// [`Client::open`], also saying what TLS negotiated.
    async fn open_described(&self) -> Result<(Sender, String), Failure> {
        let config = self
            .tls
            .as_ref()
            .map_err(|e| Failure::Connect(format!("TLS configuration: {e}")))?;
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| Failure::Connect(e.to_string()))?;
        tcp.set_nodelay(true)
            .map_err(|e| Failure::Connect(e.to_string()))?;
        let tls = TlsConnector::from(Arc::clone(config))
            .connect(ServerName::IpAddress(self.addr.ip().into()), tcp)
            .await
            .map_err(|e| Failure::Connect(format!("TLS handshake: {e}")))?;
        let session = tls.get_ref().1;
        let described = describe_tls(session);
        let negotiated = session.alpn_protocol().map(<[u8]>::to_vec);
        let wanted: &[u8] = match self.protocol {
            Protocol::Http1 => b"http/1.1",
            Protocol::Http2 => b"h2",
        };
        if negotiated.as_deref() != Some(wanted) {
            return Err(Failure::Connect(format!(
                "ALPN negotiated {negotiated:?}, not {}",
                String::from_utf8_lossy(wanted)
            )));
        }
        let io = TokioIo::new(tls);
        let handshake_error = |e: hyper::Error| Failure::Connect(format!("HTTP handshake: {e}"));
        let sender = match self.protocol {
            Protocol::Http1 => {
                let (sender, connection) = http1::handshake(io).await.map_err(handshake_error)?;
                tokio::spawn(connection);
                Sender::Http1(sender)
            }
            Protocol::Http2 => {
                let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(handshake_error)?;
                tokio::spawn(connection);
                Sender::Http2(sender)
            }
        };
        Ok((sender, described))
    }

    fn request(&self, prepared: &Prepared) -> Result<Request<Full<Bytes>>, Failure> {
        // HTTP/2 needs the scheme and authority in the URI; HTTP/1.1 sends the path and a Host header.
        let uri: Uri = match self.protocol {
            Protocol::Http1 => Uri::from_static(prepared.path),
            Protocol::Http2 => format!("https://{}{}", self.addr, prepared.path)
                .parse()
                .map_err(|e| Failure::Request(format!("URI: {e}")))?,
        };
        Request::post(uri)
            .header(HOST, self.addr.to_string())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(prepared.body.clone()))
            .map_err(|e| Failure::Request(e.to_string()))
    }
}

/// One sequence of requests, one at a time: over its own keep-alive connection (HTTP/1.1), over a
/// connection shared with other lanes (HTTP/2), or over a new connection each time.
struct Lane {
    client: Arc<Client>,
    keep_alive: bool,
    sender: Option<Sender>,
}

impl Lane {
    /// Sends one request and checks its answer; a broken connection is reopened on the next call.
    async fn exchange(&mut self, prepared: Prepared) -> Result<(), Failure> {
        let mut sender = match self.sender.take() {
            Some(sender) => sender,
            None => self.client.open().await?,
        };
        let request = self.client.request(&prepared)?;
        let response = sender
            .send(request)
            .await
            .map_err(|e| sending_failed(&prepared, &e))?;
        let status = response.status();
        // A server that says it closes the connection has closed it: the next request opens one.
        let closing = response
            .headers()
            .get(CONNECTION)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Request(format!("body: {e}")))?
            .to_bytes();
        if self.keep_alive && !closing {
            self.sender = Some(sender);
        }
        check(&prepared, status, &body)
    }

    async fn bounded(&mut self, prepared: Prepared) -> Result<(), Failure> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(prepared))
            .await
            .unwrap_or(Err(Failure::Timeout))
    }
}

/// How a phase connects.
#[derive(Clone, Copy)]
enum Transport {
    /// `connections` keep-alive HTTP/1.1 connections, one request in flight on each.
    Http1 { connections: usize },
    /// One HTTP/2 connection with up to `streams` requests in flight.
    Http2 { streams: usize },
    /// A new TCP + TLS (full handshake) + HTTP/1.1 connection per request, `concurrency` at once.
    Fresh { concurrency: usize },
}

impl Transport {
    fn describe(self) -> String {
        match self {
            Transport::Http1 { connections } => format!("HTTP/1.1 keep-alive × {connections}"),
            Transport::Http2 { streams } => format!("HTTP/2, 1 connection × {streams} streams"),
            Transport::Fresh { concurrency } => {
                format!("new TLS connection per request, ≤ {concurrency} at once")
            }
        }
    }

    /// Opens the lanes (keep-alive connections are opened here, before timing starts).
    async fn lanes(self, clients: &Clients) -> Result<Vec<Lane>, Failure> {
        let lane = |client: &Arc<Client>, keep_alive, sender| Lane {
            client: Arc::clone(client),
            keep_alive,
            sender,
        };
        let mut lanes = Vec::new();
        match self {
            Transport::Http1 { connections } => {
                for _ in 0..connections {
                    let sender = clients.http1.open().await?;
                    lanes.push(lane(&clients.http1, true, Some(sender)));
                }
            }
            Transport::Http2 { streams } => {
                let shared = clients.http2.open().await?;
                for _ in 0..streams {
                    lanes.push(lane(&clients.http2, true, shared.share()));
                }
            }
            Transport::Fresh { concurrency } => {
                for _ in 0..concurrency {
                    lanes.push(lane(&clients.fresh, false, None));
                }
            }
        }
        Ok(lanes)
    }
}

/// One measured phase.
#[derive(Clone, Copy)]
struct Phase {
    transport: Transport,
    /// Requests per second released on schedule (open loop), or `None` for back-to-back (closed loop).
    rate: Option<u32>,
}

const PHASES: [Phase; 7] = [
    Phase {
        transport: Transport::Http1 { connections: 8 },
        rate: Some(500),
    },
    Phase {
        transport: Transport::Http1 { connections: 8 },
        rate: Some(2000),
    },
    Phase {
        transport: Transport::Http1 { connections: 8 },
        rate: Some(5000),
    },
    Phase {
        transport: Transport::Http1 { connections: 16 },
        rate: None,
    },
    Phase {
        transport: Transport::Http2 { streams: 16 },
        rate: None,
    },
    Phase {
        transport: Transport::Fresh { concurrency: 32 },
        rate: Some(500),
    },
    Phase {
        transport: Transport::Fresh { concurrency: 8 },
        rate: None,
    },
];

/// What the requests of a phase (or of one lane) came to.
#[derive(Default)]
struct Tally {
    /// Latency of each correct answer, in nanoseconds.
    latencies: Vec<u64>,
    errors: u64,
    /// Errors that are wrong answers (HTTP status or body), not transport trouble, timeouts or
    /// refusals for lack of time.
    wrong: u64,
    /// Errors that are refusals for lack of time (the webhook's review deadline).
    overdue: u64,
    /// Acceptable 503 answers (no memory for another large body), neither answers nor errors.
    busy: u64,
    /// Large bodies refused up front: the connection closed before they were sent. Acceptable.
    unread: u64,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

impl Tally {
    fn record(&mut self, result: Result<(), Failure>, since: Instant) {
        let done = Instant::now();
        match result {
            Ok(()) => {
                let nanos =
                    u64::try_from(done.duration_since(since).as_nanos()).unwrap_or(u64::MAX);
                self.latencies.push(nanos);
                self.last_done = Some(done);
            }
            Err(Failure::Busy) => self.busy += 1,
            Err(Failure::Unread) => self.unread += 1,
            Err(failure) => {
                self.errors += 1;
                if matches!(failure, Failure::Overdue) {
                    self.overdue += 1;
                }
                if matches!(failure, Failure::Status(..) | Failure::Answer(_)) {
                    self.wrong += 1;
                }
                self.first_error.get_or_insert_with(|| failure.to_string());
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.wrong += other.wrong;
        self.busy += other.busy;
        self.unread += other.unread;
        self.overdue += other.overdue;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.last_done = self.last_done.max(other.last_done);
    }
}

/// Open loop: a pacer thread releases request `i` at `start + i / rate`; free lanes take them in
/// order. Latency runs from that intended time, so queueing behind a slow answer is counted.
async fn open_loop(
    lanes: Vec<Lane>,
    workload: &Arc<impl Source>,
    rate: u32,
    length: Duration,
) -> anyhow::Result<(Tally, Instant)> {
    let total = (f64::from(rate) * length.as_secs_f64()).round() as u64;
    let (release, released) = mpsc::unbounded_channel::<Instant>();
    let queue = Arc::new(Mutex::new(released));
    let start = Instant::now();
    let deadline = start + length + DRAIN_TIMEOUT;
    let pacer = thread::Builder::new()
        .name(PACER_THREAD.to_owned())
        .spawn(move || pace(&release, start, rate, total))
        .context("pacer thread")?;
    let workers: Vec<_> = lanes
        .into_iter()
        .map(|mut lane| {
            let queue = Arc::clone(&queue);
            let workload = Arc::clone(workload);
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let due = queue.lock().await.recv().await;
                    let Some(due) = due else { break };
                    let result = if Instant::now() > deadline {
                        Err(Failure::Late)
                    } else {
                        lane.bounded(workload.next()).await
                    };
                    tally.record(result, due);
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await.context("load task")?);
    }
    pacer
        .join()
        .map_err(|_| anyhow::anyhow!("pacer thread panicked"))?;
    Ok((tally, start))
}

/// Releases `total` requests at `rate` per second from `start`.
fn pace(release: &mpsc::UnboundedSender<Instant>, start: Instant, rate: u32, total: u64) {
    for i in 0..total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / u64::from(rate));
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        if release.send(due).is_err() {
            break;
        }
    }
}

/// Closed loop: every lane sends back to back until `length` has passed.
async fn closed_loop(
    lanes: Vec<Lane>,
    workload: &Arc<Workload>,
    length: Duration,
) -> anyhow::Result<(Tally, Instant)> {
    let start = Instant::now();
    let end = start + length;
    let workers: Vec<_> = lanes
        .into_iter()
        .map(|mut lane| {
            let workload = Arc::clone(workload);
            tokio::spawn(async move {
                let mut tally = Tally::default();
                while Instant::now() < end {
                    let sent = Instant::now();
                    let result = lane.bounded(workload.next()).await;
                    tally.record(result, sent);
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await.context("load task")?);
    }
    Ok((tally, start))
}

/// CPU time used so far (ns): by the webhook's threads and by this whole process (threads that have
/// ended included).
#[derive(Clone, Copy)]
struct CpuClock {
    server: u64,
    process: u64,
}

impl CpuClock {
    /// Read from `/proc`; `None` where that is not available.
    fn now() -> Option<CpuClock> {
        let mut server = 0;
        for task in fs::read_dir("/proc/self/task").ok()?.flatten() {
            let path = task.path();
            let (Ok(name), Ok(stat)) = (
                fs::read_to_string(path.join("comm")),
                fs::read_to_string(path.join("stat")),
            ) else {
                continue;
            };
            if name.trim_end().starts_with(SERVER_THREAD) {
                server += cpu_nanos(&stat).unwrap_or(0);
            }
        }
        let process = cpu_nanos(&fs::read_to_string("/proc/self/stat").ok()?)?;
        Some(CpuClock { server, process })
    }
}

/// Where the CPU went during a phase.
#[derive(Clone, Copy)]
struct CpuUse {
    /// Webhook CPU per correct answer, µs.
    server: f64,
    /// Loader CPU (every other thread of this process) per correct answer, µs.
    loader: f64,
}

impl CpuUse {
    fn between(before: CpuClock, after: CpuClock, answers: usize) -> CpuUse {
        let server = after.server.saturating_sub(before.server);
        let process = after.process.saturating_sub(before.process);
        let per_answer = |nanos: u64| nanos as f64 / answers.max(1) as f64 / 1_000.0;
        CpuUse {
            server: per_answer(server),
            loader: per_answer(process.saturating_sub(server)),
        }
    }
}

/// User + system CPU time in a `/proc/.../stat` line, in nanoseconds.
fn cpu_nanos(stat: &str) -> Option<u64> {
    // Fields after the parenthesized command name start at field 3 (state); utime and stime are 14, 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) * (1_000_000_000 / CLOCK_TICKS))
}

/// One line of the table.
struct Row {
    phase: Phase,
    achieved: f64,
    ok: usize,
    errors: u64,
    wrong: u64,
    /// p50, p99, p99.9 and max latency in nanoseconds.
    percentiles: [u64; 4],
    /// Where the CPU went; `None` without `/proc`.
    cpu: Option<CpuUse>,
}

async fn run_phase(
    phase: Phase,
    length: Duration,
    clients: &Clients,
    workload: &Arc<Workload>,
) -> anyhow::Result<Row> {
    let mut lanes = phase
        .transport
        .lanes(clients)
        .await
        .context("opening connections")?;
    for lane in lanes.iter_mut().filter(|l| l.keep_alive) {
        for _ in 0..WARM_UP_REQUESTS {
            lane.bounded(workload.next()).await.context("warm-up")?;
        }
    }
    let before = CpuClock::now();
    let (mut tally, start) = match phase.rate {
        Some(rate) => open_loop(lanes, workload, rate, length).await?,
        None => closed_loop(lanes, workload, length).await?,
    };
    let after = CpuClock::now();
    if let Some(error) = &tally.first_error {
        eprintln!(
            "{}: {} errors, the first: {error}",
            phase.transport.describe(),
            tally.errors
        );
    }
    let ok = tally.latencies.len();
    let elapsed = tally
        .last_done
        .map_or(length, |done| done.duration_since(start))
        .max(length);
    let cpu = before
        .zip(after)
        .map(|(before, after)| CpuUse::between(before, after, ok));
    tally.latencies.sort_unstable();
    let sorted = &tally.latencies;
    Ok(Row {
        phase,
        achieved: ok as f64 / elapsed.as_secs_f64(),
        ok,
        errors: tally.errors,
        wrong: tally.wrong,
        percentiles: [
            percentile(sorted, 0.5),
            percentile(sorted, 0.99),
            percentile(sorted, 0.999),
            sorted.last().copied().unwrap_or(0),
        ],
        cpu,
    })
}

/// The `q` quantile (nearest rank) of sorted values; 0 when there are none.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn millis(nanos: u64) -> String {
    format!("{:.2} ms", nanos as f64 / 1e6)
}

async fn bench(
    settings: &Settings,
    length: Duration,
    clients: &Clients,
    workload: &Arc<Workload>,
    worst: &Arc<hostile_mix::Worst>,
    admin: SocketAddr,
) -> anyhow::Result<()> {
    let (probe, negotiated) = clients
        .http1
        .open_described()
        .await
        .context("first connection")?;
    drop(probe);
    let mut rows = Vec::new();
    for phase in PHASES {
        rows.push(run_phase(phase, length, clients, workload).await?);
    }
    println!(
        "\n### webhook_load ({} run, {} s per phase)\n",
        settings.label,
        length.as_secs()
    );
    println!(
        "Webhook in-process on 127.0.0.1 ({} runtime threads), loader on {} runtime threads + 1 pacer \
         thread, {} CPUs shared. TLS: {negotiated}. Bodies: {} seed IAMRoles as CREATE reviews, \
         alternating /validate and /mutate, {}–{} bytes.\n",
        settings.server_threads,
        settings.client_threads,
        thread::available_parallelism().map_or(0, |n| n.get()),
        workload.roles(),
        workload.sizes.0,
        workload.sizes.1,
    );
    println!(
        "| connections | target req/s | achieved req/s | answers | errors | p50 | p99 | p99.9 | max | server CPU/req | loader CPU/req |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let [p50, p99, p999, max] = row.percentiles;
        let target = row
            .phase
            .rate
            .map_or_else(|| "closed loop".to_owned(), |r| r.to_string());
        let [server, loader] = row.cpu.map_or_else(
            || ["n/a".to_owned(), "n/a".to_owned()],
            |cpu| {
                [
                    format!("{:.0} µs", cpu.server),
                    format!("{:.0} µs", cpu.loader),
                ]
            },
        );
        println!(
            "| {} | {target} | {:.0} | {} | {} | {} | {} | {} | {} | {server} | {loader} |",
            row.phase.transport.describe(),
            row.achieved,
            row.ok,
            row.errors,
            millis(p50),
            millis(p99),
            millis(p999),
            millis(max),
        );
    }
    println!();
    let mut wrong: u64 = rows.iter().map(|r| r.wrong).sum();
    wrong += hostile_mix::bench(
        settings.hostile_length,
        clients,
        workload,
        worst,
        (admin, hostile_mix::Measured::Itself),
    )
    .await?;
    // Timeouts and connection failures are part of the measurement (an overloaded server); a wrong
    // answer is a defect.
    ensure!(
        wrong == 0,
        "{wrong} requests got a wrong answer (see the messages above)"
    );
    Ok(())
}

/// A few requests over each kind of connection, each answer checked; also checks that a wrong
/// expectation is caught, so the load phases cannot count a wrong answer as a success.
async fn smoke(clients: &Clients, workload: &Arc<Workload>) -> anyhow::Result<()> {
    let mut answered = 0;
    for (transport, requests) in [
        (Transport::Http1 { connections: 1 }, SMOKE_REQUESTS),
        (Transport::Http2 { streams: 1 }, 2),
        (Transport::Fresh { concurrency: 1 }, 2),
    ] {
        let mut lanes = transport.lanes(clients).await?;
        for lane in &mut lanes {
            for _ in 0..requests {
                lane.bounded(workload.next())
                    .await
                    .with_context(|| transport.describe())?;
                answered += 1;
            }
        }
    }
    let mut lane = Lane {
        client: Arc::clone(&clients.http1),
        keep_alive: true,
        sender: None,
    };
    lane.bounded(workload.denied.prepare(1))
        .await
        .context("a role with an invalid name must be denied")?;
    let mut wrong = workload.denied.clone();
    wrong.allowed = true;
    match lane.bounded(wrong.prepare(2)).await {
        Err(Failure::Answer(_)) => {}
        other => bail!("a denial expected as an admission was not caught: {other:?}"),
    }
    println!(
        "webhook_load smoke run: {} answers correct (pass --bench for the load phases)",
        answered + 1
    );
    Ok(())
}
