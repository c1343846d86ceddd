//! The process-wide Prometheus registry served on the admin port's `/metrics`. Every name is
//! prefixed `infra_operator_`; the registry starts with `infra_operator_build_info{version}` and the
//! process metrics (resident memory, CPU time, open file descriptors). Components register their own
//! families (the webhook's, the reconciler's) through [`Metrics::registry_mut`] before it is shared.
//! In memory, except the process metrics, which read `/proc` when encoded.

use std::fmt;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::process::ProcessCollector;

/// Prefix of every metric name (followed by `_`).
pub const PREFIX: &str = "infra_operator";

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The process's metric registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry holding the build and process metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register(
            "build",
            "The running build; the value is always 1",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Metrics { registry }
    }

    /// The registry, to register more metrics into.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Every registered metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    fn sample_value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn build_and_process_metrics_are_there_and_every_name_is_prefixed() {
        let mut metrics = Metrics::new();
        let reconciles: Counter = Counter::default();
        metrics
            .registry_mut()
            .register("reconciles", "Reconciles run", reconciles.clone());
        reconciles.inc();
        let text = metrics.encode().unwrap();
        let version = env!("CARGO_PKG_VERSION");
        let build = format!(r#"infra_operator_build_info{{version="{version}"}}"#);
        assert_eq!(sample_value(&text, &build), Some(1.0), "{text}");
        assert_eq!(
            sample_value(&text, "infra_operator_reconciles_total"),
            Some(1.0),
            "{text}"
        );
        for series in [
            "infra_operator_process_resident_memory_bytes",
            "infra_operator_process_cpu_seconds_total",
            "infra_operator_process_open_fds",
        ] {
            assert!(sample_value(&text, series).is_some(), "{series} in {text}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("infra_operator_"), "{line}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
