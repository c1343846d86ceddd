//! The HTTPS webhook server: binding, rustls (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`, no session
//! resumption), serving connections with hyper-util within the [`Limits`] (connections at once,
//! handshake, header and idle time, HTTP/2 streams and pings), certificate reload, and a graceful
//! drain when the shutdown token is cancelled. Does network I/O.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::NoServerSessionStorage;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::limits::Limits;
use super::metrics::AdmissionMetrics;
use super::tls::{CertError, CertResolver, CertWatch};
use super::{WebhookState, router};
use crate::governance::Guardrails;
use crate::serve::{Readiness, Shutdown};

/// How long in-flight requests may take to finish once shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection asked to close (idle, or shutting down) may take before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// ALPN protocols offered, in order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];
/// Largest HTTP/2 header list accepted.
const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// Where the webhook listens, where its certificate lives and what it allows a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Directory holding `tls.crt` and `tls.key` (watched and reloaded).
    pub cert_dir: PathBuf,
    /// Address of the HTTPS webhook (default `0.0.0.0:8443`).
    pub bind: SocketAddr,
    /// Connection and request limits.
    pub limits: Limits,
}

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The serving certificate in the cert directory cannot be used.
    #[error("serving certificate: {0}")]
    Cert(#[from] CertError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: io::Error,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The threads that check large reviews could not be started.
    #[error("cannot start the review threads: {source}")]
    Threads {
        /// The I/O error.
        source: io::Error,
    },
}

/// The webhook with its listener bound and its certificate loaded, not yet serving.
pub struct BoundWebhook {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Arc<ServerConfig>,
    certificates: CertWatch,
    state: WebhookState,
    metrics: AdmissionMetrics,
    limits: Limits,
}

/// Loads the certificate and binds the HTTPS listener; the webhook's metrics go to `metrics`.
pub async fn bind(
    config: &WebhookConfig,
    guardrails: impl Into<Guardrails>,
    metrics: AdmissionMetrics,
) -> Result<BoundWebhook, WebhookError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certificates = CertWatch::start(&config.cert_dir, Arc::clone(&provider))?;
    let tls = server_config(provider, certificates.resolver())?;
    let bind_error = |source| WebhookError::Bind {
        addr: config.bind,
        source,
    };
    let listener = TcpListener::bind(config.bind).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    Ok(BoundWebhook {
        listener,
        addr,
        tls,
        certificates,
        state: WebhookState::new(guardrails, metrics.clone(), &config.limits)
            .map_err(|source| WebhookError::Threads { source })?,
        metrics,
        limits: config.limits.clone(),
    })
}

/// The rustls configuration: TLS 1.3 and 1.2 only, no client certificates, ALPN `h2` and `http/1.1`,
/// certificates from `resolver`, and no session resumption: no TLS 1.3 tickets are sent and no
/// session is kept. The webhook's client, the API server, never resumes a session (its webhook
/// client keeps no session cache), so tickets would only cost each new connection their making and
/// sending, and a kept session memory that any client could fill.
pub fn server_config(
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // Without a session store no ticket could be sent, but each would still be derived: make none.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok(Arc::new(config))
}

impl std::fmt::Debug for BoundWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundWebhook")
            .field("addr", &self.addr)
            .field("cert_dir", &self.certificates.dir())
            .finish_non_exhaustive()
    }
}

impl BoundWebhook {
    /// The address the HTTPS webhook listens on (the real port when bound to port 0).
    pub fn https_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the webhook and reloads the certificate, marking `readiness` ready, until `shutdown`
    /// is cancelled; then stops accepting, marks it not ready and lets in-flight requests finish (at
    /// most [`DRAIN_TIMEOUT`]).
    pub async fn serve(self, readiness: Readiness, shutdown: Shutdown) -> Result<(), WebhookError> {
        let watcher = self
            .certificates
            .spawn(self.metrics.clone(), shutdown.clone());
        let unready = {
            let (readiness, shutdown) = (readiness.clone(), shutdown.clone());
            tokio::spawn(async move {
                shutdown.cancelled().await;
                tracing::info!("shutting down: no new connections, draining in-flight requests");
                readiness.set(false);
            })
        };
        tracing::info!(https = %self.addr, "serving the admission webhook over HTTPS");
        readiness.set(true);
        let connections = Connections {
            router: router(self.state),
            acceptor: TlsAcceptor::from(self.tls),
            builder: Arc::new(http_builder(&self.limits)),
            limits: Arc::new(self.limits),
            metrics: self.metrics,
        };
        connections.accept_until(self.listener, shutdown).await;
        let _ = unready.await;
        if let Err(e) = watcher.await {
            tracing::warn!(error = %e, "certificate watcher ended abnormally");
        }
        tracing::info!("webhook stopped");
        Ok(())
    }
}

/// hyper's settings for both protocols (public so that a benchmark's reference server can use the
/// same ones).
pub fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams)
        .max_header_list_size(MAX_HEADER_LIST_BYTES)
        .keep_alive_interval(Some(limits.http2_ping_interval))
        .keep_alive_timeout(limits.http2_ping_timeout);
    builder
}

/// What every connection needs.
struct Connections {
    router: Router,
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<Limits>,
    metrics: AdmissionMetrics,
}

