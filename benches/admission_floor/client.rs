//! A small HTTPS client for the checks around the load: every review of the corpus sent once over
//! one keep-alive HTTP/1.1 connection (TLS with the run's CA, rustls with ring), every answer
//! checked. Network I/O on 127.0.0.1; reads the CA file.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use infra_operator::certs::trust_roots;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::corpus::{Corpus, Endpoint};
use super::webhook_process::describe_tls;

/// Longest wait for all the answers of one pass.
const PASS_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends every review of `corpus` to `endpoint` of the server at `addr` and checks every answer;
/// returns the TLS parameters negotiated.
pub fn check_each(
    addr: SocketAddr,
    ca: &Path,
    corpus: &Corpus,
    endpoint: Endpoint,
) -> anyhow::Result<String> {
    let tls = Arc::new(tls_config(ca)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("client runtime")?;
    runtime.block_on(async {
        tokio::time::timeout(PASS_TIMEOUT, pass(addr, tls, corpus, endpoint))
            .await
            .unwrap_or_else(|_| bail!("no answers within {PASS_TIMEOUT:?}"))
    })
}

async fn pass(
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
    corpus: &Corpus,
    endpoint: Endpoint,
) -> anyhow::Result<String> {
    let tcp = TcpStream::connect(addr).await.context("connect")?;
    tcp.set_nodelay(true)?;
    let stream = TlsConnector::from(tls)
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .context("TLS handshake")?;
    let session = stream.get_ref().1;
    let negotiated = describe_tls(session);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake")?;
    tokio::spawn(connection);
    for (index, review) in corpus.reviews.iter().enumerate() {
        let request = Request::post(endpoint.path())
            .header(HOST, addr.to_string())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(review.body.clone())))?;
        sender.ready().await.context("connection")?;
        let response = sender.send_request(request).await.context("request")?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        let answered = corpus
            .check(endpoint, status, &body)
            .map_err(|e| anyhow::anyhow!("{} of {}: {e}", endpoint.path(), review.name))?;
        if answered != index {
            bail!(
                "{} of {} answered with the uid of {}",
                endpoint.path(),
                review.name,
                corpus.reviews[answered].name
            );
        }
    }
    Ok(negotiated)
}

/// TLS 1.3 or 1.2 trusting only the run's CA, ALPN `http/1.1`.
fn tls_config(ca: &Path) -> anyhow::Result<ClientConfig> {
    let roots = trust_roots(ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
