//! The webhook under hostile input, served for real over TLS on 127.0.0.1 with short limits: each
//! attack gets a bounded answer or has its connection closed by the server, and probes keep
//! answering while every checker is busy.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::client::conn::{http1, http2};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use infra_operator::admission::limits::{INLINE_BODY_BYTES, SMALL_BODY_BYTES};
use infra_operator::admission::{Limits, MAX_BODY_BYTES};
use serde_json::{Value, json};
use support::hostile::{many_invalid_statements, status_line, tls_connect, until_closed};
use support::{
    PATIENCE, Served, ec2_role_spec, http_get, https_post, iamrole, review, serve_limits,
    strict_review,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Every timeout of these tests' servers.
const SHORT: Duration = Duration::from_millis(800);
/// How much later than its limit the server may act (scheduling on a busy machine).
const SLACK: Duration = Duration::from_secs(3);

fn short_limits() -> Limits {
    Limits {
        handshake_timeout: SHORT,
        header_timeout: SHORT,
        body_timeout: SHORT,
        idle_timeout: SHORT,
        ..Limits::default()
    }
}

/// Limits whose deadlines do not interfere with a slow (debug) build checking a large review.
fn patient_limits() -> Limits {
    Limits {
        review_deadline: Duration::from_secs(60),
        ..Limits::default()
    }
}

#[tokio::test]
async fn tens_of_thousands_of_invalid_statements_get_a_small_refusal() {
    let served = serve_limits(patient_limits()).await;
    let body = many_invalid_statements("u-many");
    assert!(body.len() > 2 * 1024 * 1024 && body.len() < MAX_BODY_BYTES);
    let reply = https_post(served.https, served.client(), "/validate", body)
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.len() < 64 * 1024, "{} bytes", reply.body.len());
    let (answer, _) = strict_review(&reply.body).unwrap();
    assert_eq!(answer.response.uid, "u-many");
    assert!(!answer.response.allowed);
    let message = answer.response.status.and_then(|s| s.message).unwrap();
    assert!(message.starts_with("IAMRole default/many refused by guardrails: "));
    assert!(
        message.contains(" more: ") && message.contains("policy-grammar ×"),
        "{message}"
    );
    served.stop().await.unwrap();
}

#[tokio::test]
async fn checks_past_the_deadline_are_refused_and_name_it() {
    let deadline = Duration::from_millis(50);
    let served = serve_limits(Limits {
        review_deadline: deadline,
        ..Limits::default()
    })
    .await;
    let started = Instant::now();
    let reply = https_post(
        served.https,
        served.client(),
        "/validate",
        many_invalid_statements("u-late"),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::OK);
    let (answer, _) = strict_review(&reply.body).unwrap();
    assert_eq!(answer.response.uid, "u-late");
    assert!(!answer.response.allowed);
    let status = answer.response.status.unwrap();
    assert_eq!(status.code, Some(504));
    let message = status.message.unwrap();
    assert!(message.contains("review deadline of 50 ms"), "{message}");
    assert!(took < deadline + SLACK, "answered after {took:?}");
    served.stop().await.unwrap();
}

/// A review of a role whose one inline policy holds `n` invalid statements.
fn invalid_statements_review(uid: &str, n: usize) -> Vec<u8> {
    let statements = vec![r#"{"Sid":"-","Effect":"X"}"#; n].join(",");
    let mut spec = ec2_role_spec();
    spec["inlinePolicies"] = json!([{"policyName": "bad", "policyDocument":
        format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)}]);
    let role = iamrole("bad", spec);
    serde_json::to_vec(&review(uid, "IAMRole", "CREATE", role, Value::Null, false)).unwrap()
}

#[tokio::test]
async fn reviews_of_kubectls_size_are_checked_at_once_and_larger_ones_within_the_deadline() {
    // A deadline that no check handed to another thread can meet: any such check ends after it.
    let served = serve_limits(Limits {
        review_deadline: Duration::ZERO,
        ..Limits::default()
    })
    .await;
    let fullest = (1..)
        .take_while(|&n| invalid_statements_review("u-inline", n).len() <= INLINE_BODY_BYTES)
        .last()
        .unwrap();
    assert!(fullest > 100, "{fullest}");
    let cases = [
        ("u-inline", fullest, None),
        ("u-handed-off", fullest + 1, Some(504)),
    ];
    for (uid, statements, code) in cases {
        let body = invalid_statements_review(uid, statements);
        assert!(body.len() <= SMALL_BODY_BYTES);
        let reply = https_post(served.https, served.client(), "/validate", body)
            .await
            .unwrap();
        let (answer, _) = strict_review(&reply.body).unwrap();
        assert_eq!(answer.response.uid, uid);
        assert!(!answer.response.allowed);
        let status = answer.response.status.unwrap();
        assert_eq!(status.code.filter(|&c| c == 504), code, "{uid}: {status:?}");
        if code.is_none() {
            let message = status.message.unwrap_or_default();
            assert!(message.contains("policy-grammar"), "{message}");
        }
    }
    served.stop().await.unwrap();
}

