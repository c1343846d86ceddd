//! Client-side rate limiting of IAM and STS calls, one adaptive token bucket per AWS account.
//!
//! IAM's request quota is per account, whatever the caller: every provider whose clients act in the
//! same account therefore share one bucket. The key is the account ID the provider authenticated
//! as (its status' `accountID`, or the answer of STS GetCallerIdentity, after which the clients
//! move to that account's bucket). Clients of a provider not authenticated yet cannot know their
//! account: they use a provisional key derived from what decides the account — region, endpoint
//! and credential identity (the access key ID, the web identity role ARN, or the default chain) —
//! hashed so that no credential identifier reaches a metric label or a log. Two providers with the
//! same credentials share a provisional bucket; once authenticated, they share the account's.
//!
//! The bucket holds up to `burst` tokens and refills at the current rate; each call takes one
//! token, waiting for it when there is none (reservations queue in order). A retry the SDK makes
//! inside one call takes a token too, when it is sent ([`Limiter::charge`]): it does not wait for
//! it (the SDK's own backoff already spaces it), but the calls after it do, so retries never add to
//! the account's rate. The rate is adaptive
//! (AIMD): when IAM throttles anyway (other tools share the account's quota), the rate halves —
//! at most once per [`DECREASE_SPACING`], never below [`MIN_RATE`] — and after [`RECOVERY_HOLD`]
//! without throttling it grows back linearly, by a twentieth of the configured rate per second,
//! up to the configured rate.
//!
//! [`TokenBucket`] is pure: it is given the time. [`Limiter::acquire`] sleeps on the tokio timer;
//! nothing here does network I/O.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::settings::{CredentialSource, ProviderSettings};

/// Lowest rate the adaptation goes down to, in calls per second.
pub const MIN_RATE: f64 = 1.0;

/// Shortest time between two halvings of the rate: the calls in flight when IAM starts throttling
/// are all throttled, and count as one signal.
pub const DECREASE_SPACING: Duration = Duration::from_secs(1);

/// Time without throttling before the rate starts growing back.
pub const RECOVERY_HOLD: Duration = Duration::from_secs(10);

/// Part of the configured rate regained per second of recovery.
const RECOVERY_PER_SECOND: f64 = 1.0 / 20.0;

/// Invalid rate-limit settings.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RateLimitError {
    /// The rate is not a positive, finite number.
    #[error("the IAM rate must be a positive number of calls per second, not {0}")]
    Rate(f64),
    /// The burst is zero.
    #[error("the IAM burst must be at least 1")]
    Burst,
}

/// The configured rate and burst of every account's bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateConfig {
    rate: f64,
    burst: u32,
}

impl RateConfig {
    /// `rate` calls per second sustained, up to `burst` at once after a quiet time.
    pub fn new(rate: f64, burst: u32) -> Result<Self, RateLimitError> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(RateLimitError::Rate(rate));
        }
        if burst == 0 {
            return Err(RateLimitError::Burst);
        }
        Ok(RateConfig { rate, burst })
    }

    /// Calls per second sustained.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Calls allowed at once after a quiet time.
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

