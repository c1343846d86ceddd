//! Prometheus metrics of the process: the registry served on the admin port's `/metrics`, and the
//! admission webhook's own counters and histogram. In memory only; the admin server does the I/O.

use std::fmt;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::review::Endpoint;
use crate::guardrails::RuleId;

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The process's metric registry, with the admission metrics already registered. Other components
/// (the reconciler) register theirs through [`Metrics::registry_mut`] before it is shared.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    admission: AdmissionMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry holding the admission metrics.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let admission = AdmissionMetrics::new();
        admission.register(&mut registry);
        Metrics {
            registry,
            admission,
        }
    }

    /// The registry, to register more metrics into.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The admission webhook's metrics.
    pub fn admission(&self) -> &AdmissionMetrics {
        &self.admission
    }

    /// Every registered metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// How a review ended, as the `result` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewResult {
    /// Admitted (possibly with a patch or warnings).
    Allowed,
    /// Refused by a DENY finding.
    Denied,
    /// Not an AdmissionReview, too large, or otherwise unanswerable.
    Error,
}

impl ReviewResult {
    fn as_str(self) -> &'static str {
        match self {
            ReviewResult::Allowed => "allowed",
            ReviewResult::Denied => "denied",
            ReviewResult::Error => "error",
        }
    }
}

/// Labels of `admission_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    kind: &'static str,
    operation: &'static str,
    result: &'static str,
}

/// Labels of `admission_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

/// Labels of `admission_denials_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: &'static str,
}

/// Labels of `webhook_certificate_reloads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

/// One answered (or refused) admission request, as the metrics record it.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// Which webhook was called.
    pub endpoint: Endpoint,
    /// The kind reviewed (`IAMRole`, `AWSProvider`, `other`, or `unknown` when the body was unreadable).
    pub kind: &'static str,
    /// The operation (`CREATE`, …, or `unknown`).
    pub operation: &'static str,
    /// How it ended.
    pub result: ReviewResult,
    /// The rule of every DENY finding.
    pub denied_rules: &'a [RuleId],
    /// Time spent answering.
    pub seconds: f64,
}

/// `admission_requests_total{kind,operation,result}`,
/// `admission_request_duration_seconds{endpoint}`, `admission_denials_total{rule}` and
/// `webhook_certificate_reloads_total{result}` (`success` or `failure`).
#[derive(Clone, Debug)]
pub struct AdmissionMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    denials: Family<RuleLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
}

impl AdmissionMetrics {
    fn new() -> Self {
        AdmissionMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            denials: Family::default(),
            reloads: Family::default(),
        }
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "admission_requests",
            "Admission reviews answered, by kind, operation and result",
            self.requests.clone(),
        );
        registry.register(
            "admission_request_duration_seconds",
            "Time to answer an admission review, by endpoint",
            self.duration.clone(),
        );
        registry.register(
            "admission_denials",
            "DENY findings in refused admission reviews, by rule",
            self.denials.clone(),
        );
        registry.register(
            "webhook_certificate_reloads",
            "Attempts to load a changed serving certificate, by result",
            self.reloads.clone(),
        );
    }

    /// Records an attempt to load a changed certificate pair.
    pub fn observe_reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// Records one request.
    pub fn observe(&self, observation: &Observation<'_>) {
        self.requests
            .get_or_create(&RequestLabels {
                kind: observation.kind,
                operation: observation.operation,
                result: observation.result.as_str(),
            })
            .inc();
        self.duration
            .get_or_create(&EndpointLabels {
                endpoint: observation.endpoint.as_str(),
            })
            .observe(observation.seconds);
        for rule in observation.denied_rules {
            self.denials
                .get_or_create(&RuleLabels {
                    rule: rule.as_str(),
                })
                .inc();
        }
    }
}

/// Buckets from 0.5 ms to about 4 s.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn observations_show_up_in_the_exposition() {
        let metrics = Metrics::new();
        let denied = [RuleId::RoleName, RuleId::RoleName, RuleId::Tags];
        metrics.admission().observe(&Observation {
            endpoint: Endpoint::Validate,
            kind: "IAMRole",
            operation: "CREATE",
            result: ReviewResult::Denied,
            denied_rules: &denied,
            seconds: 0.002,
        });
        let text = metrics.encode().unwrap();
        let requests =
            r#"admission_requests_total{kind="IAMRole",operation="CREATE",result="denied"}"#;
        assert_eq!(sample_value(&text, requests), Some(1.0), "{text}");
        assert_eq!(
            sample_value(&text, r#"admission_denials_total{rule="role-name"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample_value(&text, r#"admission_denials_total{rule="tags"}"#),
            Some(1.0)
        );
        let count = r#"admission_request_duration_seconds_count{endpoint="validate"}"#;
        assert_eq!(sample_value(&text, count), Some(1.0));
        assert!(text.trim_end().ends_with("# EOF"));

        metrics.admission().observe_reload(false);
        metrics.admission().observe_reload(true);
        metrics.admission().observe_reload(true);
        let text = metrics.encode().unwrap();
        let reloads = |result: &str| {
            sample_value(
                &text,
                &format!(r#"webhook_certificate_reloads_total{{result="{result}"}}"#),
            )
        };
        assert_eq!(
            (reloads("failure"), reloads("success")),
            (Some(1.0), Some(2.0))
        );
    }

    #[test]
    fn other_components_can_register_into_the_same_registry() {
        let mut metrics = Metrics::new();
        let reconciles: Counter = Counter::default();
        metrics
            .registry_mut()
            .register("reconciles", "Reconciles run", reconciles.clone());
        reconciles.inc();
        let text = metrics.encode().unwrap();
        assert_eq!(sample_value(&text, "reconciles_total"), Some(1.0), "{text}");
    }
}
