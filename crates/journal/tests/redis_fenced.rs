//! The one fenced append per batch (`roomstate.lua`), against a real Redis: a room whose lease
//! another writer took (a newer epoch in its owner hash) is refused as `Fenced` and nothing of it
//! is written; an event sent again must be byte-identical to the stored one (a different one is a
//! conflict, never "already stored", also inside a run of events stored as one entry, and above
//! a snapshot taken inside one); a batch that would leave a gap is refused, and an append whose
//! text does not hold its count of events is an error that writes nothing; one room's refusal
//! does not hold up the other rooms of the same batch; a fenced delete leaves the room, and the
//! room index, alone, and `hold` tells the old writer it lost the room; logs of earlier versions
//! continue; and a repair after a failover puts back only what the room's lease still covers.

use std::time::Duration;

use roomstate_core::{
    room::{Event, EventKind, RoomId, Snapshot, UserName},
    time,
};
use roomstate_journal::{
    redis::{RedisJournal, RedisJournalConfig, RedisTarget},
    Epoch, Journal, JournalError, JournalMetrics,
};
use roomstate_testkit::{
    redis_admin::{command, log_events, log_seqs, query, stream_ids, wait_until},
    redis_server::RedisServer,
};

fn event(room: &RoomId, seq: u64, text: &str) -> Event {
    Event {
        room: room.clone(),
        seq,
        at: time::now(),
        kind: match seq {
            1 => EventKind::Created {
                title: "fenced".into(),
            },
            _ => EventKind::Said {
                user: UserName::parse("alice").unwrap(),
                text: text.into(),
                key: None,
            },
        },
    }
}

fn snapshot(room: &RoomId, seq: u64) -> Snapshot {
    Snapshot {
        room: room.clone(),
        seq,
        title: "fenced".into(),
        created_at: time::now(),
        participants_peak: 1,
        votes: Vec::new(),
        messages: Vec::new(),
        message_count: Some(0),
        older_upto: seq,
        keys: Vec::new(),
    }
}

fn open(redis: &RedisServer) -> RedisJournal {
    let mut config = RedisJournalConfig::new(RedisTarget::Url(redis.url()), 0);
    config.response_timeout = Duration::from_secs(5);
    RedisJournal::open(config, JournalMetrics::detached().unwrap()).unwrap()
}

/// Asserts that `result` is the function's conflict at `seq`: never "already stored".
fn assert_conflict(result: &Result<(), JournalError>, seq: u64) {
    assert!(
        matches!(result, Err(JournalError::Corrupt(m)) if m.contains(&format!("seq {seq}"))),
        "seq {seq}: {result:?}"
    );
}

/// The seqs the room's log holds.
async fn logged(redis: &RedisServer, room: &RoomId) -> Vec<u64> {
    log_seqs(&redis.addr(), &format!("roomstate:{{{room}}}:log"))
        .await
        .unwrap()
}

