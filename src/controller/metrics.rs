//! Prometheus metrics of the reconciler: reconciles by kind and result, their duration, failed
//! reconciles by kind and reason, every AWS API call by operation and result (`ok` or the
//! error's reason), throttled attempts and SDK retries by operation, and each account's IAM rate
//! limiter (tokens and current rate), and the IAMRoles in violation of their guardrails by
//! namespace and rule. Registered into the process's registry (the one the admin port serves); in
//! memory only.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::aws::{Attempt, AttemptObserver, CallObserver, RateObserver};
use crate::guardrails::RuleId;

/// `result` label of a reconcile that succeeded.
pub const RESULT_SUCCESS: &str = "success";
/// `result` label of a reconcile that failed.
pub const RESULT_ERROR: &str = "error";

/// Labels of `reconciles_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: &'static str,
    result: &'static str,
}

/// Labels of `reconcile_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// Labels of `reconcile_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: &'static str,
    reason: &'static str,
}

/// Labels of `aws_api_calls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: &'static str,
    result: &'static str,
}

/// Labels of `aws_throttles_total` and `aws_retries_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

/// Labels of the rate limiter's gauges: the account ID, or the provisional key of clients not
/// authenticated yet.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

/// The rules each IAMRole (`namespace`, `name`) violates.
type Violators = HashMap<(String, String), BTreeSet<RuleId>>;

/// Labels of `guardrail_violations`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViolationLabels {
    namespace: String,
    rule: &'static str,
}

/// `reconciles_total{kind,result}`, `reconcile_duration_seconds{kind}`,
/// `reconcile_errors_total{kind,reason}`, `aws_api_calls_total{operation,result}` (one per
/// IAM/STS call, one per page of a list), `aws_throttles_total{operation}` (throttled attempts,
/// retried or not), `aws_retries_total{operation}` (attempts after the first),
/// `iam_rate_limit_tokens{account}` and `iam_rate_limit_rate{account}`.
#[derive(Clone, Debug)]
pub struct ControllerMetrics {
    reconciles: Family<ReconcileLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    aws_calls: Family<CallLabels, Counter>,
    throttles: Family<OperationLabels, Counter>,
    retries: Family<OperationLabels, Counter>,
    rate_tokens: Family<AccountLabels, Gauge<f64, AtomicU64>>,
    rate: Family<AccountLabels, Gauge<f64, AtomicU64>>,
    violations: Family<ViolationLabels, Gauge>,
    /// The rules each IAMRole (`namespace/name`) violates, behind `violations`.
    violators: Arc<Mutex<Violators>>,
}

impl ControllerMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = ControllerMetrics {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            aws_calls: Family::default(),
            throttles: Family::default(),
            retries: Family::default(),
            rate_tokens: Family::default(),
            rate: Family::default(),
            violations: Family::default(),
            violators: Arc::default(),
        };
        registry.register(
            "reconciles",
            "Reconciles run, by kind and result",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by kind and reason (the condition reason)",
            metrics.errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time taken by one reconcile, by kind",
            metrics.duration.clone(),
        );
        registry.register(
            "aws_api_calls",
            "AWS IAM and STS API calls, by operation and result",
            metrics.aws_calls.clone(),
        );
        registry.register(
            "aws_throttles",
            "Attempts of AWS calls answered with a throttling error (retried or not), by operation",
            metrics.throttles.clone(),
        );
        registry.register(
            "aws_retries",
            "Attempts of AWS calls after the first (SDK retries), by operation",
            metrics.retries.clone(),
        );
        registry.register(
            "iam_rate_limit_tokens",
            "Tokens in the account's IAM rate limiter as of its last use (negative: calls waiting)",
            metrics.rate_tokens.clone(),
        );
        registry.register(
            "iam_rate_limit_rate",
            "Current rate of the account's IAM rate limiter, in calls per second (lowered by throttling)",
            metrics.rate.clone(),
        );
        registry.register(
            "guardrail_violations",
            "IAMRoles applied before that the guardrails governing their namespace refuse now \
             (still healed), by namespace and rule",
            metrics.violations.clone(),
        );
        metrics
    }

    /// Records the rules the IAMRole `namespace/name` violates now (empty: none, or gone).
    pub fn record_violations(&self, namespace: &str, name: &str, rules: BTreeSet<RuleId>) {
        let Ok(mut violators) = self.violators.lock() else {
            return;
        };
        let key = (namespace.to_owned(), name.to_owned());
        let before = if rules.is_empty() {
            violators.remove(&key).unwrap_or_default()
        } else {
            violators.insert(key, rules.clone()).unwrap_or_default()
        };
        for rule in before.symmetric_difference(&rules) {
            let labels = ViolationLabels {
                namespace: namespace.to_owned(),
                rule: rule.as_str(),
            };
            if rules.contains(rule) {
                self.violations.get_or_create(&labels).inc();
            } else {
                self.violations.get_or_create(&labels).dec();
            }
        }
    }

    /// Records one finished reconcile of `kind` (`IAMRole`, `AWSProvider`).
    pub fn observe_reconcile(&self, kind: &'static str, success: bool, elapsed: Duration) {
        let result = if success {
            RESULT_SUCCESS
        } else {
            RESULT_ERROR
        };
        self.reconciles
            .get_or_create(&ReconcileLabels { kind, result })
            .inc();
        self.duration
            .get_or_create(&KindLabels { kind })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one failed reconcile of `kind` and its PascalCase `reason`.
    pub fn observe_error(&self, kind: &'static str, reason: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { kind, reason })
            .inc();
    }

    /// Records one AWS call.
    pub fn observe_aws_call(&self, operation: &'static str, result: &'static str) {
        self.aws_calls
            .get_or_create(&CallLabels { operation, result })
            .inc();
    }

    /// An observer for [`crate::aws::AwsClients::new`] feeding `aws_api_calls_total`.
    pub fn call_observer(&self) -> CallObserver {
        let metrics = self.clone();
        Arc::new(move |operation, result| metrics.observe_aws_call(operation, result))
    }
}

