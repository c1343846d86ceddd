//! Memory under the largest hostile review, measured in this process (the webhook is served
//! in-process over TLS): the peak resident memory while four 75,000-statement reviews are answered
//! at once, against the cost of answering one directly, and that rounds of them do not accumulate. One test in its own binary, so nothing else moves the figures.
//! Reads `/proc/self/status` and resets the peak through `/proc/self/clear_refs` (Linux).

mod support;

use std::fs;
use std::time::Duration;

use hyper::StatusCode;
use infra_operator::admission::Limits;
use infra_operator::admission::review::{self, Endpoint};
use infra_operator::serve::memory::release_free_memory;
use support::hostile::many_invalid_statements;
use support::{engine, https_post, serve_limits};

const MIB: i64 = 1024 * 1024;

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> i64 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    let kib: i64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Forgets the peak so far, so `VmHWM` measures from now.
fn reset_peak() {
    fs::write("/proc/self/clear_refs", "5").expect("/proc/self/clear_refs");
}

/// Peak growth of resident memory while `work` runs, with freed memory given back before and after.
async fn peak_growth<T>(work: impl std::future::Future<Output = T>) -> (i64, T) {
    release_free_memory();
    let before = status_bytes("VmRSS:");
    reset_peak();
    let out = work.await;
    let peak = status_bytes("VmHWM:") - before;
    release_free_memory();
    (peak, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hostile_reviews_cost_about_one_review_and_do_not_accumulate() {
    let limits = Limits {
        review_deadline: Duration::from_secs(60),
        concurrent_checks: 2,
        ..Limits::default()
    };
    let served = serve_limits(limits.clone()).await;
    let body = many_invalid_statements("u-memory");
    // One review first, so that one-time allocations (TLS, thread pools, schemas) are not counted.
    let warm = https_post(served.https, served.client(), "/validate", body.clone())
        .await
        .unwrap();
    assert_eq!(warm.status, StatusCode::OK);
    drop(warm);

    // The cost of answering one such review, without any server around it.
    let engine = infra_operator::governance::Guardrails::Fixed(engine());
    let direct = body.clone();
    let (one, answered) = peak_growth(async move {
        tokio::task::spawn_blocking(move || {
            review::answer(&engine, Endpoint::Validate, &direct).map(|a| a.verdict.to_json().len())
        })
        .await
        .unwrap()
    })
    .await;
    assert!(answered.unwrap() < 64 * 1024);

    let four_at_once = || async {
        let posts =
            (0..4).map(|_| https_post(served.https, served.client(), "/validate", body.clone()));
        for reply in futures::future::join_all(posts).await {
            let reply = reply.unwrap();
            assert_eq!(reply.status, StatusCode::OK);
            assert!(reply.body.len() < 64 * 1024);
        }
        // Let the server's connection tasks end and free their buffers.
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (served_peak, ()) = peak_growth(four_at_once()).await;
    let after_first = status_bytes("VmRSS:");
    peak_growth(four_at_once()).await;
    let after_second = status_bytes("VmRSS:");
    let kept = after_second - after_first;
    eprintln!(
        "body {} KiB; one review answered directly: peak +{} MiB; four at once through the server: \
         peak +{} MiB; resident after a second round of four: {:+} MiB",
        body.len() / 1024,
        one / MIB,
        served_peak / MIB,
        kept / MIB
    );
    // Large reviews are checked one at a time and their bodies fit the body memory budget, so four
    // at once cost one review plus the bodies.
    let budget = i64::try_from(limits.body_memory).unwrap();
    assert!(
        served_peak < one + budget + 32 * MIB,
        "four reviews at once: +{} MiB, one alone +{} MiB",
        served_peak / MIB,
        one / MIB
    );
    // Whatever a round leaves is freed memory the allocator keeps for reuse (a few tens of MiB,
    // depending on which threads ran the checks), not the review's data: a leak would be hundreds.
    assert!(
        kept < 64 * MIB,
        "a second round left {} MiB more",
        kept / MIB
    );
    served.stop().await.unwrap();
}
