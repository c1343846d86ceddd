//! IAM as it really behaves, at scale: a soak of the whole operator behind the fault-injecting IAM
//! proxy. On a local stack (etcd, kube-apiserver, moto as IAM/STS, the operator's release binary
//! running `run` with `--iam-rate` and `--iam-burst`), the provider's endpoint is the proxy in front
//! of moto, so every IAM and STS call of the operator is counted there. Two runs in one harness, the
//! same three phases each:
//!
//! 1. N IAMRoles created through the Kubernetes API (one managed and one inline policy each; one
//!    role in ten trusts the role created just before it), until every one is Ready;
//! 2. a fifth of them updated (a new inline policy document), until each is Ready at its new
//!    generation;
//! 3. all deleted, until every object is gone.
//!
//! The first run has no fault. The second faults about a tenth of the calls across the kinds the
//! proxy plays (throttling, HTTP 500 and 503, connection resets, answers lost after the call was
//! done, `NoSuchEntity` for a moment after a role's creation and "Invalid principal" for a trust
//! naming a role just created), and SIGKILLs the operator at random moments (one per phase, at a
//! random share of its progress), restarting it at once. After each phase of each run, moto is
//! read directly: after creation every role exists once, under the soak's path, with its owner
//! tag; after deletion none is left. The harness reports per run: time per phase, IAM writes and
//! reads per role (at the proxy, faulted attempts included), the outcomes seen, and the busiest
//! 1 s and 10 s windows at the proxy against what the configured rate allows (rate × window +
//! burst); then the faulted run against the fault-free one. It fails if a role is duplicated,
//! lacks its owner tag or is left behind, or if the proxy saw more than the rate allows.
//!
//! `SOAK_ROLES` (N, default 2000), `SOAK_RATE` and `SOAK_BURST` (the operator's `--iam-rate` and
//! `--iam-burst`, default 50 and 50), `SOAK_CONCURRENCY` (`--concurrency`, default 4, the
//! operator's own), `SOAK_KILLS` (default 3) and `SOAK_SEED` (the kill moments; the time by
//! default, printed). Without `--bench` (as `cargo test --all-targets` runs it) only the settings
//! are checked. Starts local processes, network I/O on 127.0.0.1.

#[path = "../tests/support/moto.rs"]
mod moto;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{env, thread};

use anyhow::{Context, bail, ensure};
use futures::{StreamExt, TryStreamExt, stream};
use infra_operator::api::{AWSProvider, IAMRole};
use infra_operator::aws::is_write;
use infra_operator::iam::OWNER_TAG_KEY;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use local_stack::{Call, Fault, FaultProxy, OUTCOME_OK, Rule, Stack, StackOptions, busiest};
use serde_json::json;
use tokio::runtime::Runtime;

