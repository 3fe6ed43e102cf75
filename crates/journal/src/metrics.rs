//! What the journals count, registered into the engine's Prometheus registry so the names stay
//! `roomstate_journal_*` on `/metrics`.
//!
//! The Redis journal's failover repair counters carry a label, so (like every labelled family)
//! they appear on `/metrics` at their first count: a journal that never lost anything to a
//! failover, or that is not Redis at all, exports no such family.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// The journal's metrics. Clones share the same counters.
#[derive(Clone)]
pub struct JournalMetrics {
    /// Group-committed batches that held at least one event.
    pub batches: IntCounter,
    /// Events per committed batch.
    pub batch_events: Histogram,
    /// Time to make a batch durable.
    pub commit_seconds: Histogram,
    /// Batches the journal could not write.
    pub failures: IntCounter,
    /// Switches to a new Redis primary.
    pub failovers: IntCounter,
    /// Acknowledged events re-appended to a primary that lacked them (a failover lost them), by
    /// `primary`.
    pub repaired_events: IntCounterVec,
    /// Acknowledged events a primary lacked that could not go back: the record of recent
    /// acknowledgements no longer held them (the room's log has a gap), or the room was claimed
    /// under a newer lease since. By `primary`.
    pub unrepairable_events: IntCounterVec,
    /// Acknowledged events the record of recent acknowledgements dropped before its time window
    /// ran out, by the `bound` that forced it (`count`, `bytes`).
    pub recent_evictions: IntCounterVec,
}

impl JournalMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let batch_buckets = vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];
        let time_buckets = prometheus::exponential_buckets(0.0001, 2.0, 16)?;
        let metrics = Self {
            batches: IntCounter::new("journal_batches_total", "Group-committed batches")?,
            batch_events: Histogram::with_opts(
                HistogramOpts::new("journal_batch_events", "Events per committed batch")
                    .buckets(batch_buckets),
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new("journal_commit_seconds", "Time to make a batch durable")
                    .buckets(time_buckets),
            )?,
            failures: IntCounter::new(
                "journal_failures_total",
                "Batches the journal could not write",
            )?,
            failovers: IntCounter::new(
                "journal_failovers_total",
                "Switches to a new Redis primary",
            )?,
            repaired_events: IntCounterVec::new(
                Opts::new(
                    "journal_repaired_events_total",
                    "Acknowledged events re-appended to a Redis primary that lacked them",
                ),
                &["primary"],
            )?,
            unrepairable_events: IntCounterVec::new(
                Opts::new(
                    "journal_unrepairable_events_total",
                    "Acknowledged events a Redis primary lacked that could not go back",
                ),
                &["primary"],
            )?,
            recent_evictions: IntCounterVec::new(
                Opts::new(
                    "journal_recent_evictions_total",
                    "Acknowledged events dropped from the record of recent ones before their window",
                ),
                &["bound"],
            )?,
        };
        registry.register(Box::new(metrics.batches.clone()))?;
        registry.register(Box::new(metrics.batch_events.clone()))?;
        registry.register(Box::new(metrics.commit_seconds.clone()))?;
        registry.register(Box::new(metrics.failures.clone()))?;
        registry.register(Box::new(metrics.failovers.clone()))?;
        registry.register(Box::new(metrics.repaired_events.clone()))?;
        registry.register(Box::new(metrics.unrepairable_events.clone()))?;
        registry.register(Box::new(metrics.recent_evictions.clone()))?;
        Ok(metrics)
    }

    /// Metrics registered nowhere, for tools and tests that do not export them.
    pub fn detached() -> Result<Self, prometheus::Error> {
        Self::register(&Registry::new())
    }

    /// A committed batch of `events` events that took `seconds`.
    pub(crate) fn committed(&self, events: usize, seconds: f64) {
        if events > 0 {
            self.batches.inc();
            self.batch_events.observe(events as f64);
            self.commit_seconds.observe(seconds);
        }
    }
}
