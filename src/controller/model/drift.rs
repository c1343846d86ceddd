//! How often an IAMRole is re-checked against IAM for drift, from its provider's `driftDetection`
//! settings. Pure, no I/O.

use std::time::Duration;

use crate::api::DriftDetection;
use crate::guardrails::duration::parse_go_duration;

/// The interval when the provider names none (or one that cannot be used): 10 minutes.
pub const DEFAULT_DRIFT_INTERVAL: Duration = Duration::from_secs(600);

/// The shortest interval used, whatever the provider says, so that IAM is never polled in a loop.
pub const MIN_DRIFT_INTERVAL: Duration = Duration::from_secs(10);

/// Jitter bound, in parts per ten thousand of the interval (±10%).
const JITTER_SPAN: u64 = 1000;
/// Parts in one interval.
const JITTER_SCALE: u128 = 10_000;

/// When to look at a role again: the provider's `driftDetection.interval` (Go duration, default
/// `10m`, at least [`MIN_DRIFT_INTERVAL`]) jittered by up to ±10%, the jitter derived from
/// `jitter_seed` so one object always gets the same interval and different objects spread out.
/// `None` when drift detection is switched off (`enabled: false`). An interval that is not a valid,
/// positive Go duration (admission refuses those) falls back to the default.
pub fn requeue_interval(drift: Option<&DriftDetection>, jitter_seed: u64) -> Option<Duration> {
    if drift.and_then(|d| d.enabled) == Some(false) {
        return None;
    }
    let base = drift
        .and_then(|d| d.interval.as_deref())
        .and_then(|text| parse_go_duration(text).ok())
        .filter(|interval| !interval.is_zero())
        .unwrap_or(DEFAULT_DRIFT_INTERVAL)
        .max(MIN_DRIFT_INTERVAL);
    let offset = mix(jitter_seed) % (2 * JITTER_SPAN + 1);
    let parts = JITTER_SCALE - u128::from(JITTER_SPAN) + u128::from(offset);
    let nanos = base.as_nanos() * parts / JITTER_SCALE;
    Some(Duration::from_nanos(
        u64::try_from(nanos).unwrap_or(u64::MAX),
    ))
}

/// SplitMix64 finalizer: spreads nearby seeds over the whole range.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn drift(enabled: Option<bool>, interval: Option<&str>) -> DriftDetection {
        DriftDetection {
            enabled,
            interval: interval.map(str::to_owned),
        }
    }

    fn within_ten_percent(interval: Option<Duration>, base: Duration) -> bool {
        interval.is_some_and(|i| i >= base.mul_f64(0.9) && i <= base.mul_f64(1.1))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_interval_is_jittered_by_at_most_ten_percent(seed in any::<u64>(), minutes in 1u64..1000) {
            let base = Duration::from_secs(minutes * 60);
            let text = format!("{minutes}m");
            let interval = requeue_interval(Some(&drift(None, Some(&text))), seed);
            prop_assert!(within_ten_percent(interval, base), "{interval:?} for {text}");
            prop_assert_eq!(interval, requeue_interval(Some(&drift(Some(true), Some(&text))), seed));
        }
    }

    #[test]
    fn the_default_is_ten_minutes() {
        for settings in [
            None,
            Some(drift(None, None)),
            Some(drift(Some(true), None)),
            Some(drift(None, Some("10 minutes"))),
            Some(drift(None, Some("0s"))),
        ] {
            let interval = requeue_interval(settings.as_ref(), 42);
            assert!(
                within_ten_percent(interval, DEFAULT_DRIFT_INTERVAL),
                "{settings:?}: {interval:?}"
            );
        }
    }

    #[test]
    fn disabled_drift_detection_never_requeues() {
        assert_eq!(
            requeue_interval(Some(&drift(Some(false), Some("1m"))), 1),
            None
        );
        assert_eq!(requeue_interval(Some(&drift(Some(false), None)), 1), None);
    }

    #[test]
    fn go_durations_are_read_and_tiny_ones_raised_to_the_minimum() {
        let interval = requeue_interval(Some(&drift(None, Some("1h30m"))), 7);
        assert!(within_ten_percent(interval, Duration::from_secs(5400)));
        let interval = requeue_interval(Some(&drift(None, Some("1ms"))), 7);
        assert!(within_ten_percent(interval, MIN_DRIFT_INTERVAL));
    }

    #[test]
    fn the_jitter_depends_only_on_the_seed() {
        let settings = drift(None, Some("10m"));
        assert_eq!(
            requeue_interval(Some(&settings), 5),
            requeue_interval(Some(&settings), 5)
        );
        let distinct: std::collections::BTreeSet<Option<Duration>> = (0..50)
            .map(|seed| requeue_interval(Some(&settings), seed))
            .collect();
        assert!(distinct.len() > 40, "{} distinct intervals", distinct.len());
    }
}
