//! The local journal against real SQLite files: durability across reopen, idempotent re-sends, gaps refused, group commit, failed batches, corrupt rows, snapshots.

use futures_util::future::join_all;

use roomstate_core::{
    room::{Side, UserName},
    time,
};

use super::*;

fn event(room: &RoomId, seq: u64) -> Event {
    let user = UserName::parse("alice").unwrap();
    let kind = match seq % 4 {
        1 => EventKind::Created {
            title: format!("room \"{room}\" ✓"),
        },
        2 => EventKind::Joined {
            user,
            participants: 3,
        },
        3 => EventKind::Voted {
            user,
            side: Side::Con,
        },
        _ => EventKind::Said {
            user,
            text: format!("message {seq}\nline two"),
            key: None,
        },
    };
    Event {
        room: room.clone(),
        seq,
        at: time::now(),
        kind,
    }
}

fn events(room: &RoomId, seqs: std::ops::RangeInclusive<u64>) -> Vec<Event> {
    seqs.map(|seq| event(room, seq)).collect()
}

fn room(name: &str) -> RoomId {
    RoomId::parse(name).unwrap()
}

fn open(path: &Path) -> (LocalJournal, JournalMetrics) {
    let metrics = JournalMetrics::detached().unwrap();
    (LocalJournal::open(path, metrics.clone()).unwrap(), metrics)
}

/// A connection of the test's own, waiting on locks like the journal's connections do.
fn raw(path: &Path) -> SqliteConnection {
    roomstate_sqlite::connect(path).unwrap()
}

#[actix_rt::test]
async fn events_survive_close_and_reopen_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/data/journal.db");
    let (a, b) = (room("r_a"), room("r_b"));
    let sent_a = events(&a, 1..=5);
    let sent_b = events(&b, 1..=2);
    {
        let (journal, _) = open(&path);
        assert_eq!(journal.status().kind, "local");
        assert_eq!(journal.status().target, path.display().to_string());
        journal.check().await.unwrap();
        journal
            .append(Epoch::NONE, sent_a[..3].to_vec())
            .await
            .unwrap();
        journal.append(Epoch::NONE, sent_b.clone()).await.unwrap();
        journal
            .append(Epoch::NONE, sent_a[3..].to_vec())
            .await
            .unwrap();
    }
    let (journal, _) = open(&path);
    let expected = vec![
        RoomLog {
            room: a,
            snapshot: None,
            events: sent_a,
            epoch: Epoch::NONE,
        },
        RoomLog {
            room: b,
            snapshot: None,
            events: sent_b,
            epoch: Epoch::NONE,
        },
    ];
    assert_eq!(journal.recover().await.unwrap(), expected);
}

#[actix_rt::test]
async fn re_appending_stored_events_does_not_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(&dir.path().join("journal.db"));
    let r = room("r_retry");
    let first = events(&r, 1..=3);
    journal.append(Epoch::NONE, first.clone()).await.unwrap();
    journal.append(Epoch::NONE, first.clone()).await.unwrap();
    let mut retry = first[1..].to_vec();
    retry.push(event(&r, 4));
    journal.append(Epoch::NONE, retry).await.unwrap();
    let logs = journal.recover().await.unwrap();
    assert_eq!(logs.len(), 1);
    let seqs: Vec<u64> = logs[0].events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    assert_eq!(logs[0].events[..3], first[..]);
}

#[actix_rt::test]
async fn an_event_sent_again_with_other_content_is_corrupt_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(&dir.path().join("journal.db"));
    let r = room("r_conflict");
    let first = events(&r, 1..=4);
    journal.append(Epoch::NONE, first.clone()).await.unwrap();
    let mut other = first[3].clone();
    other.kind = EventKind::Said {
        user: UserName::parse("alice").unwrap(),
        text: "not what was stored".into(),
        key: None,
    };
    let mut later = first[3].clone();
    later.at += chrono::Duration::seconds(1);
    for changed in [other, later] {
        let refused = journal
            .append(Epoch::NONE, vec![first[2].clone(), changed, event(&r, 5)])
            .await;
        assert!(
            matches!(&refused, Err(JournalError::Corrupt(why)) if why.contains("seq 4 sent again")),
            "{refused:?}"
        );
    }
    // Nothing of the refused appends was written; the same events again are a plain retry.
    journal
        .append(Epoch::NONE, vec![first[3].clone(), event(&r, 5)])
        .await
        .unwrap();
    let logs = journal.recover().await.unwrap();
    assert_eq!(logs[0].events[..4], first[..]);
    assert_eq!(logs[0].events.len(), 5);
    // An event a snapshot trimmed cannot be compared, and is taken as the retry it is.
    journal
        .snapshot(Epoch::NONE, snapshot_of(&r, 5))
        .await
        .unwrap();
    journal
        .append(Epoch::NONE, vec![first[0].clone(), event(&r, 6)])
        .await
        .unwrap();
}

