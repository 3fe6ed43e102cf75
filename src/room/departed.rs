//! Rooms that left this process lately without closing: their actor stopped because another
//! node (or another run of this engine) took them over. A request that looked a room up just
//! before its actor stopped, or that a cluster node routed here by an owner it had cached, must
//! hear `unavailable` (retry: the room is open elsewhere), not `not_found` — the store has no
//! final record of a room that did not close.
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

/// Rooms whose actor stopped here without closing, with when.
#[derive(Default)]
pub(crate) struct Departed {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Each room's latest departure.
    latest: HashMap<RoomId, Instant>,
    /// Every departure in order, to prune from the front.
    order: VecDeque<(Instant, RoomId)>,
}

impl Departed {
    /// `room`'s actor stopped here, and the room did not close.
    pub(crate) fn record(&self, room: &RoomId) {
        self.record_at(room, Instant::now());
    }

    fn record_at(&self, room: &RoomId, now: Instant) {
        let mut inner = self.inner.lock();
        inner.prune(now);
        inner.latest.insert(room.clone(), now);
        inner.order.push_back((now, room.clone()));
    }

    /// Whether `room` left this process within `KEPT_FOR`.
    pub(crate) fn lately(&self, room: &RoomId) -> bool {
        self.lately_at(room, Instant::now())
    }

    fn lately_at(&self, room: &RoomId, now: Instant) -> bool {
        let mut inner = self.inner.lock();
        inner.prune(now);
        inner.latest.contains_key(room)
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
            if self.latest.get(&room) == Some(&at) {
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
        departed.record_at(&a, start);
        assert!(departed.lately_at(&a, start));
        assert!(departed.lately_at(&a, start + KEPT_FOR - Duration::from_millis(1)));
        assert!(!departed.lately_at(&a, start + KEPT_FOR));
        assert!(!departed.lately_at(&b, start), "only rooms that departed");
        // The lookup past its time let it go: nothing is held longer than its time.
        assert!(departed.inner.lock().latest.is_empty());
        assert!(departed.inner.lock().order.is_empty());
        // A later departure prunes the old ones too.
        departed.record_at(&a, start + KEPT_FOR);
        departed.record_at(&b, start + KEPT_FOR * 2);
        let inner = departed.inner.lock();
        assert_eq!(inner.latest.len(), 1);
        assert_eq!(inner.order.len(), 1);
    }

    #[test]
    fn a_room_that_departs_again_keeps_its_latest_departure() {
        let departed = Departed::default();
        let start = Instant::now();
        let a = RoomId::generate();
        departed.record_at(&a, start);
        let again = start + KEPT_FOR / 2;
        departed.record_at(&a, again);
        // Pruning the first departure leaves the second.
        departed.record_at(&RoomId::generate(), start + KEPT_FOR);
        assert!(departed.lately_at(&a, start + KEPT_FOR));
        assert!(!departed.lately_at(&a, again + KEPT_FOR));
    }
}
