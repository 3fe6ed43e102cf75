//! What a cluster node counts on `/metrics` (registered only with `cluster.enabled`).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub(crate) struct ClusterMetrics {
    /// Rooms this node owns (holds the lease of).
    pub(crate) leases: IntGauge,
    /// Rooms this node took over from a dead, paused or leaving node.
    pub(crate) takeovers: IntCounter,
    /// Calls forwarded to a room's owner, by kind (`command`, `view`, `socket`, ...).
    pub(crate) forwarded: IntCounterVec,
    /// Seconds from an event being made durable by its owner to a mirror here applying it.
    pub(crate) mirror_lag: Histogram,
    /// Live nodes as this node sees them (itself included).
    pub(crate) nodes_alive: IntGauge,
    /// Rooms owned elsewhere that this node mirrors for its sockets.
    pub(crate) mirrors: IntGauge,
}

impl ClusterMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            leases: IntGauge::new("cluster_leases", "Rooms this node owns")?,
            takeovers: IntCounter::new(
                "cluster_takeovers_total",
                "Rooms this node took over from another node",
            )?,
            forwarded: IntCounterVec::new(
                Opts::new(
                    "cluster_forwarded_total",
                    "Calls forwarded to the node that owns the room, by kind",
                ),
                &["kind"],
            )?,
            mirror_lag: Histogram::with_opts(
                HistogramOpts::new(
                    "cluster_mirror_lag_seconds",
                    "From an event's time at its owner to a mirror on this node applying it",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
            )?,
            nodes_alive: IntGauge::new("cluster_nodes_alive", "Live nodes, this one included")?,
            mirrors: IntGauge::new(
                "cluster_mirrors",
                "Rooms owned by other nodes that this node mirrors for its sockets",
            )?,
        };
        registry.register(Box::new(metrics.leases.clone()))?;
        registry.register(Box::new(metrics.takeovers.clone()))?;
        registry.register(Box::new(metrics.forwarded.clone()))?;
        registry.register(Box::new(metrics.mirror_lag.clone()))?;
        registry.register(Box::new(metrics.nodes_alive.clone()))?;
        registry.register(Box::new(metrics.mirrors.clone()))?;
        Ok(metrics)
    }

    /// Counts one call forwarded to an owner.
    pub(crate) fn forwarded(&self, kind: &str) {
        self.forwarded.with_label_values(&[kind]).inc();
    }
}
