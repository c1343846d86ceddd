//! The admission webhook's metric families: reviews by kind, operation and result, their duration,
//! DENY findings by rule, certificate reloads and open connections. Registered into the process's
//! registry ([`crate::serve::Metrics`]); in memory only.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::review::Endpoint;
use crate::guardrails::RuleId;

/// How a review ended, as the `result` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewResult {
    /// Admitted (possibly with a patch or warnings).
    Allowed,
    /// Refused by a DENY finding.
    Denied,
    /// Refused because the checks did not finish before the review deadline.
    Overdue,
    /// Not an AdmissionReview, too large, too slow to arrive, or otherwise unanswerable.
    Error,
}

impl ReviewResult {
    fn as_str(self) -> &'static str {
        match self {
            ReviewResult::Allowed => "allowed",
            ReviewResult::Denied => "denied",
            ReviewResult::Overdue => "overdue",
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
/// `admission_request_duration_seconds{endpoint}`, `admission_denials_total{rule}`,
/// `webhook_certificate_reloads_total{result}` (`success` or `failure`) and
/// `webhook_open_connections` (each with the registry's `infra_operator_` prefix).
#[derive(Clone, Debug)]
pub struct AdmissionMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    denials: Family<RuleLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    connections: Gauge,
}

impl AdmissionMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = AdmissionMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            denials: Family::default(),
            reloads: Family::default(),
            connections: Gauge::default(),
        };
        metrics.register_into(registry);
        metrics
    }

    /// Metrics registered nowhere (for tests and tools that do not serve `/metrics`).
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }

    fn register_into(&self, registry: &mut Registry) {
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
        registry.register(
            "webhook_open_connections",
            "Connections to the HTTPS webhook open now",
            self.connections.clone(),
        );
    }

    /// Counts one more open webhook connection until the returned guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.connections.inc();
        ConnectionGuard(self.connections.clone())
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

/// Keeps a connection counted in `webhook_open_connections` while it lives.
#[derive(Debug)]
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
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

    fn encode(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn observations_show_up_in_the_exposition() {
        let mut registry = Registry::default();
        let metrics = AdmissionMetrics::register(&mut registry);
        let denied = [RuleId::RoleName, RuleId::RoleName, RuleId::Tags];
        metrics.observe(&Observation {
            endpoint: Endpoint::Validate,
            kind: "IAMRole",
            operation: "CREATE",
            result: ReviewResult::Denied,
            denied_rules: &denied,
            seconds: 0.002,
        });
        let text = encode(&registry);
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

        metrics.observe_reload(false);
        metrics.observe_reload(true);
        metrics.observe_reload(true);
        let text = encode(&registry);
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
    fn open_connections_are_counted_while_their_guard_lives() {
        let mut registry = Registry::default();
        let metrics = AdmissionMetrics::register(&mut registry);
        let first = metrics.connection_opened();
        let second = metrics.connection_opened();
        assert_eq!(
            sample_value(&encode(&registry), "webhook_open_connections"),
            Some(2.0)
        );
        drop((first, second));
        assert_eq!(
            sample_value(&encode(&registry), "webhook_open_connections"),
            Some(0.0)
        );
    }
}
