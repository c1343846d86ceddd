//! The AWS layer and `sync_role` against moto behind the fault-injecting proxy: each fault alone
//! (throttling, HTTP 500 and 503, connection resets, an answer lost after the call was done,
//! latency, `NoSuchEntity` right after CreateRole, "Invalid principal" for a principal created
//! moments ago) surfaces with its reason as a `Retry::Backoff` error and the role converges once the
//! fault stops; and the account's rate limiter holds its rate as counted at the proxy, shared by
//! two providers of one account.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use infra_operator::aws::{
    Attempt, AwsClients, CallObserver, ClientOptions, CredentialSource, IamApi, ProviderSettings,
    RateConfig, RateLimits, SecretString, provisional_key,
};
use infra_operator::controller::model::error::Retry;
use infra_operator::controller::model::plan::{Intent, Memory};
use infra_operator::controller::sync::{Done, Synced, sync_role};
use infra_operator::iam::{DesiredRole, OWNER_TAG_KEY};
use local_stack::{Fault, FaultProxy, Moto, OUTCOME_OK, Rule, Tools, busiest};
use tempfile::TempDir;

const ACCOUNT: &str = "123456789012";

const OWNER: &str = "apps/faults";

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

const READ_BUCKET: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"}]}"#;

const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

/// Syncs tried before giving up on convergence.
const MAX_SYNCS: usize = 40;

/// Pause between two syncs (the reconciler's backoff, shortened).
const SYNC_PAUSE: Duration = Duration::from_millis(300);

/// moto, the proxy in front of it, and what the clients reported.
struct Bench {
    proxy: FaultProxy,
    _moto: Moto,
    _dir: TempDir,
    limits: RateLimits,
    attempts: Arc<Mutex<Vec<(String, Attempt)>>>,
    rates: Arc<Mutex<Vec<(String, f64)>>>,
}

impl Bench {
    fn start(rate: f64, burst: u32) -> Bench {
        let tools = Tools::locate().expect("local stack tools (run `make tools`)");
        let dir = TempDir::new().expect("temporary directory");
        let moto = Moto::start(&tools, dir.path()).expect("moto starts");
        let proxy = FaultProxy::start(moto.port).expect("proxy starts");
        let rates = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&rates);
        let limits = RateLimits::new(
            RateConfig::new(rate, burst).expect("valid rate"),
            Some(Arc::new(move |key: &str, _tokens, rate| {
                sink.lock()
                    .expect("not poisoned")
                    .push((key.to_owned(), rate));
            })),
        );
        Bench {
            proxy,
            _moto: moto,
            _dir: dir,
            limits,
            attempts: Arc::default(),
            rates,
        }
    }

    fn settings(&self, key_id: &str) -> ProviderSettings {
        ProviderSettings {
            region: "us-east-1".to_owned(),
            endpoint: Some(self.proxy.url()),
            credentials: CredentialSource::Static {
                access_key_id: SecretString::new(key_id),
                secret_access_key: SecretString::new("testing"),
                session_token: None,
            },
        }
    }

    /// Clients through the proxy, paced by the limiter of their provisional key.
    async fn clients(&self, key_id: &str) -> AwsClients {
        let settings = self.settings(key_id);
        let attempts = Arc::clone(&self.attempts);
        let options = ClientOptions {
            calls: None::<CallObserver>,
            attempts: Some(Arc::new(move |operation: &str, attempt| {
                attempts
                    .lock()
                    .expect("not poisoned")
                    .push((operation.to_owned(), attempt));
            })),
            limiter: Some(self.limits.limiter(&provisional_key(&settings))),
        };
        AwsClients::with_options(&settings, options).await
    }

    async fn iam(&self) -> IamApi {
        self.clients("testing").await.iam()
    }

    fn attempts(&self, operation: &str, attempt: Attempt) -> usize {
        self.attempts
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(op, seen)| op == operation && *seen == attempt)
            .count()
    }

    fn lowest_rate(&self) -> f64 {
        self.rates
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(_, rate)| *rate)
            .fold(f64::INFINITY, f64::min)
    }
}

