//! The plain-HTTP admin server: `/healthz` (the process answers), `/readyz` (the process is ready
//! for traffic) and `/metrics` (Prometheus text). It runs on its own thread with its own
//! single-threaded runtime, so probes and scrapes are answered promptly however busy the webhook's
//! workers are. A client gets [`ADMIN_HEADER_TIMEOUT`] to send a request's headers and a connection
//! with no request for [`ADMIN_IDLE_TIMEOUT`] is closed, so silent connections cannot pile up.
//! Does network I/O.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use std::{io, thread};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::Shutdown;
use super::metrics::{CONTENT_TYPE, Metrics};

/// How long open admin connections may take to finish once shutdown starts.
pub const ADMIN_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Name of the admin server's thread.
pub const ADMIN_THREAD: &str = "admin-server";
/// Longest time to receive a request's headers once a connection is open or a request has begun.
pub const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// An admin connection with no request for this long is closed.
pub const ADMIN_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection asked to close may take before it is dropped.
const ADMIN_CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The admin server's time limits per connection.
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

const TIMEOUTS: Timeouts = Timeouts {
    header: ADMIN_HEADER_TIMEOUT,
    idle: ADMIN_IDLE_TIMEOUT,
};

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
                runtime.block_on(serve(
                    listener,
                    router(metrics, readiness),
                    shutdown,
                    TIMEOUTS,
                ));
                tracing::debug!(%addr, "admin server stopped");
                let _nobody_waits = done.send(());
            })
            .map_err(AdminError::Thread)?;
        Ok(AdminThread { handle, stopped })
    }
}

async fn serve(listener: TcpListener, router: Router, shutdown: Shutdown, timeouts: Timeouts) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "admin server cannot use its listener");
            return;
        }
    };
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, _)) => {
                tracker.spawn(connection(
                    stream,
                    router.clone(),
                    shutdown.clone(),
                    timeouts,
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin server cannot accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(ADMIN_DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("admin connections still open after shutdown; closing them");
    }
}

/// Serves one connection (HTTP/1.1): headers within `timeouts.header`, closed once no request has
/// arrived for `timeouts.idle` or on shutdown, and dropped [`ADMIN_CLOSE_GRACE`] after that.
async fn connection(stream: TcpStream, router: Router, shutdown: Shutdown, timeouts: Timeouts) {
    let opened = Instant::now();
    // Milliseconds from `opened` to the last request's start or end.
    let touched = Arc::new(AtomicU64::new(0));
    let touch = |touched: &AtomicU64| {
        let since_open = u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        touched.store(since_open, Ordering::SeqCst);
    };
    let service = {
        let touched = Arc::clone(&touched);
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            touch(&touched);
            let touched = Arc::clone(&touched);
            let answer = router.clone().oneshot(request.map(axum::body::Body::new));
            async move {
                let response = answer.await;
                touch(&touched);
                response
            }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let idle_until =
        || opened + Duration::from_millis(touched.load(Ordering::SeqCst)) + timeouts.idle;
    let mut closing_since: Option<Instant> = None;
    loop {
        let wake = closing_since.map_or_else(idle_until, |since| since + ADMIN_CLOSE_GRACE);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "admin connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if closing_since.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing_since = Some(Instant::now());
            }
            () = tokio::time::sleep_until(wake) => match closing_since {
                Some(_) => return tracing::debug!("admin connection did not close in time; dropping it"),
                None if Instant::now() >= idle_until() => {
                    connection.as_mut().graceful_shutdown();
                    closing_since = Some(Instant::now());
                }
                None => {}
            },
        }
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

    /// Serves the admin router on 127.0.0.1 with `timeouts`, on this test's runtime.
    fn serve_with(timeouts: Timeouts, shutdown: &Shutdown) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let router = router(Arc::new(Metrics::new()), Readiness::default());
        tokio::spawn(serve(listener, router, shutdown.clone(), timeouts));
        addr
    }

    /// How long the server takes to close `stream` (read until end of stream or reset).
    async fn closed_after(stream: &mut tokio::net::TcpStream) -> Duration {
        use tokio::io::AsyncReadExt;
        let started = Instant::now();
        let mut buffer = [0u8; 1024];
        let read_until_closed = async {
            while let Ok(n) = stream.read(&mut buffer).await
                && n > 0
            {}
        };
        tokio::time::timeout(Duration::from_secs(10), read_until_closed)
            .await
            .expect("the server closed the connection");
        started.elapsed()
    }

    #[tokio::test]
    async fn silent_idle_and_half_sent_connections_are_closed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let short = Timeouts {
            header: Duration::from_millis(300),
            idle: Duration::from_millis(300),
        };
        let bound = Duration::from_secs(3);
        let shutdown = Shutdown::new();
        let addr = serve_with(short, &shutdown);

        // Connected and silent.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let took = closed_after(&mut silent).await;
        assert!(took < bound, "silent connection closed after {took:?}");

        // Headers that never end.
        let mut partial = tokio::net::TcpStream::connect(addr).await.unwrap();
        partial
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let took = closed_after(&mut partial).await;
        assert!(took < bound, "half-sent headers closed after {took:?}");

        // One answered request, then nothing.
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 256];
        let n = idle.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
        let took = closed_after(&mut idle).await;
        assert!(
            took < bound,
            "idle keep-alive connection closed after {took:?}"
        );
        shutdown.cancel();
    }

    #[tokio::test]
    async fn an_active_keep_alive_connection_stays_open() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let shutdown = Shutdown::new();
        let addr = serve_with(
            Timeouts {
                header: Duration::from_millis(300),
                idle: Duration::from_millis(300),
            },
            &shutdown,
        );
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Requests 100 ms apart over 1 s: the connection is never idle for 300 ms.
        for _ in 0..10 {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut answer = [0u8; 256];
            let n = stream.read(&mut answer).await.unwrap();
            assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "closed too early");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        shutdown.cancel();
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
