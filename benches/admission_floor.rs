//! The admission webhook beside a "TLS floor" in one run: how much of the webhook's cost is its
//! own, over what any HTTPS server with the same TLS and HTTP settings must pay. The real
//! `infra-operator webhook` (committed default guardrails) and the floor ([`floor`]: the webhook's
//! certificate type, rustls configuration, hyper settings and runtime, answering a fixed admission)
//! each run in a process of its own pinned to CPU 0; vegeta, an external open-loop loader, runs
//! pinned to CPU 1 over keep-alive HTTP/1.1 and TLS 1.3. The bodies are CREATE AdmissionReviews of
//! the example IAMRoles as the API server sends them after `kubectl apply` ([`corpus`]).
//!
//! Phases, webhook and floor alternately, every point repeated: an open loop at a fixed rate (p50,
//! p99, max, and the server process's CPU time per 10,000 reviews) and a closed loop of a fixed
//! number of workers (throughput). Every answer is checked (HTTP 200, an AdmissionReview admitting
//! the review whose uid it echoes), during the load from vegeta's results and around it with a
//! small client ([`client`]); a wrong answer fails the run once the tables are printed. Prints
//! Markdown: the webhook-to-floor ratios against their targets, the absolute figures, the noise.
//!
//! `cargo bench --bench admission_floor` runs 5 s phases, `-- --quick` (or `FLOOR_QUICK=1`) 1 s
//! phases; `FLOOR_SECONDS`, `FLOOR_REPEATS` (3), `FLOOR_RATE` (2000 req/s) and `FLOOR_WORKERS` (32)
//! override them; `FLOOR_WEBHOOK_BIN` measures another build of the webhook. vegeta is built once
//! by `tests/stack/build-vegeta.sh` (Go and the Go module proxy) and cached. Without `--bench` (as `cargo test --all-targets` runs it) only a smoke run: the
//! bodies checked, both servers started unpinned and every body sent once to each, no vegeta, no Go.
//!
//! I/O: network on 127.0.0.1; reads the examples, `/proc/stat`, `/proc/loadavg` and the servers'
//! `/proc/<pid>/stat`; writes certificates, vegeta's targets and results into a temporary directory;
//! runs `infra-operator webhook`, this executable as the floor, the build script and vegeta.

use std::path::Path;
use std::time::{Duration, Instant};
use std::{env, thread};

use anyhow::{Context, bail, ensure};
use infra_operator::admission::limits::SMALL_BODY_BYTES;
use infra_operator::certs::write_certs;
use serde_json::Value;

#[path = "admission_floor/client.rs"]
mod client;
#[path = "admission_floor/corpus.rs"]
mod corpus;
#[path = "admission_floor/floor.rs"]
mod floor;
#[path = "admission_floor/noise.rs"]
mod noise;
#[path = "admission_floor/processes.rs"]
mod processes;
#[path = "admission_floor/report.rs"]
mod report;
#[path = "admission_floor/vegeta.rs"]
mod vegeta;
#[path = "support/webhook_process.rs"]
mod webhook_process;

use corpus::{Corpus, Endpoint};
use noise::CpuCounters;
use processes::Server;
use report::{Noise, Sample, Setup};
use vegeta::{Load, Vegeta};
use webhook_process::pin_current_thread;

/// The CPU both servers are pinned to.
const SERVER_CPU: usize = 0;
/// The CPU of vegeta and of this process.
const LOADER_CPU: usize = 1;
/// Longest unmeasured open-loop phase run against each server before the measured ones.
const WARM_UP: Duration = Duration::from_secs(1);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == floor::SERVE_FLAG) {
        return floor::serve(&args[at + 1..]);
    }
    let settings = Settings::from_env(&args)?;
    let corpus = Corpus::from_examples()?;
    match settings.length {
        None => smoke(&corpus),
        Some(length) => bench(&settings, length, &corpus),
    }
}

/// What to run, from the arguments and the environment.
struct Settings {
    /// Length of each phase; `None` for the smoke run.
    length: Option<Duration>,
    /// `full` or `quick`.
    label: &'static str,
    repeats: usize,
    /// Requests per second of the open loop.
    rate: u32,
    /// Workers of the closed loop.
    workers: u32,
}

