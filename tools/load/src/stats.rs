//! What a run measured: acknowledged requests, refusals, and HDR histograms (microseconds) of
//! ack latency and, in open loop, of how late the client sent each request (its own lag: a
//! client thread busy reading frames sends late, and the latency from the due time counts it),
//! summarised as throughput and percentiles.

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
    /// Open loop: from when each request was due to when the client sent it.
    send_lag: Histogram<u64>,
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
        let histogram =
            || Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds");
        Self {
            latency: histogram(),
            send_lag: histogram(),
            acked: 0,
            refused: 0,
            failed: 0,
            mix: MixCount::default(),
        }
    }

    pub fn ack(&mut self, kind: Kind, latency: Duration) {
        self.acked += 1;
        self.mix.add(kind);
        self.latency.saturating_record(micros(latency));
    }

    /// An open-loop request went out `lag` after it was due.
    pub fn sent_late(&mut self, lag: Duration) {
        self.send_lag.saturating_record(micros(lag));
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
        let _ = self.send_lag.add(&other.send_lag);
    }

    pub fn latency(&self) -> LatencyMs {
        LatencyMs::of(&self.latency)
    }

    /// How late the requests went out (open loop); `None` when none was recorded.
    pub fn send_lag(&self) -> Option<LatencyMs> {
        (!self.send_lag.is_empty()).then(|| LatencyMs::of(&self.send_lag))
    }
}

/// Whole microseconds, at least 1 (the histograms' lowest value).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
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
    /// Open loop: how late the client sent its requests (the latency above counts it).
    pub send_lag_ms: Option<LatencyMs>,
    pub mix: MixCount,
    /// CPU of the watched processes (`--cpu`) over the measured window, by name.
    pub cpu: std::collections::BTreeMap<String, crate::cpu::CpuUse>,
    /// Rooms closed once the run was done (`--admin-token`; none otherwise).
    pub rooms_closed: Option<usize>,
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
            send_lag_ms: r.send_lag(),
            mix: r.mix,
            cpu: Default::default(),
            rooms_closed: None,
        }
    }

    pub fn line(&self) -> String {
        let offered = self
            .offered_rate
            .map(|r| format!(" offered {r:.0}/s,"))
            .unwrap_or_default();
        let lag = self
            .send_lag_ms
            .map(|l| format!("  sent late p50 {:.2} ms p99 {:.2} ms", l.p50, l.p99))
            .unwrap_or_default();
        let closed = self
            .rooms_closed
            .map(|n| format!(", {n} rooms closed after"))
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
            "{:<20} {:<6}{offered} {:>9.0} acks/s  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  ({} acked, {} refused, {} failed{closed}){lag}{cpu}",
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
    use std::time::Duration;

    use super::{median, Recorder};

    #[test]
    fn median_of_odd_even_and_none() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[9.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 9.0, 2.0]), Some(3.0));
    }

    #[test]
    fn send_lag_is_reported_only_when_recorded() {
        let mut closed = Recorder::new();
        closed.ack(crate::mix::Kind::Vote, Duration::from_millis(3));
        assert!(
            closed.send_lag().is_none(),
            "a closed loop sends when it may"
        );

        let mut open = Recorder::new();
        open.sent_late(Duration::ZERO);
        open.sent_late(Duration::from_millis(40));
        let mut other = Recorder::new();
        other.sent_late(Duration::from_millis(2));
        open.merge(&other);
        let lag = open.send_lag().expect("recorded");
        assert!(lag.max >= 39.9 && lag.max <= 40.1, "{lag:?}");
        assert!(lag.p50 >= 1.9 && lag.p50 <= 2.1, "{lag:?}");
    }
}
