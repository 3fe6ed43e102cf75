//! Appends that fail: the journal down, a batch written whose reply is lost, a journal reporting
//! corruption, and a backlog larger than one append may carry. In each, nothing is acknowledged
//! or shown before the journal says it is durable, nothing pending is dropped, and once the
//! journal answers again every event is in its log exactly once, in seq order, with every waiter
//! answered with the seq of its own event.

use std::time::Duration;

use actix::Addr;
use actix_rt::task::JoinHandle;
use roomstate_core::room::{EventKind, RoomId};
use roomstate_journal::memory::Fault;
use roomstate_testkit::eventually;
use tokio::sync::oneshot::error::RecvError;

use super::{answered, ask, join_alice, log_seqs, say, settings, Setup, PATIENCE};
use crate::room::{
    actor::RoomActor,
    deps::RoomSettings,
    failure::{Reply, RoomFailure},
    messages::{Applied, GetView},
};

/// A message in flight to a room, from a task of its own, and its text.
type Held = (String, JoinHandle<Result<Reply<Applied>, RecvError>>);

#[actix_rt::test]
async fn a_down_journal_holds_events_bounds_the_backlog_and_catches_up_in_order() {
    let setup = Setup::new();
    let (journal, metrics) = (&setup.journal, &setup.metrics);
    let registry = setup.registry(RoomSettings {
        max_pending: 3,
        ..settings()
    });
    let (id, room) = setup.room_with_alice(&registry, "outage").await;

    journal.set_down(true);
    let held: Vec<_> = (0..3)
        .map(|i| actix_rt::spawn(ask(&room, say(&format!("m{i}")))))
        .collect();
    eventually("3 events pending", Duration::from_secs(10), || async {
        (metrics.journal_pending.get() == 3).then_some(())
    })
    .await;
    let refused = ask(&room, say("one too many")).await.unwrap();
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
        seqs.push(answered(h).await.unwrap().seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(
        log_seqs(journal, &id),
        [1, 2, 3, 4, 5],
        "retries wrote every event once, in order"
    );
    assert_eq!(room.send(GetView).await.unwrap().counters.messages, 3);
    assert_eq!(metrics.journal_pending.get(), 0);
}

/// Sends `count` messages `m0`, `m1`, ... to `room` at once, each from a task of its own. A
/// request enters the mailbox when it is sent, so they are applied in that order.
fn send_all(room: &Addr<RoomActor>, count: usize) -> Vec<Held> {
    (0..count)
        .map(|i| {
            let text = format!("m{i}");
            let request = actix_rt::spawn(ask(room, say(&text)));
            (text, request)
        })
        .collect()
}

/// Awaits every held request, then checks that the room's log holds events 1..=`last` once
/// each, in order, and that each request was answered with the seq of the event carrying its
/// text.
async fn every_waiter_got_its_own_seq(setup: &Setup, id: &RoomId, held: Vec<Held>, last: u64) {
    let mut answers = Vec::new();
    for (text, request) in held {
        let view = answered(request)
            .await
            .unwrap_or_else(|e| panic!("{text} refused: {e}"));
        answers.push((text, view.seq));
    }
    // An answer means durable: every event is in the log by now.
    let log = setup.journal.events(id);
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert!(
        seqs.iter().copied().eq(1..=last),
        "every event once, in seq order: {} events, first out of place: {:?}",
        seqs.len(),
        seqs.iter().zip(1..).find(|(seq, want)| **seq != *want)
    );
    for (text, seq) in answers {
        let kind = &log[(seq - 1) as usize].kind;
        assert!(
            matches!(kind, EventKind::Said { text: t, .. } if *t == text),
            "{text} answered with seq {seq}, which holds {kind:?}"
        );
    }
}

#[actix_rt::test]
async fn a_lost_reply_is_re_sent_without_duplicating_and_acked_once_confirmed() {
    let setup = Setup::new();
    let journal = &setup.journal;
    let registry = setup.registry(settings());
    let (id, room) = setup.room_with_alice(&registry, "lost replies").await;

    journal.set_fault(Fault::WriteThenFail);
    let held = send_all(&room, 5);
    // A no-op (alice joins again) waits for the events before it and answers as of the last.
    let noop = actix_rt::spawn(ask(&room, join_alice()));
    // The journal has every event, yet told the room none is durable; wait until the room has
    // re-sent the whole, already written, batch at least once more. Two more refusals than when
    // the log was seen complete: the first may be the very append that completed it (the journal
    // counts an append just after writing it).
    let refused = eventually("all 5 events written", PATIENCE, || async {
        (journal.events(&id).len() == 7).then(|| journal.refused_appends(&id))
    })
    .await;
    eventually("a re-send of the written batch", PATIENCE, || async {
        (journal.refused_appends(&id) >= refused + 2).then_some(())
    })
    .await;
    assert_eq!(
        log_seqs(journal, &id),
        [1, 2, 3, 4, 5, 6, 7],
        "re-sending written events adds no copy"
    );
    let view = room.send(GetView).await.unwrap();
    assert_eq!(
        (view.counters.seq, view.counters.messages),
        (2, 0),
        "a batch the journal did not confirm is not shown"
    );
    assert!(
        held.iter().all(|(_, h)| !h.is_finished()) && !noop.is_finished(),
        "a batch the journal did not confirm is not acked"
    );

    journal.set_fault(Fault::None);
    every_waiter_got_its_own_seq(&setup, &id, held, 7).await;
    assert_eq!(answered(noop).await.unwrap().seq, 7);
    let last = journal.batches(&id).last().copied().unwrap();
    assert!(last.acknowledged, "{last:?}");
    let view = room.send(GetView).await.unwrap();
    assert_eq!((view.counters.seq, view.counters.messages), (7, 5));
    assert_eq!(setup.metrics.journal_pending.get(), 0);
}

#[actix_rt::test]
async fn a_corrupt_journal_keeps_everything_pending_until_it_heals() {
    let setup = Setup::new();
    let journal = &setup.journal;
    let registry = setup.registry(settings());
    let (id, room) = setup.room_with_alice(&registry, "corrupt").await;

    journal.set_fault(Fault::Corrupt);
    let held = send_all(&room, 3);
    eventually("3 events pending", PATIENCE, || async {
        (setup.metrics.journal_pending.get() == 3).then_some(())
    })
    .await;
    // Several refusals in a row: the room keeps retrying, it does not give up on the events.
    let refused = journal.refused_appends(&id);
    eventually("two more refused retries", PATIENCE, || async {
        (journal.refused_appends(&id) >= refused + 2).then_some(())
    })
    .await;
    assert_eq!(log_seqs(journal, &id), [1, 2], "the journal wrote nothing");
    assert_eq!(
        setup.metrics.journal_pending.get(),
        3,
        "the room keeps every event"
    );
    let view = room.send(GetView).await.unwrap();
    assert_eq!((view.counters.seq, view.counters.messages), (2, 0));
    assert!(
        held.iter().all(|(_, h)| !h.is_finished()),
        "nothing is acked"
    );

    journal.set_fault(Fault::None);
    every_waiter_got_its_own_seq(&setup, &id, held, 5).await;
    let view = room.send(GetView).await.unwrap();
    assert_eq!((view.counters.seq, view.counters.messages), (5, 3));
}

#[actix_rt::test]
async fn a_backlog_past_one_append_goes_in_bounded_batches_in_order() {
    const HELD: usize = 1500;
    let setup = Setup::new();
    let journal = &setup.journal;
    let registry = setup.registry(RoomSettings {
        max_pending: 4096,
        ..settings()
    });
    let (id, room) = setup.room_with_alice(&registry, "backlog").await;

    journal.set_down(true);
    let held = send_all(&room, HELD);
    eventually("every event pending", PATIENCE, || async {
        (setup.metrics.journal_pending.get() == HELD as i64).then_some(())
    })
    .await;
    journal.set_down(false);

    every_waiter_got_its_own_seq(&setup, &id, held, 2 + HELD as u64).await;
    let batches = journal.batches(&id);
    assert!(
        batches.iter().all(|b| b.events <= 1024),
        "no append carries more than 1024 events, retries included: {batches:?}"
    );
    let acknowledged: Vec<usize> = batches
        .iter()
        .filter(|b| b.acknowledged)
        .map(|b| b.events)
        .collect();
    // The creation and the join, then the backlog: one full append and the rest.
    assert_eq!(acknowledged, [1, 1, 1024, HELD - 1024]);
    assert_eq!(setup.metrics.journal_pending.get(), 0);
}