impl Connections {
    /// Accepts connections (at most [`Limits::max_connections`] open at once) until `shutdown` is
    /// cancelled, then drains them.
    async fn accept_until(self, listener: TcpListener, shutdown: Shutdown) {
        let slots = Arc::new(Semaphore::new(self.limits.max_connections.max(1)));
        let tracker = TaskTracker::new();
        let this = Arc::new(self);
        loop {
            let slot = tokio::select! {
                slot = Arc::clone(&slots).acquire_owned() => slot,
                () = shutdown.cancelled() => break,
            };
            let Ok(slot) = slot else { break };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = shutdown.cancelled() => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let this = Arc::clone(&this);
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                let _slot = slot;
                let _counted = this.metrics.connection_opened();
                this.serve(stream, peer, shutdown).await;
            });
        }
        drop(listener);
        tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "in-flight connections still open after {} s; closing them",
                DRAIN_TIMEOUT.as_secs()
            );
        }
    }

    async fn serve(&self, stream: TcpStream, peer: SocketAddr, shutdown: Shutdown) {
        // Small responses must not wait for Nagle's algorithm (40 ms stalls with HTTP/2 and handshakes).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "cannot set TCP_NODELAY");
        }
        let handshake =
            tokio::time::timeout(self.limits.handshake_timeout, self.acceptor.accept(stream));
        let stream = tokio::select! {
            handshake = handshake => match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            },
            () = shutdown.cancelled() => return,
        };
        self.serve_http(TokioIo::new(stream), peer, shutdown).await;
    }

    /// Serves HTTP on an established connection; closes it gracefully once it has had no request
    /// in flight for [`Limits::idle_timeout`] or on shutdown, and drops it [`CLOSE_GRACE`] later if
    /// the client has not let it close by then.
    async fn serve_http<I>(&self, io: TokioIo<I>, peer: SocketAddr, shutdown: Shutdown)
    where
        I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let activity = Arc::new(Activity::new());
        let service = {
            let (router, activity) = (self.router.clone(), Arc::clone(&activity));
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let busy = activity.begin();
                let answer = router.clone().oneshot(request.map(axum::body::Body::new));
                async move {
                    let response = answer.await;
                    drop(busy);
                    response
                }
            })
        };
        let connection = self.builder.serve_connection(io, service);
        tokio::pin!(connection);
        let idle = self.limits.idle_timeout;
        let mut closing_since: Option<Instant> = None;
        loop {
            let wake = match closing_since {
                Some(since) => since + CLOSE_GRACE,
                None => activity.idle_deadline(idle),
            };
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = shutdown.cancelled(), if closing_since.is_none() => {
                    connection.as_mut().graceful_shutdown();
                    closing_since = Some(Instant::now());
                }
                () = tokio::time::sleep_until(wake) => match closing_since {
                    Some(_) => {
                        tracing::debug!(%peer, "connection did not close in time; dropping it");
                        return;
                    }
                    None if activity.is_idle_for(idle) => {
                        tracing::debug!(%peer, "closing an idle connection");
                        connection.as_mut().graceful_shutdown();
                        closing_since = Some(Instant::now());
                    }
                    None => {}
                },
            }
        }
    }
}

/// Requests in flight on one connection and when the last one ended.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `opened` to the end of the last request.
    last_done_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(Arc::clone(self))
    }

    fn last_done(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_done_ms.load(Ordering::SeqCst))
    }

    /// When the connection will have been idle for `idle`, if nothing happens before.
    fn idle_deadline(&self, idle: Duration) -> Instant {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            Instant::now() + idle
        } else {
            self.last_done() + idle
        }
    }

    fn is_idle_for(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0 && self.last_done().elapsed() >= idle
    }
}

/// One request in flight; ends when dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let since_open = u64::try_from(self.0.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_done_ms.store(since_open, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, Connection, HandshakeKind, ServerConnection};

    use super::*;
    use crate::admission::tls::CertReloader;
    use crate::certs::{trust_roots, write_certs};

    /// Moves everything `from` has to write into `to`, which processes it; whether anything moved.
    fn deliver(from: &mut Connection, to: &mut Connection) -> bool {
        let mut moved = false;
        while from.wants_write() {
            let mut records = Vec::new();
            from.write_tls(&mut records).unwrap();
            let mut unread = records.as_slice();
            while !unread.is_empty() {
                to.read_tls(&mut unread).unwrap();
                to.process_new_packets().unwrap();
            }
            moved = true;
        }
        moved
    }

    /// A connection from `client` to `server` in memory, until neither side has more to send (a
    /// TLS 1.3 server's tickets included); how the client's handshake went.
    fn connect(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> HandshakeKind {
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut client = Connection::from(ClientConnection::new(Arc::clone(client), name).unwrap());
        let mut server = Connection::from(ServerConnection::new(Arc::clone(server)).unwrap());
        while deliver(&mut client, &mut server) | deliver(&mut server, &mut client) {}
        assert!(!client.is_handshaking() && !server.is_handshaking());
        client.handshake_kind().unwrap()
    }

    #[test]
    fn every_connection_is_a_full_handshake_even_for_a_client_that_would_resume() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_certs(dir.path(), &["127.0.0.1".to_owned()]).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificates = CertReloader::start(dir.path(), Arc::clone(&provider)).unwrap();
        let server = server_config(Arc::clone(&provider), certificates.resolver()).unwrap();
        let roots = trust_roots(&files.ca_cert).unwrap();
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            // rustls's client keeps what the server offers for resumption (its default).
            let client = ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_protocol_versions(&[version])
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            let client = Arc::new(client);
            for attempt in 0..3 {
                assert_eq!(
                    connect(&client, &server),
                    HandshakeKind::Full,
                    "{version:?}, connection {attempt}"
                );
            }
        }
    }
}
