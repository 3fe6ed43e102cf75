//! Snapshots in the Redis journal, through the real binary: with a small
//! `journal.snapshot_every`, a busy room's snapshot lands in Redis and its stream is trimmed
//! behind it; an engine restarted on those keys rebuilds the room from the snapshot plus the tail
//! after it, exactly (counters, transcript, every user's vote); closing the room writes all of it
//! to SQL and leaves no key behind.

use std::{collections::BTreeMap, time::Duration};

use roomstate_core::room::RoomId;
use roomstate_store::Store;
use roomstate_testkit::redis_admin;
use serde_json::Value;

use crate::support::{
    app::{self, eventually, TestApp},
    sentinel::RedisServer,
};

/// `journal.snapshot_every` for these tests: a snapshot every few requests.
const EVERY: u64 = 10;
const USERS: usize = 6;
const ROUNDS: usize = 8;
/// How long Redis (local, idle otherwise) may take to show what the engine wrote.
const DEADLINE: Duration = Duration::from_secs(30);

fn engine_on(redis: &RedisServer) -> TestApp {
    app::builder()
        .setting("JOURNAL__KIND", "redis")
        .setting("REDIS__URL", redis.url())
        .setting("JOURNAL__SNAPSHOT_EVERY", EVERY)
        .start()
}

/// The room's keys (crates/journal/src/redis.rs: one hash tag per room).
struct Keys {
    addr: String,
    room: String,
    snap: String,
    log: String,
}

impl Keys {
    fn new(redis: &RedisServer, room: &str) -> Keys {
        let url = redis.url();
        Keys {
            addr: url.strip_prefix("redis://").unwrap_or(&url).to_owned(),
            room: room.to_owned(),
            snap: format!("roomstate:{{{room}}}:snap"),
            log: format!("roomstate:{{{room}}}:log"),
        }
    }
}

/// What Redis holds for a room.
#[derive(Debug)]
struct Held {
    /// The snapshot, as JSON.
    snapshot: Value,
    snapshot_seq: u64,
    /// The seqs of the events after the snapshot in the log, oldest first.
    log: Vec<u64>,
    /// The log's entries (one per batch that appended to the room).
    entries: u64,
    /// The first seq of the log's first entry.
    first_logged: Option<u64>,
}

fn seq_of(id: &str) -> u64 {
    id.strip_suffix("-0")
        .and_then(|seq| seq.parse().ok())
        .unwrap_or_else(|| panic!("entry id {id} is not <seq>-0"))
}

/// Waits until Redis holds a snapshot of the room and exactly the events after it (the log is
/// trimmed up to the snapshot and complete after it, up to the room's seq), and no further
/// snapshot is due, so what it holds stays put. Due means, as `SnapshotSchedule` documents: at
/// least `EVERY` events, and at least as many as the room has messages, since the last one.
async fn settled(app: &TestApp, keys: &Keys) -> Held {
    eventually(
        "a snapshot with the log trimmed behind it and complete after it",
        DEADLINE,
        || async {
            let view = app.room(&keys.room).await;
            let seq = view["seq"].as_u64().expect("seq");
            let messages = view["messages"].as_u64().expect("messages");
            let json = redis_admin::get(&keys.addr, &keys.snap).await.unwrap()?;
            let snapshot: Value = serde_json::from_str(&json).expect("snapshot JSON");
            let snapshot_seq = snapshot["seq"].as_u64().expect("snapshot seq");
            let ids = redis_admin::stream_ids(&keys.addr, &keys.log)
                .await
                .unwrap();
            let entries: Vec<u64> = ids.iter().map(|id| seq_of(id)).collect();
            let logged = redis_admin::log_seqs(&keys.addr, &keys.log).await.unwrap();
            // An entry holds a batch's events of the room: the one the snapshot's seq falls
            // in is kept whole, the ones wholly behind it are trimmed.
            let trimmed = entries.iter().all(|last| *last > snapshot_seq);
            let log: Vec<u64> = logged
                .iter()
                .copied()
                .filter(|s| *s > snapshot_seq)
                .collect();
            let complete = log == (snapshot_seq + 1..=seq).collect::<Vec<u64>>();
            let due = seq >= snapshot_seq + EVERY.max(messages);
            (trimmed && complete && !due).then_some(Held {
                snapshot,
                snapshot_seq,
                log,
                entries: entries.len() as u64,
                first_logged: logged.first().copied(),
            })
        },
    )
    .await
}

/// Every message of the room over HTTP, oldest first.
async fn listed_messages(app: &TestApp, room: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/rooms/{room}/messages?limit=500")).await;
    assert_eq!(status, 200, "{body}");
    body["messages"].as_array().expect("messages").clone()
}

