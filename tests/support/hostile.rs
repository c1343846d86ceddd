//! Hostile inputs shared by the hostile-input tests: a review near the body limit with a hundred
//! thousand invalid statements (every document within IAM's size limit, so all are read), raw TLS connections that do only part of what a client should,
//! and reading a connection until the server closes it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{ec2_role_spec, iamrole, review};

/// Inline policies in [`many_invalid_statements`]: as many as fit in the 3 MiB body limit.
pub const INLINE_POLICIES: usize = 16;

/// Invalid statements in each inline policy of [`many_invalid_statements`]: as many as fit in
/// IAM's 131,072 characters per document, so that no size limit refuses them unread.
pub const INVALID_STATEMENTS_PER_POLICY: usize = 5_000;

/// A CREATE review of an IAMRole whose [`INLINE_POLICIES`] inline policies each hold
/// [`INVALID_STATEMENTS_PER_POLICY`] statements, each wrong in several ways (bad Sid, bad Effect,
/// no Action, no Resource): about 2.6 MiB, every document within IAM's size limit and read in full,
/// every statement a handful of findings.
pub fn many_invalid_statements(uid: &str) -> Vec<u8> {
    let statements = vec![r#"{"Sid":"-","Effect":"X"}"#; INVALID_STATEMENTS_PER_POLICY].join(",");
    let document = format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#);
    let policies: Vec<Value> = (0..INLINE_POLICIES)
        .map(|i| json!({"policyName": format!("many-{i}"), "policyDocument": document}))
        .collect();
    let mut spec = ec2_role_spec();
    spec["inlinePolicies"] = Value::Array(policies);
    let review = review(
        uid,
        "IAMRole",
        "CREATE",
        iamrole("many", spec),
        Value::Null,
        false,
    );
    serde_json::to_vec(&review).expect("serializable")
}

/// A TLS connection to `addr` offering only `alpn`.
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    alpn: &[u8],
) -> Result<TlsStream<TcpStream>, String> {
    let mut config = (*config).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))
}

/// Reads until the server closes the connection (end of stream or reset), at most `patience`;
/// returns what was read and how long the server took, or `None` if it was still open.
pub async fn until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    patience: Duration,
) -> Option<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let left = patience.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((seen, started.elapsed())),
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
        }
    }
}

/// The status line of a raw HTTP/1.1 answer.
pub fn status_line(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}
