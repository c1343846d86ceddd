//! The loader: vegeta (github.com/tsenart/vegeta), built from the Go module proxy by
//! `tests/stack/build-vegeta.sh` and cached outside the repository. Writes its targets (JSON, one
//! per review, bodies inline), runs `vegeta attack` over keep-alive HTTP/1.1 and TLS, pinned to a CPU
//! of its own, then reads the results back with `vegeta report -type=json` (duration of the attack)
//! and `vegeta encode --to json` (every answer: status, latency, body), checking every answer
//! against the corpus. Runs processes; writes the targets and results files it is given.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::corpus::{Corpus, Endpoint};
use super::processes::spawn;

/// Keep-alive connections of the open loop: requests due while all are busy wait for one (timed
/// from when they were due), rather than each opening a connection of its own, whose handshakes
/// would cost both sides more than the requests.
pub const OPEN_LOOP_CONNECTIONS: u32 = 8;
/// Longest wait for one answer.
const REQUEST_TIMEOUT: &str = "10s";
/// Failures quoted in full per phase (the rest are counted).
const QUOTED_FAILURES: usize = 3;

/// How requests are sent (over [`OPEN_LOOP_CONNECTIONS`] connections in the open loop, one per
/// worker in the closed loop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// Open loop: this many requests per second, whatever the answers take.
    Rate(u32),
    /// Closed loop: this many workers, each sending as soon as its previous answer arrived.
    Workers(u32),
}

/// The vegeta executable.
pub struct Vegeta {
    bin: PathBuf,
    /// `vegeta -version`'s version line.
    pub version: String,
}

impl Vegeta {
    /// Builds vegeta (or finds it in the cache) with `tests/stack/build-vegeta.sh`.
    pub fn build() -> anyhow::Result<Vegeta> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stack/build-vegeta.sh");
        let output = Command::new(&script)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        ensure!(
            output.status.success(),
            "{} failed: {}",
            script.display(),
            output.status
        );
        let stdout = String::from_utf8(output.stdout)?;
        let bin = PathBuf::from(stdout.lines().last().context("no path printed")?.trim());
        let about = Command::new(&bin)
            .arg("-version")
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        let version = String::from_utf8_lossy(&about.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Version:").map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| "?".to_owned());
        Ok(Vegeta { bin, version })
    }

    /// Writes the targets of `corpus` for `endpoint` of the server at `addr` into `path`.
    pub fn write_targets(
        path: &Path,
        addr: SocketAddr,
        corpus: &Corpus,
        endpoint: Endpoint,
    ) -> anyhow::Result<()> {
        let mut file = fs::File::create(path).with_context(|| path.display().to_string())?;
        for review in &corpus.reviews {
            let target = json!({
                "method": "POST",
                "url": format!("https://{addr}{}", endpoint.path()),
                "body": base64::engine::general_purpose::STANDARD.encode(&review.body),
                "header": {"Content-Type": ["application/json"]}
            });
            writeln!(file, "{target}")?;
        }
        Ok(())
    }

