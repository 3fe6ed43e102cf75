//! What the journal acknowledged lately, kept so it can be put back (`repair`) on a primary that
//! lacks it. A batch acknowledged by `WAIT n` with n below the number of replicas can still
//! vanish: a failover may move the replica that counted towards n to the new primary, which
//! full-resyncs it. The engine only re-sends what was not acknowledged, so without this record
//! nobody would ever write those events again.
//!
//! Bounds (`RecentBounds`, defaults in brackets), checked at every insert, oldest first:
//! - age [5 s]: an event leaves once it is older than the window *measured from the newest
//!   acknowledgement*, not from the clock, so an outage (nothing acknowledged) ages nothing out
//!   and the repair after it still finds the last seconds before it;
//! - count [131,072 events] and bytes [32 MiB: event JSON + room id + 64 bytes per entry]: under
//!   a load that acknowledges more than that within the window, the oldest go early. Those
//!   early evictions are counted (`journal_recent_evictions_total{bound}`): the record then
//!   covers less than its window. About 3.5 s at the 37 k acks/s of docs/benchmarks.md.
//!
//! A room leaves the record when the journal is asked to delete its log: its final record is in
//! the SQL store by then, and re-appending its events would bring a closed room's log back.
//! Never touches Redis.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use foldhash::{HashMap, HashMapExt as _};
use roomstate_core::room::RoomId;

use crate::Epoch;

/// Per-entry cost counted on top of the event's JSON and its room id (the queues' slots, the
/// string headers), so the byte bound tracks memory rather than payload alone.
const ENTRY_OVERHEAD: usize = 64;

/// How much of what it acknowledged the journal remembers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentBounds {
    /// Events acknowledged longer than this before the newest acknowledgement are forgotten.
    pub window: Duration,
    /// At most this many events.
    pub max_events: usize,
    /// At most about this many bytes (event JSON + room id + 64 per event).
    pub max_bytes: usize,
}

impl Default for RecentBounds {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(5),
            max_events: 131_072,
            max_bytes: 32 << 20,
        }
    }
}

/// An acknowledged event as it was written: its seq, the lease epoch it was written under and
/// the JSON of its stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Acked {
    pub(super) seq: u64,
    pub(super) epoch: Epoch,
    pub(super) json: String,
}

/// Events that one insert pushed out before their window ran out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Evicted {
    pub(super) by_count: u64,
    pub(super) by_bytes: u64,
}

/// One recorded event in acknowledgement order. A slot whose room was forgotten stays until it
/// is evicted (it still counts towards the bounds), so forgetting a room costs O(1).
struct Slot {
    room: RoomId,
    seq: u64,
    epoch: Epoch,
    at: Instant,
    bytes: usize,
}

/// The bounded record of recently acknowledged events.
pub(super) struct Recent {
    bounds: RecentBounds,
    order: VecDeque<Slot>,
    rooms: HashMap<RoomId, VecDeque<Acked>>,
    bytes: usize,
}

impl Recent {
    pub(super) fn new(bounds: RecentBounds) -> Self {
        Self {
            bounds,
            order: VecDeque::new(),
            rooms: HashMap::new(),
            bytes: 0,
        }
    }

    /// Remembers that `room`'s event `seq`, stored as `json`, was acknowledged at `at`, then
    /// applies the bounds. A room's events arrive in seq order; one already recorded is ignored.
    pub(super) fn record(
        &mut self,
        room: &RoomId,
        seq: u64,
        epoch: Epoch,
        json: String,
        at: Instant,
    ) -> Evicted {
        let events = self.rooms.entry(room.clone()).or_default();
        // A new lease of the room numbers its events from where the log it replayed stopped:
        // what an older lease acknowledged at or above that seq never made it into the log the
        // new one read, and is superseded.
        while events
            .back()
            .is_some_and(|last| last.epoch != epoch && last.seq >= seq)
        {
            events.pop_back();
        }
        if events.back().is_some_and(|last| last.seq >= seq) {
            return Evicted::default();
        }
        let bytes = json.len() + room.as_str().len() + ENTRY_OVERHEAD;
        events.push_back(Acked { seq, epoch, json });
        self.order.push_back(Slot {
            room: room.clone(),
            seq,
            epoch,
            at,
            bytes,
        });
        self.bytes += bytes;
        self.evict(at)
    }