#[tokio::test]
async fn probes_answer_while_every_checker_is_busy() {
    let served = Arc::new(
        serve_limits(Limits {
            concurrent_checks: 2,
            ..patient_limits()
        })
        .await,
    );
    // More senders than checkers, each sending the heaviest review again as soon as it is
    // answered, until the probes are done.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let heavy: Vec<_> = (0..4)
        .map(|i| {
            let served = Arc::clone(&served);
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let body = many_invalid_statements(&format!("u-heavy-{i}"));
                    let reply = https_post(served.https, served.client(), "/validate", body)
                        .await
                        .unwrap();
                    assert_eq!(reply.status, StatusCode::OK);
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    // Give the heavy reviews time to arrive and occupy the checkers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let started = Instant::now();
            let (status, _) = http_get(served.admin, path).await.unwrap();
            assert_eq!(status, StatusCode::OK, "{path}");
            slowest = slowest.max(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut answered = 0;
    for review in heavy {
        answered += review.await.unwrap();
    }
    assert!(answered >= 4, "the checkers were not kept busy");
    assert!(
        slowest < Duration::from_millis(250),
        "slowest probe {slowest:?}"
    );
    Arc::into_inner(served).unwrap().stop().await.unwrap();
}

/// A raw HTTP/1.1 request's head over a new TLS connection.
async fn http1_head(served: &Served, head: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut tls = tls_connect(served.https, served.client(), b"http/1.1")
        .await
        .unwrap();
    tls.write_all(head.as_bytes()).await.unwrap();
    tls
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_the_connection_is_closed() {
    let served = serve_limits(short_limits()).await;
    let length = MAX_BODY_BYTES - 1;
    let head = format!(
        "POST /validate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    );
    let mut tls = http1_head(&served, &head).await;
    tls.write_all(&vec![b' '; length - 1]).await.unwrap();
    let (answer, took) = until_closed(&mut tls, PATIENCE).await.expect("closed");
    assert_eq!(status_line(&answer), "HTTP/1.1 408 Request Timeout");
    assert!(took < SHORT + SLACK, "closed after {took:?}");
    served.stop().await.unwrap();
}

#[tokio::test]
async fn expect_continue_with_a_huge_length_gets_413_without_100() {
    let served = serve_limits(short_limits()).await;
    let head = "POST /validate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 999999999\r\nexpect: 100-continue\r\n\r\n";
    let mut tls = http1_head(&served, head).await;
    let (answer, _) = until_closed(&mut tls, PATIENCE).await.expect("closed");
    assert_eq!(status_line(&answer), "HTTP/1.1 413 Payload Too Large");
    assert!(!String::from_utf8_lossy(&answer).contains("100 Continue"));
    served.stop().await.unwrap();
}

#[tokio::test]
async fn connections_that_never_send_a_byte_are_closed_after_the_handshake_timeout() {
    let served = serve_limits(short_limits()).await;
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(served.https).await.unwrap());
    }
    for mut tcp in silent {
        let (_, took) = until_closed(&mut tcp, PATIENCE).await.expect("closed");
        assert!(took < SHORT + SLACK, "closed after {took:?}");
    }
    served.stop().await.unwrap();
}

#[tokio::test]
async fn headers_that_never_end_are_cut_off() {
    let served = serve_limits(short_limits()).await;
    let mut tls = http1_head(&served, "POST /validate HTTP/1.1\r\nhost: x\r\n").await;
    let (_, took) = until_closed(&mut tls, PATIENCE).await.expect("closed");
    assert!(took < SHORT + SLACK, "closed after {took:?}");
    served.stop().await.unwrap();
}

#[tokio::test]
async fn idle_http1_and_http2_connections_are_closed() {
    let served = serve_limits(short_limits()).await;
    let delete = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"aws-infra-operator.runner.codes","version":"v1alpha1","kind":"IAMRole"},"resource":{"group":"aws-infra-operator.runner.codes","version":"v1alpha1","resource":"iamroles"},"operation":"DELETE","userInfo":{},"oldObject":{}}}"#;

    // HTTP/1.1: one request, then nothing.
    let tls = tls_connect(served.https, served.client(), b"http/1.1")
        .await
        .unwrap();
    let (mut sender, connection) = http1::handshake(TokioIo::new(tls)).await.unwrap();
    let http1_connection = tokio::spawn(connection);
    let request = Request::post("/validate")
        .header("host", "x")
        .body(Full::new(Bytes::from_static(delete)))
        .unwrap();
    assert_eq!(
        sender.send_request(request).await.unwrap().status(),
        StatusCode::OK
    );

    // HTTP/2: the preface and settings, then nothing.
    let tls = tls_connect(served.https, served.client(), b"h2")
        .await
        .unwrap();
    let (_sender, connection) =
        http2::handshake::<_, _, Full<Bytes>>(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let http2_connection = tokio::spawn(connection);

    let started = Instant::now();
    for (protocol, connection) in [("HTTP/1.1", http1_connection), ("HTTP/2", http2_connection)] {
        let ended = tokio::time::timeout(PATIENCE, connection).await;
        assert!(ended.is_ok(), "{protocol} connection still open");
    }
    assert!(started.elapsed() < SHORT + SLACK, "{:?}", started.elapsed());
    served.stop().await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let served = serve_limits(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let first = tls_connect(served.https, served.client(), b"http/1.1")
        .await
        .unwrap();
    let _second = tls_connect(served.https, served.client(), b"http/1.1")
        .await
        .unwrap();
    let third = tokio::spawn(tls_connect(served.https, served.client(), b"http/1.1"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "a third connection was served");
    drop(first);
    let third = tokio::time::timeout(PATIENCE, third).await;
    assert!(
        matches!(third, Ok(Ok(Ok(_)))),
        "the third connection was never served"
    );
    served.stop().await.unwrap();
}
