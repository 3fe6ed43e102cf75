//! A room keeps only the newest messages in memory (`RoomSettings::max_messages`); the journal
//! keeps them all: listings that reach back past memory read the journal, the final record holds
//! the whole transcript, and a room recovered from a snapshot still lists everything.

use roomstate_core::room::RoomStatus;

use super::{ask, say, settings, Setup};
use crate::room::{
    deps::RoomSettings,
    messages::{Close, GetMessages, GetView},
};

fn bounded() -> RoomSettings {
    RoomSettings {
        max_messages: 3,
        snapshot_every: 4,
        ..settings()
    }
}

async fn listed(room: &actix::Addr<crate::room::actor::RoomActor>, after: u64) -> Vec<String> {
    room.send(GetMessages { after, limit: 500 })
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect()
}

#[actix_rt::test]
async fn older_messages_come_from_the_journal_and_the_record_has_them_all() {
    let setup = Setup::new();
    let registry = setup.registry(bounded());
    let (id, room) = setup.room_with_alice(&registry, "long debate").await;
    for i in 0..10 {
        ask(&room, say(&format!("m{i}"))).await.unwrap().unwrap();
    }
    let expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(
        listed(&room, 0).await,
        expected,
        "all ten, oldest from the journal"
    );
    // Seqs 3..=12 are the messages: after 10, only the last two, from memory.
    assert_eq!(listed(&room, 10).await, ["m8", "m9"]);
    assert_eq!(room.send(GetView).await.unwrap().counters.messages, 10);

    // Recovery from the journal (snapshots every 4 events trimmed the log): still all ten.
    let again = setup.registry(bounded());
    assert_eq!(again.recover().await.unwrap(), 1);
    let back = again.get(&id).unwrap();
    assert_eq!(listed(&back, 0).await, expected);

    let record = back.send(Close).await.unwrap().unwrap();
    assert_eq!(record.status, RoomStatus::Closed);
    assert_eq!(record.counters.messages, 10);
    let stored = setup.store.messages(&id, 0, 500).await.unwrap();
    let texts: Vec<String> = stored.into_iter().map(|m| m.text).collect();
    assert_eq!(
        texts, expected,
        "the final record holds the whole transcript"
    );
}

#[actix_rt::test]
async fn the_record_holds_a_transcript_longer_than_one_journal_read() {
    let setup = Setup::new();
    let settings = RoomSettings {
        max_messages: 3,
        snapshot_every: 5_000,
        ..settings()
    };
    let registry = setup.registry(settings);
    let (id, room) = setup.room_with_alice(&registry, "a very long debate").await;
    // More than one read's worth leaves memory: the record must page through the journal.
    let count = roomstate_journal::MESSAGES_PER_READ + 10;
    let mut sent = 0;
    while sent < count {
        let chunk: Vec<_> = (sent..count.min(sent + 50))
            .map(|i| ask(&room, say(&format!("m{i}"))))
            .collect();
        sent += chunk.len();
        for answer in chunk {
            answer.await.unwrap().unwrap();
        }
    }
    let record = room.send(Close).await.unwrap().unwrap();
    assert_eq!(record.counters.messages as usize, count);
    let mut texts = Vec::new();
    let mut after = 0;
    loop {
        let page = setup.store.messages(&id, after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        texts.extend(page.into_iter().map(|m| m.text));
    }
    let expected: Vec<String> = (0..count).map(|i| format!("m{i}")).collect();
    assert_eq!(texts.len(), expected.len(), "every message in the record");
    assert_eq!(texts, expected);
}
