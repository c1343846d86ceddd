//! Receiving a request body within the limits: at most [`MAX_BODY_BYTES`] (refused from its
//! `Content-Length` before anything is read, so `Expect: 100-continue` gets 413, not 100), within
//! the body timeout (408), and within a memory budget shared by every request, charged as the body
//! grows: a small body by what has arrived, a large one by its declared length. The budget has two
//! parts: a quarter for small bodies (up to [`SMALL_BODY_BYTES`]), which wait for room, and the
//! rest for large ones, which are refused at once (503) when there is none. A large body is also
//! read no faster than the rate all large bodies share ([`Pace`]), and refused (503) when that
//! rate cannot take it before its timeout: before anything is read when its `Content-Length`
//! says so, else as soon as the rate falls behind.
//! So large bodies can neither exhaust memory nor the async workers' time, nor hold up ordinary
//! reviews, even when every large body is waiting for its checker. Reads from the connection; no
//! other I/O.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::limits::{MAX_BODY_BYTES, SMALL_BODY_BYTES};
use super::pace::Pace;

/// The least a small body is charged once its first bytes arrive.
const FIRST_CHARGE: usize = 4 * 1024;

/// Why a body was not received.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Declared or found larger than [`MAX_BODY_BYTES`].
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// Not received within the body timeout.
    #[error("request body not received within {} ms", .0.as_millis())]
    Slow(Duration),
    /// No memory or reading rate left for a large body right now.
    #[error("too many large reviews in progress; try again")]
    Busy,
    /// The connection failed while the body was read.
    #[error("cannot read the request body: {0}")]
    Broken(String),
}

impl BodyError {
    /// The HTTP status answered.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Slow(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            BodyError::Broken(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Memory for request bodies, shared by every request, in KiB: one part for small bodies, one
/// for large ones.
#[derive(Clone, Debug)]
pub struct BodyMemory {
    small: Arc<Semaphore>,
    large: Arc<Semaphore>,
}

impl BodyMemory {
    /// A budget of `bytes`: a quarter (at least 16 small bodies' worth) for small bodies, the rest
    /// (at least one largest body) for large ones.
    pub fn new(bytes: usize) -> Self {
        let small = (bytes / 4).max(16 * SMALL_BODY_BYTES);
        let large = bytes.saturating_sub(small).max(MAX_BODY_BYTES);
        BodyMemory {
            small: Arc::new(Semaphore::new(kib(small))),
            large: Arc::new(Semaphore::new(kib(large))),
        }
    }

    /// Bytes not charged to any body now.
    pub fn available(&self) -> usize {
        (self.small.available_permits() + self.large.available_permits()) * 1024
    }
}

/// A received body, with its share of the memory budget (given back when dropped).
#[derive(Debug)]
pub struct Received {
    /// The body.
    pub bytes: Bytes,
    _charge: Option<OwnedSemaphorePermit>,
}

/// `Content-Length` of a request, when present and a number.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<usize> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Receives `body` (whose `Content-Length` is `declared`) within `timeout` and `memory`, a large
/// one at the shared `pace`.
pub async fn receive(
    body: Body,
    declared: Option<usize>,
    timeout: Duration,
    memory: &BodyMemory,
    pace: &Pace,
) -> Result<Received, BodyError> {
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(BodyError::TooLarge);
    }
    let deadline = Instant::now() + timeout;
    if declared.is_some_and(|length| is_large(length) && !pace.fits(length, deadline)) {
        return Err(BodyError::Busy);
    }
    let mut body = body;
    let mut buffer: Vec<u8> = Vec::new();
    let mut charge: Option<OwnedSemaphorePermit> = None;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Slow(timeout)),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Broken(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let length = buffer.len() + data.len();
        if length > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        if length > buffer.capacity() {
            let capacity = charged_capacity(length, buffer.capacity(), declared);
            charge = Some(grow_charge(charge, capacity, memory, deadline, timeout).await?);
            buffer.reserve_exact(capacity - buffer.len());
        }
        if is_large(buffer.capacity()) {
            pace.take(data.len(), deadline)
                .await
                .map_err(|_| BodyError::Busy)?;
        }
        buffer.extend_from_slice(&data);
    }
    Ok(Received {
        bytes: Bytes::from(buffer),
        _charge: charge,
    })
}

