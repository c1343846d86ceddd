//! The hostile mix of `webhook_load`: seed reviews open loop at [`SEED_RATE`] req/s and a probe of
//! the admin server's `/healthz` every [`PROBE_INTERVAL`], first alone, then with the hostile part
//! beside them: the worst reviews open loop at [`WORST_RATE`] req/s (10 % of all requests) and
//! [`HELD`] connections held open (half TLS-connected and silent, half sending a body one byte at a
//! time, each opened again [`REOPEN_PAUSE`] after the server closes it). The hostile part runs on
//! a runtime of its own whose threads have the lowest CPU priority ([`Attacker`]): on the
//! loader's CPU its TLS handshakes and reconnections would otherwise delay the seed reviews' loader
//! and be counted as the webhook's latency, while a real attacker runs on a machine of its own.
//! Reports the seed reviews' latency, the probes' latency, what the worst reviews got, the
//! webhook's CPU while the load runs (which the host's noise moves far less than latency), the time
//! the hypervisor stole meanwhile (what moves latency most on a shared host) and the process's peak
//! resident memory (`VmHWM`, reset before each phase through `/proc/self/clear_refs`). Network I/O
//! on 127.0.0.1 only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use std::{fs, thread};

use anyhow::{Context, ensure};
use infra_operator::admission::MAX_BODY_BYTES;
use infra_operator::serve::Shutdown;
use infra_operator::serve::low_priority::lower_own_priority;
use infra_operator::serve::memory::release_free_memory;
use rustls::ClientConfig;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::runtime::{Handle, Runtime};

use super::noise::CpuCounters;
use super::support::hostile::{many_invalid_statements, tls_connect, until_closed};
use super::support::{ec2_role_spec, iamrole, review};
use super::{
    Clients, CpuClock, Lane, Prepared, Source, Tally, Template, Transport, WARM_UP_REQUESTS,
    Workload, cpu_nanos, millis, open_loop, percentile, round_robin,
};

/// Seed reviews per second (the other 10 % of 2,000 req/s are the worst reviews).
const SEED_RATE: u32 = 1800;
/// Worst reviews per second.
const WORST_RATE: u32 = 200;
/// Keep-alive connections carrying the seed reviews.
const SEED_CONNECTIONS: usize = 8;
/// Keep-alive connections carrying the worst reviews (opened again after the server closes one).
const WORST_CONNECTIONS: usize = 16;
/// Connections held open during the hostile phase, half silent and half sending a slow body.
const HELD: usize = 500;
/// How long to wait for the held connections to be accepted before the load starts.
const HOLD_SETTLE: Duration = Duration::from_secs(3);
/// Pause between two bytes of a slow body.
const DRIP_INTERVAL: Duration = Duration::from_millis(100);
/// `Content-Length` a slow body announces (it never arrives in full): a small body, which waits for
/// body memory instead of being refused at once.
const DRIP_LENGTH: usize = 32 * 1024;
/// Pause before a held connection closed by the server is opened again (a hold, not a flood of
/// handshakes).
const REOPEN_PAUSE: Duration = Duration::from_secs(1);
/// Interval of the admin probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Longest wait for one probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// `k` of the wildcard action `"*" + "?"*k + "x" + "*"*k`.
const WILDCARD_K: usize = 10_000;
/// Depth of the nested array in a condition value (below serde_json's recursion limit of 128).
const CONDITION_DEPTH: usize = 120;
/// How long the smoke run holds its two connections.
const SMOKE_HOLD: Duration = Duration::from_millis(300);
/// Threads of the hostile part's runtime.
const ATTACKER_THREADS: usize = 2;
/// Name of the hostile part's runtime threads.
const ATTACKER_THREAD: &str = "load-attacker";

/// The worst reviews, in turn: the body-limit review with 75,000 invalid statements (memory), a
/// pathological wildcard action and a deeply nested condition (CPU). All are to be refused.
pub struct Worst {
    templates: Vec<Template>,
    sent: AtomicU64,
}

