//! How much the webhook lets one client take: connections, handshake, header, body and idle time,
//! HTTP/2 streams, body memory, the large bodies' reading rate, and the review deadline. Plain
//! settings with safe defaults; the server and the handlers enforce them.

use std::time::Duration;

/// Largest AdmissionReview body accepted (a larger one gets 413, before its body is read when its
/// `Content-Length` says so). The API server's own limit on an object is 3 MiB too.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Bodies up to this size are "small": they wait for body memory and are checked on their own
/// lane, so large reviews cannot hold up ordinary ones.
pub const SMALL_BODY_BYTES: usize = 64 * 1024;
/// Bodies up to this size are checked at once on the async worker that received them (see
/// [`super::checks`]); a kubectl-applied role with its managed fields and last-applied
/// annotation is 3–6 KiB, and the costliest body of this size takes a few milliseconds.
pub const INLINE_BODY_BYTES: usize = 8 * 1024;
/// Default of [`Limits::large_body_rate`]: 16 MiB/s, about five of the largest bodies a second.
pub const DEFAULT_LARGE_BODY_RATE: u64 = 16 * 1024 * 1024;
/// Default of [`Limits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default of [`Limits::review_deadline`]: below the webhook configurations' `timeoutSeconds` (5).
pub const DEFAULT_REVIEW_DEADLINE: Duration = Duration::from_secs(3);

/// The webhook's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest time to receive a request's headers (HTTP/1).
    pub header_timeout: Duration,
    /// Longest time to receive a request's body once its headers arrived (then 408).
    pub body_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1 keep-alive and HTTP/2).
    pub idle_timeout: Duration,
    /// Longest time the checks of a review over [`INLINE_BODY_BYTES`] may take, waiting for a free
    /// checker included; then the review is refused. Must stay below the webhook configurations'
    /// `timeoutSeconds`. (Smaller reviews are bounded by their size instead.)
    pub review_deadline: Duration,
    /// Reviews of bodies over [`INLINE_BODY_BYTES`] checked at once, each on a thread off the async
    /// workers (smaller ones are checked on the async worker that read them, without a slot).
    pub concurrent_checks: usize,
    /// Memory for request bodies being received or reviewed, all connections together.
    pub body_memory: usize,
    /// Bytes per second at which bodies over [`SMALL_BODY_BYTES`] are read, all together: what
    /// receiving them (TLS decryption, copies) may take of the async workers.
    pub large_body_rate: u64,
    /// HTTP/2 streams one connection may have open.
    pub http2_max_streams: u32,
    /// Interval of HTTP/2 keep-alive pings.
    pub http2_ping_interval: Duration,
    /// How long an HTTP/2 ping may go unanswered before the connection is closed.
    pub http2_ping_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            review_deadline: DEFAULT_REVIEW_DEADLINE,
            concurrent_checks: std::thread::available_parallelism().map_or(2, |n| n.get()),
            body_memory: 32 * 1024 * 1024,
            large_body_rate: DEFAULT_LARGE_BODY_RATE,
            http2_max_streams: 32,
            http2_ping_interval: Duration::from_secs(20),
            http2_ping_timeout: Duration::from_secs(10),
        }
    }
}
