//! Metrics of the process itself, read from `/proc/self` on every scrape: resident memory, CPU time
//! and open file descriptors. Reads `/proc`; where it is missing (not Linux) nothing is reported.

use std::fs;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Linux clock ticks per second in `/proc/self/stat` (USER_HZ, fixed by the ABI).
const CLOCK_TICKS: f64 = 100.0;

/// Collects `process_resident_memory_bytes`, `process_cpu_seconds_total` and `process_open_fds`.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// One reading of the process's figures; each is `None` when it could not be read.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessFigures {
    /// Resident set size in bytes (`VmRSS`).
    pub resident_bytes: Option<i64>,
    /// User plus system CPU time in seconds.
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<i64>,
}

impl ProcessFigures {
    /// Reads `/proc/self`.
    pub fn read() -> Self {
        ProcessFigures {
            resident_bytes: fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|status| resident_bytes(&status)),
            cpu_seconds: fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|stat| cpu_seconds(&stat)),
            open_fds: fs::read_dir("/proc/self/fd")
                .ok()
                .and_then(|entries| i64::try_from(entries.count()).ok()),
        }
    }
}

/// `VmRSS` of a `/proc/<pid>/status` text, in bytes.
pub fn resident_bytes(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// User plus system time of a `/proc/<pid>/stat` line, in seconds.
fn cpu_seconds(stat: &str) -> Option<f64> {
    // Fields after the parenthesized command name start at field 3 (state); utime and stime are 14, 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / CLOCK_TICKS)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let figures = ProcessFigures::read();
        if let Some(bytes) = figures.resident_bytes {
            let gauge = ConstGauge::new(bytes);
            let metric = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        if let Some(seconds) = figures.cpu_seconds {
            let counter = ConstCounter::new(seconds);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        if let Some(fds) = figures.open_fds {
            let gauge = ConstGauge::new(fds);
            let metric = encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts_are_read() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t   2048 kB\nThreads:\t3\n";
        assert_eq!(resident_bytes(status), Some(2048 * 1024));
        assert_eq!(resident_bytes("Name: x\n"), None);
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let figures = ProcessFigures::read();
        assert!(figures.resident_bytes.is_some_and(|b| b > 0), "{figures:?}");
        assert!(figures.open_fds.is_some_and(|n| n > 0), "{figures:?}");
        assert!(figures.cpu_seconds.is_some(), "{figures:?}");
    }
}
