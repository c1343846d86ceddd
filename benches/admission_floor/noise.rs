//! How busy the machine was besides the run: per-CPU busy time and the time the hypervisor stole,
//! from `/proc/stat`, and the load average from `/proc/loadavg`. Reads those two files only.

use std::fs;
use std::time::Duration;

use anyhow::Context;

/// Linux clock ticks per second in `/proc/stat` and `/proc/<pid>/stat` (USER_HZ, fixed by the ABI).
pub const CLOCK_TICKS: u64 = 100;

/// The counters of `/proc/stat` used, in clock ticks since boot.
#[derive(Clone)]
pub struct CpuCounters {
    /// User, nice, system, irq and softirq time of each CPU (`cpuN` lines).
    busy: Vec<u64>,
    /// Steal time of all CPUs together.
    steal: u64,
    /// Every kind of time of all CPUs together.
    total: u64,
}

impl CpuCounters {
    pub fn now() -> anyhow::Result<CpuCounters> {
        let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let mut counters = CpuCounters {
            busy: Vec::new(),
            steal: 0,
            total: 0,
        };
        for line in stat.lines() {
            let mut fields = line.split_whitespace();
            let Some(name) = fields.next().filter(|n| n.starts_with("cpu")) else {
                continue;
            };
            // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
            // already counted in user.
            let ticks: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
            let [user, nice, system, idle, iowait, irq, softirq, steal] = ticks[..] else {
                continue;
            };
            if name == "cpu" {
                counters.steal = steal;
                counters.total = user + nice + system + idle + iowait + irq + softirq + steal;
            } else {
                counters.busy.push(user + nice + system + irq + softirq);
            }
        }
        Ok(counters)
    }

    /// Time `cpu` was busy between `earlier` and these counters.
    pub fn busy_since(&self, earlier: &CpuCounters, cpu: usize) -> Duration {
        let ticks = self
            .busy
            .get(cpu)
            .copied()
            .unwrap_or(0)
            .saturating_sub(earlier.busy.get(cpu).copied().unwrap_or(0));
        Duration::from_nanos(ticks * (1_000_000_000 / CLOCK_TICKS))
    }

    /// Share of all CPUs' time stolen by the hypervisor between `earlier` and these counters.
    pub fn steal_since(&self, earlier: &CpuCounters) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        self.steal.saturating_sub(earlier.steal) as f64 / total.max(1) as f64
    }
}

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` writes them.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".to_owned(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}
