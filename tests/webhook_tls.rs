//! The webhook served for real on 127.0.0.1: TLS versions and ALPN, reviews over HTTPS, the admin
//! endpoints and their metrics, start-up errors and graceful shutdown.

mod support;

use hyper::StatusCode;
use infra_operator::admission::{self, AdmissionMetrics, Limits, WebhookConfig, WebhookError};
use infra_operator::api::FINALIZER;
use infra_operator::certs::write_certs;
use infra_operator::serve::{self, Readiness, Shutdown};
use serde_json::{Value, json};
use support::{
    PATIENCE, client_config, ec2_role_spec, engine, eventually, hosts, http_get, https_post,
    iamrole, review, sample, serve, strict_review,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn body(review: &Value) -> Vec<u8> {
    serde_json::to_vec(review).unwrap()
}

#[tokio::test]
async fn reviews_are_answered_over_https() {
    let served = serve().await;
    let good = review(
        "u-good",
        "IAMRole",
        "CREATE",
        iamrole("ec2", ec2_role_spec()),
        Value::Null,
        false,
    );
    let reply = https_post(served.https, served.client(), "/validate", body(&good))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let answer = reply.json();
    assert_eq!(answer["response"]["uid"], "u-good");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    let mut spec = ec2_role_spec();
    spec["roleName"] = json!("bad name!");
    let bad = review(
        "u-bad",
        "IAMRole",
        "CREATE",
        iamrole("bad", spec),
        Value::Null,
        false,
    );
    let reply = https_post(served.https, served.client(), "/validate", body(&bad))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let answer = reply.json();
    assert_eq!(answer["response"]["uid"], "u-bad");
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let message = answer["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.starts_with("IAMRole default/bad refused by guardrails: "),
        "{message}"
    );
    assert!(message.contains("[role-name] spec.roleName"), "{message}");

    let mut spec = ec2_role_spec();
    spec.as_object_mut().unwrap().remove("path");
    let unpatched = review(
        "u-mut",
        "IAMRole",
        "CREATE",
        iamrole("ec2", spec),
        Value::Null,
        false,
    );
    let reply = https_post(served.https, served.client(), "/mutate", body(&unpatched))
        .await
        .unwrap();
    let (answer, patch) = strict_review(&reply.body).unwrap();
    assert_eq!(answer.response.patch_type.as_deref(), Some("JSONPatch"));
    assert_eq!(
        serde_json::to_value(patch.unwrap()).unwrap(),
        json!([
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            {"op": "add", "path": "/spec/path", "value": "/"},
        ])
    );

    let reply = https_post(
        served.https,
        served.client(),
        "/validate",
        b"not json".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    served.stop().await.unwrap();
}

#[tokio::test]
async fn tls_12_and_13_are_spoken_with_alpn_h2_and_http11() {
    let served = serve().await;
    let allowed = review(
        "u-1",
        "IAMRole",
        "DELETE",
        Value::Null,
        iamrole("r", json!({})),
        false,
    );
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
            let client = client_config(&served.ca_cert, &[version], &[alpn]);
            let reply = https_post(served.https, client, "/validate", body(&allowed))
                .await
                .unwrap();
            assert_eq!(reply.version, Some(expected));
            assert_eq!(reply.alpn.as_deref(), Some(alpn));
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.json()["response"]["allowed"], true);
        }
    }
    served.stop().await.unwrap();
}

#[tokio::test]
async fn clients_not_trusting_the_ca_and_old_tls_versions_are_refused() {
    let served = serve().await;
    let other = tempfile::tempdir().unwrap();
    let other_ca = write_certs(other.path(), &hosts()).unwrap().ca_cert;
    let stranger = client_config(&other_ca, &[&rustls::version::TLS13], &[]);
    let refused = https_post(served.https, stranger, "/validate", Vec::new())
        .await
        .unwrap_err();
    assert!(refused.starts_with("TLS handshake"), "{refused}");

    // TLS 1.1: a TLS alert record (content type 21) saying protocol_version (70).
    let answer = first_record(served.https, &client_hello([0x03, 0x02])).await;
    assert_eq!(
        (answer.first(), answer.get(6)),
        (Some(&21), Some(&70)),
        "{answer:?}"
    );
    // The same hello at TLS 1.2 gets a handshake record (22) whose first message is a ServerHello (2).
    let answer = first_record(served.https, &client_hello([0x03, 0x03])).await;
    assert_eq!(
        (answer.first(), answer.get(5)),
        (Some(&22), Some(&2)),
        "{answer:?}"
    );
    served.stop().await.unwrap();
}