/// Namespace of every object.
const NS: &str = "default";
/// Namespace of the operator's leader Lease (the one its RBAC allows).
const LEASE_NS: &str = "infra-operator-system";
/// The provider of every role (the local example, pointed at the proxy).
const PROVIDER: &str = "localstack";
/// Drift interval of the provider: long, so that no periodic resync adds calls.
const QUIET_INTERVAL: &str = "1h";
/// IAM path of every role of the soak, so that moto can be listed for them alone.
const ROLE_PATH: &str = "/soak/";
const MANAGED_POLICY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
const INLINE_NAME: &str = "read-app-bucket";
const SERVICE_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const INLINE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::app-bucket/*"}]}"#;
/// The inline policy document of the update phase.
const INLINE_UPDATED: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::app-bucket","arn:aws:s3:::app-bucket/*"]}]}"#;
/// moto's account.
const ACCOUNT: &str = "123456789012";
/// One role in this many trusts the role created just before it.
const TRUSTING_ONE_IN: usize = 10;
/// One role in this many is updated.
const UPDATED_ONE_IN: usize = 5;
/// Kubernetes API requests in flight while objects are created, changed or deleted.
const API_PARALLELISM: usize = 16;
/// Upper bound of the waits that do not depend on N (only a hang should hit them).
const TIMEOUT: Duration = Duration::from_secs(300);
/// Time allowed per role for each phase, on top of [`TIMEOUT`].
const PER_ROLE: Duration = Duration::from_secs(2);
/// How often progress is read while a phase converges.
const POLL: Duration = Duration::from_millis(200);
/// The windows in which the calls at the proxy are counted against the rate.
const RATE_WINDOWS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(10)];
/// How long a role is missing after its creation, and a role just created is an invalid
/// principal, for the roles the consistency faults apply to.
const MISSING_WINDOW: Duration = Duration::from_secs(1);
const INVALID_PRINCIPAL_WINDOW: Duration = Duration::from_secs(3);
/// The consistency faults apply to one created role in this many.
const CONSISTENCY_ONE_IN: u32 = 10;

/// What to run.
#[derive(Debug)]
struct Settings {
    roles: usize,
    rate: f64,
    burst: u32,
    concurrency: usize,
    kills: usize,
    seed: u64,
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={text}: {e}")),
        Err(env::VarError::NotPresent) => Ok(default),
        Err(e) => bail!("{name}: {e}"),
    }
}

fn settings() -> anyhow::Result<Settings> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let settings = Settings {
        roles: env_number("SOAK_ROLES", 2000)?,
        rate: env_number("SOAK_RATE", 50.0)?,
        burst: env_number("SOAK_BURST", 50)?,
        concurrency: env_number("SOAK_CONCURRENCY", 4)?,
        kills: env_number("SOAK_KILLS", 3)?,
        seed: env_number("SOAK_SEED", now)?,
    };
    ensure!(
        settings.roles >= UPDATED_ONE_IN,
        "SOAK_ROLES must be at least {UPDATED_ONE_IN}"
    );
    ensure!(
        settings.rate.is_finite() && settings.rate > 0.0,
        "SOAK_RATE must be positive"
    );
    ensure!(settings.burst > 0, "SOAK_BURST must be at least 1");
    ensure!(
        settings.concurrency > 0,
        "SOAK_CONCURRENCY must be at least 1"
    );
    Ok(settings)
}

/// The faults of the faulted run: about one call in ten answered by the proxy.
fn fault_rules() -> Vec<Rule> {
    vec![
        Rule::new(Fault::Throttling).every(200),
        Rule::new(Fault::Status(500)).every(40),
        Rule::new(Fault::Status(503)).every(40),
        Rule::new(Fault::Reset).every(40),
        Rule::new(Fault::LostAnswer).every(100),
    ]
}

/// Outcomes the proxy records for what it injected (a `NoSuchEntity` may also be moto's own).
const INJECTED: [&str; 7] = [
    "Throttling",
    "500",
    "503",
    "Reset",
    "LostAnswer",
    "NoSuchEntity",
    "MalformedPolicyDocument",
];

/// A small deterministic generator for the kill moments (xorshift64*).
struct Random(u64);

impl Random {
    fn fraction(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (value >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The IAMRoles as the watch last saw them: name → the generation it is Ready at, if any.
#[derive(Default)]
struct Seen {
    roles: HashMap<String, Option<i64>>,
}

type Shared = Arc<Mutex<Seen>>;

fn lock(seen: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The generation an IAMRole is Ready at: its status is Ready and observed its generation.
fn ready_at(role: &IAMRole) -> Option<i64> {
    let status = role.status.as_ref()?;
    let generation = role.metadata.generation?;
    (status.ready && status.observed_generation == Some(generation)).then_some(generation)
}

/// Keeps `seen` up to date from a watch of the IAMRoles (relisting when the watch restarts).
async fn track(api: Api<IAMRole>, seen: Shared) {
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relisted: Option<HashMap<String, Option<i64>>> = None;
    while let Some(event) = events.next().await {
        let Ok(event) = event else { continue };
        match event {
            Event::Init => relisted = Some(HashMap::new()),
            Event::InitApply(role) => {
                if let Some(roles) = relisted.as_mut() {
                    roles.insert(role.name_any(), ready_at(&role));
                }
            }
            Event::InitDone => {
                if let Some(roles) = relisted.take() {
                    lock(&seen).roles = roles;
                }
            }
            Event::Apply(role) => {
                lock(&seen).roles.insert(role.name_any(), ready_at(&role));
            }
            Event::Delete(role) => {
                lock(&seen).roles.remove(&role.name_any());
            }
        }
    }
}

/// One of the two runs.
struct Run {
    name: &'static str,
    prefix: &'static str,
    faults: bool,
    kills: usize,
}

/// Figures of one phase.
#[derive(Clone, Default)]
struct Phase {
    time: Duration,
    calls: Vec<Call>,
}

/// Figures of one run.
struct Outcome {
    phases: [Phase; 3],
    kills: usize,
}

impl Outcome {
    fn calls(&self) -> impl Iterator<Item = &Call> {
        self.phases.iter().flat_map(|phase| &phase.calls)
    }
}

/// The stack, the proxy and the clients of a soak.
struct Soak {
    stack: Stack,
    proxy: FaultProxy,
    rt: Runtime,
    roles: Api<IAMRole>,
    raw: aws_sdk_iam::Client,
    seen: Shared,
    operator_args: Vec<String>,
    settings: Settings,
    random: Random,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn role_object(prefix: &str, index: usize) -> anyhow::Result<IAMRole> {
    let name = role_name(prefix, index);
    let trust = if index % TRUSTING_ONE_IN == TRUSTING_ONE_IN - 1 {
        let trusted = role_name(prefix, index - 1);
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:role{ROLE_PATH}{trusted}"}},"Action":"sts:AssumeRole"}}]}}"#
        )
    } else {
        SERVICE_TRUST.to_owned()
    };
    Ok(serde_json::from_value(json!({
        "apiVersion": "aws-infra-operator.runner.codes/v1alpha1",
        "kind": "IAMRole",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "providerRef": {"name": PROVIDER},
            "roleName": name,
            "path": ROLE_PATH,
            "description": "Soak role",
            "assumeRolePolicyDocument": trust,
            "managedPolicyArns": [MANAGED_POLICY],
            "inlinePolicies": [{"policyName": INLINE_NAME, "policyDocument": INLINE}],
            "tags": {"team": "soak"},
        },
    }))?)
}

fn role_name(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index:05}")
}

impl Soak {
    fn start(settings: Settings) -> anyhow::Result<Soak> {
        let operator_args: Vec<String> = [
            "run",
            "--lease-namespace",
            LEASE_NS,
            "--identity",
            "soak",
            "--concurrency",
            &settings.concurrency.to_string(),
            "--iam-rate",
            &settings.rate.to_string(),
            "--iam-burst",
            &settings.burst.to_string(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let stack = Stack::start(StackOptions {
            repo_root: repo(),
            operator_bin: PathBuf::from(env!("CARGO_BIN_EXE_infra-operator")),
            operator_args: Some(operator_args.clone()),
            moto: true,
            dir: None,
        })?;
        let moto = stack.moto_url().context("moto runs")?;
        let moto_port = moto
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .context("moto's port")?;
        let proxy = FaultProxy::start(moto_port)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let client = rt.block_on(async {
            let kubeconfig = Kubeconfig::read_from(stack.kubeconfig())?;
            let config =
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await?;
            anyhow::Ok(Client::try_from(config)?)
        })?;
        let roles: Api<IAMRole> = Api::namespaced(client.clone(), NS);
        let seen = Shared::default();
        rt.spawn(track(roles.clone(), Arc::clone(&seen)));
        let random = Random(settings.seed.max(1));
        let soak = Soak {
            raw: moto::raw_iam(&moto),
            stack,
            proxy,
            rt,
            roles,
            seen,
            operator_args,
            settings,
            random,
        };
        soak.apply_provider(&Api::namespaced(client, NS))?;
        Ok(soak)
    }

    /// The local example provider, pointed at the proxy, with a long drift interval.
    fn apply_provider(&self, providers: &Api<AWSProvider>) -> anyhow::Result<()> {
        let example =
            std::fs::read_to_string(repo().join("manifests/examples/awsprovider-localstack.yaml"))?;
        let manifest = format!(
            "{}\n  endpoint: {}\n  driftDetection:\n    interval: {QUIET_INTERVAL}\n",
            example.trim_end(),
            self.proxy.url()
        );
        let out = self
            .stack
            .kubectl_with_input(&["apply", "-f", "-"], &manifest)?;
        ensure!(
            out.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let provider = self.rt.block_on(providers.get(PROVIDER))?;
            if provider.status.is_some_and(|s| s.ready) {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "the provider is not Ready");
            thread::sleep(POLL);
        }
    }

    /// Runs the three phases of `run` and checks IAM after each.
    fn run(&mut self, run: &Run) -> anyhow::Result<Outcome> {
        let n = self.settings.roles;
        if run.faults {
            self.proxy.set_rules(fault_rules());
            self.proxy.consistency_one_role_in(CONSISTENCY_ONE_IN);
            self.proxy.missing_after_create(Some(MISSING_WINDOW));
            self.proxy
                .invalid_new_principals(Some(INVALID_PRINCIPAL_WINDOW));
        } else {
            self.proxy.set_rules([]);
            self.proxy.missing_after_create(None);
            self.proxy.invalid_new_principals(None);
        }
        let kill_at: Vec<Option<f64>> = (0..3)
            .map(|phase| {
                let fraction = 0.2 + 0.6 * self.random.fraction();
                (phase < run.kills).then_some(fraction)
            })
            .collect();
        let mut kills = 0;
        let mut phases: [Phase; 3] = Default::default();
        self.proxy.clear_calls();

        // 1. Creation.
        let started = Instant::now();
        let objects = (0..n)
            .map(|i| role_object(run.prefix, i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // A handle of its own, so that the phases can borrow it while `self` changes.
        let api = self.roles.clone();
        let roles = &api;
        self.in_parallel(objects, |role| async move {
            roles
                .create(&PostParams::default(), &role)
                .await
                .context("create an IAMRole")
        })?;
        let expected: HashMap<String, i64> =
            (0..n).map(|i| (role_name(run.prefix, i), 1)).collect();
        kills += self.converge("creation", kill_at[0], |seen| ready_share(seen, &expected))?;
        phases[0] = Phase {
            time: started.elapsed(),
            calls: self.proxy.take_calls(),
        };
        self.check_created(run.prefix, n)?;
        // A create whose answer was lost was done all the same.
        let creates = phases[0]
            .calls
            .iter()
            .filter(|c| c.action == "CreateRole")
            .filter(|c| c.outcome == OUTCOME_OK || c.outcome == "LostAnswer")
            .count();
        ensure!(creates == n, "{creates} roles created for {n} IAMRoles");

        // 2. A fifth updated.
        let started = Instant::now();
        let names: Vec<String> = (0..n)
            .filter(|i| i % UPDATED_ONE_IN == 0)
            .map(|i| role_name(run.prefix, i))
            .collect();
        let patch = json!({"spec": {"inlinePolicies": [
            {"policyName": INLINE_NAME, "policyDocument": INLINE_UPDATED}
        ]}});
        let patch = &patch;
        let updated = self.in_parallel(names, |name| async move {
            let role = roles
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .context("update an IAMRole")?;
            anyhow::Ok((name, role.metadata.generation.unwrap_or_default()))
        })?;
        let expected: HashMap<String, i64> = updated.into_iter().collect();
        kills += self.converge("update", kill_at[1], |seen| ready_share(seen, &expected))?;
        phases[1] = Phase {
            time: started.elapsed(),
            calls: self.proxy.take_calls(),
        };

        // 3. Deletion.
        let started = Instant::now();
        let names: Vec<String> = (0..n).map(|i| role_name(run.prefix, i)).collect();
        self.in_parallel(names, |name| async move {
            roles
                .delete(&name, &DeleteParams::default())
                .await
                .context("delete an IAMRole")
                .map(drop)
        })?;
        let prefix = run.prefix;
        kills += self.converge("deletion", kill_at[2], |seen| {
            let left = seen.roles.keys().filter(|k| k.starts_with(prefix)).count();
            1.0 - left as f64 / n as f64
        })?;
        phases[2] = Phase {
            time: started.elapsed(),
            calls: self.proxy.take_calls(),
        };
        let left = self.soak_roles()?;
        ensure!(
            left.is_empty(),
            "{} roles left in IAM after deletion: {:?}",
            left.len(),
            left.iter().take(5).collect::<Vec<_>>()
        );
        Ok(Outcome { phases, kills })
    }

    /// Waits until `progress` (a share of the phase done, from what the watch saw) reaches 1, the
    /// operator SIGKILLed and restarted once when it passes `kill_at`. Returns the kills made.
    fn converge(
        &mut self,
        phase: &str,
        kill_at: Option<f64>,
        progress: impl Fn(&Seen) -> f64,
    ) -> anyhow::Result<usize> {
        let deadline = Instant::now() + TIMEOUT + PER_ROLE * self.settings.roles as u32;
        let mut kill_at = kill_at;
        let mut kills = 0;
        loop {
            let done = progress(&lock(&self.seen));
            if done >= 1.0 {
                return Ok(kills);
            }
            if let Some(at) = kill_at
                && done >= at
            {
                eprintln!("{phase}: operator SIGKILLed at {:.0} % done", done * 100.0);
                self.stack
                    .operator()
                    .context("the operator runs")?
                    .signal(libc::SIGKILL);
                self.stack
                    .restart_operator_with(self.operator_args.clone())?;
                kill_at = None;
                kills += 1;
            }
            if Instant::now() > deadline {
                bail!(
                    "{phase}: {:.1} % done after the deadline\n{}",
                    done * 100.0,
                    self.stack.diagnostics(40)
                );
            }
            thread::sleep(POLL);
        }
    }

    /// `call` on each of `items`, [`API_PARALLELISM`] at once; the results in any order.
    fn in_parallel<I, T, F, Fut>(&self, items: Vec<I>, call: F) -> anyhow::Result<Vec<T>>
    where
        F: Fn(I) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        self.rt.block_on(
            stream::iter(items)
                .map(call)
                .buffer_unordered(API_PARALLELISM)
                .try_collect(),
        )
    }

    /// Every role of the soak in moto (read directly, not through the proxy), with its tags.
    fn soak_roles(&self) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
        let names = self.rt.block_on(async {
            let mut names = Vec::new();
            let mut pages = self
                .raw
                .list_roles()
                .path_prefix(ROLE_PATH)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                names.extend(page?.roles().iter().map(|r| r.role_name().to_owned()));
            }
            anyhow::Ok(names)
        })?;
        let raw = &self.raw;
        let tagged = self.in_parallel(names, |name| async move {
            let tags = raw.list_role_tags().role_name(&name).send().await?;
            let tags = tags
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect();
            anyhow::Ok((name, tags))
        })?;
        Ok(tagged.into_iter().collect())
    }

    /// After creation: exactly the `n` roles of `prefix`, each tagged with its owner.
    fn check_created(&self, prefix: &str, n: usize) -> anyhow::Result<()> {
        let roles = self.soak_roles()?;
        ensure!(
            roles.len() == n,
            "{} roles in IAM for {n} IAMRoles",
            roles.len()
        );
        for (name, tags) in &roles {
            ensure!(name.starts_with(prefix), "unexpected role {name}");
            let owner = format!("{NS}/{name}");
            ensure!(
                tags.get(OWNER_TAG_KEY) == Some(&owner),
                "role {name} has owner tag {:?}",
                tags.get(OWNER_TAG_KEY)
            );
        }
        Ok(())
    }
}

/// The share of `expected` Ready at (at least) the expected generation.
fn ready_share(seen: &Seen, expected: &HashMap<String, i64>) -> f64 {
    let ready = expected
        .iter()
        .filter(|(name, generation)| {
            seen.roles
                .get(*name)
                .is_some_and(|at| at.is_some_and(|at| at >= **generation))
        })
        .count();
    ready as f64 / expected.len().max(1) as f64
}

/// Writes and reads among `calls`, every attempt counted whatever its outcome.
fn writes_reads<'c>(calls: impl Iterator<Item = &'c Call>) -> (usize, usize) {
    calls.fold((0, 0), |(w, r), call| {
        if is_write(&call.action) {
            (w + 1, r)
        } else {
            (w, r + 1)
        }
    })
}

/// The calls by outcome, as `outcome count, …`.
fn outcomes<'c>(calls: impl Iterator<Item = &'c Call>) -> String {
    let mut counts = BTreeMap::<&str, usize>::new();
    for call in calls {
        *counts.entry(call.outcome.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(outcome, n)| format!("{outcome} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// What the configured rate allows within `window`.
fn allowed(settings: &Settings, window: Duration) -> f64 {
    settings.rate * window.as_secs_f64() + f64::from(settings.burst)
}

/// Prints the figures of both runs; returns the rate windows that were exceeded.
fn report(settings: &Settings, runs: &[(&Run, &Outcome)]) -> Vec<String> {
    let n = settings.roles as f64;
    let mut exceeded = Vec::new();
    println!(
        "\nN = {} IAMRoles, --iam-rate {} --iam-burst {}, --concurrency {}, seed {}\n",
        settings.roles, settings.rate, settings.burst, settings.concurrency, settings.seed
    );
    println!(
        "| measure | {} |",
        runs.iter()
            .map(|(r, _)| r.name)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(runs.len()));
    let row = |label: &str, value: &dyn Fn(&Outcome) -> String| {
        let values: Vec<String> = runs.iter().map(|(_, o)| value(o)).collect();
        println!("| {label} | {} |", values.join(" | "));
    };
    let phase_names = ["creation", "update of a fifth", "deletion"];
    for (i, name) in phase_names.iter().enumerate() {
        row(&format!("{name}: time to converge"), &|o: &Outcome| {
            seconds(o.phases[i].time)
        });
    }
    row("total time", &|o: &Outcome| {
        seconds(o.phases.iter().map(|p| p.time).sum())
    });
    row("operator SIGKILLs", &|o: &Outcome| o.kills.to_string());
    for (i, name) in phase_names.iter().enumerate() {
        row(
            &format!("{name}: IAM writes / reads per role"),
            &|o: &Outcome| {
                let (w, r) = writes_reads(o.phases[i].calls.iter());
                format!("{:.2} / {:.2}", w as f64 / n, r as f64 / n)
            },
        );
    }
    row("all phases: IAM writes / reads per role", &|o: &Outcome| {
        let (w, r) = writes_reads(o.calls());
        format!("{:.2} / {:.2}", w as f64 / n, r as f64 / n)
    });
    row("calls answered by a fault", &|o: &Outcome| {
        let total = o.calls().count();
        let faulted = o
            .calls()
            .filter(|c| INJECTED.contains(&c.outcome.as_str()))
            .count();
        format!(
            "{faulted} of {total} ({:.1} %)",
            faulted as f64 * 100.0 / total.max(1) as f64
        )
    });
    for window in RATE_WINDOWS {
        row(
            &format!("busiest {window:?} at the proxy / allowed"),
            &|o: &Outcome| {
                let seen = busiest(o.calls(), window);
                format!("{seen} / {:.0}", allowed(settings, window))
            },
        );
    }
    for (run, outcome) in runs {
        for window in RATE_WINDOWS {
            let seen = busiest(outcome.calls(), window);
            // Retries inside a call are paid by the calls after them: at most one unpaid
            // retry per concurrent reconcile, and three calls of slack for the scheduling.
            let limit = allowed(settings, window) + settings.concurrency as f64 + 3.0;
            if seen as f64 > limit {
                exceeded.push(format!("{}: {seen} calls within {window:?}", run.name));
            }
        }
        println!("\n{} outcomes: {}", run.name, outcomes(outcome.calls()));
    }
    if let [(_, calm), (_, rough)] = runs {
        let (calm_writes, _) = writes_reads(calm.calls());
        let (rough_writes, _) = writes_reads(rough.calls());
        let calm_time: Duration = calm.phases.iter().map(|p| p.time).sum();
        let rough_time: Duration = rough.phases.iter().map(|p| p.time).sum();
        println!(
            "\nfaulted / fault-free: IAM writes per role {:.2}×, time to converge {:.2}×",
            rough_writes as f64 / calm_writes.max(1) as f64,
            rough_time.as_secs_f64() / calm_time.as_secs_f64()
        );
    }
    exceeded
}

fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    if !env::args().any(|a| a == "--bench") {
        println!("iam_soak: {settings:?}; run with `cargo bench --bench iam_soak`");
        return Ok(());
    }
    let kills = settings.kills;
    let mut soak = Soak::start(settings)?;
    let calm = Run {
        name: "fault-free",
        prefix: "calm",
        faults: false,
        kills: 0,
    };
    let rough = Run {
        name: "faulted",
        prefix: "rough",
        faults: true,
        kills,
    };
    let calm_outcome = soak.run(&calm)?;
    let rough_outcome = soak.run(&rough)?;
    let exceeded = report(
        &soak.settings,
        &[(&calm, &calm_outcome), (&rough, &rough_outcome)],
    );
    ensure!(
        exceeded.is_empty(),
        "the operator exceeded its rate at the proxy: {exceeded:?}"
    );
    Ok(())
}
