//! An in-memory journal for tests: durable for as long as the value lives, and able to fail on
//! demand so tests can drive the engine's failure paths without a real outage: the whole log down,
//! a batch written whose reply is lost, a log that reports itself corrupt, snapshots that fail.
//! It also records what it was asked (the batches per room and how each ended), so a test can
//! check how the engine retried and split its appends, not only the end state.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use futures_util::FutureExt;
use parking_lot::Mutex;

use roomstate_core::room::{ChatMessage, Event, RoomId, Snapshot};

use super::{Epoch, Journal, JournalError, JournalFuture, JournalStatus, RoomLog};

/// How the journal misbehaves now (see [`MemoryJournal::set_fault`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    /// Every call does its work and succeeds.
    #[default]
    None,
    /// Every call (append, snapshot, recover, delete, check) fails with `Unavailable` and nothing
    /// is written: the log cannot be reached.
    Down,
    /// Appends write their events, then fail with `Unavailable` anyway: the reply was lost, so
    /// the caller cannot know the batch is durable and must re-send it. Other calls work.
    WriteThenFail,
    /// Appends write nothing and fail with `Corrupt`, the error no retry is expected to heal.
    /// Other calls work.
    Corrupt,
}

/// One append call as far as one room is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// How many of the room's events the call carried.
    pub events: usize,
    /// Whether the call answered `Ok` (a lost reply counts as not acknowledged).
    pub acknowledged: bool,
}

#[derive(Default)]
struct Log {
    snapshot: Option<Snapshot>,
    events: Vec<Event>,
    /// Every chat message the room's events posted (snapshots do not trim it).
    messages: Vec<ChatMessage>,
    /// The room's lease epoch: writes under any other are refused as `Fenced`.
    epoch: Epoch,
}

impl Log {
    fn last_seq(&self) -> u64 {
        self.events
            .last()
            .map(|e| e.seq)
            .or(self.snapshot.as_ref().map(|s| s.seq))
            .unwrap_or(0)
    }
}

#[derive(Default)]
struct Inner {
    rooms: Mutex<BTreeMap<RoomId, Log>>,
    fault: Mutex<Fault>,
    /// Snapshots fail (and write nothing) while set, apart from `fault`: a snapshot is a
    /// different write from an append and may fail alone.
    failing_snapshots: Mutex<bool>,
    /// Deletes fail (and delete nothing) while set: the state a crash between a close's record
    /// and its log's deletion leaves.
    failing_deletes: Mutex<bool>,
    appends: AtomicU64,
    refused_snapshots: AtomicU64,
    /// Every append call per room, in the order they came.
    batches: Mutex<BTreeMap<RoomId, Vec<Batch>>>,
}