fn desired(name: &str, trust: &str) -> DesiredRole {
    DesiredRole {
        name: name.to_owned(),
        path: "/".to_owned(),
        description: Some("fault injection".to_owned()),
        max_session_duration: 3600,
        trust_policy: trust.to_owned(),
        managed_policies: BTreeSet::from([READ_ONLY.to_owned()]),
        inline_policies: BTreeMap::from([("read".to_owned(), READ_BUCKET.to_owned())]),
        permissions_boundary: None,
        tags: BTreeMap::from([(OWNER_TAG_KEY.to_owned(), OWNER.to_owned())]),
    }
}

/// Syncs until the role converges, as the reconciler would (remembering what a failure told);
/// returns the result and every failure on the way as `(reason, retry)`.
async fn converge(iam: &IamApi, role: &DesiredRole) -> (Synced, Vec<(&'static str, Retry)>) {
    let mut memory = Memory::default();
    let mut failures = Vec::new();
    for _ in 0..MAX_SYNCS {
        let intent = Intent {
            desired: role,
            owner: OWNER,
            adopt: false,
        };
        match sync_role(iam, intent, &memory, &|_| Ok(())).await {
            Ok(synced) => return (synced, failures),
            Err(failure) => {
                failures.push((failure.error.reason(), failure.error.retry()));
                if let Some(identity) = failure.identity {
                    memory.role_id = Some(identity.role_id);
                }
                if let Some(attached) = failure.attached {
                    memory.attached = attached;
                }
            }
        }
        tokio::time::sleep(SYNC_PAUSE).await;
    }
    panic!("{} did not converge: {failures:?}", role.name);
}

/// The role as moto has it matches `role`.
async fn assert_converged(iam: &IamApi, role: &DesiredRole) {
    let observed = iam
        .observe_role(&role.name)
        .await
        .expect("observed")
        .expect("exists");
    assert_eq!(observed.managed_policies, role.managed_policies);
    assert_eq!(
        observed.inline_policies.keys().collect::<Vec<_>>(),
        ["read"]
    );
    assert_eq!(
        observed.tags.get(OWNER_TAG_KEY).map(String::as_str),
        Some(OWNER)
    );
}

/// The first failure has `reason`, and every failure backs off.
fn assert_backoff(failures: &[(&'static str, Retry)], reason: &str) {
    assert_eq!(failures.first().map(|f| f.0), Some(reason), "{failures:?}");
    assert!(
        failures.iter().all(|(_, retry)| *retry == Retry::Backoff),
        "{failures:?}"
    );
}

#[tokio::test]
async fn throttling_backs_off_lowers_the_rate_and_converges() {
    let bench = Bench::start(20.0, 40);
    bench
        .proxy
        .set_rules([Rule::new(Fault::Throttling).on("CreateRole").times(3)]);
    let iam = bench.iam().await;
    let role = desired("throttled", TRUST);
    let (_, failures) = converge(&iam, &role).await;
    assert_backoff(&failures, "Throttling");
    assert_eq!(failures.len(), 1, "three attempts, then the next sync");
    assert_converged(&iam, &role).await;
    assert_eq!(bench.proxy.count("CreateRole", "Throttling"), 3);
    assert_eq!(bench.proxy.count("CreateRole", OUTCOME_OK), 1);
    assert_eq!(bench.attempts("CreateRole", Attempt::Throttled), 3);
    assert_eq!(bench.attempts("CreateRole", Attempt::Retry), 2);
    let lowest = bench.lowest_rate();
    assert!((1.0..=10.0).contains(&lowest), "rate {lowest}");
}

#[tokio::test]
async fn server_errors_back_off_and_converge() {
    let bench = Bench::start(20.0, 40);
    bench.proxy.set_rules([
        Rule::new(Fault::Status(500))
            .on("AttachRolePolicy")
            .times(3),
        Rule::new(Fault::Status(503)).on("PutRolePolicy").times(3),
    ]);
    let iam = bench.iam().await;
    let role = desired("unavailable", TRUST);
    let (_, failures) = converge(&iam, &role).await;
    assert_backoff(&failures, "ServiceFailure");
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_converged(&iam, &role).await;
    assert_eq!(bench.proxy.count("AttachRolePolicy", "500"), 3);
    assert_eq!(bench.proxy.count("PutRolePolicy", "503"), 3);
    assert_eq!(bench.attempts("PutRolePolicy", Attempt::Retry), 2);
}

#[tokio::test]
async fn connection_resets_are_unreachable_and_converge() {
    let bench = Bench::start(20.0, 40);
    bench
        .proxy
        .set_rules([Rule::new(Fault::Reset).on("CreateRole").times(3)]);
    let iam = bench.iam().await;
    let role = desired("reset", TRUST);
    let (_, failures) = converge(&iam, &role).await;
    assert_backoff(&failures, "Unreachable");
    assert_converged(&iam, &role).await;
    assert_eq!(bench.proxy.count("CreateRole", "Reset"), 3);
    assert_eq!(bench.proxy.count("CreateRole", OUTCOME_OK), 1);
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_converges_on_the_one_role() {
    let bench = Bench::start(20.0, 40);
    // CreateRole happens, but its answer never arrives: the retry finds the role taken, and the
    // role is recognised by its owner tag and completed instead of created again.
    bench
        .proxy
        .set_rules([Rule::new(Fault::LostAnswer).on("CreateRole").times(1)]);
    let iam = bench.iam().await;
    let role = desired("lost-answer", TRUST);
    let (synced, failures) = converge(&iam, &role).await;
    assert!(
        failures.iter().all(|(_, retry)| *retry == Retry::Backoff),
        "{failures:?}"
    );
    assert_converged(&iam, &role).await;
    assert_eq!(bench.proxy.count("CreateRole", "LostAnswer"), 1);
    assert_eq!(bench.proxy.count("CreateRole", OUTCOME_OK), 0);
    assert_eq!(bench.proxy.count("CreateRole", "EntityAlreadyExists"), 1);
    assert!(
        !matches!(synced.done, Done::Created(_)),
        "the role was not created twice: {:?}",
        synced.done
    );
}

#[tokio::test]
async fn latency_slows_but_does_not_fail() {
    let bench = Bench::start(20.0, 40);
    bench
        .proxy
        .set_rules([Rule::new(Fault::Latency(Duration::from_millis(300))).every(2)]);
    let iam = bench.iam().await;
    let role = desired("slow", TRUST);
    let (_, failures) = converge(&iam, &role).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_converged(&iam, &role).await;
    let calls = bench.proxy.calls();
    assert!(
        calls.iter().all(|call| call.outcome == OUTCOME_OK),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_new_role_missing_for_a_while_converges() {
    let bench = Bench::start(20.0, 40);
    bench
        .proxy
        .missing_after_create(Some(Duration::from_secs(2)));
    let iam = bench.iam().await;
    let role = desired("eventual", TRUST);
    let (_, failures) = converge(&iam, &role).await;
    assert_backoff(&failures, "NoSuchEntity");
    assert_converged(&iam, &role).await;
    let missing: usize = bench
        .proxy
        .calls()
        .iter()
        .filter(|call| call.outcome == "NoSuchEntity")
        .count();
    assert!(missing >= 1);
}

#[tokio::test]
async fn a_principal_created_moments_ago_converges() {
    let bench = Bench::start(20.0, 40);
    let iam = bench.iam().await;
    let producer = desired("producer", TRUST);
    converge(&iam, &producer).await;
    bench
        .proxy
        .invalid_new_principals(Some(Duration::from_secs(3)));
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:role/producer"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let consumer = desired("consumer", &trust);
    let (_, failures) = converge(&iam, &consumer).await;
    assert_backoff(&failures, "MalformedPolicyDocument");
    assert_converged(&iam, &consumer).await;
    assert!(bench.proxy.count("CreateRole", "MalformedPolicyDocument") >= 1);
}

#[tokio::test]
async fn retries_inside_a_call_take_tokens_too() {
    const RATE: f64 = 10.0;
    const BURST: u32 = 5;
    const READERS: usize = 8;
    const READS: usize = 5;
    let bench = Bench::start(RATE, BURST);
    let clients = bench.clients("retrying").await;
    clients.caller_identity().await.expect("identity");
    tokio::time::sleep(Duration::from_secs_f64(f64::from(BURST) / RATE + 0.2)).await;
    // Every other GetRole fails with a 500, which the SDK retries within the call.
    bench
        .proxy
        .set_rules([Rule::new(Fault::Status(500)).on("GetRole").every(2)]);
    bench.proxy.clear_calls();
    let started = Instant::now();
    let mut readers = Vec::new();
    for reader in 0..READERS {
        let iam = clients.iam();
        readers.push(tokio::spawn(async move {
            for n in 0..READS {
                // Some reads may fail every attempt; only the pacing is measured here.
                let _ = iam.observe_role(&format!("absent-{reader}-{n}")).await;
            }
        }));
    }
    for reader in readers {
        reader.await.expect("reads finish");
    }
    let elapsed = started.elapsed();
    let calls = bench.proxy.calls();
    let retries = bench.attempts("GetRole", Attempt::Retry);
    assert!(retries >= READERS * READS / 4, "{retries} retries");
    assert_eq!(calls.len(), READERS * READS + retries);
    // Every attempt took a token: the run lasted as long as the rate needs for all of them (the
    // last unpaid retries aside), not only for the first attempts. Arrival times do not matter
    // here, so this holds however the machine schedules the threads.
    let paid = (calls.len() - READERS) as f64 - f64::from(BURST);
    assert!(
        elapsed.as_secs_f64() >= paid / RATE * 0.95,
        "{} attempts in {elapsed:?} at {RATE} a second",
        calls.len()
    );
    // A retry is paid by the calls after it: at most one unpaid retry per reader at a time, and
    // half a second of calls of slack for arrival times bunched by the scheduling.
    let window = Duration::from_secs(4);
    let limit = (RATE * (window.as_secs_f64() + 0.5)).ceil() as usize + BURST as usize + READERS;
    let seen = busiest(&calls, window);
    eprintln!("at most {seen} attempts within {window:?} (limit {limit}), {retries} retries");
    assert!(
        seen <= limit,
        "{seen} attempts within {window:?} (limit {limit})"
    );
}

#[tokio::test]
async fn the_account_rate_holds_at_the_proxy_across_providers() {
    const RATE: f64 = 10.0;
    const BURST: u32 = 5;
    const CALLS: usize = 60;
    let bench = Bench::start(RATE, BURST);
    // Three clients of two providers (different credentials) in one account: one bucket once
    // authenticated.
    let clients = [
        bench.clients("first").await,
        bench.clients("second").await,
        bench.clients("first").await,
    ];
    for client in &clients {
        let identity = client.caller_identity().await.expect("identity");
        assert_eq!(identity.account, ACCOUNT);
    }
    // Let the bucket fill up again, then count only the reads.
    tokio::time::sleep(Duration::from_secs_f64(f64::from(BURST) / RATE + 0.2)).await;
    bench.proxy.clear_calls();
    let started = Instant::now();
    let mut readers = Vec::new();
    for clients in clients {
        let iam = clients.iam();
        readers.push(tokio::spawn(async move {
            for n in 0..CALLS / 3 {
                let missing = iam.observe_role(&format!("absent-{n}")).await;
                assert_eq!(missing.expect("GetRole answers"), None);
            }
        }));
    }
    for reader in readers {
        reader.await.expect("reads finish");
    }
    let elapsed = started.elapsed();
    let calls = bench.proxy.calls();
    assert_eq!(calls.len(), CALLS, "one GetRole per read");
    // No window of the run saw more than rate × window + burst calls.
    for window in [Duration::from_secs(1), Duration::from_secs(2)] {
        // Three calls of slack: arrival times at the proxy jitter with the scheduling.
        let limit = (RATE * window.as_secs_f64()).ceil() as usize + BURST as usize + 3;
        let seen = busiest(&calls, window);
        eprintln!("at most {seen} calls within {window:?} (limit {limit}); {CALLS} in {elapsed:?}");
        assert!(
            seen <= limit,
            "{seen} calls within {window:?} (limit {limit})"
        );
    }
    // Sixty calls at ten a second after a burst of five take at least 5.5 s.
    let least = Duration::from_secs_f64((CALLS as f64 - f64::from(BURST)) / RATE);
    assert!(elapsed >= least.mul_f64(0.9), "{elapsed:?}");
}
