//! Receiving a request body within the limits: at most [`MAX_BODY_BYTES`] (refused from its
//! `Content-Length` before anything is read, so `Expect: 100-continue` gets 413, not 100), within
//! the body timeout (408), and within a memory budget shared by every request, charged as the body
//! grows: a small body waits for room, a large one is refused at once (503) when there is none, so
//! large bodies can neither exhaust memory nor queue ahead of ordinary reviews. Reads from the
//! connection; no other I/O.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::limits::{MAX_BODY_BYTES, SMALL_BODY_BYTES};

/// Why a body was not received.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Declared or found larger than [`MAX_BODY_BYTES`].
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// Not received within the body timeout.
    #[error("request body not received within {} ms", .0.as_millis())]
    Slow(Duration),
    /// No memory left for a large body right now.
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

/// Memory for request bodies, shared by every request, in KiB.
#[derive(Clone, Debug)]
pub struct BodyMemory(Arc<Semaphore>);

impl BodyMemory {
    /// A budget of `bytes` (at least one largest body).
    pub fn new(bytes: usize) -> Self {
        BodyMemory(Arc::new(Semaphore::new(kib(bytes.max(MAX_BODY_BYTES)))))
    }

    /// Bytes not charged to any body now.
    pub fn available(&self) -> usize {
        self.0.available_permits() * 1024
    }
}

/// A received body, with its share of the memory budget (given back when dropped).
#[derive(Debug)]
pub struct Received {
    /// The body.
    pub bytes: Bytes,
    _charge: Option<OwnedSemaphorePermit>,
}

impl Received {
    /// Whether the body is over [`SMALL_BODY_BYTES`].
    pub fn is_large(&self) -> bool {
        self.bytes.len() > SMALL_BODY_BYTES
    }
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

/// Receives `body` (whose `Content-Length` is `declared`) within `timeout` and `memory`.
pub async fn receive(
    body: Body,
    declared: Option<usize>,
    timeout: Duration,
    memory: &BodyMemory,
) -> Result<Received, BodyError> {
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(BodyError::TooLarge);
    }
    let deadline = Instant::now() + timeout;
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
            let capacity = match declared {
                Some(declared) if declared >= length => declared,
                _ => length.max(buffer.capacity() * 2).min(MAX_BODY_BYTES),
            };
            charge = Some(grow_charge(charge, capacity, memory, deadline, timeout).await?);
            buffer.reserve_exact(capacity - buffer.len());
        }
        buffer.extend_from_slice(&data);
    }
    Ok(Received {
        bytes: Bytes::from(buffer),
        _charge: charge,
    })
}

/// Charges the budget for `capacity` bytes in all, on top of `charge`.
async fn grow_charge(
    charge: Option<OwnedSemaphorePermit>,
    capacity: usize,
    memory: &BodyMemory,
    deadline: Instant,
    timeout: Duration,
) -> Result<OwnedSemaphorePermit, BodyError> {
    let held = charge.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
    let more =
        u32::try_from(kib(capacity).saturating_sub(held)).map_err(|_| BodyError::TooLarge)?;
    let budget = Arc::clone(&memory.0);
    let extra = if capacity <= SMALL_BODY_BYTES {
        tokio::time::timeout_at(deadline, budget.acquire_many_owned(more))
            .await
            .map_err(|_| BodyError::Slow(timeout))?
            .map_err(|_| BodyError::Busy)?
    } else {
        budget
            .try_acquire_many_owned(more)
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

    #[tokio::test]
    async fn a_body_is_received_and_its_memory_given_back() {
        let memory = BodyMemory::new(MAX_BODY_BYTES);
        let full = memory.available();
        let received = receive(Body::from("hello"), Some(5), PATIENCE, &memory)
            .await
            .unwrap();
        assert_eq!(&received.bytes[..], b"hello");
        assert!(!received.is_large());
        assert!(memory.available() < full);
        drop(received);
        assert_eq!(memory.available(), full);
    }

    #[tokio::test]
    async fn too_large_bodies_are_refused_declared_or_not() {
        let memory = BodyMemory::new(MAX_BODY_BYTES);
        let declared = receive(Body::empty(), Some(MAX_BODY_BYTES + 1), PATIENCE, &memory).await;
        assert!(matches!(declared, Err(BodyError::TooLarge)), "{declared:?}");
        let body = Body::from(vec![b' '; MAX_BODY_BYTES + 1]);
        let found = receive(body, None, PATIENCE, &memory).await;
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
        let waited = receive(body, Some(100), Duration::from_millis(100), &memory).await;
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
        )
        .await
        .unwrap();
        assert!(first.is_large());
        let second = receive(
            Body::from(vec![b' '; 2 * 1024 * 1024]),
            None,
            PATIENCE,
            &memory,
        )
        .await;
        assert!(matches!(second, Err(BodyError::Busy)), "{second:?}");
        let small = receive(Body::from(vec![b' '; 1000]), None, PATIENCE, &memory).await;
        assert!(small.is_ok(), "{small:?}");
    }
}