/// The capacity to hold a body of `declared` length (if known) once `length` bytes have arrived,
/// with `capacity` held so far. A large body is charged its whole declared length at once, so one
/// that cannot be held is refused before it is read; a small one grows with what arrives (from
/// [`FIRST_CHARGE`], doubling, never past its declared length), so a connection that announces a
/// body and sends it slowly holds little of the small bodies' memory.
fn charged_capacity(length: usize, capacity: usize, declared: Option<usize>) -> usize {
    match declared {
        Some(declared) if declared > SMALL_BODY_BYTES && declared >= length => declared,
        _ => {
            let ceiling = declared.map_or(MAX_BODY_BYTES, |declared| declared.max(length));
            length
                .max(capacity * 2)
                .max(FIRST_CHARGE)
                .min(ceiling)
                .min(MAX_BODY_BYTES)
        }
    }
}

/// Whether a body charged `capacity` bytes is large: charged to the large part of the budget and
/// read at the shared pace.
fn is_large(capacity: usize) -> bool {
    capacity > SMALL_BODY_BYTES
}

/// Charges the budget for `capacity` bytes in all, in place of `charge`: a small body's part
/// waits for room; a body growing large moves to the large part at once, or is refused.
async fn grow_charge(
    charge: Option<OwnedSemaphorePermit>,
    capacity: usize,
    memory: &BodyMemory,
    deadline: Instant,
    timeout: Duration,
) -> Result<OwnedSemaphorePermit, BodyError> {
    let large = is_large(capacity);
    let budget = Arc::clone(if large { &memory.large } else { &memory.small });
    // A charge stays in one part: a body growing past small gives its small charge back.
    let charge = charge.filter(|c| Arc::ptr_eq(c.semaphore(), &budget));
    let held = charge.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
    let more =
        u32::try_from(kib(capacity).saturating_sub(held)).map_err(|_| BodyError::TooLarge)?;
    let extra = if large {
        budget
            .try_acquire_many_owned(more)
            .map_err(|_| BodyError::Busy)?
    } else {
        tokio::time::timeout_at(deadline, budget.acquire_many_owned(more))
            .await
            .map_err(|_| BodyError::Slow(timeout))?
            .map_err(|_| BodyError::Busy)?
    };
    Ok(match charge {
        Some(mut charge) => {
            charge.merge(extra);
            charge
        }
        None => extra,
    })
}

fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    /// A rate no body waits for.
    fn unpaced() -> Pace {
        Pace::new(u64::MAX)
    }

    /// A body of `length` bytes arriving in chunks of 16 KiB.
    fn chunked(length: usize) -> Body {
        let chunks = (0..length.div_ceil(16 * 1024)).map(move |i| {
            let size = (length - i * 16 * 1024).min(16 * 1024);
            Ok::<_, std::convert::Infallible>(Bytes::from(vec![b' '; size]))
        });
        Body::from_stream(futures::stream::iter(chunks))
    }

    #[tokio::test(start_paused = true)]
    async fn large_bodies_are_read_at_the_shared_rate_small_ones_at_once() {
        let memory = BodyMemory::new(12 * 1024 * 1024);
        let pace = Pace::new(1024 * 1024);
        let started = Instant::now();
        let large = |length| receive(chunked(length), Some(length), PATIENCE, &memory, &pace);
        // Two large bodies of 1 MiB each at 1 MiB/s take about two seconds together...
        let (first, second) = tokio::join!(large(1024 * 1024), large(1024 * 1024));
        assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1800) && took < Duration::from_millis(2200),
            "{took:?}"
        );
        // ...a small body does not wait for the rate...
        let started = Instant::now();
        let small = receive(
            chunked(60 * 1024),
            Some(60 * 1024),
            PATIENCE,
            &memory,
            &pace,
        )
        .await;
        assert!(small.is_ok(), "{small:?}");
        assert_eq!(started.elapsed(), Duration::ZERO);
        // ...a large one the rate cannot take before its timeout is refused before it is read when
        // its length is declared...
        let started = Instant::now();
        let declared = receive(
            chunked(3 * 1024 * 1024),
            Some(3 * 1024 * 1024),
            Duration::from_secs(1),
            &memory,
            &pace,
        )
        .await;
        assert!(matches!(declared, Err(BodyError::Busy)), "{declared:?}");
        assert_eq!(started.elapsed(), Duration::ZERO);
        // ...and within its timeout when it is not.
        let started = Instant::now();
        let late = receive(
            chunked(3 * 1024 * 1024),
            None,
            Duration::from_secs(1),
            &memory,
            &pace,
        )
        .await;
        assert!(matches!(late, Err(BodyError::Busy)), "{late:?}");
        assert!(started.elapsed() <= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_body_is_received_and_its_memory_given_back() {
        let memory = BodyMemory::new(MAX_BODY_BYTES);
        let full = memory.available();
        let received = receive(Body::from("hello"), Some(5), PATIENCE, &memory, &unpaced())
            .await
            .unwrap();
        assert_eq!(&received.bytes[..], b"hello");
        assert!(received.bytes.len() <= SMALL_BODY_BYTES);
        assert!(memory.available() < full);
        drop(received);
        assert_eq!(memory.available(), full);
    }

    #[tokio::test]
    async fn too_large_bodies_are_refused_declared_or_not() {
        let memory = BodyMemory::new(MAX_BODY_BYTES);
        let declared = receive(
            Body::empty(),
            Some(MAX_BODY_BYTES + 1),
            PATIENCE,
            &memory,
            &unpaced(),
        )
        .await;
        assert!(matches!(declared, Err(BodyError::TooLarge)), "{declared:?}");
        let body = Body::from(vec![b' '; MAX_BODY_BYTES + 1]);
        let found = receive(body, None, PATIENCE, &memory, &unpaced()).await;
        assert!(matches!(found, Err(BodyError::TooLarge)), "{found:?}");
        assert_eq!(found.unwrap_err().status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_is_slow() {
        let memory = BodyMemory::new(MAX_BODY_BYTES);
        let first = futures::stream::once(async {
            Ok::<_, std::convert::Infallible>(Bytes::from_static(b"{"))
        });
        let body = Body::from_stream(futures::StreamExt::chain(first, futures::stream::pending()));
        let waited = receive(
            body,
            Some(100),
            Duration::from_millis(100),
            &memory,
            &unpaced(),
        )
        .await;
        assert!(matches!(waited, Err(BodyError::Slow(_))), "{waited:?}");
        assert_eq!(waited.unwrap_err().status(), StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn large_bodies_are_refused_when_memory_is_taken_small_ones_still_fit() {
        let memory = BodyMemory::new(MAX_BODY_BYTES);
        let first = receive(
            Body::from(vec![b' '; 2 * 1024 * 1024]),
            None,
            PATIENCE,
            &memory,
            &unpaced(),
        )
        .await
        .unwrap();
        assert!(first.bytes.len() > SMALL_BODY_BYTES);
        let second = receive(
            Body::from(vec![b' '; 2 * 1024 * 1024]),
            None,
            PATIENCE,
            &memory,
            &unpaced(),
        )
        .await;
        assert!(matches!(second, Err(BodyError::Busy)), "{second:?}");
        let small = receive(
            Body::from(vec![b' '; 1000]),
            None,
            PATIENCE,
            &memory,
            &unpaced(),
        )
        .await;
        assert!(small.is_ok(), "{small:?}");
    }

    #[test]
    fn small_bodies_are_charged_as_they_arrive_large_ones_at_once() {
        let small = Some(32 * 1024);
        assert_eq!(charged_capacity(1, 0, small), FIRST_CHARGE);
        assert_eq!(charged_capacity(5000, 0, small), 5000.max(FIRST_CHARGE));
        assert_eq!(
            charged_capacity(FIRST_CHARGE + 1, FIRST_CHARGE, small),
            2 * FIRST_CHARGE
        );
        assert_eq!(charged_capacity(20 * 1024, 16 * 1024, small), 32 * 1024);
        assert_eq!(charged_capacity(100, 0, Some(100)), 100);
        // A body longer than declared is charged what arrived.
        assert_eq!(charged_capacity(200, 100, Some(100)), 200);
        let large = Some(SMALL_BODY_BYTES + 1);
        assert_eq!(charged_capacity(1, 0, large), SMALL_BODY_BYTES + 1);
        assert_eq!(charged_capacity(1, 0, None), FIRST_CHARGE);
        assert_eq!(charged_capacity(MAX_BODY_BYTES, 1024, None), MAX_BODY_BYTES);
    }

    #[tokio::test]
    async fn bodies_announced_and_sent_slowly_do_not_make_ordinary_ones_wait() {
        let memory = BodyMemory::new(MAX_BODY_BYTES);
        let small_part = memory.small.available_permits() * 1024;
        // More slow bodies than the small part could hold at their declared length...
        let declared = 32 * 1024;
        let slow: Vec<_> = (0..small_part / declared + 8)
            .map(|_| {
                let memory = memory.clone();
                tokio::spawn(async move {
                    let first = futures::stream::once(async {
                        Ok::<_, std::convert::Infallible>(Bytes::from_static(b"{"))
                    });
                    let body = Body::from_stream(futures::StreamExt::chain(
                        first,
                        futures::stream::pending(),
                    ));
                    receive(body, Some(declared), PATIENCE, &memory, &unpaced()).await
                })
            })
            .collect();
        let all_charged = async {
            while memory.small.available_permits() * 1024 > small_part - slow.len() * FIRST_CHARGE {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(PATIENCE, all_charged)
            .await
            .expect("every slow body is charged");
        // ...and an ordinary review's body is still received at once.
        let ordinary = receive(
            Body::from(vec![b' '; 5000]),
            Some(5000),
            Duration::from_millis(50),
            &memory,
            &unpaced(),
        )
        .await;
        assert!(ordinary.is_ok(), "{ordinary:?}");
        for task in slow {
            task.abort();
        }
    }

    #[tokio::test]
    async fn held_large_bodies_never_make_small_ones_wait() {
        let memory = BodyMemory::new(12 * 1024 * 1024);
        let full = memory.available();
        let mut held = Vec::new();
        loop {
            let body = Body::from(vec![b' '; MAX_BODY_BYTES - 1024]);
            match receive(body, None, PATIENCE, &memory, &unpaced()).await {
                Ok(received) => held.push(received),
                Err(error) => {
                    assert!(matches!(error, BodyError::Busy), "{error:?}");
                    break;
                }
            }
        }
        assert!(!held.is_empty());
        // Every small body of a burst is received at once, with no room left for large ones.
        let mut small = Vec::new();
        for _ in 0..32 {
            let body = Body::from(vec![b' '; SMALL_BODY_BYTES]);
            let received =
                receive(body, None, Duration::from_millis(50), &memory, &unpaced()).await;
            small.push(received.expect("a small body does not wait for large ones"));
        }
        // A body that grows past small moves its charge to the large part, and is refused there.
        let chunks = futures::stream::iter([
            Ok::<_, std::convert::Infallible>(Bytes::from(vec![b' '; 1024])),
            Ok(Bytes::from(vec![b' '; SMALL_BODY_BYTES * 2])),
        ]);
        let grown = receive(
            Body::from_stream(chunks),
            None,
            PATIENCE,
            &memory,
            &unpaced(),
        )
        .await;
        assert!(matches!(grown, Err(BodyError::Busy)), "{grown:?}");
        drop((held, small));
        assert_eq!(memory.available(), full);
    }
}