/// A token bucket whose rate adapts to throttling (AIMD). Pure: every method is given the time.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    configured: f64,
    floor: f64,
    burst: f64,
    rate: f64,
    /// May be negative: calls that reserved a token not there yet.
    tokens: f64,
    last_refill: Instant,
    last_decrease: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket at the configured rate.
    pub fn new(config: RateConfig, now: Instant) -> Self {
        TokenBucket {
            configured: config.rate,
            floor: MIN_RATE.min(config.rate),
            burst: f64::from(config.burst),
            rate: config.rate,
            tokens: f64::from(config.burst),
            last_refill: now,
            last_decrease: None,
        }
    }

    /// The current rate, in calls per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The tokens available (negative: owed to calls waiting), as of the last update.
    pub fn tokens(&self) -> f64 {
        self.tokens
    }

    /// Takes one token: how long the caller must wait before making its call (zero when a token
    /// was there).
    pub fn reserve(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Returns the token of a call that was not made (up to the burst).
    pub fn give_back(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + 1.0).min(self.burst);
    }

    /// IAM throttled a call: halve the rate (not more than once per [`DECREASE_SPACING`], not
    /// below [`MIN_RATE`]) and drop the burst saved up.
    pub fn throttled(&mut self, now: Instant) {
        self.refill(now);
        let spaced = self
            .last_decrease
            .is_none_or(|at| now.saturating_duration_since(at) >= DECREASE_SPACING);
        if spaced {
            self.rate = (self.rate / 2.0).max(self.floor);
            self.last_decrease = Some(now);
        }
        self.tokens = self.tokens.min(0.0);
    }

    /// Brings tokens and rate up to `now`.
    pub fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_refill);
        if elapsed.is_zero() {
            return;
        }
        self.tokens = (self.tokens + self.rate * elapsed.as_secs_f64()).min(self.burst);
        if let Some(decreased) = self.last_decrease {
            let recovering_from = (decreased + RECOVERY_HOLD).max(self.last_refill);
            let recovering = now.saturating_duration_since(recovering_from);
            let step = self.configured * RECOVERY_PER_SECOND * recovering.as_secs_f64();
            self.rate = (self.rate + step).min(self.configured);
        }
        self.last_refill = now;
    }
}

/// Told the state of an account's bucket after each change: `(account, tokens, rate)`.
pub type RateObserver = Arc<dyn Fn(&str, f64, f64) + Send + Sync>;

/// One account's bucket.
#[derive(Debug)]
struct AccountBucket {
    key: String,
    bucket: Mutex<TokenBucket>,
}

/// The buckets of every account, created on first use with one [`RateConfig`]. Cheap to clone;
/// clones share the buckets.
#[derive(Clone)]
pub struct RateLimits {
    config: RateConfig,
    buckets: Arc<Mutex<HashMap<String, Arc<AccountBucket>>>>,
    observer: Option<RateObserver>,
}

impl fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimits")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Buckets of `config`, their state reported to `observer`.
    pub fn new(config: RateConfig, observer: Option<RateObserver>) -> Self {
        RateLimits {
            config,
            buckets: Arc::default(),
            observer,
        }
    }

    /// A limiter on the bucket of `key` (an account ID, or a [`provisional_key`]).
    pub fn limiter(&self, key: &str) -> Limiter {
        Limiter {
            limits: self.clone(),
            bucket: Arc::new(Mutex::new(self.bucket(key))),
        }
    }

    fn bucket(&self, key: &str) -> Arc<AccountBucket> {
        let mut buckets = lock(&self.buckets);
        Arc::clone(buckets.entry(key.to_owned()).or_insert_with(|| {
            Arc::new(AccountBucket {
                key: key.to_owned(),
                bucket: Mutex::new(TokenBucket::new(self.config, Instant::now())),
            })
        }))
    }

    fn report(&self, key: &str, bucket: &TokenBucket) {
        if let Some(observer) = &self.observer {
            observer(key, bucket.tokens(), bucket.rate());
        }
    }
}

/// The key of clients whose account is not known yet: a hash of region, endpoint and credential
/// identity (never a secret, and not the identifier itself).
pub fn provisional_key(settings: &ProviderSettings) -> String {
    let mut hasher = DefaultHasher::new();
    settings.region.hash(&mut hasher);
    settings.endpoint.hash(&mut hasher);
    match &settings.credentials {
        CredentialSource::Static { access_key_id, .. } => {
            ("static", access_key_id.expose()).hash(&mut hasher);
        }
        CredentialSource::WebIdentity { role_arn, .. } => ("web", role_arn).hash(&mut hasher),
        CredentialSource::DefaultChain => "default".hash(&mut hasher),
    }
    format!("unauthenticated-{:016x}", hasher.finish())
}

/// The bucket one provider's clients take tokens from; moved to the account's bucket once the
/// account is known. Cheap to clone; clones share the binding.
#[derive(Clone)]
pub struct Limiter {
    limits: RateLimits,
    bucket: Arc<Mutex<Arc<AccountBucket>>>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("key", &self.key())
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// The key of the bucket in use.
    pub fn key(&self) -> String {
        lock(&self.bucket).key.clone()
    }