#[actix_rt::test]
async fn a_room_leased_to_another_writer_is_fenced_and_nothing_is_written() {
    let redis = RedisServer::start().await;
    let journal = open(&redis);
    let room = RoomId::parse("r_fenced").unwrap();
    journal
        .append(Epoch::NONE, vec![event(&room, 1, ""), event(&room, 2, "a")])
        .await
        .unwrap();
    // Another node took the room over: its lease epoch is now 7.
    command(
        &redis.addr(),
        &[
            "HSET",
            &format!("roomstate:{{{room}}}:owner"),
            "epoch",
            "7",
            "node",
            "n2",
        ],
    )
    .await
    .unwrap();
    let hold = journal.hold(Epoch::NONE, room.clone()).await;
    assert!(
        matches!(hold, Err(JournalError::Fenced(ref why)) if why.contains("n2")),
        "the old writer no longer holds the room: {hold:?}"
    );
    journal
        .hold(Epoch(7), room.clone())
        .await
        .expect("the new owner holds it");
    let refused = journal
        .append(Epoch::NONE, vec![event(&room, 3, "b")])
        .await;
    match refused {
        Err(JournalError::Fenced(why)) => assert!(why.contains("7 n2"), "{why}"),
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert_eq!(
        logged(&redis, &room).await,
        [1, 2],
        "nothing of it was written"
    );
    let delete_refused = journal
        .delete_room(Epoch::NONE, room.clone())
        .await
        .expect_err("a fenced writer cannot delete the room either");
    assert!(matches!(delete_refused, JournalError::Fenced(_)));
    let indexed = || async {
        command(
            &redis.addr(),
            &["SISMEMBER", "roomstate:rooms", room.as_str()],
        )
        .await
        .unwrap()
    };
    assert_eq!(
        indexed().await,
        "1",
        "the refused delete left the room in the index, for its owner's takeovers"
    );
    assert_eq!(logged(&redis, &room).await, [1, 2], "and its log");
    // The owner's own delete drops both.
    journal.delete_room(Epoch(7), room.clone()).await.unwrap();
    assert_eq!(
        indexed().await,
        "0",
        "the owner's delete unindexes the room"
    );
    assert_eq!(logged(&redis, &room).await, Vec::<u64>::new());
    let hold = journal.hold(Epoch(7), room.clone()).await;
    assert!(
        matches!(hold, Err(JournalError::Fenced(_))),
        "nobody holds a deleted room: {hold:?}"
    );
}

#[actix_rt::test]
async fn a_resent_event_must_be_identical_and_a_gap_is_refused() {
    let redis = RedisServer::start().await;
    let journal = open(&redis);
    let room = RoomId::parse("r_strict").unwrap();
    let first = vec![event(&room, 1, ""), event(&room, 2, "hello")];
    journal.append(Epoch::NONE, first.clone()).await.unwrap();
    // The same events again (a lost reply): fine, nothing duplicated.
    journal.append(Epoch::NONE, first.clone()).await.unwrap();
    assert_eq!(logged(&redis, &room).await, [1, 2]);
    // Seq 2 again with other content: a conflict, not "already stored" — even the same text at
    // another time is other content.
    let conflict = journal
        .append(Epoch::NONE, vec![event(&room, 2, "other")])
        .await;
    assert_conflict(&conflict, 2);
    let conflict = journal
        .append(Epoch::NONE, vec![event(&room, 2, "hello")])
        .await;
    assert_conflict(&conflict, 2);
    // A gap: seq 4 after 2.
    let gap = journal
        .append(Epoch::NONE, vec![event(&room, 4, "later")])
        .await;
    assert!(
        matches!(&gap, Err(JournalError::Corrupt(m)) if m.contains("expects seq 3")),
        "{gap:?}"
    );
    assert_eq!(logged(&redis, &room).await, [1, 2], "neither was written");
    // A re-send overlapping the log, continuing it: the new part is appended.
    journal
        .append(Epoch::NONE, vec![first[1].clone(), event(&room, 3, "next")])
        .await
        .unwrap();
    assert_eq!(logged(&redis, &room).await, [1, 2, 3]);

    // One append is one entry (a run) however many events it holds; a re-send is checked
    // against the event inside the run, and only its new part makes an entry of its own.
    let run = vec![
        event(&room, 4, "four"),
        event(&room, 5, "five\nlines"),
        event(&room, 6, "six"),
    ];
    journal.append(Epoch::NONE, run.clone()).await.unwrap();
    let key = format!("roomstate:{{{room}}}:log");
    assert_eq!(
        stream_ids(&redis.addr(), &key).await.unwrap(),
        ["2-0", "3-0", "6-0"]
    );
    for (resent, seq) in [
        (vec![event(&room, 5, "other"), run[2].clone()], 5),
        (vec![run[1].clone(), event(&room, 6, "other")], 6),
    ] {
        let conflict = journal.append(Epoch::NONE, resent).await;
        assert_conflict(&conflict, seq);
    }
    // The run's first line again: already stored, nothing written.
    journal
        .append(Epoch::NONE, vec![run[0].clone()])
        .await
        .unwrap();
    let seven = event(&room, 7, "seven");
    journal
        .append(
            Epoch::NONE,
            vec![run[1].clone(), run[2].clone(), seven.clone()],
        )
        .await
        .unwrap();
    assert_eq!(
        stream_ids(&redis.addr(), &key).await.unwrap(),
        ["2-0", "3-0", "6-0", "7-0"]
    );
    // What the log holds is what was sent, byte for byte, line breaks in text included.
    let stored: Vec<(u64, String)> = log_events(&redis.addr(), &key)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.json))
        .collect();
    let sent: Vec<(u64, String)> = first
        .iter()
        .chain([&event(&room, 3, "next")])
        .chain(&run)
        .chain([&seven])
        .map(|e| (e.seq, e.to_json()))
        .collect();
    assert_eq!(stored[3..], sent[3..]);
    assert_eq!(
        stored.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7]
    );
}

