//! The HTTPS webhook server and the plain-HTTP admin server: binding, rustls (TLS 1.2 and 1.3, ALPN
//! `h2` and `http/1.1`), serving connections with hyper-util, certificate reload, and one graceful
//! shutdown for both. Does network I/O.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::admin::{self, Readiness};
use super::metrics::Metrics;
use super::signal::stopped;
use super::tls::{CertError, CertResolver, CertWatch};
use super::{WebhookState, router};
use crate::guardrails::Engine;

/// How long in-flight requests may take to finish once shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// ALPN protocols offered, in order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Where the webhook listens and where its certificate lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Directory holding `tls.crt` and `tls.key` (watched and reloaded).
    pub cert_dir: PathBuf,
    /// Address of the HTTPS webhook (default `0.0.0.0:8443`).
    pub bind: SocketAddr,
    /// Address of the plain-HTTP admin server (default `0.0.0.0:8080`).
    pub admin_bind: SocketAddr,
}

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The serving certificate in the cert directory cannot be used.
    #[error("serving certificate: {0}")]
    Cert(#[from] CertError),
    /// An address could not be bound.
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
}

/// The webhook with its listeners bound and its certificate loaded, not yet serving.
pub struct BoundWebhook {
    https: TcpListener,
    admin: TcpListener,
    https_addr: SocketAddr,
    admin_addr: SocketAddr,
    tls: Arc<ServerConfig>,
    certificates: CertWatch,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

/// Loads the certificate and binds both listeners, with a fresh metrics registry.
pub async fn bind(
    config: &WebhookConfig,
    engine: Arc<Engine>,
) -> Result<BoundWebhook, WebhookError> {
    bind_with_metrics(config, engine, Arc::new(Metrics::new())).await
}

/// Like [`bind`], serving `metrics` (into which other components may have registered theirs).
pub async fn bind_with_metrics(
    config: &WebhookConfig,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
) -> Result<BoundWebhook, WebhookError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certificates = CertWatch::start(&config.cert_dir, Arc::clone(&provider))?;
    let tls = server_config(provider, certificates.resolver())?;
    let (https, https_addr) = listen(config.bind).await?;
    let (admin, admin_addr) = listen(config.admin_bind).await?;
    Ok(BoundWebhook {
        https,
        admin,
        https_addr,
        admin_addr,
        tls,
        certificates,
        engine,
        metrics,
        readiness: Readiness::default(),
    })
}

/// The rustls configuration: TLS 1.3 and 1.2 only, no client certificates, ALPN `h2` and `http/1.1`,
/// certificates from `resolver`.
pub fn server_config(
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

async fn listen(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), WebhookError> {
    let bind_error = |source| WebhookError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

impl std::fmt::Debug for BoundWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundWebhook")
            .field("https_addr", &self.https_addr)
            .field("admin_addr", &self.admin_addr)
            .field("cert_dir", &self.certificates.dir())
            .finish_non_exhaustive()
    }
}

impl BoundWebhook {
    /// The address the HTTPS webhook listens on (the real port when bound to port 0).
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The address the admin server listens on.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Serves both servers and reloads the certificate until `shutdown` completes, then stops
    /// accepting, marks the webhook not ready and lets in-flight requests finish (at most
    /// [`DRAIN_TIMEOUT`]).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), WebhookError> {
        let (stop_sender, stop) = watch::channel(false);
        let readiness = self.readiness.clone();
        let forward = tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, draining in-flight requests");
            readiness.set(false);
            let _no_receivers = stop_sender.send(true);
        });
        let watcher = self
            .certificates
            .spawn(self.metrics.admission().clone(), stop.clone());
        let webhook = router(WebhookState::new(self.engine, Arc::clone(&self.metrics)));
        let admin = admin::router(self.metrics, self.readiness.clone());
        tracing::info!(
            https = %self.https_addr,
            admin = %self.admin_addr,
            "serving the admission webhook over HTTPS and the admin endpoints over HTTP"
        );
        self.readiness.set(true);
        tokio::join!(
            serve_connections(
                self.https,
                Some(TlsAcceptor::from(self.tls)),
                webhook,
                stop.clone()
            ),
            serve_connections(self.admin, None, admin, stop),
        );
        forward.abort();
        if let Err(e) = watcher.await {
            tracing::warn!(error = %e, "certificate watcher ended abnormally");
        }
        tracing::info!("webhook stopped");
        Ok(())
    }
}

/// Accepts connections until `stop` turns true, then drains them.
async fn serve_connections(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Small responses must not wait for Nagle's algorithm (40 ms stalls with HTTP/2 and handshakes).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(acceptor) = tls else {
                return serve_connection(&builder, watcher, TokioIo::new(stream), service).await;
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    serve_connection(&builder, watcher, TokioIo::new(stream), service).await
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight connections still open after {} s; closing them",
            DRAIN_TIMEOUT.as_secs()
        );
    }
}

async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    io: TokioIo<I>,
    service: TowerToHyperService<Router>,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let connection = builder.serve_connection(io, service).into_owned();
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
