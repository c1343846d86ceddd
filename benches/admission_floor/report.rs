//! The run's figures as Markdown: the webhook-to-floor ratios against their targets first (each
//! repeat's webhook phase divided by the floor phase of the same repeat), then the absolute figures
//! of both servers, then how noisy the machine was. Pure formatting; prints to stdout.

use std::time::Duration;

use super::vegeta::{Load, OPEN_LOOP_CONNECTIONS};

/// Webhook CPU per review, at most this many times the floor's.
const CPU_TARGET: f64 = 1.5;
/// Webhook closed-loop throughput, at least this share of the floor's.
const THROUGHPUT_TARGET: f64 = 0.6;
/// Webhook p99 in the open loop, at most this many times the floor's.
const P99_TARGET: f64 = 1.5;
/// Other processes taking more than this share of a CPU make a crowded window.
const CROWDED: f64 = 0.1;
/// A loader this busy (share of its CPU) is the limit of a closed loop rather than the server.
const LOADER_SATURATED: f64 = 0.9;

/// One phase of one server.
pub struct Sample {
    /// `webhook` or `floor`.
    pub server: &'static str,
    pub load: Load,
    /// Right answers.
    pub answered: u64,
    /// Right answers per second.
    pub throughput: f64,
    /// p50, p99 and max latency of the right answers, nanoseconds.
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    /// CPU time of the server process during the phase.
    pub server_cpu: Duration,
    /// CPU time of vegeta during the phase.
    pub loader_cpu: Duration,
    /// Wall time of the phase.
    pub elapsed: Duration,
    /// Time the server's CPU was busy with other processes during the phase.
    pub other_on_server_cpu: Duration,
    /// Time the loader's CPU was busy with other processes during the phase.
    pub other_on_loader_cpu: Duration,
    /// Mean size of an answer's body, bytes.
    pub answer_bytes: u64,
}

impl Sample {
    /// Server CPU seconds per 10,000 right answers.
    fn cpu_per_10k(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 10_000.0 / self.answered.max(1) as f64
    }

    /// Share of the phase's wall time, for a CPU time.
    fn share(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() / self.elapsed.as_secs_f64()
    }

    fn server_busy(&self) -> f64 {
        self.share(self.server_cpu)
    }

    fn loader_busy(&self) -> f64 {
        self.share(self.loader_cpu)
    }
}

/// What the run was, for the heading.
pub struct Setup {
    /// `full` or `quick`.
    pub label: &'static str,
    pub length: Duration,
    pub repeats: usize,
    pub rate: u32,
    pub workers: u32,
    /// TLS parameters negotiated (the same for both servers).
    pub tls: String,
    pub vegeta: String,
    /// Number of reviews and their body sizes: min, max and mean, bytes.
    pub reviews: usize,
    pub body_sizes: (usize, usize, usize),
}

/// The machine besides the run.
pub struct Noise {
    /// Share of all CPU time stolen by the hypervisor over the load phases.
    pub steal: f64,
    /// Load averages at the start and at the end.
    pub load_before: String,
    pub load_after: String,
}

/// Smallest, median and largest of some values.
struct Summary {
    min: f64,
    median: f64,
    max: f64,
}

impl Summary {
    fn of(mut values: Vec<f64>) -> Summary {
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        let median = match values.len() {
            0 => 0.0,
            n if n.is_multiple_of(2) => (values[middle - 1] + values[middle]) / 2.0,
            _ => values[middle],
        };
        Summary {
            min: values.first().copied().unwrap_or(0.0),
            median,
            max: values.last().copied().unwrap_or(0.0),
        }
    }

    /// `median (min–max)` with `format` for each number.
    fn show(&self, format: impl Fn(f64) -> String) -> String {
        if self.min == self.max {
            format(self.median)
        } else {
            format!(
                "{} ({}–{})",
                format(self.median),
                format(self.min),
                format(self.max)
            )
        }
    }

    /// (max − min) / median.
    fn spread(&self) -> f64 {
        (self.max - self.min) / self.median.max(f64::MIN_POSITIVE)
    }
}