#[actix_rt::test]
async fn one_rooms_refusal_does_not_hold_up_the_others_in_the_same_batch() {
    let redis = RedisServer::start().await;
    let journal = open(&redis);
    let (good, bad) = (
        RoomId::parse("r_good").unwrap(),
        RoomId::parse("r_bad").unwrap(),
    );
    journal
        .append(Epoch::NONE, vec![event(&bad, 1, "")])
        .await
        .unwrap();
    // Both appends queued at once share a batch (group commit): one gaps, one is fine.
    let (a, b) = futures_util::future::join(
        journal.append(
            Epoch::NONE,
            vec![event(&good, 1, ""), event(&good, 2, "ok")],
        ),
        journal.append(Epoch::NONE, vec![event(&bad, 5, "gap")]),
    )
    .await;
    assert!(a.is_ok(), "{a:?}");
    assert!(matches!(b, Err(JournalError::Corrupt(_))), "{b:?}");
    assert_eq!(logged(&redis, &good).await, [1, 2]);
    assert_eq!(logged(&redis, &bad).await, [1]);
    let logs = journal.recover().await.unwrap();
    let rooms: Vec<_> = logs.iter().map(|l| l.room.as_str().to_owned()).collect();
    assert_eq!(rooms, ["r_bad", "r_good"], "both in the index, in order");
}

#[actix_rt::test]
async fn a_log_of_one_event_per_entry_is_read_and_continued_in_runs() {
    // A journal written before runs existed: one entry per event, field `e`.
    let redis = RedisServer::start().await;
    let room = RoomId::parse("r_older").unwrap();
    let key = format!("roomstate:{{{room}}}:log");
    let older = [event(&room, 1, ""), event(&room, 2, "from before")];
    for e in &older {
        command(
            &redis.addr(),
            &["XADD", &key, &format!("{}-0", e.seq), "e", &e.to_json()],
        )
        .await
        .unwrap();
    }
    command(&redis.addr(), &["SADD", "roomstate:rooms", room.as_str()])
        .await
        .unwrap();

    let journal = open(&redis);
    let logs = journal.recover().await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0].events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2]
    );
    // Recovering claimed the room: appends go under its epoch.
    let epoch = logs[0].epoch;
    // A re-send is checked against the older entries too, and the new part becomes a run.
    let conflict = journal
        .append(epoch, vec![event(&room, 2, "changed")])
        .await;
    assert_conflict(&conflict, 2);
    let newer = vec![
        older[1].clone(),
        event(&room, 3, "now"),
        event(&room, 4, "later"),
    ];
    journal.append(epoch, newer).await.unwrap();
    assert_eq!(
        stream_ids(&redis.addr(), &key).await.unwrap(),
        ["1-0", "2-0", "4-0"]
    );
    let logs = open(&redis).recover().await.unwrap();
    assert_eq!(
        logs[0].events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
}

#[actix_rt::test]
async fn a_snapshot_inside_a_run_keeps_the_run_and_a_resend_above_it_is_still_checked() {
    let redis = RedisServer::start().await;
    let journal = open(&redis);
    let room = RoomId::parse("r_cut").unwrap();
    let key = format!("roomstate:{{{room}}}:log");
    let run: Vec<Event> = (1..=4).map(|seq| event(&room, seq, "run")).collect();
    journal.append(Epoch::NONE, run.clone()).await.unwrap();
    journal
        .snapshot(Epoch::NONE, snapshot(&room, 2))
        .await
        .unwrap();
    assert_eq!(
        stream_ids(&redis.addr(), &key).await.unwrap(),
        ["4-0"],
        "the run the snapshot falls in is kept whole"
    );
    // Above the snapshot a re-sent event must match its line in the run.
    let conflict = journal
        .append(Epoch::NONE, vec![event(&room, 3, "changed")])
        .await;
    assert_conflict(&conflict, 3);
    journal
        .append(
            Epoch::NONE,
            vec![run[2].clone(), run[3].clone(), event(&room, 5, "new")],
        )
        .await
        .unwrap();
    let logs = journal.recover().await.unwrap();
    assert_eq!(
        logs[0].events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [3, 4, 5],
        "recovery reads the run from after the snapshot"
    );
}