impl Settings {
    fn from_env(args: &[String]) -> anyhow::Result<Settings> {
        let flag = |name: &str| args.iter().any(|a| a == name);
        let quick = flag("--quick") || env::var("FLOOR_QUICK").is_ok_and(|v| v == "1");
        let number =
            |name: &str, default: u32| -> anyhow::Result<u32> {
                match env::var(name) {
                    Ok(text) => text.parse().ok().filter(|n| *n > 0).with_context(|| {
                        format!("{name} must be a positive integer, not {text:?}")
                    }),
                    Err(_) => Ok(default),
                }
            };
        let seconds = number("FLOOR_SECONDS", if quick { 1 } else { 5 })?;
        Ok(Settings {
            length: flag("--bench").then(|| Duration::from_secs(seconds.into())),
            label: if quick { "quick" } else { "full" },
            repeats: usize::try_from(number("FLOOR_REPEATS", 3)?)?,
            rate: number("FLOOR_RATE", 2000)?,
            workers: number("FLOOR_WORKERS", 32)?,
        })
    }
}

/// The load phases, with the checks around them; prints the tables, then fails on a wrong answer.
fn bench(settings: &Settings, length: Duration, corpus: &Corpus) -> anyhow::Result<()> {
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    ensure!(
        cpus >= 2,
        "the benchmark needs 2 CPUs (one for the servers, one for the loader); {cpus} here"
    );
    // Before any other thread exists, so every thread and process started later inherits it.
    pin_current_thread(LOADER_CPU).context("pin to CPU 1")?;
    let vegeta = Vegeta::build()?;
    let work = tempfile::tempdir().context("temporary directory")?;
    let certs = work.path().join("certs");
    let ca = write_certs(&certs, &["127.0.0.1".to_owned()])
        .context("certificates")?
        .ca_cert;
    let webhook = Server::webhook(&certs, Some(SERVER_CPU))?;
    let floor = Server::floor(&certs, Some(SERVER_CPU))?;
    let mut servers = [webhook, floor];
    let measured = (|| {
        let tls = check_around(&servers, &ca, corpus)?;
        let run = Run {
            vegeta: &vegeta,
            corpus,
            ca: &ca,
            dir: work.path(),
        };
        let (samples, noise, failures) = run.phases(settings, length, &mut servers)?;
        check_around(&servers, &ca, corpus)?;
        anyhow::Ok((tls, samples, noise, failures))
    })();
    for server in servers {
        server.stop()?;
    }
    let (tls, samples, noise, failures) = measured?;
    let sizes = corpus.sizes();
    let setup = Setup {
        label: settings.label,
        length,
        repeats: settings.repeats,
        rate: settings.rate,
        workers: settings.workers,
        tls,
        vegeta: vegeta.version.clone(),
        reviews: corpus.reviews.len(),
        body_sizes: (sizes.min, sizes.max, sizes.mean),
    };
    report::print(&setup, &samples, &noise);
    ensure!(
        failures == 0,
        "{failures} requests got no answer or a wrong one (see the messages above)"
    );
    Ok(())
}

/// Sends every review once to each endpoint of both servers (the webhook's `/validate` and
/// `/mutate`, the floor's `/validate`), checking every answer; returns the TLS parameters, which
/// must be the same for both.
fn check_around(servers: &[Server], ca: &Path, corpus: &Corpus) -> anyhow::Result<String> {
    let mut negotiated = Vec::new();
    for server in servers {
        for &endpoint in server.endpoints {
            let tls = client::check_each(server.addr, ca, corpus, endpoint)
                .with_context(|| format!("the {}'s answers", server.name))?;
            negotiated.push(tls);
        }
    }
    negotiated.dedup();
    match &negotiated[..] {
        [one] => Ok(one.clone()),
        _ => bail!("the servers negotiated different TLS parameters: {negotiated:?}"),
    }
}

/// What every phase needs.
struct Run<'a> {
    vegeta: &'a Vegeta,
    corpus: &'a Corpus,
    ca: &'a Path,
    /// Where targets and results are written.
    dir: &'a Path,
}

