//! Closing a room while the journal is down: the close waits for the pending events, the room is
//! closed to mutations at once but shown open until the final record is stored, a close that
//! outlasts `close_timeout` answers 503 and can be retried, and the record holds every
//! acknowledged mutation. A close the store refuses opens the room again, with the joins and
//! leaves that came while it waited.

use std::time::{Duration, Instant};

use roomstate_core::room::{RoomError, RoomId, RoomStatus, RoomView};
use roomstate_testkit::eventually;
use tokio::sync::oneshot;

use super::{answered, ask, say, settings, Request, Setup, PATIENCE};
use crate::room::{
    actor::RoomActor,
    deps::RoomSettings,
    failure::{RegistryFailure, Reply, RoomFailure},
    messages::{Applied, Close, Connect, DetachRemote, Disconnect, GetView, SyncRemote},
    outlet::{Outlet, WorkerQueue},
};

#[actix_rt::test]
async fn close_waits_for_pending_events_and_writes_them() {
    let setup = Setup::new();
    let (journal, store) = (&setup.journal, &setup.store);
    let registry = setup.registry(settings());
    let (id, room) = setup.room_with_alice(&registry, "close in an outage").await;
    journal.set_down(true);
    let held = actix_rt::spawn(ask(&room, say("last words")));
    let closing = actix_rt::spawn(room.send(Close));
    // Two refused appends of the message: it is still pending after a retry, so the close,
    // which writes only once nothing is pending, cannot have finished.
    eventually("two refused appends", PATIENCE, || async {
        (journal.refused_appends(&id) >= 2).then_some(())
    })
    .await;
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
    assert!(store.room(&id).await.unwrap().is_none());
    journal.set_down(false);
    let final_view = answered(closing).await.unwrap();
    assert_eq!(answered(held).await.unwrap().seq, 3);
    assert_eq!(final_view.status, RoomStatus::Closed);
    assert_eq!(final_view.counters.messages, 1);
    assert_eq!(store.messages(&id, 0, 10).await.unwrap().len(), 1);
    eventually("the log to be deleted", PATIENCE, || async {
        (!journal.has_room(&id)).then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn a_close_that_outlasts_its_timeout_answers_unavailable_and_can_be_retried() {
    const CLOSE_TIMEOUT: Duration = Duration::from_millis(300);
    let setup = Setup::new();
    let (journal, store) = (&setup.journal, &setup.store);
    let registry = setup.registry(RoomSettings {
        close_timeout: CLOSE_TIMEOUT,
        ..settings()
    });
    let (id, room) = setup.room_with_alice(&registry, "slow close").await;
    journal.set_down(true);
    let held = actix_rt::spawn(ask(&room, say("last words")));

    let started = Instant::now();
    let refused = registry.close(&id).await;
    let waited = started.elapsed();
    assert!(
        matches!(
            refused,
            Err(RegistryFailure::Room(RoomFailure::Unavailable(_)))
        ),
        "{refused:?}"
    );
    // At least the timeout; and well below the 15 s the engine runs with, so the setting is
    // what the room used.
    assert!(
        waited >= CLOSE_TIMEOUT && waited < Duration::from_secs(10),
        "the close answered after {waited:?}"
    );

    let Request { command, via } = say("too late");
    let late = registry.mutate(&id, command, via).await;
    assert!(
        matches!(
            late,
            Err(RegistryFailure::Room(RoomFailure::Rule(RoomError::Closed)))
        ),
        "the room stays closed to mutations: {late:?}"
    );
    let meanwhile = room.send(GetView).await.unwrap();
    assert_eq!(
        (meanwhile.status, meanwhile.counters.seq),
        (RoomStatus::Open, 2),
        "shown as of its last durable event, open until the record is stored"
    );
    assert!(!held.is_finished(), "the pending message is not acked");
    assert!(store.room(&id).await.unwrap().is_none());

    journal.set_down(false);
    assert_eq!(answered(held).await.unwrap().seq, 3);
    // A retried close may again outlast the short timeout on a slow machine while the record is
    // written; a client retries until it gets the final view, and so does the test.
    let final_view = eventually("a retried close to answer", PATIENCE, || async {
        registry.close(&id).await.ok()
    })
    .await;
    assert_eq!(final_view.status, RoomStatus::Closed);
    assert_eq!(
        (final_view.counters.seq, final_view.counters.messages),
        (3, 1)
    );
    assert_eq!(final_view.counters.participants_peak, 1);
    assert_eq!(store.room(&id).await.unwrap(), Some(final_view));
    let stored: Vec<(u64, String)> = store
        .messages(&id, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.seq, m.text))
        .collect();
    assert_eq!(stored, [(3, "last words".to_owned())]);
}

/// Bob's socket (session 7) in `room`: present, with alice.
async fn bob_connects(room: &actix::Addr<RoomActor>) {
    let (queue, _frames) = WorkerQueue::new();
    let bob = Connect {
        id: 7,
        user: super::user("bob"),
        session: Outlet { queue, session: 7 },
    };
    room.send(bob).await.unwrap().unwrap();
}

/// A close of `room` that waits for a pending message (the journal down), and whose record the
/// store will refuse: the message's request and the close, both under way.
async fn a_close_that_will_fail(
    setup: &Setup,
    id: &RoomId,
    room: &actix::Addr<RoomActor>,
) -> (
    actix_rt::task::JoinHandle<Result<Reply<Applied>, oneshot::error::RecvError>>,
    actix_rt::task::JoinHandle<Result<Reply<RoomView>, actix::MailboxError>>,
) {
    setup.refuse_records(true);
    setup.journal.set_down(true);
    let held = actix_rt::spawn(ask(room, say("last words")));
    let closing = actix_rt::spawn(room.send(Close));
    eventually("a refused append", PATIENCE, || async {
        (setup.journal.refused_appends(id) >= 1).then_some(())
    })
    .await;
    (held, closing)
}

/// The journal back: the message is acknowledged, then the close refused by the store.
async fn the_close_fails(
    setup: &Setup,
    held: actix_rt::task::JoinHandle<Result<Reply<Applied>, oneshot::error::RecvError>>,
    closing: actix_rt::task::JoinHandle<Result<Reply<RoomView>, actix::MailboxError>>,
) {
    setup.journal.set_down(false);
    assert_eq!(answered(held).await.unwrap().seq, 4);
    let refused = answered(closing).await;
    assert!(
        matches!(refused, Err(RoomFailure::Unavailable(_))),
        "{refused:?}"
    );
    setup.refuse_records(false);
}

#[actix_rt::test]
async fn who_left_while_a_failed_close_waited_is_gone_once_the_room_opens_again() {
    let setup = Setup::new();
    let registry = setup.registry(settings());
    let (id, room) = setup.room_with_alice(&registry, "a close that fails").await;
    bob_connects(&room).await;
    assert_eq!(room.send(GetView).await.unwrap().counters.participants, 2);

    let (held, closing) = a_close_that_will_fail(&setup, &id, &room).await;
    // Bob's socket goes while the close waits (the room takes no mutations then).
    room.send(Disconnect { id: 7 }).await.unwrap();
    the_close_fails(&setup, held, closing).await;

    // Open again: bob, who has no link to the room any more, is not present.
    eventually(
        "bob's leave once the room opened again",
        PATIENCE,
        || async {
            let view = room.send(GetView).await.unwrap();
            (view.status == RoomStatus::Open && view.counters.participants == 1).then_some(())
        },
    )
    .await;
    let record = room.send(Close).await.unwrap().unwrap();
    assert_eq!(record.counters.participants, 1, "{record:?}");
}

#[actix_rt::test]
async fn a_socket_that_came_and_went_while_a_failed_close_waited_leaves_its_user_as_they_were() {
    let setup = Setup::new();
    let registry = setup.registry(settings());
    let (id, room) = setup.room_with_alice(&registry, "a close that fails").await;
    bob_connects(&room).await;

    let (held, closing) = a_close_that_will_fail(&setup, &id, &room).await;
    // While the close waits, a second socket of bob's on another node comes and goes.
    let node = "node-b".to_owned();
    let sessions = vec![(1, super::user("bob"))];
    room.send(SyncRemote {
        node: node.clone(),
        sessions,
    })
    .await
    .unwrap();
    room.send(DetachRemote { node, session: 1 }).await.unwrap();
    the_close_fails(&setup, held, closing).await;

    // Open again: bob still has his socket here, and is present.
    let record = room.send(Close).await.unwrap().unwrap();
    assert_eq!(record.counters.participants, 2, "{record:?}");
}