/// Sends raw `bytes` and returns the first bytes the server answers with.
async fn first_record(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = tokio::time::timeout(PATIENCE, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut answer = vec![0; 7];
    tokio::time::timeout(PATIENCE, tcp.read_exact(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer
}

/// A minimal ClientHello offering only `version` (3.2 is TLS 1.1, 3.3 TLS 1.2; no supported_versions
/// extension), with cipher suites, signature algorithms and groups a TLS 1.2 server would take.
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut hello = version.to_vec();
    hello.extend([7u8; 32]);
    hello.push(0);
    // ECDHE-ECDSA/RSA-AES128-GCM-SHA256, AES128-SHA, AES256-SHA.
    hello.extend([0x00, 0x08, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x2f, 0x00, 0x35]);
    hello.extend([0x01, 0x00]);
    let extensions = [
        // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256.
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
        // supported_groups: x25519, secp256r1.
        0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17,
    ];
    hello.extend(u16::try_from(extensions.len()).unwrap().to_be_bytes());
    hello.extend(extensions);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend(u16::try_from(hello.len()).unwrap().to_be_bytes());
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x02];
    record.extend(u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend(handshake);
    record
}

#[tokio::test]
async fn admin_endpoints_report_health_readiness_and_moving_metrics() {
    let served = serve().await;
    let (status, text) = http_get(served.admin, "/healthz").await.unwrap();
    assert_eq!((status, text.trim()), (StatusCode::OK, "ok"));
    let ready = eventually(|| async {
        let (status, _) = http_get(served.admin, "/readyz").await.ok()?;
        (status == StatusCode::OK).then_some(())
    })
    .await;
    assert!(ready.is_some(), "/readyz never answered 200");

    let allowed = r#"infra_operator_admission_requests_total{kind="IAMRole",operation="DELETE",result="allowed"}"#;
    let errors = r#"infra_operator_admission_requests_total{kind="unknown",operation="unknown",result="error"}"#;
    let (_, before) = http_get(served.admin, "/metrics").await.unwrap();
    let count = |text: &str, series: &str| sample(text, series).unwrap_or(0.0);

    let delete = review(
        "u-1",
        "IAMRole",
        "DELETE",
        Value::Null,
        iamrole("r", json!({})),
        false,
    );
    for _ in 0..2 {
        https_post(served.https, served.client(), "/validate", body(&delete))
            .await
            .unwrap();
    }
    https_post(served.https, served.client(), "/mutate", b"[]".to_vec())
        .await
        .unwrap();

    let (status, after) = http_get(served.admin, "/metrics").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        count(&after, allowed) - count(&before, allowed),
        2.0,
        "{after}"
    );
    assert_eq!(
        count(&after, errors) - count(&before, errors),
        1.0,
        "{after}"
    );
    let durations =
        r#"infra_operator_admission_request_duration_seconds_count{endpoint="validate"}"#;
    assert_eq!(
        count(&after, durations) - count(&before, durations),
        2.0,
        "{after}"
    );

    let (status, _) = http_get(served.admin, "/nothing").await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    served.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_accepting_and_returns() {
    let served = serve().await;
    let (https, admin) = (served.https, served.admin);
    assert!(http_get(admin, "/healthz").await.is_ok());
    served.stop().await.unwrap();
    assert!(TcpStream::connect(https).await.is_err());
    assert!(TcpStream::connect(admin).await.is_err());
}

#[tokio::test]
async fn sigterm_shuts_the_webhook_down() {
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path(), &hosts()).unwrap();
    let config = WebhookConfig {
        cert_dir: dir.path().to_path_buf(),
        bind: "127.0.0.1:0".parse().unwrap(),
        limits: Limits::default(),
    };
    let bound = admission::bind(&config, engine(), AdmissionMetrics::unregistered())
        .await
        .unwrap();
    let https = bound.https_addr();
    let shutdown = Shutdown::new();
    // Installs the handlers before returning, so the signal below cannot kill the test process.
    serve::cancel_on_signal(shutdown.clone()).await;
    let serving = tokio::spawn(bound.serve(Readiness::default(), shutdown.clone()));
    assert!(
        eventually(|| async { TcpStream::connect(https).await.ok() })
            .await
            .is_some()
    );

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopped = tokio::time::timeout(PATIENCE, serving).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    assert!(shutdown.is_cancelled());
}

#[tokio::test]
async fn start_up_errors_name_the_problem() {
    let empty = tempfile::tempdir().unwrap();
    let config = WebhookConfig {
        cert_dir: empty.path().to_path_buf(),
        bind: "127.0.0.1:0".parse().unwrap(),
        limits: Limits::default(),
    };
    let metrics = AdmissionMetrics::unregistered;
    let err = admission::bind(&config, engine(), metrics())
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::Cert(_)), "{err}");
    assert!(err.to_string().contains("tls.crt"), "{err}");

    write_certs(empty.path(), &hosts()).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = WebhookConfig {
        bind: taken.local_addr().unwrap(),
        ..config
    };
    let err = admission::bind(&config, engine(), metrics())
        .await
        .unwrap_err();
    assert!(
        matches!(err, WebhookError::Bind { addr, .. } if addr == config.bind),
        "{err}"
    );
    assert!(err.to_string().contains(&config.bind.to_string()), "{err}");
    let err = serve::AdminServer::bind(config.bind).unwrap_err();
    assert!(err.to_string().contains(&config.bind.to_string()), "{err}");
}