    /// Uses the bucket of `account` from now on.
    pub fn bind(&self, account: &str) {
        if account.is_empty() {
            return;
        }
        let mut current = lock(&self.bucket);
        if current.key != account {
            *current = self.limits.bucket(account);
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let wait = self.update(|bucket, now| bucket.reserve(now));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes a token without waiting, for an attempt being sent already (a retry inside one SDK
    /// call): the balance may go below zero, and the calls that follow wait for it.
    pub fn charge(&self) {
        self.update(|bucket, now| {
            bucket.reserve(now);
        });
    }

    /// Returns the token of a call that was not made after all.
    pub fn give_back(&self) {
        self.update(|bucket, now| bucket.give_back(now));
    }

    /// IAM throttled a call made with this limiter's tokens.
    pub fn throttled(&self) {
        self.update(|bucket, now| bucket.throttled(now));
    }

    fn update<T>(&self, change: impl FnOnce(&mut TokenBucket, Instant) -> T) -> T {
        let account = Arc::clone(&lock(&self.bucket));
        let mut bucket = lock(&account.bucket);
        let result = change(&mut bucket, tokio::time::Instant::now().into_std());
        self.limits.report(&account.key, &bucket);
        result
    }
}

/// Locks, ignoring poisoning: the guarded values stay consistent after every statement.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::SecretString;

    fn config(rate: f64, burst: u32) -> RateConfig {
        RateConfig::new(rate, burst).expect("valid")
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(RateConfig::new(0.0, 1), Err(RateLimitError::Rate(0.0)));
        assert!(RateConfig::new(f64::NAN, 1).is_err());
        assert_eq!(RateConfig::new(1.0, 0), Err(RateLimitError::Burst));
    }

    #[test]
    fn burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(config(20.0, 40), t0);
        for _ in 0..40 {
            assert_eq!(bucket.reserve(t0), Duration::ZERO);
        }
        // The 41st waits one token's time, the 60th twenty of them: reservations queue.
        assert_eq!(bucket.reserve(t0), secs(0.05));
        for _ in 0..18 {
            bucket.reserve(t0);
        }
        assert_eq!(bucket.reserve(t0), secs(1.0));
        // Two seconds later, the debt of 20 is paid and 20 more are there.
        let t2 = t0 + secs(2.0);
        bucket.refill(t2);
        assert!((bucket.tokens() - 20.0).abs() < 1e-9, "{}", bucket.tokens());
        // A long quiet time never saves more than the burst.
        bucket.refill(t2 + secs(3600.0));
        assert_eq!(bucket.tokens(), 40.0);
    }

    #[test]
    fn throttling_halves_the_rate_once_per_spacing_down_to_the_floor() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(config(20.0, 40), t0);
        bucket.throttled(t0);
        assert_eq!(bucket.rate(), 10.0);
        assert_eq!(bucket.tokens(), 0.0, "the saved burst is dropped");
        // Calls in flight throttled in the same second count once.
        bucket.throttled(t0 + secs(0.5));
        assert_eq!(bucket.rate(), 10.0);
        let mut at = t0;
        for _ in 0..10 {
            at += DECREASE_SPACING;
            bucket.throttled(at);
        }
        assert_eq!(bucket.rate(), MIN_RATE);
        // A configured rate below the floor is kept as it is.
        let mut slow = TokenBucket::new(config(0.5, 1), t0);
        slow.throttled(t0);
        assert_eq!(slow.rate(), 0.5);
    }

