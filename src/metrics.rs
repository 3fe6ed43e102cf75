//! Prometheus metrics, one registry per engine (so several engines can share a test process).

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use roomstate_journal::JournalMetrics;

/// Every metric the engine exports on `/metrics` (all named `roomstate_*`).
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Registry,
    /// The process's own (`process_*`: CPU, memory, open files), under their standard names.
    process: Registry,
    /// Accepted mutations by event kind (`joined`, `voted`, ...), counted when durable.
    pub(crate) mutations: IntCounterVec,
    /// Requests refused, by API error code.
    pub(crate) refusals: IntCounterVec,
    pub(crate) rooms_open: IntGauge,
    pub(crate) ws_connections: IntGauge,
    /// Events applied in memory and handed to the journal but not yet durable.
    pub(crate) journal_pending: IntGauge,
    pub(crate) rooms_closed: IntCounter,
    pub(crate) rooms_recovered: IntCounter,
    /// Sockets dropped because their client did not take what it was sent.
    pub(crate) ws_slow_clients: IntCounter,
    /// Bytes written to sockets and not yet taken by their clients' connections.
    pub(crate) ws_send_buffer: IntGauge,
    /// HTTP requests by method, route pattern (never the raw path) and status.
    http_requests: IntCounterVec,
    /// HTTP request durations (to the response head) by method and route pattern.
    http_seconds: HistogramVec,
    /// Batches, batch sizes, commit time, failures, failovers: counted by the journal itself.
    pub(crate) journal: JournalMetrics,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: T,
) -> Result<T, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    pub(crate) fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("roomstate".into()), None)?;
        let r = &registry;
        let build = IntGaugeVec::new(
            Opts::new("build_info", "The engine's version and commit (always 1)"),
            &["version", "commit"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("ROOMSTATE_COMMIT")])
            .set(1);
        registry.register(Box::new(build))?;
        let process = Registry::new();
        #[cfg(target_os = "linux")]
        process.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            mutations: register(
                r,
                IntCounterVec::new(
                    Opts::new("mutations_total", "Durable mutations by kind"),
                    &["kind"],
                )?,
            )?,
            refusals: register(
                r,
                IntCounterVec::new(
                    Opts::new("refusals_total", "Refused requests by error code"),
                    &["code"],
                )?,
            )?,
            rooms_open: register(r, IntGauge::new("rooms_open", "Open rooms in memory")?)?,
            ws_connections: register(
                r,
                IntGauge::new("ws_connections", "Open WebSocket connections")?,
            )?,
            journal_pending: register(
                r,
                IntGauge::new("journal_pending_events", "Events not yet durable")?,
            )?,
            rooms_closed: register(r, IntCounter::new("rooms_closed_total", "Rooms closed")?)?,
            rooms_recovered: register(
                r,
                IntCounter::new("rooms_recovered_total", "Rooms rebuilt from the journal")?,
            )?,
            ws_slow_clients: register(
                r,
                IntCounter::new(
                    "ws_slow_clients_total",
                    "Sockets dropped for not reading: their outgoing buffer passed \
                     limits.ws_send_buffer_bytes",
                )?,
            )?,
            ws_send_buffer: register(
                r,
                IntGauge::new(
                    "ws_send_buffer_bytes",
                    "Bytes written to sockets and not yet taken by their connections",
                )?,
            )?,
            http_requests: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "http_requests_total",
                        "HTTP requests by method, route pattern and status",
                    ),
                    &["method", "route", "status"],
                )?,
            )?,
            http_seconds: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "http_request_seconds",
                        "Time to answer an HTTP request (the response head), by method and \
                         route pattern",
                    )
                    .buckets(vec![
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0, 30.0,
                    ]),
                    &["method", "route"],
                )?,
            )?,
            journal: JournalMetrics::register(r)?,
            registry,
            process,
        })
    }

    /// The registry every `roomstate_*` metric is in (for parts that register their own).
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts a refusal with the API error code `code`.
    pub(crate) fn refused(&self, code: &str) {
        self.refusals.with_label_values(&[code]).inc();
    }

    /// Counts and times one HTTP request; `route` is its pattern (`/rooms/{id}`), never its path;
    /// `status` is the three digits (`"200"`).
    pub(crate) fn http_request(&self, method: &str, route: &str, status: &str, took: Duration) {
        self.http_requests
            .with_label_values(&[method, route, status])
            .inc();
        self.http_seconds
            .with_label_values(&[method, route])
            .observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut out = Vec::new();
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        if let Err(error) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(%error, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