impl Run<'_> {
    /// A warm-up per server, then every measured phase; returns the samples, the machine's noise
    /// and the number of failed requests.
    fn phases(
        &self,
        settings: &Settings,
        length: Duration,
        servers: &mut [Server; 2],
    ) -> anyhow::Result<(Vec<Sample>, Noise, u64)> {
        let mut targets = Vec::new();
        for server in servers.iter() {
            let path = self.dir.join(format!("targets-{}.json", server.name));
            Vegeta::write_targets(&path, server.addr, self.corpus, Endpoint::Validate)?;
            targets.push(path);
        }
        let mut failures = 0;
        for (server, targets) in servers.iter().zip(&targets) {
            let warm_up = Load::Rate(settings.rate);
            let (_, failed) = self.phase(server, targets, warm_up, length.min(WARM_UP))?;
            failures += failed;
        }
        let load_before = noise::load_average();
        let start = CpuCounters::now()?;
        let mut samples = Vec::new();
        for repeat in 0..settings.repeats {
            for load in [Load::Rate(settings.rate), Load::Workers(settings.workers)] {
                let mut order = [0, 1];
                if repeat % 2 == 1 {
                    order.reverse();
                }
                for index in order {
                    let (sample, failed) =
                        self.phase(&servers[index], &targets[index], load, length)?;
                    servers[index].alive()?;
                    samples.push(sample);
                    failures += failed;
                }
            }
        }
        let noise = Noise {
            steal: CpuCounters::now()?.steal_since(&start),
            load_before,
            load_after: noise::load_average(),
        };
        Ok((samples, noise, failures))
    }

    /// One attack on `server` with the targets of `targets`; returns its sample and how many
    /// requests failed (quoted on stderr).
    fn phase(
        &self,
        server: &Server,
        targets: &Path,
        load: Load,
        length: Duration,
    ) -> anyhow::Result<(Sample, u64)> {
        let results = self.dir.join("results.bin");
        let counters = CpuCounters::now()?;
        let server_cpu = server.cpu_time()?;
        let started = Instant::now();
        let loader_cpu =
            self.vegeta
                .attack(targets, load, length, self.ca, Some(LOADER_CPU), &results)?;
        let elapsed = started.elapsed();
        let server_cpu = server.cpu_time()?.saturating_sub(server_cpu);
        let after = CpuCounters::now()?;
        let answers = self
            .vegeta
            .results(&results, self.corpus, Endpoint::Validate)?;
        for failure in &answers.quoted {
            eprintln!("{} {load:?}: {failure}", server.name);
        }
        if answers.failures > 0 {
            eprintln!(
                "{} {load:?}: {} of {} requests failed",
                server.name, answers.failures, answers.requests
            );
        }
        let percentile = |q: f64| {
            let sorted = &answers.latencies;
            let rank = (q * sorted.len() as f64).ceil() as usize;
            sorted
                .get(rank.clamp(1, sorted.len().max(1)) - 1)
                .copied()
                .unwrap_or(0)
        };
        let sample = Sample {
            server: server.name,
            load,
            answered: answers.answered,
            throughput: answers.throughput,
            p50: percentile(0.5),
            p99: percentile(0.99),
            max: answers.latencies.last().copied().unwrap_or(0),
            server_cpu,
            loader_cpu,
            elapsed,
            other_on_server_cpu: after
                .busy_since(&counters, SERVER_CPU)
                .saturating_sub(server_cpu),
            other_on_loader_cpu: after
                .busy_since(&counters, LOADER_CPU)
                .saturating_sub(loader_cpu),
            answer_bytes: answers.answer_bytes,
        };
        Ok((sample, answers.failures))
    }
}

/// Checks the bodies, then starts both servers (unpinned) and sends every body once to each,
/// checking the answers; also checks that the answer check catches a wrong uid and a refusal.
fn smoke(corpus: &Corpus) -> anyhow::Result<()> {
    let mut uids: Vec<&str> = corpus.reviews.iter().map(|r| r.uid.as_str()).collect();
    uids.sort_unstable();
    uids.dedup();
    ensure!(
        uids.len() == corpus.reviews.len(),
        "two reviews share a uid"
    );
    for review in &corpus.reviews {
        let parsed: Value = serde_json::from_slice(&review.body)?;
        ensure!(
            parsed.pointer("/request/uid").and_then(Value::as_str) == Some(review.uid.as_str()),
            "{}: request.uid is not the review's uid",
            review.name
        );
        ensure!(
            (1024..SMALL_BODY_BYTES).contains(&review.body.len()),
            "{}: a body of {} bytes is no ordinary review",
            review.name,
            review.body.len()
        );
    }
    let wrong_uid = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"elsewhere","allowed":true}}"#;
    ensure!(
        corpus.check(Endpoint::Validate, 200, wrong_uid).is_err(),
        "an answer with an unknown uid was not caught"
    );
    let refused = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":"{}","allowed":false}}}}"#,
        corpus.reviews[0].uid
    );
    ensure!(
        corpus
            .check(Endpoint::Validate, 200, refused.as_bytes())
            .is_err(),
        "a refusal was not caught"
    );

    let work = tempfile::tempdir().context("temporary directory")?;
    let ca = write_certs(work.path(), &["127.0.0.1".to_owned()])
        .context("certificates")?
        .ca_cert;
    let servers = [
        Server::webhook(work.path(), None)?,
        Server::floor(work.path(), None)?,
    ];
    let checked = check_around(&servers, &ca, corpus);
    for server in servers {
        server.stop()?;
    }
    let tls = checked?;
    let sizes = corpus.sizes();
    println!(
        "admission_floor smoke run: {} reviews ({}–{} bytes, mean {}) answered right by the webhook \
         and the floor over {tls} (pass --bench for the load phases)",
        corpus.reviews.len(),
        sizes.min,
        sizes.max,
        sizes.mean
    );
    Ok(())
}