#[actix_rt::test]
async fn a_snapshot_trims_the_log_and_a_restart_rebuilds_the_room_from_it() {
    let redis = RedisServer::start().await;
    let mut app = engine_on(&redis);
    let room = app.create_room("snapshots").await;
    let keys = Keys::new(&redis, &room);
    let users: Vec<String> = (0..USERS).map(|i| format!("u{i}")).collect();
    for user in &users {
        app.join(&room, user).await;
    }
    // Every vote switches its user's side (a new seq each); every other round each user talks.
    let mut votes: BTreeMap<String, String> = BTreeMap::new();
    let mut transcript: Vec<(u64, String)> = Vec::new();
    for round in 0..ROUNDS {
        for (i, user) in users.iter().enumerate() {
            let side = if (round + i) % 2 == 0 { "pro" } else { "con" };
            let (status, body) = app.vote(&room, user, side).await;
            assert_eq!(status, 200, "{body}");
            votes.insert(user.clone(), side.to_owned());
            if round % 2 == 1 {
                let text = format!("{user} in round {round}");
                let (status, body) = app.say(&room, user, &text).await;
                assert_eq!(status, 201, "{body}");
                transcript.push((body["seq"].as_u64().expect("seq"), text));
            }
        }
    }
    let (status, body) = app.delete(&format!("/rooms/{room}/votes/u5")).await;
    assert_eq!(status, 200, "{body}");
    votes.remove("u5");

    let mut held = settled(&app, &keys).await;
    // The restart below must replay a tail after the snapshot, not only load the snapshot.
    for _ in 0..3 {
        if !held.log.is_empty() {
            break;
        }
        let side = if votes["u0"] == "pro" { "con" } else { "pro" };
        let (status, body) = app.vote(&room, "u0", side).await;
        assert_eq!(status, 200, "{body}");
        votes.insert("u0".into(), side.to_owned());
        held = settled(&app, &keys).await;
    }
    assert!(!held.log.is_empty(), "no tail after the snapshot: {held:?}");
    let before = app.room(&room).await;
    let seq = before["seq"].as_u64().expect("seq");
    assert!(
        held.snapshot_seq >= EVERY,
        "snapshot at seq {}",
        held.snapshot_seq
    );
    assert_eq!(held.snapshot["room"], room.as_str());
    let in_snapshot = transcript
        .iter()
        .filter(|(s, _)| *s <= held.snapshot_seq)
        .count();
    assert_eq!(
        held.snapshot["messages"].as_array().map(Vec::len),
        Some(in_snapshot),
        "the snapshot holds the transcript up to its seq: {}",
        held.snapshot
    );
    let length = redis_admin::stream_len(&keys.addr, &keys.log)
        .await
        .unwrap();
    assert_eq!(length, held.entries);
    assert!(
        length < seq && held.first_logged.is_some_and(|first| first > 1),
        "the log was trimmed: {length} entries from seq {:?} for {seq} events",
        held.first_logged
    );
    let messages_before = listed_messages(&app, &room).await;
    assert_eq!(messages_before.len(), transcript.len());

    assert!(app.stop().success(), "SIGTERM exits 0");
    app.restart();
    let mut after = app.room(&room).await;
    assert_eq!(
        after["participants"], 0,
        "nobody is present after a restart"
    );
    after["participants"] = before["participants"].clone();
    assert_eq!(after, before, "the room as it was before the restart");
    assert_eq!(listed_messages(&app, &room).await, messages_before);

    // Each user's own vote came back, not just the counters: the same side again is no change
    // (no new seq), and a retract of the retracted vote is none either.
    let mut next = seq;
    for user in &users {
        next += 1;
        let view = app.join(&room, user).await;
        assert_eq!(view["seq"].as_u64(), Some(next), "{user} joins: {view}");
        let (status, body) = match votes.get(user) {
            Some(side) => app.vote(&room, user, side).await,
            None => app.delete(&format!("/rooms/{room}/votes/{user}")).await,
        };
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["seq"].as_u64(),
            Some(next),
            "{user}'s vote was restored: {body}"
        );
    }

    let (status, closed) = app.close_room(&room).await;
    assert_eq!(status, 200, "{closed}");
    let pro = votes.values().filter(|s| *s == "pro").count() as u64;
    assert_eq!(closed["seq"].as_u64(), Some(next));
    assert_eq!(closed["pro"].as_u64(), Some(pro));
    assert_eq!(closed["con"].as_u64(), Some(votes.len() as u64 - pro));
    assert_eq!(closed["messages"].as_u64(), Some(transcript.len() as u64));
    assert_eq!(closed["participants_peak"], before["participants_peak"]);

    let store = Store::open(&format!(
        "sqlite://{}",
        app.data_dir().join("roomstate.db").display()
    ))
    .expect("the engine's store");
    let id = RoomId::parse(&room).unwrap();
    let stored: BTreeMap<String, String> = store
        .votes(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|(user, side)| (user.to_string(), side.as_str().to_owned()))
        .collect();
    assert_eq!(stored, votes, "the final votes");
    let stored_transcript: Vec<(u64, String)> = store
        .messages(&id, 0, 500)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.seq, m.text))
        .collect();
    assert_eq!(stored_transcript, transcript, "the final transcript");

    // The log is deleted once the record is in the store (after the answer, hence the wait).
    eventually("the room's keys to go", DEADLINE, || async {
        let snap = redis_admin::exists(&keys.addr, &keys.snap).await.unwrap();
        let log = redis_admin::exists(&keys.addr, &keys.log).await.unwrap();
        let listed = redis_admin::is_member(&keys.addr, "roomstate:rooms", &room)
            .await
            .unwrap();
        (!snap && !log && !listed).then_some(())
    })
    .await;
}
