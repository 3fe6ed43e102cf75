//! Snapshots: a written one trims the log and recovery starts from it; a failed one changes
//! nothing the room or recovery depends on (the log stays whole), and a later commit tries again.

use roomstate_core::room::{Command, RoomId, RoomView, Side, UserName, Via};
use roomstate_testkit::eventually;

use super::{ask, join_alice, log_seqs, say, settings, Request, Setup, PATIENCE};
use crate::room::{
    deps::RoomSettings,
    messages::{GetMessages, GetView},
    registry::Registry,
};

fn every(events: u64) -> RoomSettings {
    RoomSettings {
        snapshot_every: events,
        ..settings()
    }
}

#[actix_rt::test]
async fn snapshots_trim_the_log_and_recovery_restores_from_them() {
    let setup = Setup::new();
    let journal = &setup.journal;
    let registry = setup.registry(every(10));
    let created = registry.create("snapshots".into()).await.unwrap();
    let room = registry.get(&created.id).unwrap();
    ask(&room, join_alice()).await.unwrap().unwrap();
    for i in 0..25 {
        ask(&room, say(&format!("m{i}"))).await.unwrap().unwrap();
    }
    let snapshot_seq = eventually("a snapshot", PATIENCE, || async {
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

    let again = setup.registry(every(10));
    assert_eq!(again.recover().await.unwrap(), 1);
    let back = again.get(&created.id).unwrap().send(GetView).await.unwrap();
    assert_eq!(back.counters.seq, before.counters.seq);
    assert_eq!(back.counters.messages, 25);
    assert_eq!(back.counters.participants, 0);
    assert_eq!(back.counters.participants_peak, 1);
}

/// What recovery must give back of a room: everything durable (presence is not: a recovered
/// room starts with nobody present).
async fn durable_state(registry: &Registry, id: &RoomId) -> (RoomView, Vec<String>) {
    let room = registry.get(id).unwrap();
    let mut view = room.send(GetView).await.unwrap();
    view.counters.participants = 0;
    let messages = room
        .send(GetMessages {
            after: 0,
            limit: 1000,
        })
        .await
        .unwrap()
        .unwrap();
    let messages = messages
        .into_iter()
        .map(|m| format!("{} {} {}", m.seq, m.user, m.text))
        .collect();
    (view, messages)
}

#[actix_rt::test]
async fn a_failed_snapshot_keeps_the_room_serving_and_the_log_whole() {
    let setup = Setup::new();
    let journal = &setup.journal;
    let registry = setup.registry(every(10));
    let (id, room) = setup.room_with_alice(&registry, "snapshots fail").await;

    journal.set_snapshots_failing(true);
    for i in 0..25 {
        let view = ask(&room, say(&format!("m{i}"))).await.unwrap();
        assert_eq!(view.unwrap().seq, 3 + i, "the room keeps serving");
    }
    // Snapshots are due from seq 11 on, and each commit after a failure tries again.
    eventually("at least two failed snapshots", PATIENCE, || async {
        (journal.refused_snapshots() >= 2).then_some(())
    })
    .await;
    assert_eq!(journal.snapshot_seq(&id), None);
    assert_eq!(
        log_seqs(journal, &id),
        (1..=27).collect::<Vec<_>>(),
        "nothing trimmed without a snapshot"
    );

    let again = setup.registry(every(10));
    assert_eq!(again.recover().await.unwrap(), 1);
    let (recovered, before) = (
        durable_state(&again, &id).await,
        durable_state(&registry, &id).await,
    );
    assert_eq!(recovered, before, "the log alone rebuilds the room");
    assert_eq!(recovered.1.len(), 25);

    // The second registry claimed the room (as a second engine would): it serves it now, and
    // snapshots on the room's schedule, counted from its last snapshot (none): 26 events (as
    // many as the room has messages) have passed, so the first commit here takes one.
    journal.set_snapshots_failing(false);
    let refused = journal.refused_snapshots();
    let room = again.get(&id).unwrap();
    ask(&room, join_alice()).await.unwrap().unwrap();
    ask(&room, say("after")).await.unwrap().unwrap();
    for i in 0..24 {
        let side = if i % 2 == 0 { Side::Pro } else { Side::Con };
        let vote = Request {
            command: Command::Vote {
                user: UserName::parse("alice").unwrap(),
                side,
            },
            via: Via::Http,
        };
        ask(&room, vote).await.unwrap().unwrap();
    }
    let snapshot_seq = eventually("a snapshot once one is due", PATIENCE, || async {
        journal.snapshot_seq(&id)
    })
    .await;
    assert_eq!(snapshot_seq, 28, "at the first commit after the restart");
    assert_eq!(journal.refused_snapshots(), refused);
    assert!(
        journal.events(&id).iter().all(|e| e.seq > snapshot_seq),
        "the snapshot trimmed the log"
    );
}

#[actix_rt::test]
async fn a_room_restarted_before_its_interval_comes_round_is_snapshotted_all_the_same() {
    let setup = Setup::new();
    let journal = &setup.journal;
    let registry = setup.registry(every(10));
    let (id, room) = setup.room_with_alice(&registry, "restarted often").await;
    for i in 0..6 {
        ask(&room, say(&format!("before {i}")))
            .await
            .unwrap()
            .unwrap();
    }
    registry.shutdown(PATIENCE).await;
    assert_eq!(journal.snapshot_seq(&id), None, "8 events: none due yet");

    // Started again: 8 events since the room's last snapshot (none), and 7 more now make 15,
    // past the interval of 10 — though fewer than 10 came since this start.
    let registry = setup.registry(every(10));
    assert_eq!(registry.recover().await.unwrap(), 1);
    let room = registry.get(&id).unwrap();
    ask(&room, join_alice()).await.unwrap().unwrap();
    for i in 0..6 {
        ask(&room, say(&format!("after {i}")))
            .await
            .unwrap()
            .unwrap();
    }
    eventually("a snapshot after the restart", PATIENCE, || async {
        journal.snapshot_seq(&id)
    })
    .await;
    registry.shutdown(PATIENCE).await;
}