    fn evict(&mut self, newest: Instant) -> Evicted {
        let mut evicted = Evicted::default();
        while let Some(oldest) = self.order.front() {
            let aged = newest.saturating_duration_since(oldest.at) > self.bounds.window;
            let over_count = self.order.len() > self.bounds.max_events;
            let over_bytes = self.bytes > self.bounds.max_bytes;
            if !(aged || over_count || over_bytes) {
                break;
            }
            let Some(slot) = self.order.pop_front() else {
                break;
            };
            self.bytes -= slot.bytes;
            if self.drop_event(&slot) && !aged {
                if over_count {
                    evicted.by_count += 1;
                } else {
                    evicted.by_bytes += 1;
                }
            }
        }
        evicted
    }

    /// Drops the slot's event from its room; false when the room was forgotten meanwhile.
    fn drop_event(&mut self, slot: &Slot) -> bool {
        let Some(events) = self.rooms.get_mut(&slot.room) else {
            return false;
        };
        let live = events
            .front()
            .is_some_and(|first| first.seq == slot.seq && first.epoch == slot.epoch);
        if live {
            events.pop_front();
        }
        if events.is_empty() {
            self.rooms.remove(&slot.room);
        }
        live
    }

    /// Forgets every recorded event of `room` (its log is being deleted).
    pub(super) fn forget(&mut self, room: &RoomId) {
        self.rooms.remove(room);
    }

    /// Every room with recorded events, each with them in seq order.
    pub(super) fn rooms(&self) -> impl Iterator<Item = (&RoomId, &VecDeque<Acked>)> {
        self.rooms.iter()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Recorded events (of rooms not forgotten).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.rooms.values().map(VecDeque::len).sum()
    }

