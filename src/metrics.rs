//! Prometheus metrics, one registry per engine (so several engines can share a test process).

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every metric the engine exports on `/metrics`.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Accepted mutations by event kind (`joined`, `voted`, ...), counted when durable.
    pub mutations: IntCounterVec,
    /// Requests refused, by API error code.
    pub refusals: IntCounterVec,
    pub rooms_open: IntGauge,
    pub ws_connections: IntGauge,
    /// Events applied in memory and handed to the journal but not yet durable.
    pub journal_pending: IntGauge,
    pub journal_batches: IntCounter,
    pub journal_batch_events: Histogram,
    pub journal_commit_seconds: Histogram,
    pub journal_failures: IntCounter,
    pub journal_failovers: IntCounter,
    pub rooms_closed: IntCounter,
    pub rooms_recovered: IntCounter,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Names are fixed and distinct, so registering into a fresh registry cannot collide.
    if let Err(error) = registry.register(Box::new(metric.clone())) {
        tracing::error!(%error, "metric registration failed");
    }
    metric
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("roomstate".into()), None)?;
        let r = &registry;
        let batch_buckets = vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];
        let time_buckets = prometheus::exponential_buckets(0.0001, 2.0, 16)?;
        Ok(Self {
            mutations: register(
                r,
                IntCounterVec::new(
                    Opts::new("mutations_total", "Durable mutations by kind"),
                    &["kind"],
                )?,
            ),
            refusals: register(
                r,
                IntCounterVec::new(
                    Opts::new("refusals_total", "Refused requests by error code"),
                    &["code"],
                )?,
            ),
            rooms_open: register(r, IntGauge::new("rooms_open", "Open rooms in memory")?),
            ws_connections: register(
                r,
                IntGauge::new("ws_connections", "Open WebSocket connections")?,
            ),
            journal_pending: register(
                r,
                IntGauge::new("journal_pending_events", "Events not yet durable")?,
            ),
            journal_batches: register(
                r,
                IntCounter::new("journal_batches_total", "Group-committed batches")?,
            ),
            journal_batch_events: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new("journal_batch_events", "Events per committed batch")
                        .buckets(batch_buckets),
                )?,
            ),
            journal_commit_seconds: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new("journal_commit_seconds", "Time to make a batch durable")
                        .buckets(time_buckets),
                )?,
            ),
            journal_failures: register(
                r,
                IntCounter::new(
                    "journal_failures_total",
                    "Batches the journal could not write",
                )?,
            ),
            journal_failovers: register(
                r,
                IntCounter::new("journal_failovers_total", "Switches to a new Redis primary")?,
            ),
            rooms_closed: register(r, IntCounter::new("rooms_closed_total", "Rooms closed")?),
            rooms_recovered: register(
                r,
                IntCounter::new("rooms_recovered_total", "Rooms rebuilt from the journal")?,
            ),
            registry,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let families = self.registry.gather();
        if let Err(error) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(%error, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
