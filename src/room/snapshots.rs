//! `SnapshotSchedule`: when a room writes a snapshot, so recovery replays a bounded tail and the
//! journal can trim what came before.
//!
//! A snapshot carries the messages the room keeps in memory (at most
//! `limits.room_messages_in_memory`; the journal archives every message apart), so the interval
//! grows with them: at least as many events as the snapshot carries messages pass between two
//! snapshots, which keeps the bytes written for snapshots within a constant factor of the bytes of
//! the log itself — and no more, so the tail recovery replays stays bounded however long the
//! transcript. The count starts from the room's last snapshot, also across restarts: a room that
//! takes fewer events than the interval between two restarts is snapshotted all the same.

use roomstate_core::room::Counters;

#[derive(Debug)]
pub(crate) struct SnapshotSchedule {
    /// Durable events between two snapshots (`journal.snapshot_every`).
    every: u64,
    /// The most messages a snapshot carries (`limits.room_messages_in_memory`).
    max_messages: u64,
    /// Seq of the last durable snapshot (or of the state the room started from).
    last_seq: u64,
    writing: bool,
}

impl SnapshotSchedule {
    /// `last_seq`: the seq of the room's last snapshot (0 if it has none).
    pub(crate) fn new(every: u64, max_messages: usize, last_seq: u64) -> Self {
        Self {
            every,
            max_messages: u64::try_from(max_messages).unwrap_or(u64::MAX),
            last_seq,
            writing: false,
        }
    }

    /// Whether to snapshot the room at `committed`. Ask only when nothing is pending, so the
    /// working state is exactly the durable state.
    pub(crate) fn due(&self, committed: Counters) -> bool {
        let carried = u64::from(committed.messages).min(self.max_messages);
        let every = self.every.max(carried);
        !self.writing && committed.seq >= self.last_seq + every
    }

    pub(crate) fn started(&mut self) {
        self.writing = true;
    }

    /// The snapshot at `seq` is durable.
    pub(crate) fn written(&mut self, seq: u64) {
        self.writing = false;
        self.last_seq = seq;
    }

    /// The write failed; harmless (the log stays complete), the next commit tries again.
    pub(crate) fn failed(&mut self) {
        self.writing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64, messages: u32) -> Counters {
        Counters {
            seq,
            messages,
            ..Counters::default()
        }
    }

    #[test]
    fn every_n_events_one_at_a_time() {
        let mut schedule = SnapshotSchedule::new(10, 1000, 1);
        assert!(!schedule.due(at(10, 0)));
        assert!(schedule.due(at(11, 0)));
        schedule.started();
        assert!(!schedule.due(at(30, 0)), "one write at a time");
        schedule.failed();
        assert!(schedule.due(at(30, 0)), "a failed one is tried again");
        schedule.started();
        schedule.written(30);
        assert!(!schedule.due(at(39, 0)));
        assert!(schedule.due(at(40, 0)));
    }

    #[test]
    fn long_transcripts_stretch_the_interval() {
        let schedule = SnapshotSchedule::new(10, 1000, 100);
        assert!(!schedule.due(at(149, 50)));
        assert!(schedule.due(at(150, 50)));
    }

    #[test]
    fn only_the_messages_a_snapshot_carries_stretch_it() {
        // 100 000 messages, of which a snapshot carries the 1000 in memory: every 1000 events,
        // not every 100 000 (which let the log, and recovery's replay, grow with the transcript).
        let schedule = SnapshotSchedule::new(10, 1000, 1001);
        assert!(!schedule.due(at(2000, 100_000)));
        assert!(schedule.due(at(2001, 100_000)));
    }
}