impl Worst {
    pub fn new() -> anyhow::Result<Worst> {
        let many = many_invalid_statements(&Template::placeholder());
        let action = format!("*{}x{}", "?".repeat(WILDCARD_K), "*".repeat(WILDCARD_K));
        let wildcard = json!({"Effect": "Allow", "Action": action, "Resource": "*"});
        let nested = format!(
            "{}\"v\"{}",
            "[".repeat(CONDITION_DEPTH),
            "]".repeat(CONDITION_DEPTH)
        );
        let nested: serde_json::Value = serde_json::from_str(&nested).context("nested value")?;
        let condition = json!({
            "Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalTag/team": nested}}
        });
        let mut templates = vec![Template::from_body(many, "/validate", false, true)?];
        for (name, statement) in [("wildcard", wildcard), ("nested", condition)] {
            let document = json!({"Version": "2012-10-17", "Statement": [statement]});
            let mut spec = ec2_role_spec();
            spec["inlinePolicies"] =
                json!([{"policyName": name, "policyDocument": document.to_string()}]);
            let object = iamrole(name, spec);
            let body = serde_json::to_vec(&review(
                &Template::placeholder(),
                "IAMRole",
                "CREATE",
                object,
                serde_json::Value::Null,
                false,
            ))?;
            templates.push(Template::from_body(body, "/validate", false, true)?);
        }
        Ok(Worst {
            templates,
            sent: AtomicU64::new(0),
        })
    }

    fn sizes(&self) -> Vec<usize> {
        self.templates.iter().map(|t| t.body.len()).collect()
    }
}

impl Source for Worst {
    fn next(&self) -> Prepared {
        round_robin(&self.templates, &self.sent)
    }
}

/// What the held connections came to.
#[derive(Default)]
struct Holds {
    /// Connections accepted (TLS handshake done), reopenings included.
    opened: AtomicU64,
    /// Connections the server closed.
    closed: AtomicU64,
}

/// Keeps one connection open until `stop`, silent or dripping a body, opening it again
/// [`REOPEN_PAUSE`] after the server closes it.
async fn hold(
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
    drip: bool,
    holds: Arc<Holds>,
    stop: Shutdown,
) {
    while !stop.is_cancelled() {
        let connected = tokio::select! {
            connected = tls_connect(addr, Arc::clone(&tls), b"http/1.1") => connected,
            () = stop.cancelled() => return,
        };
        let Ok(stream) = connected else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        holds.opened.fetch_add(1, Ordering::Relaxed);
        let (mut reader, mut writer) = tokio::io::split(stream);
        let dripping = async {
            if !drip {
                return std::future::pending().await;
            }
            let head = format!(
                "POST /validate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                 content-length: {DRIP_LENGTH}\r\n\r\n"
            );
            if writer.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            while writer.write_all(b" ").await.is_ok() {
                tokio::time::sleep(DRIP_INTERVAL).await;
            }
        };
        tokio::select! {
            _ = until_closed(&mut reader, Duration::from_secs(3600)) => {}
            () = dripping => {}
            () = stop.cancelled() => return,
        }
        holds.closed.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            () = tokio::time::sleep(REOPEN_PAUSE) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Probe latencies (ns) and failures.
#[derive(Default)]
struct Probes {
    latencies: Vec<u64>,
    failures: u64,
}

/// One `GET /healthz` over a new connection, as a kubelet probes.
fn probe(admin: SocketAddr) -> Result<(), String> {
    get_ok(admin, "/healthz")
}

/// `GET path` on the admin port over a new connection: `Ok` for a 200.
pub fn get_ok(admin: SocketAddr, path: &str) -> Result<(), String> {
    let mut stream = StdTcpStream::connect_timeout(&admin, PROBE_TIMEOUT)
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    if answer.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&answer).into_owned())
    }
}

/// Probes `admin` every [`PROBE_INTERVAL`] on a thread of its own until `stop` is set.
fn probe_loop(
    admin: SocketAddr,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<thread::JoinHandle<Probes>> {
    thread::Builder::new()
        .name("load-probe".to_owned())
        .spawn(move || {
            let mut probes = Probes::default();
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match probe(admin) {
                    Ok(()) => probes
                        .latencies
                        .push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)),
                    Err(_) => probes.failures += 1,
                }
                next += PROBE_INTERVAL;
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
            probes
        })
        .context("probe thread")
}

/// The process whose memory a phase reports: this one (webhook and loader together), or the
/// webhook alone in a process of its own.
#[derive(Clone, Copy, Debug)]
pub enum Measured {
    /// This process.
    Itself,
    /// The webhook's process.
    Webhook(u32),
}

impl Measured {
    fn proc_dir(self) -> String {
        match self {
            Measured::Itself => "/proc/self".to_owned(),
            Measured::Webhook(pid) => format!("/proc/{pid}"),
        }
    }