#[actix_rt::test]
async fn an_append_that_leaves_a_gap_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(&dir.path().join("journal.db"));
    let r = room("r_gap");
    journal
        .append(Epoch::NONE, events(&r, 1..=2))
        .await
        .unwrap();
    let refused = journal
        .append(Epoch::NONE, vec![event(&r, 3), event(&r, 5)])
        .await;
    assert!(
        matches!(refused, Err(JournalError::Corrupt(_))),
        "{refused:?}"
    );
    journal
        .append(Epoch::NONE, events(&r, 3..=3))
        .await
        .unwrap();
    let logs = journal.recover().await.unwrap();
    assert_eq!(logs[0].events.len(), 3);
}

#[actix_rt::test]
async fn delete_room_removes_only_that_room() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(&dir.path().join("journal.db"));
    let (gone, kept) = (room("r_gone"), room("r_kept"));
    journal
        .append(Epoch::NONE, events(&gone, 1..=4))
        .await
        .unwrap();
    journal
        .append(Epoch::NONE, events(&kept, 1..=2))
        .await
        .unwrap();
    journal
        .delete_room(Epoch::NONE, gone.clone())
        .await
        .unwrap();
    let logs = journal.recover().await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].room, kept);
    assert_eq!(logs[0].events.len(), 2);
    // A deleted room's id starts again from seq 1.
    journal
        .append(Epoch::NONE, events(&gone, 1..=1))
        .await
        .unwrap();
    assert_eq!(journal.recover().await.unwrap().len(), 2);
}

#[actix_rt::test]
async fn concurrent_appends_are_durable_and_group_committed() {
    const TASKS: u64 = 50;
    const APPENDS: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (journal, metrics) = open(&path);
    let journal: Arc<dyn Journal> = Arc::new(journal);
    let tasks = (0..TASKS).map(|t| {
        let journal = journal.clone();
        actix_rt::spawn(async move {
            let r = room(&format!("r_{t}"));
            for seq in 1..=APPENDS {
                journal
                    .append(Epoch::NONE, vec![event(&r, seq)])
                    .await
                    .unwrap();
            }
        })
    });
    for done in join_all(tasks).await {
        done.unwrap();
    }
    let batches = metrics.batches.get();
    assert!(batches > 0);
    assert!(
        batches < TASKS * APPENDS,
        "{batches} batches for {} appends: no group commit",
        TASKS * APPENDS
    );
    assert_eq!(metrics.failures.get(), 0);
    drop(journal);
    let (journal, _) = open(&path);
    let logs = journal.recover().await.unwrap();
    assert_eq!(logs.len() as u64, TASKS);
    assert!(logs.iter().all(|log| log.events.len() as u64 == APPENDS));
}

#[actix_rt::test]
async fn dropping_the_last_handle_finishes_queued_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (journal, _) = open(&path);
    let pending: Vec<_> = (0..10)
        .map(|i| journal.append(Epoch::NONE, events(&room(&format!("r_q{i}")), 1..=3)))
        .collect();
    drop(journal); // joins the writer thread
    for result in join_all(pending).await {
        result.unwrap();
    }
    let (journal, _) = open(&path);
    assert_eq!(journal.recover().await.unwrap().len(), 10);
}

