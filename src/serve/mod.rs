//! Process plumbing shared by every long-running subcommand (`run`, `webhook`, `controller`): the
//! one shutdown token (cancelled on SIGTERM or SIGINT), the process-wide metrics registry (every name
//! prefixed `infra_operator_`, with build and process metrics), and the plain-HTTP admin server
//! (`/healthz`, `/readyz`, `/metrics`) on its own thread and runtime, giving freed memory back
//! to the operating system, and threads of the lowest CPU priority for work that must not delay
//! the rest. Does I/O: signals, `/proc`, the admin port.

pub mod admin;
pub mod low_priority;
pub mod memory;
pub mod metrics;
mod process;
pub mod signal;

pub use self::admin::{AdminError, AdminServer, Readiness};
pub use self::metrics::Metrics;
pub use self::signal::{cancel_on_signal, shutdown_signal};
pub use tokio_util::sync::CancellationToken as Shutdown;