/// A journal held in memory. Clones share the same log, faults and records.
#[derive(Clone, Default)]
pub struct MemoryJournal {
    inner: Arc<Inner>,
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }

    /// While `down`, every call fails with `Unavailable` and nothing is written (the same as
    /// [`Fault::Down`]; `false` clears any fault).
    pub fn set_down(&self, down: bool) {
        self.set_fault(if down { Fault::Down } else { Fault::None });
    }

    /// How the journal behaves from now on, until the next call.
    pub fn set_fault(&self, fault: Fault) {
        *self.inner.fault.lock() = fault;
    }

    /// While `failing`, snapshots fail with `Unavailable` and change nothing.
    pub fn set_snapshots_failing(&self, failing: bool) {
        *self.inner.failing_snapshots.lock() = failing;
    }

    /// While `failing`, room deletions fail with `Unavailable` and change nothing.
    pub fn set_deletes_failing(&self, failing: bool) {
        *self.inner.failing_deletes.lock() = failing;
    }

    /// Successful appends so far (each one a group-committed batch).
    pub fn appends(&self) -> u64 {
        self.inner.appends.load(Ordering::SeqCst)
    }

    /// Every append call that carried `room`'s events, oldest first, with how it ended.
    pub fn batches(&self, room: &RoomId) -> Vec<Batch> {
        self.inner
            .batches
            .lock()
            .get(room)
            .cloned()
            .unwrap_or_default()
    }

    /// Append calls with `room`'s events that answered an error (whether or not they wrote).
    pub fn refused_appends(&self, room: &RoomId) -> usize {
        let batches = self.inner.batches.lock();
        let refused = batches
            .get(room)
            .map(|b| b.iter().filter(|b| !b.acknowledged).count());
        refused.unwrap_or(0)
    }

    /// Snapshot calls refused so far (by [`MemoryJournal::set_snapshots_failing`] or while down).
    pub fn refused_snapshots(&self) -> u64 {
        self.inner.refused_snapshots.load(Ordering::SeqCst)
    }

    /// A copy of one room's events (those after its snapshot).
    pub fn events(&self, room: &RoomId) -> Vec<Event> {
        self.inner
            .rooms
            .lock()
            .get(room)
            .map(|log| log.events.clone())
            .unwrap_or_default()
    }

    /// The seq of one room's snapshot, if it has one.
    pub fn snapshot_seq(&self, room: &RoomId) -> Option<u64> {
        let rooms = self.inner.rooms.lock();
        rooms.get(room)?.snapshot.as_ref().map(|s| s.seq)
    }

    /// Takes `room` over as another engine would: a new epoch, which fences every writer holding
    /// the old one. Returns the new epoch.
    pub fn claim(&self, room: &RoomId) -> Epoch {
        let mut rooms = self.inner.rooms.lock();
        let log = rooms.entry(room.clone()).or_default();
        log.epoch = log.epoch.next();
        log.epoch
    }

    /// The room's current epoch (`NONE` for a room it does not hold).
    pub fn epoch(&self, room: &RoomId) -> Epoch {
        self.inner
            .rooms
            .lock()
            .get(room)
            .map_or(Epoch::NONE, |log| log.epoch)
    }

    /// The rooms it holds a log for (reading them claims nothing, unlike `recover`).
    pub fn room_ids(&self) -> Vec<RoomId> {
        self.inner.rooms.lock().keys().cloned().collect()
    }

    /// Whether the journal holds a log (events or a snapshot) for `room`.
    pub fn has_room(&self, room: &RoomId) -> bool {
        self.inner.rooms.lock().contains_key(room)
    }

    fn fault(&self) -> Fault {
        *self.inner.fault.lock()
    }

    fn refuse_if_down(&self) -> Result<(), JournalError> {
        if self.fault() == Fault::Down {
            Err(JournalError::Unavailable("memory journal set down".into()))
        } else {
            Ok(())
        }
    }

    /// Records one append call per room it touches, with its outcome.
    fn record(&self, events: &[Event], acknowledged: bool) {
        let mut per_room: BTreeMap<&RoomId, usize> = BTreeMap::new();
        for event in events {
            *per_room.entry(&event.room).or_default() += 1;
        }
        let mut batches = self.inner.batches.lock();
        for (room, events) in per_room {
            batches.entry(room.clone()).or_default().push(Batch {
                events,
                acknowledged,
            });
        }
    }

    fn write(&self, epoch: Epoch, events: &[Event]) -> Result<(), JournalError> {
        // Read once, so a test flipping the switch mid-call cannot get half of each behaviour.
        let fault = self.fault();
        match fault {
            Fault::Down => return Err(JournalError::Unavailable("memory journal set down".into())),
            Fault::Corrupt => {
                return Err(JournalError::Corrupt(
                    "memory journal set to report corruption".into(),
                ))
            }
            Fault::None | Fault::WriteThenFail => {}
        }
        let mut rooms = self.inner.rooms.lock();
        // Check the whole batch before writing any of it, as the durable journals do: a batch
        // that would leave a gap writes nothing.
        let mut next: BTreeMap<&RoomId, u64> = BTreeMap::new();
        for event in events {
            fenced(&rooms, &event.room, epoch)?;
            let expected = next
                .entry(&event.room)
                .or_insert_with(|| rooms.get(&event.room).map_or(0, Log::last_seq) + 1);
            if event.seq > *expected {
                return Err(JournalError::Corrupt(format!(
                    "room {}: append of seq {} when {} is next",
                    event.room, event.seq, expected
                )));
            }
            // A retry must be the event stored (one a snapshot trimmed cannot be compared).
            let stored = (event.seq < *expected)
                .then(|| rooms.get(&event.room))
                .flatten()
                .and_then(|log| {
                    let at = log
                        .events
                        .binary_search_by_key(&event.seq, |e| e.seq)
                        .ok()?;
                    log.events.get(at)
                });
            if stored.is_some_and(|stored| stored != event) {
                return Err(JournalError::Corrupt(format!(
                    "room {}: seq {} sent again with other content than is stored",
                    event.room, event.seq
                )));
            }
            *expected = (*expected).max(event.seq + 1);
        }
        for event in events {
            let log = rooms.entry(event.room.clone()).or_default();
            if event.seq == log.last_seq() + 1 {
                log.events.push(event.clone());
                log.messages.extend(crate::message_of(event));
            } // else already durable: a retry
        }
        drop(rooms);
        if fault == Fault::WriteThenFail {
            return Err(JournalError::Unavailable(
                "memory journal wrote the batch and lost the reply".into(),
            ));
        }
        self.inner.appends.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Refuses a write to `room` under an epoch that is not its current one.
fn fenced(rooms: &BTreeMap<RoomId, Log>, room: &RoomId, epoch: Epoch) -> Result<(), JournalError> {
    let current = rooms.get(room).map_or(Epoch::NONE, |log| log.epoch);
    if current == epoch {
        return Ok(());
    }
    Err(JournalError::Fenced(format!(
        "room {room}: written under epoch {epoch}, the room is at {current}"
    )))
}

impl Journal for MemoryJournal {
    fn append(&self, epoch: Epoch, events: Vec<Event>) -> JournalFuture<()> {
        let result = self.write(epoch, &events);
        self.record(&events, result.is_ok());
        async move { result }.boxed()
    }

    fn recover(&self) -> JournalFuture<Vec<RoomLog>> {
        // Like a journal several engines share: the reader claims every room it reads.
        let result = self.refuse_if_down().map(|()| {
            self.inner
                .rooms
                .lock()
                .iter_mut()
                .filter(|(_, log)| log.snapshot.is_some() || !log.events.is_empty())
                .map(|(room, log)| {
                    log.epoch = log.epoch.next();
                    RoomLog {
                        room: room.clone(),
                        snapshot: log.snapshot.clone(),
                        events: log.events.clone(),
                        epoch: log.epoch,
                    }
                })
                .collect()
        });
        async move { result }.boxed()
    }

    fn snapshot(&self, epoch: Epoch, snapshot: Snapshot) -> JournalFuture<()> {
        let result = self.refuse_if_down().and_then(|()| {
            if *self.inner.failing_snapshots.lock() {
                return Err(JournalError::Unavailable(
                    "memory journal set to fail snapshots".into(),
                ));
            }
            let mut rooms = self.inner.rooms.lock();
            fenced(&rooms, &snapshot.room, epoch)?;
            let log = rooms.entry(snapshot.room.clone()).or_default();
            log.events.retain(|e| e.seq > snapshot.seq);
            log.snapshot = Some(snapshot);
            Ok(())
        });
        if result.is_err() {
            self.inner.refused_snapshots.fetch_add(1, Ordering::SeqCst);
        }
        async move { result }.boxed()
    }

    fn delete_room(&self, epoch: Epoch, room: RoomId) -> JournalFuture<()> {
        if *self.inner.failing_deletes.lock() {
            let failed = Err(JournalError::Unavailable(
                "memory journal deletes set failing".into(),
            ));
            return async move { failed }.boxed();
        }
        let result = self.refuse_if_down().and_then(|()| {
            let mut rooms = self.inner.rooms.lock();
            fenced(&rooms, &room, epoch)?;
            rooms.remove(&room);
            Ok(())
        });
        async move { result }.boxed()
    }

    fn hold(&self, epoch: Epoch, room: RoomId) -> JournalFuture<()> {
        let result = self
            .refuse_if_down()
            .and_then(|()| fenced(&self.inner.rooms.lock(), &room, epoch));
        async move { result }.boxed()
    }

    fn messages(&self, room: RoomId, after: u64, limit: usize) -> JournalFuture<Vec<ChatMessage>> {
        let result = self.refuse_if_down().map(|()| {
            let rooms = self.inner.rooms.lock();
            rooms
                .get(&room)
                .map(|log| {
                    log.messages
                        .iter()
                        .filter(|m| m.seq > after)
                        .take(limit.min(crate::MESSAGES_PER_READ))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        });
        async move { result }.boxed()
    }

    fn check(&self) -> JournalFuture<()> {
        let result = self.refuse_if_down();
        async move { result }.boxed()
    }

    fn status(&self) -> JournalStatus {
        JournalStatus {
            kind: "memory",
            target: "memory".into(),
            failovers: 0,
            last_failover: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use roomstate_core::{
        room::{EventKind, UserName},
        time,
    };

    use super::*;

    fn event(room: &RoomId, seq: u64) -> Event {
        Event {
            room: room.clone(),
            seq,
            at: time::now(),
            kind: EventKind::Left {
                user: UserName::parse("u").unwrap(),
            },
        }
    }

    #[actix_rt::test]
    async fn retries_do_not_duplicate_and_gaps_are_refused() {
        let journal = MemoryJournal::new();
        let room = RoomId::parse("r_m").unwrap();
        let first = vec![event(&room, 1), event(&room, 2)];
        journal.append(Epoch::NONE, first.clone()).await.unwrap();
        journal
            .append(Epoch::NONE, vec![first[1].clone(), event(&room, 3)])
            .await
            .unwrap();
        assert_eq!(journal.events(&room).len(), 3);
        // A retry must be the event stored: another one under its seq is corrupt, and the
        // batch writes nothing.
        let mut other = first[1].clone();
        other.kind = EventKind::Left {
            user: UserName::parse("someone-else").unwrap(),
        };
        let refused = journal
            .append(Epoch::NONE, vec![other, event(&room, 4)])
            .await;
        assert!(
            matches!(&refused, Err(JournalError::Corrupt(why)) if why.contains("seq 2 sent again")),
            "{refused:?}"
        );
        assert_eq!(journal.events(&room).len(), 3);
        assert!(journal
            .append(Epoch::NONE, vec![event(&room, 5)])
            .await
            .is_err());
        // A batch with a gap in it writes nothing, not even the events before the gap.
        let gap = journal
            .append(Epoch::NONE, vec![event(&room, 4), event(&room, 6)])
            .await;
        assert!(matches!(gap, Err(JournalError::Corrupt(_))), "{gap:?}");
        assert_eq!(seqs(&journal.events(&room)), [1, 2, 3]);
    }

    #[actix_rt::test]
    async fn a_down_journal_writes_nothing() {
        let journal = MemoryJournal::new();
        let room = RoomId::parse("r_d").unwrap();
        journal.set_down(true);
        assert!(journal
            .append(Epoch::NONE, vec![event(&room, 1)])
            .await
            .is_err());
        journal.set_down(false);
        assert!(journal.events(&room).is_empty());
        assert_eq!(journal.recover().await.unwrap(), vec![]);
    }

    fn seqs(events: &[Event]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[actix_rt::test]
    async fn down_refuses_every_call_and_clearing_it_restores_them() {
        let journal = MemoryJournal::new();
        let room = RoomId::parse("r_all").unwrap();
        journal
            .append(Epoch::NONE, vec![event(&room, 1)])
            .await
            .unwrap();
        journal.set_fault(Fault::Down);
        assert!(journal.check().await.is_err());
        assert!(journal.recover().await.is_err());
        assert!(journal
            .delete_room(Epoch::NONE, room.clone())
            .await
            .is_err());
        let snapshot = Snapshot {
            room: room.clone(),
            seq: 1,
            title: "t".into(),
            created_at: time::now(),
            participants_peak: 0,
            votes: vec![],
            messages: vec![],
            message_count: None,
            older_upto: 0,
            keys: vec![],
        };
        assert!(journal.snapshot(Epoch::NONE, snapshot).await.is_err());
        assert_eq!(journal.refused_snapshots(), 1);
        journal.set_down(false);
        journal.check().await.unwrap();
        assert!(journal.has_room(&room), "nothing was deleted while down");
        journal
            .delete_room(Epoch::NONE, room.clone())
            .await
            .unwrap();
        assert!(!journal.has_room(&room));
    }

    #[actix_rt::test]
    async fn write_then_fail_writes_the_batch_but_reports_an_error() {
        let journal = MemoryJournal::new();
        let room = RoomId::parse("r_lost").unwrap();
        journal.set_fault(Fault::WriteThenFail);
        let lost = journal
            .append(Epoch::NONE, vec![event(&room, 1), event(&room, 2)])
            .await;
        assert!(
            matches!(lost, Err(JournalError::Unavailable(_))),
            "{lost:?}"
        );
        assert_eq!(seqs(&journal.events(&room)), [1, 2], "written all the same");
        assert_eq!(journal.appends(), 0, "not counted as a success");
        journal.set_fault(Fault::None);
        journal
            .append(
                Epoch::NONE,
                vec![event(&room, 1), event(&room, 2), event(&room, 3)],
            )
            .await
            .unwrap();
        assert_eq!(
            seqs(&journal.events(&room)),
            [1, 2, 3],
            "the re-send adds no copy"
        );
        assert_eq!(
            journal.batches(&room),
            [
                Batch {
                    events: 2,
                    acknowledged: false
                },
                Batch {
                    events: 3,
                    acknowledged: true
                },
            ]
        );
        assert_eq!(journal.refused_appends(&room), 1);
    }

    #[actix_rt::test]
    async fn corrupt_writes_nothing_and_reports_corruption() {
        let journal = MemoryJournal::new();
        let room = RoomId::parse("r_bad").unwrap();
        journal.set_fault(Fault::Corrupt);
        for _ in 0..2 {
            let refused = journal.append(Epoch::NONE, vec![event(&room, 1)]).await;
            assert!(
                matches!(refused, Err(JournalError::Corrupt(_))),
                "{refused:?}"
            );
        }
        assert!(journal.events(&room).is_empty());
        journal.check().await.unwrap();
        assert_eq!(journal.refused_appends(&room), 2);
        journal.set_fault(Fault::None);
        journal
            .append(Epoch::NONE, vec![event(&room, 1)])
            .await
            .unwrap();
        assert_eq!(seqs(&journal.events(&room)), [1]);
    }

    #[actix_rt::test]
    async fn failing_snapshots_leave_the_log_whole_and_appends_working() {
        let journal = MemoryJournal::new();
        let room = RoomId::parse("r_snap").unwrap();
        let snapshot = |seq| Snapshot {
            room: room.clone(),
            seq,
            title: "t".into(),
            created_at: time::now(),
            participants_peak: 0,
            votes: vec![],
            messages: vec![],
            message_count: None,
            older_upto: 0,
            keys: vec![],
        };
        journal
            .append(Epoch::NONE, vec![event(&room, 1), event(&room, 2)])
            .await
            .unwrap();
        journal.set_snapshots_failing(true);
        assert!(journal.snapshot(Epoch::NONE, snapshot(2)).await.is_err());
        assert_eq!(journal.refused_snapshots(), 1);
        assert_eq!(journal.snapshot_seq(&room), None);
        assert_eq!(seqs(&journal.events(&room)), [1, 2], "nothing trimmed");
        journal
            .append(Epoch::NONE, vec![event(&room, 3)])
            .await
            .unwrap();
        journal.set_snapshots_failing(false);
        journal.snapshot(Epoch::NONE, snapshot(2)).await.unwrap();
        assert_eq!(journal.snapshot_seq(&room), Some(2));
        assert_eq!(seqs(&journal.events(&room)), [3]);
    }

    #[actix_rt::test]
    async fn batches_are_recorded_per_room() {
        let journal = MemoryJournal::new();
        let (a, b) = (RoomId::parse("r_a").unwrap(), RoomId::parse("r_b").unwrap());
        journal
            .append(Epoch::NONE, vec![event(&a, 1), event(&b, 1), event(&a, 2)])
            .await
            .unwrap();
        journal.set_down(true);
        assert!(journal
            .append(Epoch::NONE, vec![event(&b, 2)])
            .await
            .is_err());
        let sizes = |room| -> Vec<(usize, bool)> {
            journal
                .batches(room)
                .iter()
                .map(|b| (b.events, b.acknowledged))
                .collect()
        };
        assert_eq!(sizes(&a), [(2, true)]);
        assert_eq!(sizes(&b), [(1, true), (1, false)]);
        assert_eq!(
            (journal.refused_appends(&a), journal.refused_appends(&b)),
            (0, 1)
        );
    }
}
