//! An in-memory journal for tests: durable for as long as the value lives, and able to refuse
//! writes on demand so tests can drive the engine's "log is down" paths without a real outage.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
};

use futures_util::FutureExt;
use parking_lot::Mutex;

use roomstate_core::room::{Event, RoomId, Snapshot};

use super::{Journal, JournalError, JournalFuture, JournalStatus, RoomLog};

#[derive(Default)]
struct Log {
    snapshot: Option<Snapshot>,
    events: Vec<Event>,
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
    down: AtomicBool,
    appends: AtomicU64,
}

/// A journal held in memory. Clones share the same log.
#[derive(Clone, Default)]
pub struct MemoryJournal {
    inner: Arc<Inner>,
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }

    /// While `down`, every call fails with `Unavailable` and nothing is written.
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// Successful appends so far (each one a group-committed batch).
    pub fn appends(&self) -> u64 {
        self.inner.appends.load(Ordering::SeqCst)
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

    fn refuse_if_down(&self) -> Result<(), JournalError> {
        if self.inner.down.load(Ordering::SeqCst) {
            Err(JournalError::Unavailable("memory journal set down".into()))
        } else {
            Ok(())
        }
    }

    fn write(&self, events: Vec<Event>) -> Result<(), JournalError> {
        self.refuse_if_down()?;
        let mut rooms = self.inner.rooms.lock();
        for event in events {
            let log = rooms.entry(event.room.clone()).or_default();
            let next = log.last_seq() + 1;
            if event.seq < next {
                continue; // already durable: a retry
            }
            if event.seq > next {
                return Err(JournalError::Corrupt(format!(
                    "room {}: append of seq {} when {} is next",
                    event.room, event.seq, next
                )));
            }
            log.events.push(event);
        }
        self.inner.appends.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl Journal for MemoryJournal {
    fn append(&self, events: Vec<Event>) -> JournalFuture<()> {
        let result = self.write(events);
        async move { result }.boxed()
    }

    fn recover(&self) -> JournalFuture<Vec<RoomLog>> {
        let result = self.refuse_if_down().map(|()| {
            self.inner
                .rooms
                .lock()
                .iter()
                .map(|(room, log)| RoomLog {
                    room: room.clone(),
                    snapshot: log.snapshot.clone(),
                    events: log.events.clone(),
                })
                .collect()
        });
        async move { result }.boxed()
    }

    fn snapshot(&self, snapshot: Snapshot) -> JournalFuture<()> {
        let result = self.refuse_if_down().map(|()| {
            let mut rooms = self.inner.rooms.lock();
            let log = rooms.entry(snapshot.room.clone()).or_default();
            log.events.retain(|e| e.seq > snapshot.seq);
            log.snapshot = Some(snapshot);
        });
        async move { result }.boxed()
    }

    fn delete_room(&self, room: RoomId) -> JournalFuture<()> {
        let result = self.refuse_if_down().map(|()| {
            self.inner.rooms.lock().remove(&room);
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
        journal
            .append(vec![event(&room, 1), event(&room, 2)])
            .await
            .unwrap();
        journal
            .append(vec![event(&room, 2), event(&room, 3)])
            .await
            .unwrap();
        assert_eq!(journal.events(&room).len(), 3);
        assert!(journal.append(vec![event(&room, 5)]).await.is_err());
    }

    #[actix_rt::test]
    async fn a_down_journal_writes_nothing() {
        let journal = MemoryJournal::new();
        let room = RoomId::parse("r_d").unwrap();
        journal.set_down(true);
        assert!(journal.append(vec![event(&room, 1)]).await.is_err());
        journal.set_down(false);
        assert!(journal.events(&room).is_empty());
        assert_eq!(journal.recover().await.unwrap(), vec![]);
    }
}