    #[cfg(test)]
    fn seqs(&self, room: &RoomId) -> Vec<u64> {
        self.rooms
            .get(room)
            .map(|events| events.iter().map(|e| e.seq).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E0: Epoch = Epoch::NONE;

    fn room(name: &str) -> RoomId {
        RoomId::parse(name).unwrap()
    }

    fn bounds(window_ms: u64, max_events: usize, max_bytes: usize) -> RecentBounds {
        RecentBounds {
            window: Duration::from_millis(window_ms),
            max_events,
            max_bytes,
        }
    }

    #[test]
    fn keeps_what_was_acknowledged_within_the_window_of_the_newest() {
        let (a, b) = (room("a"), room("b"));
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut recent = Recent::new(bounds(1000, 100, 1 << 20));
        recent.record(&a, 1, E0, "a1".into(), at(0));
        recent.record(&a, 2, E0, "a2".into(), at(400));
        recent.record(&b, 1, E0, "b1".into(), at(900));
        assert_eq!(recent.len(), 3, "all within 1 s of the newest");

        // 1.2 s: a1 (1.2 s old) ages out; a2 (0.8 s) stays.
        let evicted = recent.record(&b, 2, E0, "b2".into(), at(1200));
        assert_eq!(recent.seqs(&a), [2]);
        assert_eq!(recent.seqs(&b), [1, 2]);
        assert_eq!(evicted, Evicted::default(), "ageing out is not counted");

        // Nothing ages while nothing is acknowledged: the window follows the newest entry.
        assert_eq!(recent.len(), 3);
        recent.record(&b, 3, E0, "b3".into(), at(2000));
        assert_eq!(recent.seqs(&a), Vec::<u64>::new(), "a2 is 1.6 s older");
        assert_eq!(recent.seqs(&b), [2, 3], "b1 is 1.1 s older; b2 0.8 s");
        assert!(
            recent.rooms().all(|(id, _)| *id == b),
            "an emptied room leaves"
        );
    }

    #[test]
    fn a_count_bound_evicts_the_oldest_first_and_counts_it() {
        let (a, b) = (room("a"), room("b"));
        let now = Instant::now();
        let mut recent = Recent::new(bounds(60_000, 3, 1 << 20));
        for seq in 1..=3 {
            assert_eq!(
                recent.record(&a, seq, E0, format!("a{seq}"), now),
                Evicted::default()
            );
        }
        let evicted = recent.record(&b, 1, E0, "b1".into(), now);
        assert_eq!(evicted.by_count, 1);
        assert_eq!(recent.seqs(&a), [2, 3]);
        let evicted = recent.record(&b, 2, E0, "b2".into(), now);
        assert_eq!(evicted.by_count, 1);
        assert_eq!((recent.seqs(&a), recent.seqs(&b)), (vec![3], vec![1, 2]));
    }

    #[test]
    fn a_byte_bound_evicts_the_oldest_first_and_counts_it() {
        let a = room("a");
        let now = Instant::now();
        // Each entry costs 100 (JSON) + 1 (room id) + 64.
        let entry = 100 + 1 + ENTRY_OVERHEAD;
        let mut recent = Recent::new(bounds(60_000, 1000, 2 * entry + 10));
        recent.record(&a, 1, E0, "x".repeat(100), now);
        recent.record(&a, 2, E0, "x".repeat(100), now);
        let evicted = recent.record(&a, 3, E0, "x".repeat(100), now);
        assert_eq!(
            evicted,
            Evicted {
                by_count: 0,
                by_bytes: 1
            }
        );
        assert_eq!(recent.seqs(&a), [2, 3]);
    }

    #[test]
    fn a_forgotten_room_is_gone_and_its_slots_age_out_uncounted() {
        let (a, b) = (room("a"), room("b"));
        let now = Instant::now();
        let mut recent = Recent::new(bounds(60_000, 3, 1 << 20));
        recent.record(&a, 1, E0, "a1".into(), now);
        recent.record(&a, 2, E0, "a2".into(), now);
        recent.forget(&a);
        assert!(recent.is_empty());
        recent.record(&b, 1, E0, "b1".into(), now);
        // a's two stale slots go first, and lose nothing.
        let evicted = recent.record(&b, 2, E0, "b2".into(), now);
        assert_eq!(evicted, Evicted::default());
        assert_eq!(recent.seqs(&b), [1, 2]);
        assert_eq!(recent.len(), 2);
    }

    #[test]
    fn a_new_lease_supersedes_what_an_older_one_recorded_from_its_first_seq_on() {
        let a = room("a");
        let now = Instant::now();
        let mut recent = Recent::new(bounds(60_000, 5, 1 << 20));
        for seq in 1..=3 {
            recent.record(&a, seq, Epoch(1), format!("old{seq}"), now);
        }
        // The room came back under epoch 2 from a log that stopped at 1: its seq 2 is new, and
        // the old lease's 2 and 3 never reached that log.
        recent.record(&a, 2, Epoch(2), "new2".into(), now);
        recent.record(&a, 3, Epoch(2), "new3".into(), now);
        let kept = |recent: &Recent| -> Vec<(u64, Epoch, String)> {
            recent.rooms[&a]
                .iter()
                .map(|e| (e.seq, e.epoch, e.json.clone()))
                .collect()
        };
        assert_eq!(
            kept(&recent),
            [
                (1, Epoch(1), "old1".into()),
                (2, Epoch(2), "new2".into()),
                (3, Epoch(2), "new3".into())
            ]
        );
        // Over the count bound the oldest goes, old1; then the superseded events' slots, which
        // take nothing with them (the new lease's 2 and 3 stay).
        let evicted = recent.record(&a, 4, Epoch(2), "new4".into(), now);
        assert_eq!(evicted.by_count, 1);
        let evicted = recent.record(&a, 5, Epoch(2), "new5".into(), now);
        assert_eq!(
            evicted,
            Evicted::default(),
            "only a superseded event's slot went"
        );
        assert_eq!(recent.seqs(&a), [2, 3, 4, 5]);
    }

    #[test]
    fn an_event_recorded_twice_is_kept_once() {
        let a = room("a");
        let now = Instant::now();
        let mut recent = Recent::new(RecentBounds::default());
        recent.record(&a, 1, E0, "a1".into(), now);
        recent.record(&a, 2, E0, "a2".into(), now);
        recent.record(&a, 2, E0, "a2".into(), now);
        recent.record(&a, 1, E0, "a1".into(), now);
        assert_eq!(recent.seqs(&a), [1, 2]);
    }
}
