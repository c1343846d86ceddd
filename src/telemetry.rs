//! Logging set-up: `tracing` to stderr, filtered by `RUST_LOG`, as text or JSON. Process-global I/O.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `json` selects JSON lines. Calling it twice keeps the first.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_set = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
