//! `SnapshotSchedule`: when a room writes a snapshot, so recovery replays a bounded tail and the
//! journal can trim what came before.
//!
//! A snapshot carries the whole transcript, so the interval grows with it: at least as many
//! events as the transcript has messages pass between two snapshots, which keeps the bytes written
//! for snapshots within a constant factor of the bytes of the log itself.

use roomstate_core::room::Counters;

#[derive(Debug)]
pub(crate) struct SnapshotSchedule {
    /// Durable events between two snapshots (`journal.snapshot_every`).
    every: u64,
    /// Seq of the last durable snapshot (or of the state the room started from).
    last_seq: u64,
    writing: bool,
}

impl SnapshotSchedule {
    pub(crate) fn new(every: u64, last_seq: u64) -> Self {
        Self {
            every,
            last_seq,
            writing: false,
        }
    }

    /// Whether to snapshot the room at `committed`. Ask only when nothing is pending, so the
    /// working state is exactly the durable state.
    pub(crate) fn due(&self, committed: Counters) -> bool {
        let every = self.every.max(u64::from(committed.messages));
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
        let mut schedule = SnapshotSchedule::new(10, 1);
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
        let schedule = SnapshotSchedule::new(10, 100);
        assert!(!schedule.due(at(149, 50)));
        assert!(schedule.due(at(150, 50)));
    }
}
