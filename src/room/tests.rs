//! The room actors and the registry against a journal that stops taking writes: nothing is
//! acknowledged or shown until it is durable, the backlog is bounded with 503s, and everything
//! held goes through, in order and once, when the journal comes back. Driven directly, with the
//! in-memory journal (feature `testing`), which can be switched off at will.

use std::{sync::Arc, time::Duration};

use roomstate_core::room::{Command, RoomStatus, UserName, Via};
use roomstate_journal::memory::MemoryJournal;
use roomstate_store::Store;
use roomstate_testkit::eventually;

use super::{
    deps::{RoomDeps, RoomSettings},
    failure::RoomFailure,
    messages::{Close, GetView, Mutate},
    registry::Registry,
};
use crate::metrics::Metrics;

fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

fn say(text: &str) -> Mutate {
    Mutate {
        command: Command::Say {
            user: user("alice"),
            text: text.into(),
        },
        via: Via::Http,
    }
}

fn join_alice() -> Mutate {
    Mutate {
        command: Command::Join {
            user: user("alice"),
            via: Via::Http,
        },
        via: Via::Http,
    }
}

/// A SQLite store in a temp dir, an in-memory journal and metrics, shared by the registries a
/// test builds on them.
struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    journal: MemoryJournal,
    metrics: Metrics,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        Setup {
            store: Store::open(&url).unwrap(),
            _dir: dir,
            journal: MemoryJournal::new(),
            metrics: Metrics::new().unwrap(),
        }
    }

    fn registry(&self, max_pending: usize, snapshot_every: u64) -> Registry {
        Registry::new(
            RoomDeps {
                journal: Arc::new(self.journal.clone()),
                store: self.store.clone(),
                metrics: self.metrics.clone(),
                settings: RoomSettings {
                    max_pending,
                    http_ttl: Duration::from_secs(300),
                    snapshot_every,
                },
            },
            0,
        )
    }
}

#[actix_rt::test]
async fn a_down_journal_holds_events_bounds_the_backlog_and_catches_up_in_order() {
    let setup = Setup::new();
    let (journal, metrics) = (&setup.journal, &setup.metrics);
    let registry = setup.registry(3, 1000);
    let created = registry.create("outage".into()).await.unwrap();
    let room = registry.get(&created.id).unwrap();
    assert_eq!(
        room.send(join_alice()).await.unwrap().unwrap().counters.seq,
        2
    );

    journal.set_down(true);
    let held: Vec<_> = (0..3)
        .map(|i| actix_rt::spawn(room.send(say(&format!("m{i}")))))
        .collect();
    eventually("3 events pending", Duration::from_secs(10), || async {
        (metrics.journal_pending.get() == 3).then_some(())
    })
    .await;
    let refused = room.send(say("one too many")).await.unwrap();
    assert!(
        matches!(refused, Err(RoomFailure::Unavailable(_))),
        "{refused:?}"
    );
    let view = room.send(GetView).await.unwrap();
    assert_eq!(
        (view.counters.seq, view.counters.messages),
        (2, 0),
        "nothing that is not durable is shown"
    );
    assert!(held.iter().all(|h| !h.is_finished()), "nothing is acked");

    journal.set_down(false);
    let mut seqs = Vec::new();
    for h in held {
        seqs.push(h.await.unwrap().unwrap().unwrap().counters.seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, [3, 4, 5]);
    let log: Vec<u64> = journal.events(&created.id).iter().map(|e| e.seq).collect();
    assert_eq!(
        log,
        [1, 2, 3, 4, 5],
        "retries wrote every event once, in order"
    );
    assert_eq!(room.send(GetView).await.unwrap().counters.messages, 3);
    assert_eq!(metrics.journal_pending.get(), 0);
}

#[actix_rt::test]
async fn close_waits_for_pending_events_and_writes_them() {
    let setup = Setup::new();
    let (journal, store) = (&setup.journal, &setup.store);
    let registry = setup.registry(100, 1000);
    let created = registry.create("close in an outage".into()).await.unwrap();
    let room = registry.get(&created.id).unwrap();
    room.send(join_alice()).await.unwrap().unwrap();
    journal.set_down(true);
    let held = actix_rt::spawn(room.send(say("last words")));
    let closing = actix_rt::spawn(room.send(Close));
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !closing.is_finished(),
        "close waits for the pending message"
    );
    let meanwhile = room.send(GetView).await.unwrap();
    assert_eq!(
        (meanwhile.status, meanwhile.closed_at),
        (RoomStatus::Open, None),
        "not shown closed before the final record is stored"
    );
    assert!(store.room(&created.id).await.unwrap().is_none());
    journal.set_down(false);
    let final_view = closing.await.unwrap().unwrap().unwrap();
    assert_eq!(held.await.unwrap().unwrap().unwrap().counters.seq, 3);
    assert_eq!(final_view.status, RoomStatus::Closed);
    assert_eq!(final_view.counters.messages, 1);
    assert_eq!(store.messages(&created.id, 0, 10).await.unwrap().len(), 1);
    eventually("the log to be deleted", Duration::from_secs(10), || async {
        journal.events(&created.id).is_empty().then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn snapshots_trim_the_log_and_recovery_restores_from_them() {
    let setup = Setup::new();
    let journal = &setup.journal;
    let registry = setup.registry(100, 10);
    let created = registry.create("snapshots".into()).await.unwrap();
    let room = registry.get(&created.id).unwrap();
    room.send(join_alice()).await.unwrap().unwrap();
    for i in 0..25 {
        room.send(say(&format!("m{i}"))).await.unwrap().unwrap();
    }
    let snapshot_seq = eventually("a snapshot", Duration::from_secs(10), || async {
        journal.snapshot_seq(&created.id).filter(|s| *s >= 10)
    })
    .await;
    assert!(
        journal
            .events(&created.id)
            .iter()
            .all(|e| e.seq > snapshot_seq),
        "events up to the snapshot are trimmed"
    );
    let before = room.send(GetView).await.unwrap();

    let again = setup.registry(100, 10);
    assert_eq!(again.recover().await.unwrap(), 1);
    let back = again.get(&created.id).unwrap().send(GetView).await.unwrap();
    assert_eq!(back.counters.seq, before.counters.seq);
    assert_eq!(back.counters.messages, 25);
    assert_eq!(back.counters.participants, 0);
    assert_eq!(back.counters.participants_peak, 1);
}
