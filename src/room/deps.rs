//! What every room shares: the journal, the store, the metrics and the room settings.

use std::{sync::Arc, time::Duration};

use roomstate_journal::Journal;
use roomstate_store::Store;

use crate::metrics::Metrics;

/// Room tunables from the settings.
#[derive(Debug, Clone)]
pub(crate) struct RoomSettings {
    /// Pending events past which new mutations are refused with 503.
    pub(crate) max_pending: usize,
    /// Idle time after which an HTTP join lapses.
    pub(crate) http_ttl: Duration,
    /// Durable events between snapshots (recovery replays at most about this many per room).
    pub(crate) snapshot_every: u64,
    /// How long a close waits for pending events to become durable and the record to be written
    /// before answering 503 (the room stays closed to mutations; the close can be retried). A
    /// setting rather than a constant so tests can use a short one; the engine's is in `app`.
    pub(crate) close_timeout: Duration,
    /// Chat messages a room keeps in memory (the journal keeps them all).
    pub(crate) max_messages: usize,
}

pub(crate) struct RoomDeps {
    pub(crate) journal: Arc<dyn Journal>,
    pub(crate) store: Store,
    pub(crate) metrics: Metrics,
    pub(crate) settings: RoomSettings,
}
