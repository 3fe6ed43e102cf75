//! What a run measured: acknowledged requests, refusals, and an HDR histogram of ack latency
//! (microseconds), summarised as throughput and percentiles.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{
    mix::{Kind, MixCount},
    workload::Workload,
};

/// Collects one client's (or one run's) results.
pub struct Recorder {
    latency: Histogram<u64>,
    pub acked: u64,
    pub refused: u64,
    pub failed: u64,
    pub mix: MixCount,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        // 1 µs to 10 min at 3 significant figures (constant, valid bounds); values above are
        // clamped by `saturating_record`.
        let latency =
            Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds");
        Self {
            latency,
            acked: 0,
            refused: 0,
            failed: 0,
            mix: MixCount::default(),
        }
    }

    pub fn ack(&mut self, kind: Kind, latency: Duration) {
        self.acked += 1;
        self.mix.add(kind);
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency.saturating_record(micros);
    }

    pub fn refuse(&mut self) {
        self.refused += 1;
    }

    pub fn fail(&mut self) {
        self.failed += 1;
    }

    /// Adds another client's counts (the MariaDB baseline runs one recorder per thread).
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub fn merge(&mut self, other: &Recorder) {
        self.acked += other.acked;
        self.refused += other.refused;
        self.failed += other.failed;
        self.mix.merge(other.mix);
        let _ = self.latency.add(&other.latency);
    }

    pub fn latency(&self) -> LatencyMs {
        LatencyMs::of(&self.latency)
    }
}

/// The median of `values` (in any order); `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Ack latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl LatencyMs {
    /// The percentiles of a histogram of microseconds.
    pub fn of(micros: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencyMs {
            p50: ms(micros.value_at_quantile(0.50)),
            p90: ms(micros.value_at_quantile(0.90)),
            p99: ms(micros.value_at_quantile(0.99)),
            max: ms(micros.max()),
            mean: micros.mean() / 1000.0,
        }
    }
}

/// The machine-readable summary of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub target: String,
    pub mode: String,
    pub transport: String,
    pub clients: usize,
    pub rooms: usize,
    pub duration_s: f64,
    /// Requests per second offered (open loop only).
    pub offered_rate: Option<f64>,
    pub acked: u64,
    pub refused: u64,
    pub failed: u64,
    /// Acknowledged mutations per second.
    pub throughput: f64,
    pub latency_ms: LatencyMs,
    pub mix: MixCount,
    /// CPU of the watched processes (`--cpu`) over the measured window, by name.
    pub cpu: std::collections::BTreeMap<String, crate::cpu::CpuUse>,
}

impl Summary {
    /// The summary of a run of `w` against one target, from what `r` recorded.
    pub fn new(label: &str, w: &Workload, transport: &str, clients: usize, r: &Recorder) -> Self {
        let seconds = w.duration.as_secs_f64();
        Summary {
            target: label.to_owned(),
            mode: w.mode().to_owned(),
            transport: transport.to_owned(),
            clients,
            rooms: w.rooms,
            duration_s: seconds,
            offered_rate: w.rate,
            acked: r.acked,
            refused: r.refused,
            failed: r.failed,
            throughput: r.acked as f64 / seconds,
            latency_ms: r.latency(),
            mix: r.mix,
            cpu: Default::default(),
        }
    }

    pub fn line(&self) -> String {
        let offered = self
            .offered_rate
            .map(|r| format!(" offered {r:.0}/s,"))
            .unwrap_or_default();
        let cpu: String = self
            .cpu
            .iter()
            .map(|(name, c)| {
                let (threads, switches) = (c.by_thread(), c.switches_by_thread());
                format!(
                    "  {name} {:.1} µs/ack [user {:.1}, kernel {:.1}]{threads}{switches}",
                    c.us_per_ack, c.user_us_per_ack, c.system_us_per_ack
                )
            })
            .collect();
        format!(
            "{:<20} {:<6}{offered} {:>9.0} acks/s  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  ({} acked, {} refused, {} failed){cpu}",
            self.target,
            self.mode,
            self.throughput,
            self.latency_ms.p50,
            self.latency_ms.p90,
            self.latency_ms.p99,
            self.latency_ms.max,
            self.acked,
            self.refused,
            self.failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_even_and_none() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[9.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 9.0, 2.0]), Some(3.0));
    }
}