#[actix_rt::test]
async fn a_failed_batch_writes_nothing_and_the_next_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (journal, metrics) = open(&path);
    let (good, bad) = (room("r_good"), room("r_bad"));
    let mut conn = raw(&path);
    conn.batch_execute(
        "CREATE TRIGGER fail BEFORE INSERT ON events WHEN NEW.room_id = 'r_bad'
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .unwrap();
    let mut both = events(&good, 1..=2);
    both.extend(events(&bad, 1..=1));
    let failed = journal.append(Epoch::NONE, both).await;
    assert!(
        matches!(failed, Err(JournalError::Unavailable(_))),
        "{failed:?}"
    );
    assert_eq!(metrics.failures.get(), 1);
    assert_eq!(journal.recover().await.unwrap(), vec![]);

    conn.batch_execute("DROP TRIGGER fail").unwrap();
    journal
        .append(Epoch::NONE, events(&good, 1..=2))
        .await
        .unwrap();
    journal.check().await.unwrap();
    assert_eq!(journal.recover().await.unwrap()[0].events.len(), 2);
}

#[actix_rt::test]
async fn an_undecodable_row_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (journal, _) = open(&path);
    let r = room("r_bent");
    journal
        .append(Epoch::NONE, events(&r, 1..=2))
        .await
        .unwrap();
    raw(&path)
        .batch_execute("INSERT INTO events VALUES ('r_bent', 3, 0, '{not json')")
        .unwrap();
    match journal.recover().await {
        Err(JournalError::Corrupt(message)) => {
            assert!(
                message.contains("r_bent") && message.contains("seq 3"),
                "{message}"
            )
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[actix_rt::test]
async fn a_gap_in_a_stored_log_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (journal, _) = open(&path);
    let r = room("r_holey");
    journal
        .append(Epoch::NONE, events(&r, 1..=2))
        .await
        .unwrap();
    raw(&path)
        .batch_execute("DELETE FROM events WHERE room_id = 'r_holey' AND seq = 1")
        .unwrap();
    let result = journal.recover().await;
    assert!(
        matches!(result, Err(JournalError::Corrupt(_))),
        "{result:?}"
    );
}

#[test]
fn an_unwritable_location_fails_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let result = LocalJournal::open(
        &file.join("journal.db"),
        JournalMetrics::detached().unwrap(),
    );
    assert!(matches!(result, Err(JournalError::Unavailable(_))));
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    raw(&path)
        .batch_execute("PRAGMA user_version = 99")
        .unwrap();
    let result = LocalJournal::open(&path, JournalMetrics::detached().unwrap());
    assert!(matches!(result, Err(JournalError::Unavailable(m)) if m.contains("99")));
}

fn snapshot_of(room: &RoomId, seq: u64) -> Snapshot {
    Snapshot {
        room: room.clone(),
        seq,
        title: "t".into(),
        created_at: time::now(),
        participants_peak: 2,
        votes: vec![(UserName::parse("alice").unwrap(), Side::Pro)],
        messages: Vec::new(),
        message_count: None,
        older_upto: 0,
        keys: vec![],
    }
}

#[actix_rt::test]
async fn snapshots_trim_the_log_and_come_back_with_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (a, b) = (room("r_snap_a"), room("r_snap_b"));
    {
        let (journal, _) = open(&path);
        journal
            .append(Epoch::NONE, events(&a, 1..=6))
            .await
            .unwrap();
        journal
            .snapshot(Epoch::NONE, snapshot_of(&a, 4))
            .await
            .unwrap();
        journal
            .append(Epoch::NONE, events(&b, 1..=3))
            .await
            .unwrap();
        journal
            .snapshot(Epoch::NONE, snapshot_of(&b, 3))
            .await
            .unwrap();
        // Every event of b is covered: the next append must still follow seq 3.
        assert!(matches!(
            journal.append(Epoch::NONE, events(&b, 5..=5)).await,
            Err(JournalError::Corrupt(_))
        ));
        journal
            .append(Epoch::NONE, events(&b, 3..=4))
            .await
            .unwrap();
    }
    let (journal, _) = open(&path);
    let logs = journal.recover().await.unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0].snapshot.as_ref().map(|s| s.seq), Some(4));
    let tail: Vec<u64> = logs[0].events.iter().map(|e| e.seq).collect();
    assert_eq!(tail, [5, 6]);
    assert_eq!(
        logs[1].snapshot,
        Some(snapshot_of(&b, 3)).map(|mut s| {
            s.created_at = logs[1].snapshot.as_ref().unwrap().created_at;
            s
        })
    );
    assert_eq!(
        logs[1].events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [4]
    );

    journal.delete_room(Epoch::NONE, a.clone()).await.unwrap();
    let logs = journal.recover().await.unwrap();
    assert_eq!(logs.len(), 1, "deleting a room deletes its snapshot too");
}

