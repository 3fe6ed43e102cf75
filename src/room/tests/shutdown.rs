//! `Registry::shutdown` with events still pending: it gives up at its deadline when the journal
//! stays down (acknowledging nothing), makes everything durable and answers every waiter when the
//! journal comes back in time, and never cuts a close short while it writes the final record.

use std::time::{Duration, Instant};

use futures_util::future::join;
use roomstate_core::room::RoomStatus;
use roomstate_testkit::eventually;

use super::{
    answered, ask, log_seqs, say, settings, until_room_is_shutting_down, within, Setup, PATIENCE,
};
use crate::room::{
    failure::RoomFailure,
    messages::{Close, GetView},
};

#[actix_rt::test]
async fn a_shutdown_with_the_journal_down_returns_at_its_deadline_and_acks_nothing() {
    let setup = Setup::new();
    let journal = &setup.journal;
    let registry = setup.registry(settings());
    let (id, room) = setup.room_with_alice(&registry, "stuck").await;
    journal.set_down(true);
    let held: Vec<_> = (0..3)
        .map(|i| actix_rt::spawn(ask(&room, say(&format!("m{i}")))))
        .collect();
    eventually("3 events pending", PATIENCE, || async {
        (setup.metrics.journal_pending.get() == 3).then_some(())
    })
    .await;

    let deadline = Duration::from_millis(500);
    let started = Instant::now();
    within(PATIENCE, "end of the shutdown", registry.shutdown(deadline)).await;
    assert!(
        started.elapsed() >= deadline,
        "returned after {:?}, before its deadline, with events pending",
        started.elapsed()
    );

    // Past the deadline the room refuses what it holds: every waiter hears `unavailable` (not
    // durable, retry), none an ack and none a "room closed".
    for request in held {
        let outcome = within(PATIENCE, "an answer", request).await.unwrap();
        assert!(
            matches!(&outcome, Ok(Err(RoomFailure::Unavailable(_)))),
            "refused as not durable: {outcome:?}"
        );
    }
    assert_eq!(
        setup.metrics.journal_pending.get(),
        0,
        "nothing counted as pending"
    );
    // The room is gone: nothing can reach the journal any more.
    journal.set_down(false);
    assert_eq!(log_seqs(journal, &id), [1, 2]);
}

#[actix_rt::test]
async fn a_shutdown_drains_pending_events_when_the_journal_comes_back_in_time() {
    let setup = Setup::new();
    let journal = &setup.journal;
    let registry = setup.registry(settings());
    let (id, room) = setup.room_with_alice(&registry, "drain").await;
    journal.set_down(true);
    let held: Vec<_> = (0..3)
        .map(|i| actix_rt::spawn(ask(&room, say(&format!("m{i}")))))
        .collect();
    eventually("3 events pending", PATIENCE, || async {
        (setup.metrics.journal_pending.get() == 3).then_some(())
    })
    .await;

    let deadline = Duration::from_secs(120);
    let started = Instant::now();
    let heal = async {
        until_room_is_shutting_down(&room).await;
        // The room is still retrying during the shutdown when the journal comes back.
        let refused = journal.refused_appends(&id);
        eventually("a retry during the shutdown", PATIENCE, || async {
            (journal.refused_appends(&id) > refused).then_some(())
        })
        .await;
        journal.set_down(false);
    };
    join(registry.shutdown(deadline), heal).await;
    assert!(
        started.elapsed() < deadline / 2,
        "returned only at its deadline ({:?})",
        started.elapsed()
    );

    assert_eq!(log_seqs(journal, &id), [1, 2, 3, 4, 5]);
    let mut seqs = Vec::new();
    for request in held {
        seqs.push(answered(request).await.unwrap().seq);
    }
    assert_eq!(seqs, [3, 4, 5], "every waiter acked with its own seq");
}

#[actix_rt::test]
async fn a_shutdown_waits_for_a_close_to_write_its_final_record() {
    let setup = Setup::new();
    let (journal, store) = (&setup.journal, &setup.store);
    let registry = setup.registry(settings());
    let (id, room) = setup
        .room_with_alice(&registry, "closing at shutdown")
        .await;
    journal.set_down(true);
    let held = actix_rt::spawn(ask(&room, say("last words")));
    let closing = actix_rt::spawn(room.send(Close));
    // Answered after the close was handled (one mailbox, in order): the close is waiting.
    room.send(GetView).await.unwrap();

    let deadline = Duration::from_secs(120);
    let started = Instant::now();
    let heal = async {
        until_room_is_shutting_down(&room).await;
        journal.set_down(false);
    };
    join(registry.shutdown(deadline), heal).await;
    assert!(
        started.elapsed() < deadline / 2,
        "returned only at its deadline ({:?})",
        started.elapsed()
    );

    // Checked the moment the shutdown returns: the record is already stored, and the log gone.
    let stored = store.room(&id).await.unwrap();
    let stored = stored.expect("the final record is written before the shutdown returns");
    assert_eq!(stored.status, RoomStatus::Closed);
    assert_eq!((stored.counters.seq, stored.counters.messages), (3, 1));
    assert!(
        !journal.has_room(&id),
        "the log is deleted after the record"
    );
    assert_eq!(
        answered(closing).await,
        Ok(stored),
        "the close was answered, not cut short"
    );
    assert_eq!(answered(held).await.unwrap().seq, 3);
}
