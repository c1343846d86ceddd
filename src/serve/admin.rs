//! The plain-HTTP admin server: `/healthz` (the process answers), `/readyz` (the process is ready
//! for traffic) and `/metrics` (Prometheus text). It runs on its own thread with its own
//! single-threaded runtime, so probes and scrapes are answered promptly however busy the webhook's
//! workers are. Does network I/O.

use std::future::IntoFuture;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use std::{io, thread};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::oneshot;

use super::Shutdown;
use super::metrics::{CONTENT_TYPE, Metrics};

/// How long open admin connections may take to finish once shutdown starts.
pub const ADMIN_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Name of the admin server's thread.
pub const ADMIN_THREAD: &str = "admin-server";

/// Whether the process is ready for traffic; set by the webhook (or at once by the controller alone)
/// and read by `/readyz`.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the process ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why the admin server could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: io::Error,
    },
    /// The admin thread or its runtime could not be started.
    #[error("cannot start the admin server's thread: {0}")]
    Thread(io::Error),
}

/// The admin port, bound and not yet serving.
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free port).
    pub fn bind(addr: SocketAddr) -> Result<Self, AdminError> {
        let bind_error = |source| AdminError::Bind { addr, source };
        let listener = TcpListener::bind(addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        Ok(AdminServer { listener, addr })
    }

    /// The address bound (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves [`router`] on a thread of its own until `shutdown` is cancelled.
    pub fn spawn(
        self,
        metrics: Arc<Metrics>,
        readiness: Readiness,
        shutdown: Shutdown,
    ) -> Result<AdminThread, AdminError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(AdminError::Thread)?;
        let (done, stopped) = oneshot::channel();
        let AdminServer { listener, addr } = self;
        let handle = thread::Builder::new()
            .name(ADMIN_THREAD.to_owned())
            .spawn(move || {
                runtime.block_on(serve(listener, router(metrics, readiness), shutdown));
                tracing::debug!(%addr, "admin server stopped");
                let _nobody_waits = done.send(());
            })
            .map_err(AdminError::Thread)?;
        Ok(AdminThread { handle, stopped })
    }
}

async fn serve(listener: TcpListener, router: Router, shutdown: Shutdown) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "admin server cannot use its listener");
            return;
        }
    };
    let stopping = shutdown.clone();
    let serving = axum::serve(listener, router)
        .with_graceful_shutdown(stopping.cancelled_owned())
        .into_future();
    tokio::pin!(serving);
    let drained = async {
        shutdown.cancelled().await;
        tokio::time::sleep(ADMIN_DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        result = &mut serving => if let Err(e) = result {
            tracing::warn!(error = %e, "admin server failed");
        },
        () = drained => tracing::warn!("admin connections still open after shutdown; closing them"),
    }
}

/// The running admin server's thread.
#[derive(Debug)]
pub struct AdminThread {
    handle: JoinHandle<()>,
    stopped: oneshot::Receiver<()>,
}

impl AdminThread {
    /// Waits until the admin server has stopped (after its shutdown token was cancelled).
    pub async fn stopped(self) {
        let _ended_or_panicked = self.stopped.await;
        if self.handle.join().is_err() {
            tracing::warn!("the admin server's thread panicked");
        }
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

/// The admin router: `GET /healthz`, `GET /readyz`, `GET /metrics`.
pub fn router(metrics: Arc<Metrics>, readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { metrics, readiness })
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get_path(router: &Router, path: &str) -> (StatusCode, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_follows_readiness_and_healthz_always_answers() {
        let readiness = Readiness::default();
        let router = router(Arc::new(Metrics::new()), readiness.clone());
        assert_eq!(
            get_path(&router, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(get_path(&router, "/healthz").await.0, StatusCode::OK);
        readiness.set(true);
        assert_eq!(get_path(&router, "/readyz").await.0, StatusCode::OK);
        readiness.set(false);
        assert_eq!(
            get_path(&router, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(get_path(&router, "/nope").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn metrics_serves_the_registry_as_openmetrics_text() {
        let mut metrics = Metrics::new();
        let reloads = prometheus_client::metrics::counter::Counter::<u64>::default();
        metrics
            .registry_mut()
            .register("webhook_certificate_reloads", "Reloads", reloads.clone());
        reloads.inc();
        let router = router(Arc::new(metrics), Readiness::default());
        let request = Request::get("/metrics").body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains("infra_operator_webhook_certificate_reloads_total 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[tokio::test]
    async fn the_server_answers_on_its_own_thread_and_stops_with_the_token() {
        let server = AdminServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr();
        let shutdown = Shutdown::new();
        let thread = server
            .spawn(
                Arc::new(Metrics::new()),
                Readiness::default(),
                shutdown.clone(),
            )
            .unwrap();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), thread.stopped())
            .await
            .unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