    /// Starts counting the peak anew; whether the kernel let it.
    fn reset_peak(self) -> bool {
        if matches!(self, Measured::Itself) {
            release_free_memory();
        }
        fs::write(format!("{}/clear_refs", self.proc_dir()), "5").is_ok()
    }

    /// CPU time the webhook has used so far, in nanoseconds: its server threads when it runs in this
    /// process, the whole process otherwise.
    fn webhook_cpu(self) -> Option<u64> {
        match self {
            Measured::Itself => CpuClock::now().map(|clock| clock.server),
            Measured::Webhook(pid) => {
                cpu_nanos(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
            }
        }
    }

    /// A `kB` field of the process's `status`, in MiB.
    fn status_mib(self, field: &str) -> Option<f64> {
        status_mib(&format!("{}/status", self.proc_dir()), field)
    }
}

/// A `kB` field of a `/proc/<pid>/status` file, in MiB.
fn status_mib(file: &str, field: &str) -> Option<f64> {
    let status = fs::read_to_string(file).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// One hostile-mix phase's figures.
struct MixRow {
    hostile: bool,
    seed: Tally,
    worst: Tally,
    /// Silent and dripping connections: opened, closed by the server.
    held: [(u64, u64); 2],
    probes: Probes,
    /// The webhook's CPU time while the load ran, as a share of one CPU.
    webhook_cpu: Option<f64>,
    /// The share of all CPUs' time the hypervisor stole while the load ran.
    steal: Option<f64>,
    /// Peak and final resident memory of the process, MiB (peak since the phase began when the
    /// kernel let it be reset, else since the process began).
    peak_rss: Option<f64>,
    peak_reset: bool,
    rss_after: Option<f64>,
}

/// The runtime the hostile part is sent from: its threads give themselves the lowest CPU
/// priority, so on the loader's CPU they take only what the seed reviews' loader leaves. Shut down
/// without waiting when dropped, since a runtime may not wait for its tasks on an async thread.
struct Attacker {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl Attacker {
    fn start() -> anyhow::Result<Attacker> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(ATTACKER_THREADS)
            .thread_name(ATTACKER_THREAD)
            .on_thread_start(lower_own_priority)
            .enable_all()
            .build()
            .context("the hostile part's runtime")?;
        Ok(Attacker {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// Runs `task` on the attacker's threads (and the tasks it spawns with it).
    fn spawn<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.handle.spawn(task)
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Spawns `count` held connections on the attacker's threads, every other one dripping a body;
/// `holds[0]` counts the silent ones, `holds[1]` the dripping ones.
fn hold_connections(
    attacker: &Attacker,
    clients: &Clients,
    count: usize,
    holds: &[Arc<Holds>; 2],
    stop: &Shutdown,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let tls = clients
        .http1
        .tls
        .clone()
        .map_err(|e| anyhow::anyhow!("TLS configuration: {e}"))?;
    Ok((0..count)
        .map(|i| {
            attacker.spawn(hold(
                clients.http1.addr,
                Arc::clone(&tls),
                i % 2 == 1,
                Arc::clone(&holds[i % 2]),
                stop.clone(),
            ))
        })
        .collect())
}

async fn phase(
    hostile: bool,
    length: Duration,
    (clients, attacker): (&Clients, &Attacker),
    workload: &Arc<Workload>,
    worst: &Arc<Worst>,
    (admin, measured): (SocketAddr, Measured),
) -> anyhow::Result<MixRow> {
    let peak_reset = measured.reset_peak();
    let mut seed_lanes = Transport::Http1 {
        connections: SEED_CONNECTIONS,
    }
    .lanes(clients)
    .await
    .context("seed connections")?;
    for lane in &mut seed_lanes {
        for _ in 0..WARM_UP_REQUESTS {
            lane.bounded(workload.next()).await.context("warm-up")?;
        }
    }
    let stop = Shutdown::new();
    let holds = [Arc::new(Holds::default()), Arc::new(Holds::default())];
    let mut holders = Vec::new();
    let mut worst_loop = None;
    if hostile {
        // Opened on the attacker's threads, so their connections are served there too.
        let for_attacker = clients.clone();
        let worst_lanes = attacker
            .spawn(async move {
                Transport::Http1 {
                    connections: WORST_CONNECTIONS,
                }
                .lanes(&for_attacker)
                .await
            })
            .await
            .context("the hostile part")?
            .context("connections for the worst reviews")?;
        holders = hold_connections(attacker, clients, HELD, &holds, &stop)?;
        let settle = Instant::now() + HOLD_SETTLE;
        let opened = || {
            holds
                .iter()
                .map(|h| h.opened.load(Ordering::Relaxed))
                .sum::<u64>()
        };
        while opened() < HELD as u64 && Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let worst = Arc::clone(worst);
        worst_loop = Some(
            attacker.spawn(async move { open_loop(worst_lanes, &worst, WORST_RATE, length).await }),
        );
    }
    let probing = Arc::new(AtomicBool::new(false));
    let prober = probe_loop(admin, Arc::clone(&probing))?;
    let (cpu_before, load_began) = (measured.webhook_cpu(), Instant::now());
    let counters_before = CpuCounters::now().ok();
    let seed = open_loop(seed_lanes, workload, SEED_RATE, length).await;
    let webhook_cpu = cpu_before
        .zip(measured.webhook_cpu())
        .map(|(before, after)| {
            after.saturating_sub(before) as f64 / load_began.elapsed().as_nanos().max(1) as f64
        });
    // What the hypervisor took from this machine meanwhile: on a shared host it moves latency far
    // more than anything measured here.
    let steal = counters_before
        .zip(CpuCounters::now().ok())
        .map(|(before, after)| after.steal_since(&before));
    probing.store(true, Ordering::Relaxed);
    stop.cancel();
    for holder in holders {
        holder.await.context("held connection")?;
    }
    let worst_tally = match worst_loop {
        Some(worst_loop) => worst_loop.await.context("the worst reviews")??.0,
        None => Tally::default(),
    };
    let probes = prober
        .join()
        .map_err(|_| anyhow::anyhow!("probe thread panicked"))?;
    let peak_rss = measured.status_mib("VmHWM:");
    if matches!(measured, Measured::Itself) {
        release_free_memory();
    }
    Ok(MixRow {
        hostile,
        seed: seed?.0,
        worst: worst_tally,
        held: holds.map(|h| {
            (
                h.opened.load(Ordering::Relaxed),
                h.closed.load(Ordering::Relaxed),
            )
        }),
        probes,
        webhook_cpu,
        steal,
        peak_rss,
        peak_reset,
        rss_after: measured.status_mib("VmRSS:"),
    })
}

/// Runs the phase without the hostile part, then with it (so that no check of a worst review is still
/// running in the first), prints their table and returns the
/// number of wrong answers.
pub async fn bench(
    length: Duration,
    clients: &Clients,
    workload: &Arc<Workload>,
    worst: &Arc<Worst>,
    (admin, measured): (SocketAddr, Measured),
) -> anyhow::Result<u64> {
    let attacker = Attacker::start()?;
    let mut rows = Vec::new();
    for hostile in [false, true] {
        let at = (clients, &attacker);
        rows.push(phase(hostile, length, at, workload, worst, (admin, measured)).await?);
    }
    let setting = match measured {
        Measured::Itself => "webhook and loader in this process; memory of both",
        Measured::Webhook(_) => {
            "`infra-operator webhook` in a process of its own pinned to CPU 0, the loader pinned \
             to CPU 1; memory of the webhook alone"
        }
    };
    println!(
        "\n### webhook_load hostile mix ({} s per phase; {setting})\n",
        length.as_secs()
    );
    println!(
        "Seed reviews open loop at {SEED_RATE} req/s over {SEED_CONNECTIONS} keep-alive HTTP/1.1 \
         connections. Hostile part: the worst reviews ({:?} bytes: 75,000 invalid statements, a \
         wildcard action with k = {WILDCARD_K}, a condition nested {CONDITION_DEPTH} deep) open loop at \
         {WORST_RATE} req/s over {WORST_CONNECTIONS} keep-alive connections, and {HELD} connections held \
         (half silent, half a body one byte per {} ms), sent from {ATTACKER_THREADS} threads of the \
         lowest CPU priority beside the loader's. Probes: GET /healthz on the admin port every \
         {} ms over a new connection.\n",
        worst.sizes(),
        DRIP_INTERVAL.as_millis(),
        PROBE_INTERVAL.as_millis(),
    );
    println!(
        "| hostile part | seed answers | seed errors (of which overdue) | seed p50 | seed p99 | seed max | worst reviews: refused / 503 / closed unread / errors | worst p50 / max | held silent: opened / closed by server | held dripping: opened / closed | probes (failed) | probe p99 | probe max | webhook CPU | steal | peak RSS | RSS after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut wrong = 0;
    for row in &mut rows {
        for (what, tally) in [("seed reviews", &row.seed), ("worst reviews", &row.worst)] {
            if let Some(error) = &tally.first_error {
                eprintln!(
                    "hostile mix, {what}: {} errors, the first: {error}",
                    tally.errors
                );
            }
            wrong += tally.wrong;
        }
        row.seed.latencies.sort_unstable();
        row.worst.latencies.sort_unstable();
        row.probes.latencies.sort_unstable();
        let seed = &row.seed.latencies;
        let worst = &row.worst.latencies;
        let probes = &row.probes.latencies;
        let mib = |m: Option<f64>| m.map_or_else(|| "n/a".to_owned(), |m| format!("{m:.0} MiB"));
        let since = if row.peak_reset { "" } else { " (since start)" };
        println!(
            "| {} | {} | {} ({}) | {} | {} | {} | {} / {} / {} / {} | {} / {} | {} / {} | {} / {} | {} ({}) | {} | {} | {} | {} | {}{since} | {} |",
            if row.hostile { "yes" } else { "no" },
            seed.len(),
            row.seed.errors,
            row.seed.overdue,
            millis(percentile(seed, 0.5)),
            millis(percentile(seed, 0.99)),
            millis(seed.last().copied().unwrap_or(0)),
            worst.len(),
            row.worst.busy,
            row.worst.unread,
            row.worst.errors,
            millis(percentile(worst, 0.5)),
            millis(worst.last().copied().unwrap_or(0)),
            row.held[0].0,
            row.held[0].1,
            row.held[1].0,
            row.held[1].1,
            probes.len(),
            row.probes.failures,
            millis(percentile(probes, 0.99)),
            millis(probes.last().copied().unwrap_or(0)),
            row.webhook_cpu.map_or_else(
                || "n/a".to_owned(),
                |share| format!("{:.0} %", share * 100.0)
            ),
            row.steal.map_or_else(
                || "n/a".to_owned(),
                |share| format!("{:.0} %", share * 100.0)
            ),
            mib(row.peak_rss),
            mib(row.rss_after),
        );
    }
    println!();
    Ok(wrong)
}

/// Each small worst review once (refused, or 503), the largest one's size, a silent and a dripping connection held a moment, and
/// a few probes.
pub async fn smoke(clients: &Clients, worst: &Arc<Worst>, admin: SocketAddr) -> anyhow::Result<()> {
    let mut lane = Lane {
        client: Arc::clone(&clients.http1),
        keep_alive: true,
        sender: None,
    };
    // The largest review takes tens of seconds to check in a debug build: its size is checked here
    // and its answer in the load run.
    let largest = worst.templates[0].body.len();
    ensure!(
        largest > 2 * 1024 * 1024 && largest < MAX_BODY_BYTES,
        "the largest review is {largest} bytes"
    );
    let mut tally = Tally::default();
    for (n, template) in (1..).zip(&worst.templates[1..]) {
        let sent = Instant::now();
        tally.record(lane.bounded(template.prepare(n)).await, sent);
    }
    ensure!(
        tally.errors == 0,
        "worst reviews: {}",
        tally.first_error.unwrap_or_default()
    );
    // The two held connections go out from the attacker's threads, as in the load run.
    let attacker = Attacker::start()?;
    let holds = [Arc::new(Holds::default()), Arc::new(Holds::default())];
    let stop = Shutdown::new();
    let holders = hold_connections(&attacker, clients, 2, &holds, &stop)?;
    for _ in 0..3 {
        tokio::task::spawn_blocking(move || probe(admin))
            .await
            .context("probe")?
            .map_err(|e| anyhow::anyhow!("probe: {e}"))?;
    }
    tokio::time::sleep(SMOKE_HOLD).await;
    stop.cancel();
    for holder in holders {
        holder.await.context("held connection")?;
    }
    ensure!(
        holds.iter().all(|h| h.opened.load(Ordering::Relaxed) >= 1),
        "held connections were not accepted"
    );
    println!(
        "webhook_load hostile smoke run: {} worst reviews refused, {} answered 503, 2 connections \
         held, 3 probes (pass --bench for the hostile mix)",
        tally.latencies.len(),
        tally.busy
    );
    Ok(())
}
