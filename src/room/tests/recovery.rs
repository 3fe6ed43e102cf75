//! The registry at start: a room whose final record is already in the store (the engine stopped
//! after the write-back, before the log was deleted) is not reopened and loses its log; the other
//! rooms come back as they were. And a room whose creation was refused leaves nothing to come
//! back.

use roomstate_core::room::RoomStatus;
use roomstate_journal::memory::Fault;
use roomstate_testkit::eventually;

use super::{ask, log_seqs, say, settings, Setup, PATIENCE};
use crate::room::{failure::RoomFailure, messages::GetView};

#[actix_rt::test]
async fn recovery_deletes_the_log_of_a_room_already_in_the_store_and_reopens_the_others() {
    let setup = Setup::new();
    let (journal, store) = (&setup.journal, &setup.store);
    let registry = setup.registry(settings());
    let (closed, closed_room) = setup.room_with_alice(&registry, "closed").await;
    ask(&closed_room, say("bye")).await.unwrap().unwrap();
    let (open, open_room) = setup.room_with_alice(&registry, "open").await;
    ask(&open_room, say("still here")).await.unwrap().unwrap();
    let open_before = open_room.send(GetView).await.unwrap();

    // With nothing pending, the close writes the record to the store, which works, and then
    // fails to delete the log from the journal: the state a crash between the two leaves.
    journal.set_deletes_failing(true);
    let final_view = registry.close(&closed).await.unwrap();
    eventually("the closed room to stop", PATIENCE, || async {
        (!closed_room.connected()).then_some(())
    })
    .await;
    journal.set_deletes_failing(false);
    assert_eq!(
        log_seqs(journal, &closed),
        [1, 2, 3],
        "the log outlived the close"
    );
    assert_eq!(store.room(&closed).await.unwrap(), Some(final_view.clone()));

    let again = setup.registry(settings());
    assert_eq!(again.recover().await.unwrap(), 1, "only the open room");
    assert!(
        again.get(&closed).is_none(),
        "the closed room is not reopened"
    );
    assert!(!journal.has_room(&closed), "its log is deleted");
    assert_eq!(
        again.view(&closed).await.unwrap(),
        final_view,
        "it is served from the store"
    );
    assert_eq!(
        again.view(&closed).await.unwrap().status,
        RoomStatus::Closed
    );

    let back = again.get(&open).unwrap().send(GetView).await.unwrap();
    assert_eq!(back.counters.seq, open_before.counters.seq);
    assert_eq!(back.counters.messages, 1);
    assert_eq!(back.counters.participants_peak, 1);
    assert_eq!(log_seqs(journal, &open), [1, 2, 3], "its log is untouched");
}

/// A room whose creation the journal wrote but reported as failed (the client got 503, "nothing
/// was applied") must not come back at the next start: the registry deletes its log once the
/// journal answers again.
#[actix_rt::test]
async fn a_refused_creation_leaves_no_room_behind() {
    let setup = Setup::new();
    let journal = &setup.journal;
    let registry = setup.registry(settings());
    journal.set_fault(Fault::WriteThenFail);
    let refused = registry.create("half made".into()).await;
    assert!(
        matches!(refused, Err(RoomFailure::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(registry.open_rooms(), 0);
    // The journal down before the log's deletion is tried: it waits, and meanwhile the room is
    // known as being forgotten (a cluster's scan does not take it for one of this node's).
    journal.set_down(true);
    let half_made = journal.room_ids();
    assert_eq!(half_made.len(), 1, "the append was written");
    assert!(registry.is_forgetting(&half_made[0]));
    journal.set_fault(Fault::None);
    eventually(
        "the half-made room's log to be deleted",
        PATIENCE,
        || async { journal.room_ids().is_empty().then_some(()) },
    )
    .await;
    eventually("the room no longer being forgotten", PATIENCE, || async {
        (!registry.is_forgetting(&half_made[0])).then_some(())
    })
    .await;
    let again = setup.registry(settings());
    assert_eq!(again.recover().await.unwrap(), 0, "nothing comes back");
}

#[actix_rt::test]
async fn a_room_whose_log_goes_past_its_stored_record_comes_back_open() {
    use roomstate_store::FinalRecord;

    use crate::room::messages::{Close, GetMessages};
    let setup = Setup::new();
    let (journal, store) = (&setup.journal, &setup.store);
    let registry = setup.registry(settings());
    let (id, room) = setup.room_with_alice(&registry, "lost answer").await;
    ask(&room, say("before")).await.unwrap().unwrap();
    // A close whose record was committed but whose answer was lost: reported failed, the room
    // stayed open and took more mutations. (Its record, as that close wrote it, at seq 3.)
    let at_close = room.send(GetView).await.unwrap();
    let messages = room
        .send(GetMessages {
            after: 0,
            limit: 10,
        })
        .await
        .unwrap()
        .unwrap();
    store
        .write_final(FinalRecord {
            room: at_close.clone(),
            votes: Vec::new(),
            messages,
        })
        .await
        .unwrap();
    ask(&room, say("after")).await.unwrap().unwrap();
    registry.shutdown(PATIENCE).await;
    assert_eq!(log_seqs(journal, &id), [1, 2, 3, 4]);

    // Its log holds seq 4, past the record's 3: back open, not deleted.
    let again = setup.registry(settings());
    assert_eq!(again.recover().await.unwrap(), 1);
    let back = again.get(&id).expect("open again");
    let view = back.send(GetView).await.unwrap();
    assert_eq!((view.status, view.counters.seq), (RoomStatus::Open, 4));
    assert_eq!(
        store.room(&id).await.unwrap(),
        None,
        "no record of an open room"
    );
    // Its next close replaces the record with one holding everything.
    let record = back.send(Close).await.unwrap().unwrap();
    assert_eq!((record.counters.seq, record.counters.messages), (4, 2));
    let stored = store.messages(&id, 0, 10).await.unwrap();
    let texts: Vec<&str> = stored.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["before", "after"]);
}