/// Prints the three tables.
pub fn print(setup: &Setup, samples: &[Sample], noise: &Noise) {
    let open = Load::Rate(setup.rate);
    let closed = Load::Workers(setup.workers);
    let (min, max, mean) = setup.body_sizes;
    println!(
        "\n### admission_floor ({} run, {} s per phase, {} repeats)\n",
        setup.label,
        setup.length.as_secs(),
        setup.repeats
    );
    println!(
        "`infra-operator webhook` and the TLS floor, each alone on CPU 0 (one process each, both \
         running throughout); vegeta {} on CPU 1, HTTP/1.1 keep-alive, {}. Bodies: {} CREATE \
         AdmissionReviews of the example IAMRoles to /validate, {min}–{max} bytes (mean {mean}). \
         Phases alternate webhook and floor (the first of each pair swaps every repeat).\n",
        setup.vegeta, setup.tls, setup.reviews,
    );

    println!("| webhook / floor | target | median | min–max over repeats | median within target |");
    println!("|---|---|---|---|---|");
    let ratio_row = |name: String,
                     load: Load,
                     figure: fn(&Sample) -> f64,
                     target: String,
                     ok: fn(f64) -> bool| {
        let ratios = Summary::of(ratios(samples, load, figure));
        println!(
            "| {name} | {target} | {:.2}× | {:.2}–{:.2}× | {} |",
            ratios.median,
            ratios.min,
            ratios.max,
            if ok(ratios.median) { "yes" } else { "no" }
        );
    };
    ratio_row(
        format!("CPU per review at {} req/s", setup.rate),
        open,
        Sample::cpu_per_10k,
        format!("≤ {CPU_TARGET}×"),
        |r| r <= CPU_TARGET,
    );
    ratio_row(
        format!("closed-loop throughput, {} workers", setup.workers),
        closed,
        |s| s.throughput,
        format!("≥ {THROUGHPUT_TARGET}×"),
        |r| r >= THROUGHPUT_TARGET,
    );
    ratio_row(
        "closed-loop answers per server CPU-second".to_owned(),
        closed,
        |s| 1.0 / s.cpu_per_10k().max(f64::MIN_POSITIVE),
        format!("≥ {THROUGHPUT_TARGET}×"),
        |r| r >= THROUGHPUT_TARGET,
    );
    ratio_row(
        format!("p99 at {} req/s", setup.rate),
        open,
        |s| s.p99 as f64,
        format!("≤ {P99_TARGET}×"),
        |r| r <= P99_TARGET,
    );
    let loader = Summary::of(figures(samples, "floor", closed, Sample::loader_busy));
    if loader.max >= LOADER_SATURATED {
        let floor = Summary::of(figures(samples, "floor", closed, Sample::server_busy));
        println!(
            "\nIn the floor's closed loop vegeta used up to {} of CPU 1 and the floor {} of CPU 0: \
             there the loader sets the floor's throughput, so the throughput ratio is an upper \
             bound, and answers per server CPU-second (the throughput on one whole CPU) are the \
             fairer comparison.",
            percent(loader.max),
            floor.show(percent)
        );
    }

    println!("\nMedian (min–max) over the repeats:\n");
    println!(
        "| phase | server | right answers/s | answers | p50 | p99 | max | server CPU per 10,000 reviews | server CPU (share of CPU 0) | vegeta CPU (share of CPU 1) | answer bytes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for load in [open, closed] {
        for server in ["webhook", "floor"] {
            let of =
                |figure: fn(&Sample) -> f64| Summary::of(figures(samples, server, load, figure));
            println!(
                "| {} | {server} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                describe(load),
                of(|s| s.throughput).show(|v| format!("{v:.0}")),
                of(|s| s.answered as f64).show(|v| format!("{v:.0}")),
                of(|s| s.p50 as f64).show(millis),
                of(|s| s.p99 as f64).show(millis),
                of(|s| s.max as f64).show(millis),
                of(Sample::cpu_per_10k).show(|v| format!("{v:.2} s")),
                of(Sample::server_busy).show(percent),
                of(Sample::loader_busy).show(percent),
                of(|s| s.answer_bytes as f64).show(|v| format!("{v:.0}")),
            );
        }
    }

    println!("\nNoise of the window:\n");
    println!("| figure | median (min–max) over repeats | spread (max − min) / median |");
    println!("|---|---|---|");
    let noise_row = |name: String, summary: Summary, format: fn(f64) -> String| {
        println!(
            "| {name} | {} | {} |",
            summary.show(format),
            percent(summary.spread())
        );
    };
    noise_row(
        format!("floor p99 at {} req/s", setup.rate),
        Summary::of(figures(samples, "floor", open, |s| s.p99 as f64)),
        millis,
    );
    noise_row(
        format!("floor CPU per 10,000 reviews at {} req/s", setup.rate),
        Summary::of(figures(samples, "floor", open, Sample::cpu_per_10k)),
        |v| format!("{v:.2} s"),
    );
    noise_row(
        "floor closed-loop throughput".to_owned(),
        Summary::of(figures(samples, "floor", closed, |s| s.throughput)),
        |v| format!("{v:.0}/s"),
    );
    let mut crowded = Vec::new();
    for (cpu, other) in [
        (
            "CPU 0",
            (|s| s.share(s.other_on_server_cpu)) as fn(&Sample) -> f64,
        ),
        ("CPU 1", |s| s.share(s.other_on_loader_cpu)),
    ] {
        let busy = Summary::of(samples.iter().map(other).collect());
        println!(
            "| {cpu} busy with other processes (share of each phase) | {} | — |",
            busy.show(percent)
        );
        if busy.median > CROWDED {
            crowded.push(format!("{} of {cpu}", percent(busy.median)));
        }
    }
    println!(
        "\nSteal (all CPUs, over the load phases): {}. Load average (1, 5, 15 min): {} at the start, \
         {} at the end.",
        percent(noise.steal),
        noise.load_before,
        noise.load_after
    );
    if !crowded.is_empty() {
        println!(
            "Other processes took a median {} during the phases: latency and throughput are not \
             those of a quiet machine; the CPU time per review is the steadiest figure.",
            crowded.join(" and ")
        );
    }
    println!();
}

/// For each repeat, the webhook's figure divided by the floor's, at `load`.
fn ratios(samples: &[Sample], load: Load, figure: fn(&Sample) -> f64) -> Vec<f64> {
    let webhook = figures(samples, "webhook", load, figure);
    let floor = figures(samples, "floor", load, figure);
    webhook
        .iter()
        .zip(&floor)
        .map(|(w, f)| w / f.max(f64::MIN_POSITIVE))
        .collect()
}

/// `figure` of every repeat of `server` at `load`, in repeat order.
fn figures(samples: &[Sample], server: &str, load: Load, figure: fn(&Sample) -> f64) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.server == server && s.load == load)
        .map(figure)
        .collect()
}

fn describe(load: Load) -> String {
    match load {
        Load::Rate(rate) => {
            format!("open loop, {rate} req/s, {OPEN_LOOP_CONNECTIONS} connections")
        }
        Load::Workers(workers) => format!("closed loop, {workers} workers"),
    }
}

fn millis(nanos: f64) -> String {
    format!("{:.2} ms", nanos / 1e6)
}

fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}