    /// Runs one attack with the targets of `targets` for `length`, vegeta pinned to `cpu`, results
    /// into `results`; returns vegeta's CPU time (user + system).
    pub fn attack(
        &self,
        targets: &Path,
        load: Load,
        length: Duration,
        ca: &Path,
        cpu: Option<usize>,
        results: &Path,
    ) -> anyhow::Result<Duration> {
        let mut command = Command::new(&self.bin);
        command
            .arg("attack")
            .arg("-format=json")
            .arg(format!("-targets={}", targets.display()))
            .arg(format!("-duration={}ms", length.as_millis()))
            .arg("-http2=false")
            .arg("-keepalive=true")
            .arg(format!("-root-certs={}", ca.display()))
            .arg(format!("-timeout={REQUEST_TIMEOUT}"))
            .arg(format!("-output={}", results.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match load {
            Load::Rate(rate) => command
                .arg(format!("-rate={rate}/1s"))
                .arg(format!("-max-connections={OPEN_LOOP_CONNECTIONS}")),
            Load::Workers(workers) => command
                .arg("-rate=0")
                .arg(format!("-workers={workers}"))
                .arg(format!("-max-workers={workers}"))
                .arg(format!("-max-connections={workers}")),
        };
        let before = children_cpu();
        let status = spawn(&mut command, cpu)
            .context("start vegeta attack")?
            .wait()
            .context("vegeta attack")?;
        ensure!(status.success(), "vegeta attack failed: {status}");
        Ok(children_cpu().saturating_sub(before))
    }

    /// Reads and checks the results of an attack on `endpoint`.
    pub fn results(
        &self,
        results: &Path,
        corpus: &Corpus,
        endpoint: Endpoint,
    ) -> anyhow::Result<Results> {
        let report = Command::new(&self.bin)
            .args(["report", "-type=json"])
            .arg(results)
            .output()
            .context("vegeta report")?;
        ensure!(
            report.status.success(),
            "vegeta report failed: {}",
            report.status
        );
        let report: Report = serde_json::from_slice(&report.stdout).context("vegeta report")?;

        let mut encode = Command::new(&self.bin)
            .args(["encode", "--to", "json"])
            .arg(results)
            .stdout(Stdio::piped())
            .spawn()
            .context("vegeta encode")?;
        let stdout = encode.stdout.take().context("vegeta encode output")?;
        let mut tally = Tally::new(corpus.reviews.len());
        for line in BufReader::new(stdout).lines() {
            let result: Hit = serde_json::from_str(&line?).context("vegeta result")?;
            tally.record(&result, corpus, endpoint);
        }
        let status = encode.wait().context("vegeta encode")?;
        ensure!(status.success(), "vegeta encode failed: {status}");
        tally.finish(&report)
    }
}

/// What a phase's answers say.
pub struct Results {
    /// Requests sent.
    pub requests: u64,
    /// Right answers.
    pub answered: u64,
    /// Wrong answers and failed requests.
    pub failures: u64,
    /// The first few failures, in words.
    pub quoted: Vec<String>,
    /// Latencies of the right answers, sorted (nanoseconds).
    pub latencies: Vec<u64>,
    /// Right answers per second, from the first request sent to the last answer.
    pub throughput: f64,
    /// Mean size of a right answer's body, bytes.
    pub answer_bytes: u64,
}

/// The part of `vegeta report -type=json` used.
#[derive(Deserialize)]
struct Report {
    /// From the first request sent to the last (nanoseconds).
    duration: u64,
    /// From the last request sent to its answer (nanoseconds).
    wait: u64,
}

/// One result of `vegeta encode --to json`.
#[derive(Deserialize)]
struct Hit {
    code: u16,
    /// Nanoseconds.
    latency: u64,
    #[serde(default)]
    error: String,
    /// Base64 of the answer's body.
    #[serde(default)]
    body: Option<String>,
}

/// Answers counted while reading.
struct Tally {
    requests: u64,
    failures: u64,
    quoted: Vec<String>,
    latencies: Vec<u64>,
    answer_bytes: u64,
    /// Right answers per review.
    per_review: Vec<u64>,
}

impl Tally {
    fn new(reviews: usize) -> Tally {
        Tally {
            requests: 0,
            failures: 0,
            quoted: Vec::new(),
            latencies: Vec::new(),
            answer_bytes: 0,
            per_review: vec![0; reviews],
        }
    }

    fn record(&mut self, hit: &Hit, corpus: &Corpus, endpoint: Endpoint) {
        self.requests += 1;
        let body = hit
            .body
            .as_deref()
            .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
            .transpose();
        let checked = match (hit.code, body) {
            (0, _) => Err(format!("request failed: {}", hit.error)),
            (_, Err(e)) => Err(format!("body not base64: {e}")),
            (code, Ok(body)) => {
                let body = body.unwrap_or_default();
                let size = body.len() as u64;
                corpus
                    .check(endpoint, code, &body)
                    .map(|index| (index, size))
            }
        };
        match checked {
            Ok((index, size)) => {
                self.latencies.push(hit.latency);
                self.answer_bytes += size;
                self.per_review[index] += 1;
            }
            Err(failure) => {
                self.failures += 1;
                if self.quoted.len() < QUOTED_FAILURES {
                    self.quoted.push(failure);
                }
            }
        }
    }

    /// The phase's figures; fails when the reviews were not answered in turn (vegeta sends the
    /// targets round robin, so the right answers per review differ by at most one, plus failures).
    fn finish(mut self, report: &Report) -> anyhow::Result<Results> {
        let answered = self.latencies.len() as u64;
        let most = self.per_review.iter().max().copied().unwrap_or(0);
        let least = self.per_review.iter().min().copied().unwrap_or(0);
        if most - least > 1 + self.failures {
            bail!(
                "answers per review range {least}–{most}: not the uids sent ({:?})",
                BTreeMap::from_iter(self.per_review.iter().enumerate())
            );
        }
        self.latencies.sort_unstable();
        let span = (report.duration + report.wait) as f64 / 1e9;
        Ok(Results {
            requests: self.requests,
            answered,
            failures: self.failures,
            quoted: self.quoted,
            latencies: self.latencies,
            throughput: if span > 0.0 {
                answered as f64 / span
            } else {
                0.0
            },
            answer_bytes: self.answer_bytes / answered.max(1),
        })
    }
}

/// User + system CPU time of every child process this process has waited for.
fn children_cpu() -> Duration {
    // SAFETY: `getrusage` writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}