#[actix_rt::test]
async fn an_append_whose_text_does_not_hold_its_count_of_lines_is_an_error_and_writes_nothing() {
    let redis = RedisServer::start().await;
    let journal = open(&redis);
    // Any append loads the function.
    let loaded = RoomId::parse("r_loaded").unwrap();
    journal
        .append(Epoch::NONE, vec![event(&loaded, 1, "")])
        .await
        .unwrap();
    let room = RoomId::parse("r_malformed").unwrap();
    let keys: Vec<String> = ["log", "snap", "owner", "msgs"]
        .iter()
        .map(|part| format!("roomstate:{{{room}}}:{part}"))
        .collect();
    let json = |seq| event(&room, seq, "x").to_json();
    for (count, text) in [
        ("3", format!("{}\n\n{}", json(1), json(3))),
        ("2", json(1)),
        ("1", format!("{}\n{}", json(1), json(2))),
        ("2", format!("{}\n", json(1))),
    ] {
        let mut words = vec!["FCALL", "roomstate_batch_runs", "4"];
        words.extend(keys.iter().map(String::as_str));
        words.extend(["A", "0", "1", count, text.as_str(), "0"]);
        let refused = command(&redis.addr(), &words).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("holds another number of lines")),
            "{count} events in {text:?}: {refused:?}"
        );
    }
    assert_eq!(logged(&redis, &room).await, Vec::<u64>::new());
}

#[actix_rt::test]
async fn a_log_trimmed_empty_by_a_snapshot_of_an_older_engine_takes_the_next_event() {
    // A journal of an engine that trimmed the log at a snapshot without noting the snapshot's
    // seq in the owner hash: events 1-2 as one entry each, a snapshot at 2, the log trimmed
    // empty (the stream stays, and knows its last id).
    let redis = RedisServer::start().await;
    let room = RoomId::parse("r_trimmed").unwrap();
    let key = format!("roomstate:{{{room}}}:log");
    for e in [event(&room, 1, ""), event(&room, 2, "before the snapshot")] {
        command(
            &redis.addr(),
            &["XADD", &key, &format!("{}-0", e.seq), "e", &e.to_json()],
        )
        .await
        .unwrap();
    }
    let snap = serde_json::to_string(&snapshot(&room, 2)).unwrap();
    let snap_key = format!("roomstate:{{{room}}}:snap");
    for words in [
        &["SET", &snap_key, &snap][..],
        &["XTRIM", &key, "MINID", "3-0"],
        &["SADD", "roomstate:rooms", room.as_str()],
    ] {
        command(&redis.addr(), words).await.unwrap();
    }
    assert!(logged(&redis, &room).await.is_empty());

    let journal = open(&redis);
    let logs = journal.recover().await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].snapshot.as_ref().map(|s| s.seq), Some(2));
    let epoch = logs[0].epoch;
    // The next event follows the snapshot (not "a gap after 0"), and one after a gap is refused.
    journal
        .append(epoch, vec![event(&room, 3, "after the upgrade")])
        .await
        .unwrap();
    assert_eq!(logged(&redis, &room).await, [3]);
    let gap = journal.append(epoch, vec![event(&room, 5, "gap")]).await;
    assert!(matches!(gap, Err(JournalError::Corrupt(_))), "{gap:?}");
}

