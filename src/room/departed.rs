//! Rooms that left this process lately, and how.
//!
//! - **Moved**: their actor stopped without closing, because another node (or another run of
//!   this engine) took them over. A request that looked a room up just before its actor
//!   stopped, or that a cluster node routed here by an owner it had cached, must hear
//!   `unavailable` (retry: the room is open elsewhere), not `not_found` — the store has no final
//!   record of a room that did not close.
//! - **Closed**: a close here answered the final view. The room's lease stays in Redis until its
//!   actor has deleted the room's log, a moment later (or until the next scan, if that failed):
//!   meanwhile a cluster node must not take the lease naming this node, with no actor here, for
//!   a room on its way elsewhere (`503`): it is closed, and its record is in the store.
//!
//! Kept for `KEPT_FOR` after the departure (long enough for routes to learn the new owner), at
//! most one entry per room, and pruned oldest first as departures come and rooms are looked up.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use roomstate_core::room::RoomId;

/// How long a departed room answers `unavailable` rather than `not_found`.
pub(crate) const KEPT_FOR: Duration = Duration::from_secs(30);

/// How a room left this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Departure {
    /// Taken over elsewhere: open there.
    Moved,
    /// Closed here: its record is in the store.
    Closed,
}

/// Rooms that left this process lately, with when and how.
#[derive(Default)]
pub(crate) struct Departed {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Each room's latest departure.
    latest: HashMap<RoomId, (Instant, Departure)>,
    /// Every departure in order, to prune from the front.
    order: VecDeque<(Instant, RoomId)>,
}

impl Departed {
    /// `room`'s actor stopped here, and the room did not close.
    pub(crate) fn record(&self, room: &RoomId) {
        self.record_at(room, Departure::Moved, Instant::now());
    }

    /// A close of `room` here answered its final view.
    pub(crate) fn record_closed(&self, room: &RoomId) {
        self.record_at(room, Departure::Closed, Instant::now());
    }

    fn record_at(&self, room: &RoomId, how: Departure, now: Instant) {
        let mut inner = self.inner.lock();
        inner.prune(now);
        inner.latest.insert(room.clone(), (now, how));
        inner.order.push_back((now, room.clone()));
    }

    /// Whether `room` moved away from this process within `KEPT_FOR`.
    pub(crate) fn lately(&self, room: &RoomId) -> bool {
        self.lately_at(room, Instant::now()) == Some(Departure::Moved)
    }

    /// Whether `room` was closed here within `KEPT_FOR`.
    pub(crate) fn closed_lately(&self, room: &RoomId) -> bool {
        self.lately_at(room, Instant::now()) == Some(Departure::Closed)
    }

    fn lately_at(&self, room: &RoomId, now: Instant) -> Option<Departure> {
        let mut inner = self.inner.lock();
        inner.prune(now);
        inner.latest.get(room).map(|(_, how)| *how)
    }
}

impl Inner {
    /// Forgets departures older than `KEPT_FOR`; a room that departed again since keeps its
    /// latest.
    fn prune(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < KEPT_FOR {
                break;
            }
            let Some((at, room)) = self.order.pop_front() else {
                break;
            };
            if self
                .latest
                .get(&room)
                .is_some_and(|(latest, _)| *latest == at)
            {
                self.latest.remove(&room);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_departure_is_kept_for_its_time_then_forgotten() {
        let departed = Departed::default();
        let start = Instant::now();
        let (a, b) = (RoomId::generate(), RoomId::generate());
        departed.record_at(&a, Departure::Moved, start);
        assert_eq!(departed.lately_at(&a, start), Some(Departure::Moved));
        assert!(departed
            .lately_at(&a, start + KEPT_FOR - Duration::from_millis(1))
            .is_some());
        assert_eq!(departed.lately_at(&a, start + KEPT_FOR), None);
        assert_eq!(
            departed.lately_at(&b, start),
            None,
            "only rooms that departed"
        );
        // The lookup past its time let it go: nothing is held longer than its time.
        assert!(departed.inner.lock().latest.is_empty());
        assert!(departed.inner.lock().order.is_empty());
        // A later departure prunes the old ones too.
        departed.record_at(&a, Departure::Moved, start + KEPT_FOR);
        departed.record_at(&b, Departure::Moved, start + KEPT_FOR * 2);
        let inner = departed.inner.lock();
        assert_eq!(inner.latest.len(), 1);
        assert_eq!(inner.order.len(), 1);
    }

    #[test]
    fn a_room_that_departs_again_keeps_its_latest_departure() {
        let departed = Departed::default();
        let start = Instant::now();
        let a = RoomId::generate();
        departed.record_at(&a, Departure::Moved, start);
        let again = start + KEPT_FOR / 2;
        departed.record_at(&a, Departure::Closed, again);
        // Pruning the first departure leaves the second, and how it left.
        departed.record_at(&RoomId::generate(), Departure::Moved, start + KEPT_FOR);
        assert_eq!(
            departed.lately_at(&a, start + KEPT_FOR),
            Some(Departure::Closed)
        );
        assert_eq!(departed.lately_at(&a, again + KEPT_FOR), None);
    }
}