    #[test]
    fn the_rate_recovers_linearly_after_the_hold() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(config(20.0, 40), t0);
        bucket.throttled(t0);
        bucket.refill(t0 + RECOVERY_HOLD);
        assert_eq!(bucket.rate(), 10.0, "no growth during the hold");
        // One step a second: 20 / 20 = 1 call per second per second, in any number of updates.
        let start = t0 + RECOVERY_HOLD;
        for tenth in 1..=40 {
            bucket.refill(start + secs(f64::from(tenth) / 10.0));
        }
        assert!((bucket.rate() - 14.0).abs() < 1e-9, "{}", bucket.rate());
        bucket.refill(start + secs(60.0));
        assert_eq!(bucket.rate(), 20.0, "never above the configured rate");
        // A throttle during recovery halves again and restarts the hold.
        let mut bucket = TokenBucket::new(config(20.0, 40), t0);
        bucket.throttled(t0);
        bucket.refill(start + secs(4.0));
        bucket.throttled(start + secs(4.0));
        assert!((bucket.rate() - 7.0).abs() < 1e-9, "{}", bucket.rate());
        bucket.refill(start + secs(4.0) + RECOVERY_HOLD);
        assert!((bucket.rate() - 7.0).abs() < 1e-9, "{}", bucket.rate());
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_takes_a_token_the_next_call_waits_for() {
        let limits = RateLimits::new(config(10.0, 1), None);
        let limiter = limits.limiter("111122223333");
        let started = tokio::time::Instant::now();
        limiter.acquire().await;
        assert_eq!(started.elapsed(), Duration::ZERO, "the burst token");
        limiter.charge();
        assert_eq!(started.elapsed(), Duration::ZERO, "a retry does not wait");
        limiter.acquire().await;
        // The retry's token (0.1 s at 10/s) is paid by the call after it: 0.2 s in all.
        assert!(
            started.elapsed() >= secs(0.19),
            "waited {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_token_given_back_is_there_again() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(config(1.0, 1), t0);
        assert_eq!(bucket.reserve(t0), Duration::ZERO);
        bucket.give_back(t0);
        assert_eq!(bucket.reserve(t0), Duration::ZERO);
        bucket.give_back(t0);
        bucket.give_back(t0);
        assert_eq!(bucket.tokens(), 1.0, "never above the burst");
    }

    #[test]
    fn waits_follow_the_reduced_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(config(20.0, 40), t0);
        bucket.throttled(t0);
        assert_eq!(bucket.reserve(t0), secs(0.1));
        assert_eq!(bucket.reserve(t0), secs(0.2));
    }

    fn settings(key_id: &str, region: &str) -> ProviderSettings {
        ProviderSettings {
            region: region.to_owned(),
            endpoint: None,
            credentials: CredentialSource::Static {
                access_key_id: SecretString::new(key_id),
                secret_access_key: SecretString::new("secret"),
                session_token: None,
            },
        }
    }

    #[test]
    fn provisional_keys_hide_the_credentials_and_tell_identities_apart() {
        let key = provisional_key(&settings("AKIAEXAMPLE", "eu-west-1"));
        assert!(key.starts_with("unauthenticated-"), "{key}");
        assert!(!key.contains("AKIA"), "{key}");
        assert_eq!(key, provisional_key(&settings("AKIAEXAMPLE", "eu-west-1")));
        assert_ne!(key, provisional_key(&settings("AKIAOTHER", "eu-west-1")));
        assert_ne!(key, provisional_key(&settings("AKIAEXAMPLE", "us-east-1")));
    }

    #[tokio::test]
    async fn clients_of_one_account_share_its_bucket() {
        let reported = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&reported);
        let limits = RateLimits::new(
            config(20.0, 2),
            Some(Arc::new(move |key: &str, tokens, rate| {
                lock(&sink).push((key.to_owned(), tokens, rate));
            })),
        );
        let first = limits.limiter("unauthenticated-1");
        let second = limits.limiter("123456789012");
        first.acquire().await;
        first.bind("123456789012");
        assert_eq!(first.clone().key(), "123456789012");
        first.acquire().await;
        second.acquire().await;
        second.throttled();
        let reported = lock(&reported).clone();
        let keys: Vec<&str> = reported.iter().map(|(key, _, _)| key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "unauthenticated-1",
                "123456789012",
                "123456789012",
                "123456789012"
            ]
        );
        // The account's two tokens were taken by two different limiters.
        let (_, tokens, _) = reported[2];
        assert!(tokens < 0.1, "{tokens}");
        let (_, _, rate) = reported[3];
        assert_eq!(rate, 10.0);
    }
}
