//! The "TLS floor": the least an admission webhook can do, served exactly as the webhook is served.
//! Same certificate files, the webhook's own rustls configuration (`server::server_config` with the
//! ring provider, certificates through `tls::CertWatch`), hyper's settings of the webhook
//! (`server::http_builder` with the default `Limits`), `TCP_NODELAY` and the handshake timeout, on
//! the runtime `infra-operator webhook` builds (`Runtime::new()`, one worker per CPU the process may
//! use, the accept loop on the main thread). Each request's body is read whole and answered with a
//! fixed AdmissionReview that admits it and echoes its `request.uid`, found by a byte search.
//!
//! It runs as this benchmark's own executable started again with [`SERVE_FLAG`]: it binds
//! 127.0.0.1 on a free port, prints the address on stdout and serves until it is killed. Network I/O
//! on 127.0.0.1; reads the certificate directory.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use infra_operator::admission::Limits;
use infra_operator::admission::server::{http_builder, server_config};
use infra_operator::admission::tls::CertWatch;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The argument that makes this executable serve the floor: `--serve-floor CERT_DIR`.
pub const SERVE_FLAG: &str = "--serve-floor";

/// Serves the floor with the certificate of the directory in `args` until the process is killed.
pub fn serve(args: &[String]) -> anyhow::Result<()> {
    let [cert_dir] = args else {
        bail!("usage: {SERVE_FLAG} CERT_DIR");
    };
    let runtime = tokio::runtime::Runtime::new().context("async runtime")?;
    runtime.block_on(accept(Path::new(cert_dir)))
}

/// Binds, announces the address on stdout, then accepts connections, each served on a task.
async fn accept(cert_dir: &Path) -> anyhow::Result<()> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certificates = CertWatch::start(cert_dir, Arc::clone(&provider)).context("certificate")?;
    let acceptor = TlsAcceptor::from(server_config(provider, certificates.resolver())?);
    let limits = Limits::default();
    let builder = Arc::new(http_builder(&limits));
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("bind 127.0.0.1")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", listener.local_addr()?)?;
    stdout.flush()?;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, builder) = (acceptor.clone(), Arc::clone(&builder));
        let handshake_timeout = limits.handshake_timeout;
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(Ok(tls)) =
                tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await
            else {
                return;
            };
            let service = hyper::service::service_fn(answer);
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

/// Reads the whole body and admits the review whose uid it carries; HTTP 400 without one.
async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(plain(StatusCode::BAD_REQUEST, "body not received")),
    };
    let Some(uid) = request_uid(&body) else {
        return Ok(plain(StatusCode::BAD_REQUEST, "no request.uid"));
    };
    let review = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":"{uid}","allowed":true}}}}"#
    );
    let mut response = Response::new(Full::new(Bytes::from(review)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

/// The first `"uid":"…"` after `"request":` — `request.uid`, which the API server writes first.
fn request_uid(body: &[u8]) -> Option<&str> {
    let request = find(body, b"\"request\":")?;
    let after = &body[request..];
    let start = find(after, b"\"uid\":\"")? + b"\"uid\":\"".len();
    let length = after[start..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&after[start..start + length]).ok()
}

/// Where `needle` starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