#[actix_rt::test]
async fn a_room_covered_entirely_by_its_snapshot_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(&dir.path().join("journal.db"));
    let r = room("r_only_snap");
    journal
        .append(Epoch::NONE, events(&r, 1..=3))
        .await
        .unwrap();
    journal
        .snapshot(Epoch::NONE, snapshot_of(&r, 3))
        .await
        .unwrap();
    let logs = journal.recover().await.unwrap();
    assert_eq!(logs.len(), 1);
    assert!(logs[0].events.is_empty());
    assert_eq!(logs[0].snapshot.as_ref().map(|s| s.seq), Some(3));
}

#[test]
fn a_second_journal_on_the_same_file_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (first, _) = open(&path);
    let Err(error) = LocalJournal::open(&path, JournalMetrics::detached().unwrap()) else {
        panic!("a second journal opened the same file");
    };
    assert!(
        error
            .to_string()
            .contains("in use by another roomstate engine"),
        "{error}"
    );
    drop(first);
    assert!(
        LocalJournal::open(&path, JournalMetrics::detached().unwrap()).is_ok(),
        "the lock goes with the first journal"
    );
}

#[actix_rt::test]
async fn messages_outlive_the_snapshot_that_trims_their_events_until_the_room_goes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (journal, _) = open(&path);
    let room = room("r_archive");
    // Seq 4 and 8 are messages (`event` makes every fourth event a `Said`).
    journal
        .append(Epoch::NONE, events(&room, 1..=9))
        .await
        .unwrap();
    journal
        .snapshot(Epoch::NONE, snapshot_of(&room, 9))
        .await
        .unwrap();
    let messages = journal.messages(room.clone(), 0, 100).await.unwrap();
    assert_eq!(messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [4, 8]);
    assert_eq!(
        journal.messages(room.clone(), 4, 100).await.unwrap().len(),
        1
    );
    assert_eq!(journal.messages(room.clone(), 0, 1).await.unwrap().len(), 1);
    // Re-sending stored events adds no second copy.
    journal
        .append(Epoch::NONE, events(&room, 8..=9))
        .await
        .unwrap();
    assert_eq!(
        journal.messages(room.clone(), 0, 100).await.unwrap().len(),
        2
    );
    journal
        .delete_room(Epoch::NONE, room.clone())
        .await
        .unwrap();
    assert!(journal.messages(room, 0, 100).await.unwrap().is_empty());
}

#[actix_rt::test]
async fn a_file_from_before_the_archive_gets_its_messages_from_snapshots_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let room = room("r_old");
    {
        // A version 2 file: a snapshot holding the whole transcript, and a message after it.
        let mut conn = raw(&path);
        conn.batch_execute(
            "CREATE TABLE events (room_id TEXT NOT NULL, seq INTEGER NOT NULL, \
             at_ms INTEGER NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (room_id, seq)) WITHOUT ROWID;
             CREATE TABLE snapshots (room_id TEXT NOT NULL PRIMARY KEY, seq INTEGER NOT NULL, \
             body TEXT NOT NULL) WITHOUT ROWID;
             PRAGMA user_version = 2;",
        )
        .unwrap();
        let mut old = snapshot_of(&room, 8);
        let Some(message) = crate::message_of(&event(&room, 4)) else {
            panic!("event 4 is a message");
        };
        old.messages = vec![message];
        old.message_count = None;
        let mut body: serde_json::Value = serde_json::to_value(&old).unwrap();
        body.as_object_mut().unwrap().remove("older_upto");
        diesel::insert_into(snapshots::table)
            .values((
                snapshots::room_id.eq(room.as_str()),
                snapshots::seq.eq(8),
                snapshots::body.eq(body.to_string()),
            ))
            .execute(&mut conn)
            .unwrap();
        let said = event(&room, 12);
        diesel::insert_into(events::table)
            .values((
                events::room_id.eq(room.as_str()),
                events::seq.eq(12),
                events::at_ms.eq(said.at.timestamp_millis()),
                events::kind.eq(serde_json::to_string(&said.kind).unwrap()),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    let (journal, _) = open(&path);
    let seqs: Vec<u64> = journal
        .messages(room, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, [4, 12], "from the old snapshot and from the log");
}