/// The primary the writer is connected to loses what it acknowledged of three rooms (a failover
/// can): one that another node claimed meanwhile, one whose claim went with its events, and one
/// it still holds. The writer's repair on its next connection puts back the last two, and leaves
/// the first as its new owner serves it (that owner replayed the log without these events and
/// numbers its own from where that log stops).
#[actix_rt::test]
async fn a_repair_puts_back_only_what_no_newer_lease_replaced() {
    let redis = RedisServer::start().await;
    let metrics = JournalMetrics::detached().unwrap();
    let mut config = RedisJournalConfig::new(RedisTarget::Url(redis.url()), 0);
    config.response_timeout = Duration::from_secs(5);
    let journal = RedisJournal::open(config, metrics.clone()).unwrap();
    let addr = redis.addr();
    let key = |room: &RoomId, what: &str| format!("roomstate:{{{room}}}:{what}");
    let [kept, moved, unclaimed] =
        ["r_kept", "r_moved", "r_unclaimed"].map(|name| RoomId::parse(name).unwrap());
    let lease = Epoch(3);
    for room in [&kept, &moved, &unclaimed] {
        command(
            &addr,
            &["HSET", &key(room, "owner"), "epoch", "3", "node", "n1"],
        )
        .await
        .unwrap();
        journal
            .append(lease, vec![event(room, 1, "")])
            .await
            .unwrap();
        let events = vec![event(room, 2, "a"), event(room, 3, "b")];
        journal.append(lease, events).await.unwrap();
    }
    // What the new primary holds: of r_kept only seq 1 (an event put back above it is not a new
    // room); of r_moved nothing, and another node's newer lease; of r_unclaimed nothing at all,
    // its claim and its place in the index included. No room's messages.
    let first: redis::streams::StreamRangeReply = query(
        &addr,
        redis::cmd("XRANGE")
            .arg(key(&kept, "log"))
            .arg("1-0")
            .arg("1-0"),
    )
    .await
    .unwrap();
    for room in [&kept, &moved, &unclaimed] {
        command(&addr, &["DEL", &key(room, "log"), &key(room, "msgs")])
            .await
            .unwrap();
    }
    for entry in first.ids {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(key(&kept, "log")).arg(&entry.id);
        for (field, value) in &entry.map {
            let value: String = redis::from_redis_value(value.clone()).unwrap();
            xadd.arg(field).arg(value);
        }
        let _: String = query(&addr, &xadd).await.unwrap();
    }
    assert_eq!(logged(&redis, &kept).await, [1]);
    command(
        &addr,
        &["HSET", &key(&moved, "owner"), "epoch", "7", "node", "n2"],
    )
    .await
    .unwrap();
    command(&addr, &["DEL", &key(&unclaimed, "owner")])
        .await
        .unwrap();
    command(&addr, &["SREM", "roomstate:rooms", unclaimed.as_str()])
        .await
        .unwrap();

    // The writer's connection goes; its next write connects again and repairs first.
    let reconnect_and_append = |seq: u64| {
        let (journal, addr, kept) = (&journal, addr.clone(), kept.clone());
        async move {
            command(&addr, &["CLIENT", "KILL", "TYPE", "normal"])
                .await
                .unwrap();
            wait_until(
                "an append on a new connection",
                Duration::from_secs(30),
                || {
                    let append = journal.append(lease, vec![event(&kept, seq, "c")]);
                    async move { append.await.map_err(|e| e.to_string()) }
                },
            )
            .await
            .unwrap();
        }
    };
    reconnect_and_append(4).await;
    assert_eq!(
        logged(&redis, &kept).await,
        [1, 2, 3, 4],
        "put back before 4"
    );
    let entries = log_events(&addr, &key(&kept, "log")).await.unwrap();
    assert!(
        entries.iter().all(|e| e.epoch.as_deref() == Some("3")),
        "under the lease they were written with: {entries:?}"
    );
    assert_eq!(
        stream_ids(&addr, &key(&kept, "msgs")).await.unwrap(),
        ["2-0", "3-0", "4-0"],
        "and the messages with them"
    );
    assert_eq!(
        (
            logged(&redis, &unclaimed).await,
            stream_ids(&addr, &key(&unclaimed, "msgs")).await.unwrap(),
        ),
        (vec![1, 2, 3], vec!["2-0".to_owned(), "3-0".to_owned()]),
        "a room whose claim was lost with its events gets them back"
    );
    assert_eq!(
        command(&addr, &["SISMEMBER", "roomstate:rooms", unclaimed.as_str()])
            .await
            .unwrap(),
        "1",
        "and its place in the index"
    );
    assert_eq!(
        (
            logged(&redis, &moved).await,
            stream_ids(&addr, &key(&moved, "msgs")).await.unwrap()
        ),
        (vec![], vec![]),
        "nothing written under the replaced lease"
    );
    assert_eq!(
        command(&addr, &["HGET", &key(&moved, "owner"), "epoch"])
            .await
            .unwrap(),
        "7"
    );
    let primary = journal.status().target;
    let count = |counter: &prometheus::IntCounterVec| counter.with_label_values(&[&primary]).get();
    assert_eq!(count(&metrics.repaired_events), 2 + 3);
    assert_eq!(count(&metrics.unrepairable_events), 3, "reported lost");

    // The lost room left the record: the next connection does not report it again.
    reconnect_and_append(5).await;
    assert_eq!(logged(&redis, &kept).await, [1, 2, 3, 4, 5]);
    assert_eq!(count(&metrics.repaired_events), 5);
    assert_eq!(count(&metrics.unrepairable_events), 3);
}
