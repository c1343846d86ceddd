//! The reconciler at scale, and its memory. On a local stack (etcd, kube-apiserver, moto as IAM/STS
//! and the operator's release binary running `run`), this harness:
//!
//! 1. creates N IAMRoles at once (one managed policy and one small inline policy each, through the
//!    Kubernetes API and so through the webhooks) and times them until every one is Ready, counting
//!    the IAM calls the operator made (`infra_operator_aws_api_calls_total` of its `/metrics`), writes and reads
//!    (moto's IAM backend is warmed up by one untimed call first);
//! 2. times the floor: the crate's own AWS layer making only CreateRole (with tags),
//!    AttachRolePolicy and PutRolePolicy for N other roles, as many at once as the controller, once
//!    before step 1 and once after it (the mean is the floor, so that the order favours neither);
//! 3. forces a resync of the N unchanged roles (a change of the provider's spec requeues every role
//!    of the provider) and counts its IAM calls;
//! 4. reads the operator's VmRSS idle, with the N roles, and once M more IAMRoles (referencing a
//!    provider that does not exist, so they cost no AWS call) are in its cache.
//!
//! Prints Markdown tables. `SCALE_ROLES` (N, default 1000), `SCALE_CACHED` (M, default 4000: with
//! the N Ready roles, 5000 in the cache) and `SCALE_CONCURRENCY` (the operator's `--concurrency` and
//! the floor's, default 4, the operator's own default). Without `--bench` (as
//! `cargo test --all-targets` runs it) only the settings are checked. Starts local processes, network
//! I/O on 127.0.0.1, reads `/proc/<pid>/status`.

#[path = "../tests/support/moto.rs"]
mod moto;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use std::{env, thread};

use anyhow::{Context, bail, ensure};
use futures::{StreamExt, TryStreamExt, stream};
use infra_operator::api::{AWSProvider, IAMRole};
use infra_operator::aws::{AwsClients, IamApi, is_write};
use infra_operator::iam::OWNER_TAG_KEY;
use infra_operator::iam::{Change, CreateRole};
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use local_stack::{Stack, StackOptions};
use serde_json::json;
use tokio::runtime::Runtime;