impl ControllerMetrics {
    /// An observer for [`crate::aws::ClientOptions::attempts`] feeding `aws_throttles_total` and
    /// `aws_retries_total`.
    pub fn attempt_observer(&self) -> AttemptObserver {
        let metrics = self.clone();
        Arc::new(move |operation, attempt| {
            let family = match attempt {
                Attempt::Retry => &metrics.retries,
                Attempt::Throttled => &metrics.throttles,
            };
            family
                .get_or_create(&OperationLabels {
                    operation: operation.to_owned(),
                })
                .inc();
        })
    }

    /// An observer for [`crate::aws::RateLimits::new`] feeding the rate limiter's gauges.
    pub fn rate_observer(&self) -> RateObserver {
        let metrics = self.clone();
        Arc::new(move |account, tokens, rate| {
            let labels = AccountLabels {
                account: account.to_owned(),
            };
            metrics.rate_tokens.get_or_create(&labels).set(tokens);
            metrics.rate.get_or_create(&labels).set(rate);
        })
    }
}

/// Buckets from 5 ms to about 80 s.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn reconciles_and_calls_show_up_in_the_exposition() {
        let mut registry = Registry::default();
        let metrics = ControllerMetrics::register(&mut registry);
        metrics.observe_reconcile("IAMRole", true, Duration::from_millis(20));
        metrics.observe_reconcile("IAMRole", false, Duration::from_millis(20));
        metrics.observe_reconcile("IAMRole", true, Duration::from_millis(20));
        let observer = metrics.call_observer();
        observer("TagRole", "ok");
        observer("TagRole", "ok");
        observer("GetRole", "Throttling");
        metrics.observe_error("IAMRole", "RoleExists");
        let attempts = metrics.attempt_observer();
        attempts("CreateRole", Attempt::Throttled);
        attempts("CreateRole", Attempt::Retry);
        attempts("CreateRole", Attempt::Retry);
        metrics.rate_observer()("123456789012", 3.5, 10.0);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        assert_eq!(
            sample(
                &text,
                r#"reconciles_total{kind="IAMRole",result="success"}"#
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, r#"reconciles_total{kind="IAMRole",result="error"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"reconcile_duration_seconds_count{kind="IAMRole"}"#),
            Some(3.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"aws_api_calls_total{operation="TagRole",result="ok"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"aws_api_calls_total{operation="GetRole",result="Throttling"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"reconcile_errors_total{kind="IAMRole",reason="RoleExists"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"aws_throttles_total{operation="CreateRole"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"aws_retries_total{operation="CreateRole"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"iam_rate_limit_tokens{account="123456789012"}"#),
            Some(3.5)
        );
        assert_eq!(
            sample(&text, r#"iam_rate_limit_rate{account="123456789012"}"#),
            Some(10.0)
        );
    }
}
