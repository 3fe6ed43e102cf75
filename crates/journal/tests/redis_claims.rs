//! Claims and releases of rooms (the leases of a cluster of engines), against a real Redis: a
//! claim fences off the writer before it, of two claims of one epoch only the first wins, a
//! creation claims before it writes, a release leaves the room to the next claim, a recovery
//! claims every room it reads, and events written under a lease carry its epoch in the log.

use std::time::Duration;

use roomstate_core::{
    room::{Event, EventKind, RoomId, UserName},
    time,
};
use roomstate_journal::{
    redis::{NodeRecord, RedisJournal, RedisJournalConfig, RedisTarget},
    Epoch, Journal, JournalError, JournalMetrics,
};
use roomstate_testkit::{
    redis_admin::{command, log_events},
    redis_server::RedisServer,
};

fn event(room: &RoomId, seq: u64) -> Event {
    Event {
        room: room.clone(),
        seq,
        at: time::now(),
        kind: match seq {
            1 => EventKind::Created {
                title: "claimed".into(),
            },
            _ => EventKind::Voted {
                user: UserName::parse("alice").unwrap(),
                side: if seq.is_multiple_of(2) {
                    roomstate_core::room::Side::Pro
                } else {
                    roomstate_core::room::Side::Con
                },
            },
        },
    }
}

fn open(redis: &RedisServer, node: &str) -> RedisJournal {
    let mut config = RedisJournalConfig::new(RedisTarget::Url(redis.url()), 0);
    config.response_timeout = Duration::from_secs(5);
    config.node = node.into();
    RedisJournal::open(config, JournalMetrics::detached().unwrap()).unwrap()
}

/// The room's owner hash: `node` and `epoch`.
async fn owner(redis: &RedisServer, room: &RoomId) -> String {
    let key = format!("roomstate:{{{room}}}:owner");
    let node = command(&redis.addr(), &["HGET", &key, "node"]).await;
    let epoch = command(&redis.addr(), &["HGET", &key, "epoch"]).await;
    format!("{} {}", node.unwrap(), epoch.unwrap())
}

#[actix_rt::test]
async fn a_claim_fences_the_writer_before_it_and_only_the_first_of_two_claims_wins() {
    let redis = RedisServer::start().await;
    let (a, b) = (open(&redis, "a"), open(&redis, "b"));
    let room = RoomId::parse("r_claimed").unwrap();

    let first = a.claim(room.clone(), Some(Epoch::NONE), "a", true).await;
    assert_eq!(first.unwrap(), Epoch(1), "a creation claims epoch 1");
    let again = b.claim(room.clone(), Some(Epoch::NONE), "b", true).await;
    assert!(
        matches!(again, Err(JournalError::Fenced(_))),
        "a second creation of the same epoch loses: {again:?}"
    );
    a.append(Epoch(1), vec![event(&room, 1), event(&room, 2)])
        .await
        .unwrap();

    // b takes the room over from epoch 1; a is fenced from then on.
    assert_eq!(
        b.claim(room.clone(), Some(Epoch(1)), "b", false)
            .await
            .unwrap(),
        Epoch(2)
    );
    let late = a.claim(room.clone(), Some(Epoch(1)), "a", false).await;
    assert!(
        matches!(late, Err(JournalError::Fenced(_))),
        "a claim of an epoch already taken loses: {late:?}"
    );
    let refused = a.append(Epoch(1), vec![event(&room, 3)]).await;
    assert!(
        matches!(refused, Err(JournalError::Fenced(_))),
        "{refused:?}"
    );
    b.append(Epoch(2), vec![event(&room, 3)]).await.unwrap();
    assert_eq!(owner(&redis, &room).await, "b 2");

    // Each event carries the epoch it was written under.
    let epochs: Vec<Option<String>> =
        log_events(&redis.addr(), &format!("roomstate:{{{room}}}:log"))
            .await
            .unwrap()
            .into_iter()
            .map(|event| event.epoch)
            .collect();
    let epochs: Vec<&str> = epochs
        .iter()
        .map(|epoch| epoch.as_deref().unwrap_or("none"))
        .collect();
    assert_eq!(epochs, ["1", "1", "2"]);
    let creation_claim = a.claim(room.clone(), Some(Epoch(2)), "a", true).await;
    assert!(
        matches!(creation_claim, Err(JournalError::Corrupt(ref why)) if why.contains("exists")),
        "a creation cannot claim a room that has a log: {creation_claim:?}"
    );
}