/// Namespace of every object.
const NS: &str = "default";
/// Namespace of the operator's leader Lease (the one its RBAC allows).
const LEASE_NS: &str = "infra-operator-system";
/// The provider of the N roles.
const PROVIDER: &str = "localstack";
/// The provider the M cached roles reference; never created.
const ABSENT_PROVIDER: &str = "absent-provider";
/// Drift interval of the provider while roles are created (long, so no resync interferes).
const QUIET_INTERVAL: &str = "1h";
/// The interval the provider is changed to, which requeues every role of it at once.
const RESYNC_INTERVAL: &str = "2h";
/// Managed policy of every role.
const MANAGED_POLICY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
/// Name of the inline policy of every role.
const INLINE_NAME: &str = "read-app-bucket";
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const INLINE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::app-bucket/*"}]}"#;
/// Kubernetes API requests in flight while objects are created.
const CREATE_PARALLELISM: usize = 16;
/// Upper bound of the waits that do not depend on N (only a hang should hit them).
const TIMEOUT: Duration = Duration::from_secs(180);
/// Time allowed per role for creation and resync waits, on top of [`TIMEOUT`].
const PER_ROLE: Duration = Duration::from_secs(1);
/// Pause before each memory reading, so that work just triggered settles.
const SETTLE: Duration = Duration::from_secs(5);

/// What to run.
struct Settings {
    roles: usize,
    cached: usize,
    concurrency: usize,
}

fn env_count(name: &str, default: usize) -> anyhow::Result<usize> {
    match env::var(name) {
        Ok(text) => {
            let value: usize = text
                .trim()
                .parse()
                .with_context(|| format!("{name}={text}: not a count"))?;
            ensure!(value > 0, "{name} must be at least 1");
            Ok(value)
        }
        Err(env::VarError::NotPresent) => Ok(default),
        Err(e) => bail!("{name}: {e}"),
    }
}

fn settings() -> anyhow::Result<Settings> {
    Ok(Settings {
        roles: env_count("SCALE_ROLES", 1000)?,
        cached: env_count("SCALE_CACHED", 4000)?,
        concurrency: env_count("SCALE_CONCURRENCY", 4)?,
    })
}

/// IAM calls by operation, from the operator's `/metrics` (every result).
type Calls = BTreeMap<String, f64>;

fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("no HTTP body")?;
    ensure!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    Ok(body.to_owned())
}

/// The samples of `metric`: labels and value.
fn samples(text: &str, metric: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(metric)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            let labels = labels
                .split(',')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect();
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// The operator's counters: IAM calls by operation and IAMRole reconciles.
struct Counters {
    calls: Calls,
    role_reconciles: f64,
    /// Time spent in IAMRole reconciles, summed over all of them.
    role_reconcile_seconds: f64,
}

fn counters(stack: &Stack) -> anyhow::Result<Counters> {
    let port = stack.operator().context("the operator runs")?.admin_port;
    let text = http_get(port, "/metrics")?;
    let mut calls = Calls::new();
    for (labels, value) in samples(&text, "infra_operator_aws_api_calls_total") {
        if let Some(op) = labels.get("operation") {
            *calls.entry(op.clone()).or_default() += value;
        }
    }
    let of_roles = |metric: &str| -> f64 {
        samples(&text, metric)
            .into_iter()
            .filter(|(labels, _)| labels.get("kind").map(String::as_str) == Some("IAMRole"))
            .map(|(_, value)| value)
            .sum()
    };
    Ok(Counters {
        calls,
        role_reconciles: of_roles("infra_operator_reconciles_total"),
        role_reconcile_seconds: of_roles("reconcile_duration_seconds_sum"),
    })
}

/// IAM calls made between two readings, by operation (STS excluded: it is the provider's check).
fn iam_delta(before: &Counters, after: &Counters) -> Calls {
    after
        .calls
        .iter()
        .filter(|(op, _)| op.as_str() != "GetCallerIdentity" && !op.starts_with("AssumeRole"))
        .map(|(op, n)| (op.clone(), n - before.calls.get(op).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .collect()
}

/// Writes and reads of a delta.
fn split(calls: &Calls) -> (f64, f64) {
    calls.iter().fold((0.0, 0.0), |(w, r), (op, n)| {
        if is_write(op) { (w + n, r) } else { (w, r + n) }
    })
}

fn breakdown(calls: &Calls, per: usize) -> String {
    calls
        .iter()
        .map(|(op, n)| format!("{op} {:.2}", n / per as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

/// VmRSS of a process, in MiB.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .context("no VmRSS")?
        .parse()?;
    Ok(kib / 1024.0)
}

fn poll<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<Result<T, String>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match check()? {
            Ok(value) => return Ok(value),
            Err(complaint) if Instant::now() >= deadline => {
                bail!("timed out after {timeout:?} waiting for {what}: {complaint}")
            }
            Err(_) => thread::sleep(Duration::from_secs(1)),
        }
    }
}

fn role_object(name: &str, role_name: &str, provider: &str) -> anyhow::Result<IAMRole> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "aws-infra-operator.runner.codes/v1alpha1",
        "kind": "IAMRole",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "providerRef": {"name": provider},
            "roleName": role_name,
            "description": "Scale benchmark role",
            "assumeRolePolicyDocument": TRUST,
            "managedPolicyArns": [MANAGED_POLICY],
            "inlinePolicies": [{"policyName": INLINE_NAME, "policyDocument": INLINE}],
            "tags": {"team": "bench"},
        },
    }))?)
}

/// Creates `count` IAMRoles named `{prefix}-{i}` through the API, several requests at once.
async fn create_roles(
    api: &Api<IAMRole>,
    prefix: &str,
    count: usize,
    provider: &str,
) -> anyhow::Result<()> {
    let objects = (0..count)
        .map(|i| {
            let name = format!("{prefix}-{i:05}");
            role_object(&name, &name, provider)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    stream::iter(objects)
        .map(|role| async move {
            api.create(&PostParams::default(), &role)
                .await
                .context("create an IAMRole")
        })
        .buffer_unordered(CREATE_PARALLELISM)
        .try_collect::<Vec<_>>()
        .await
        .map(drop)
}

/// Watches the IAMRoles whose name starts with `prefix` until `count` of them are Ready at their
/// generation, and returns when that was. A watch sees each status change as it happens, without
/// loading the API server with repeated lists.
async fn all_ready(api: Api<IAMRole>, prefix: &str, count: usize) -> anyhow::Result<Instant> {
    let mut ready = HashSet::new();
    let mut roles = watcher(api, watcher::Config::default())
        .applied_objects()
        .boxed();
    while let Some(role) = roles.try_next().await? {
        let name = role.name_any();
        if !name.starts_with(prefix) {
            continue;
        }
        let at_generation = role.status.as_ref().is_some_and(|s| {
            s.ready
                && s.observed_generation.is_some()
                && s.observed_generation == role.metadata.generation
        });
        if at_generation {
            ready.insert(name);
        } else {
            ready.remove(&name);
        }
        if ready.len() == count {
            return Ok(Instant::now());
        }
    }
    bail!("the IAMRole watch ended")
}

/// The floor: CreateRole (with tags), AttachRolePolicy and PutRolePolicy for `count` roles named
/// `<prefix>-<i>`, `concurrency` roles at once. Returns the elapsed time.
async fn floor(
    iam: &IamApi,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    stream::iter(0..count)
        .map(|i| async move {
            let name = format!("{prefix}-{i:05}");
            let tags = BTreeMap::from([
                ("team".to_owned(), "bench".to_owned()),
                ("managed-by".to_owned(), "infra-operator".to_owned()),
                ("environment".to_owned(), "test".to_owned()),
                (OWNER_TAG_KEY.to_owned(), format!("{NS}/{name}")),
            ]);
            let role = CreateRole {
                name: name.clone(),
                path: "/".to_owned(),
                trust_policy: TRUST.to_owned(),
                description: Some("Scale benchmark role".to_owned()),
                max_session_duration: 3600,
                permissions_boundary: None,
                tags,
            };
            iam.create_role(&role).await?;
            let attach = Change::AttachPolicy {
                arn: MANAGED_POLICY.to_owned(),
            };
            iam.apply(&name, &attach).await?;
            let put = Change::PutInlinePolicy {
                name: INLINE_NAME.to_owned(),
                document: INLINE.to_owned(),
            };
            iam.apply(&name, &put).await?;
            anyhow::Ok(())
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(started.elapsed())
}

fn kube_client(rt: &Runtime, stack: &Stack) -> anyhow::Result<Client> {
    rt.block_on(async {
        let kubeconfig = Kubeconfig::read_from(stack.kubeconfig())?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    })
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn apply_provider(stack: &Stack, moto: &str) -> anyhow::Result<()> {
    let example =
        std::fs::read_to_string(repo().join("manifests/examples/awsprovider-localstack.yaml"))?;
    let manifest = format!(
        "{}\n  endpoint: {moto}\n  driftDetection:\n    interval: {QUIET_INTERVAL}\n",
        example.trim_end()
    );
    let out = stack.kubectl_with_input(&["apply", "-f", "-"], &manifest)?;
    ensure!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn run(settings: &Settings) -> anyhow::Result<()> {
    let n = settings.roles;
    let m = settings.cached;
    let c = settings.concurrency;
    let stack = Stack::start(StackOptions {
        repo_root: repo(),
        operator_bin: PathBuf::from(env!("CARGO_BIN_EXE_infra-operator")),
        operator_args: Some(
            [
                "run",
                "--lease-namespace",
                LEASE_NS,
                "--identity",
                "scale-bench",
                "--concurrency",
                &c.to_string(),
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        ),
        moto: true,
        dir: None,
    })?;
    let pid = stack.operator().context("the operator runs")?.pid();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = kube_client(&rt, &stack)?;
    let roles: Api<IAMRole> = Api::namespaced(client.clone(), NS);
    let providers: Api<AWSProvider> = Api::namespaced(client, NS);
    let moto = stack.moto_url().context("moto runs")?;

    thread::sleep(SETTLE);
    let rss_idle = rss_mib(pid)?;

    // moto builds its IAM backend (loading every AWS managed policy) on the first IAM call: one
    // untimed call first, so that neither measurement below pays for it.
    let aws = moto::moto_settings(&moto);
    let iam = rt.block_on(AwsClients::new(&aws, None)).iam();
    let warm_up = Instant::now();
    rt.block_on(iam.observe_role("warm-up"))?;
    let warm_up = warm_up.elapsed();

    // 2a. The floor once before the controller's run and once after (step 2b), so that neither
    // side has the advantage of the order: moto's speed changes as it fills.
    let floor_before = rt.block_on(floor(&iam, "floor-before", n, c))?;

    // 1. N roles through the controller.
    apply_provider(&stack, &moto)?;
    poll("the provider Ready", TIMEOUT, || {
        let provider = rt.block_on(providers.get(PROVIDER))?;
        Ok(match provider.status {
            Some(s) if s.ready => Ok(()),
            other => Err(format!("{other:?}")),
        })
    })?;
    let before = counters(&stack)?;
    let wait = TIMEOUT + PER_ROLE * n as u32;
    let watched = roles.clone();
    let ready =
        rt.spawn(async move { tokio::time::timeout(wait, all_ready(watched, "scale-", n)).await });
    let started = Instant::now();
    rt.block_on(create_roles(&roles, "scale", n, PROVIDER))?;
    let created = started.elapsed();
    let all_ready_at = rt
        .block_on(ready)?
        .map_err(|_| anyhow::anyhow!("not every role Ready within {wait:?}"))??;
    let converged = all_ready_at.duration_since(started);
    let after_create = counters(&stack)?;
    let create_calls = iam_delta(&before, &after_create);
    let (create_writes, create_reads) = split(&create_calls);
    let create_reconciles = after_create.role_reconciles - before.role_reconciles;
    let create_reconcile_seconds =
        after_create.role_reconcile_seconds - before.role_reconcile_seconds;

    // 2b. The floor again, same concurrency, same moto.
    let floor_after = rt.block_on(floor(&iam, "floor-after", n, c))?;
    let floor_time = (floor_before + floor_after) / 2;

    thread::sleep(SETTLE);
    let rss_roles = rss_mib(pid)?;

    // 3. Resync of the N unchanged roles: a provider spec change requeues each of its roles.
    let before = counters(&stack)?;
    let started = Instant::now();
    let patch = json!({"spec": {"driftDetection": {"interval": RESYNC_INTERVAL}}});
    rt.block_on(providers.patch(PROVIDER, &PatchParams::default(), &Patch::Merge(&patch)))?;
    let after_resync = poll("a resync of every role", wait, || {
        let now = counters(&stack)?;
        let done = now.role_reconciles - before.role_reconciles;
        Ok(if done >= n as f64 {
            Ok(now)
        } else {
            Err(format!("{done} reconciles of {n} roles"))
        })
    })?;
    let resync_time = started.elapsed();
    let resync_calls = iam_delta(&before, &after_resync);
    let (resync_writes, resync_reads) = split(&resync_calls);

    // 4. M more roles in the operator's cache, referencing a provider that does not exist.
    let before = counters(&stack)?;
    let started = Instant::now();
    rt.block_on(create_roles(&roles, "cached", m, ABSENT_PROVIDER))?;
    poll(
        "every cached role reconciled once",
        TIMEOUT + PER_ROLE * m as u32,
        || {
            let done = counters(&stack)?.role_reconciles - before.role_reconciles;
            Ok(if done >= m as f64 {
                Ok(())
            } else {
                Err(format!("{done} reconciles of {m} roles"))
            })
        },
    )?;
    let cached_time = started.elapsed();
    thread::sleep(SETTLE);
    let rss_cached = rss_mib(pid)?;
    let cached_calls = iam_delta(&before, &counters(&stack)?);

    let ratio = converged.as_secs_f64() / floor_time.as_secs_f64();
    println!("\nN = {n} IAMRoles, M = {m} cached IAMRoles, concurrency {c}\n");
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| create {n} IAMRoles through the API | {} |",
        seconds(created)
    );
    println!(
        "| all {n} Ready (from the first create) | {} ({:.1} roles/s) |",
        seconds(converged),
        n as f64 / converged.as_secs_f64()
    );
    println!(
        "| floor: CreateRole + AttachRolePolicy + PutRolePolicy × {n}, {c} at once (mean of before / after) | {} ({} / {}; {:.1} roles/s) |",
        seconds(floor_time),
        seconds(floor_before),
        seconds(floor_after),
        n as f64 / floor_time.as_secs_f64()
    );
    println!("| controller / floor | {ratio:.2}× |");
    println!(
        "| moto's first IAM call (untimed warm-up, before both) | {} |",
        seconds(warm_up)
    );
    println!(
        "| IAMRole reconciles per role, creation | {:.2} |",
        create_reconciles / n as f64
    );
    println!(
        "| mean IAMRole reconcile, creation / floor's time per role ({c} at once) | {:.1} / {:.1} ms |",
        create_reconcile_seconds * 1000.0 / create_reconciles.max(1.0),
        floor_time.as_secs_f64() * 1000.0 * c as f64 / n as f64
    );
    println!(
        "| IAM calls per role, creation: writes / reads | {:.2} / {:.2} |",
        create_writes / n as f64,
        create_reads / n as f64
    );
    println!(
        "| resync of {n} unchanged roles | {} |",
        seconds(resync_time)
    );
    println!(
        "| IAM calls per role, resync: writes / reads | {:.2} / {:.2} |",
        resync_writes / n as f64,
        resync_reads / n as f64
    );
    println!(
        "| IAM calls for the {m} roles of a missing provider | {} |",
        split(&cached_calls).0 + split(&cached_calls).1
    );
    println!(
        "| {m} more IAMRoles created and reconciled once | {} |",
        seconds(cached_time)
    );
    println!("| operator VmRSS idle (before any role) | {rss_idle:.1} MiB |");
    println!("| operator VmRSS with {n} Ready roles | {rss_roles:.1} MiB |");
    println!("| operator VmRSS with {n} + {m} roles cached | {rss_cached:.1} MiB |");
    println!(
        "| per cached role | {:.1} KiB |",
        (rss_cached - rss_roles) * 1024.0 / m as f64
    );
    println!("\ncreation calls per role: {}", breakdown(&create_calls, n));
    println!("resync calls per role: {}", breakdown(&resync_calls, n));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    if !env::args().any(|a| a == "--bench") {
        println!(
            "reconcile_scale: N={} M={} concurrency={}; run with `cargo bench --bench reconcile_scale`",
            settings.roles, settings.cached, settings.concurrency
        );
        return Ok(());
    }
    run(&settings)
}