#[actix_rt::test]
async fn a_released_room_goes_to_the_next_claim_and_its_old_owner_writes_nothing() {
    let redis = RedisServer::start().await;
    let (a, b) = (open(&redis, "a"), open(&redis, "b"));
    let room = RoomId::parse("r_handed").unwrap();
    let epoch = a
        .claim(room.clone(), Some(Epoch::NONE), "a", true)
        .await
        .unwrap();
    a.append(epoch, vec![event(&room, 1)]).await.unwrap();
    a.release(epoch, room.clone()).await.unwrap();
    assert_eq!(owner(&redis, &room).await, " 1", "nobody owns it");
    let taken = b
        .claim(room.clone(), Some(epoch), "b", false)
        .await
        .unwrap();
    assert_eq!(taken, epoch.next());
    assert!(a.append(epoch, vec![event(&room, 2)]).await.is_err());
    b.append(taken, vec![event(&room, 2)]).await.unwrap();

    // A closed room (its log deleted) cannot be taken.
    b.delete_room(taken, room.clone()).await.unwrap();
    let gone = a.claim(room.clone(), Some(taken), "a", false).await;
    assert!(
        matches!(gone, Err(JournalError::Corrupt(ref why)) if why.contains("closed")),
        "{gone:?}"
    );
}

#[actix_rt::test]
async fn a_recovery_claims_every_room_it_reads_and_fences_the_engine_before_it() {
    let redis = RedisServer::start().await;
    let old = open(&redis, "old");
    let rooms: Vec<RoomId> = (0..3)
        .map(|i| RoomId::parse(&format!("r_rec{i}")).unwrap())
        .collect();
    for room in &rooms {
        old.append(Epoch::NONE, vec![event(room, 1), event(room, 2)])
            .await
            .unwrap();
    }
    let new = open(&redis, "new");
    let logs = new.recover().await.unwrap();
    assert_eq!(logs.len(), 3);
    for log in &logs {
        assert_eq!(log.epoch, Epoch(1), "{}", log.room);
        assert_eq!(log.events.len(), 2);
    }
    for room in &rooms {
        let refused = old.append(Epoch::NONE, vec![event(room, 3)]).await;
        assert!(
            matches!(refused, Err(JournalError::Fenced(_))),
            "{refused:?}"
        );
        assert_eq!(owner(&redis, room).await, "new 1");
    }
    // The next start claims them again, under the next epoch.
    let logs = open(&redis, "next").recover().await.unwrap();
    assert!(logs.iter().all(|l| l.epoch == Epoch(2)));
    assert!(new
        .append(Epoch(1), vec![event(&rooms[0], 3)])
        .await
        .is_err());
}

/// The writer's connection killed while nothing is written (`CLIENT KILL`; a primary restarted
/// in place looks the same): a heartbeat or a message read that fails on it finds it gone, and
/// the next one connects again, without waiting for some room to write.
#[actix_rt::test]
async fn a_connection_lost_between_writes_is_replaced_after_the_first_call_that_fails() {
    let redis = RedisServer::start().await;
    let journal = open(&redis, "a");
    let room = RoomId::parse("r_quiet").unwrap();
    let beat = |beat| NodeRecord {
        id: "a".into(),
        advertise_url: "http://127.0.0.1:9".into(),
        rooms: 0,
        beat,
        started_ms: 1,
        leaving: false,
    };
    journal.heartbeat(beat(1)).await.unwrap();

    kill_clients(&redis).await;
    // The first call may still go to the dead connection: nothing told the writer yet.
    let _ = journal.heartbeat(beat(2)).await;
    let nodes = journal.heartbeat(beat(3)).await.unwrap();
    assert_eq!(nodes.iter().map(|n| n.beat).collect::<Vec<_>>(), [3]);

    kill_clients(&redis).await;
    let _ = journal.messages(room.clone(), 0, 10).await;
    assert_eq!(journal.messages(room, 0, 10).await.unwrap(), []);
}

/// Kills every client connection of `redis` but the one asking.
async fn kill_clients(redis: &RedisServer) {
    let killed = command(&redis.addr(), &["CLIENT", "KILL", "TYPE", "normal"]).await;
    assert_ne!(killed.unwrap(), "0", "the journal's connection was killed");
}
