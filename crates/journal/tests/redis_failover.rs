//! The Redis journal against sentinel sets of the test's own (roomstate-testkit): a sentinel's
//! failover event stops it acknowledging anything on the primary being replaced until the
//! failover is over, and a new primary that lacks acknowledged events gets them back, with the
//! same ids and payloads, before anything new is written — or, when they are older than the
//! journal's record of recent acknowledgements, the gap is reported and counted.
//!
//! Every wait polls a condition with a deadline and says what it waited for.

use std::{
    ops::RangeInclusive,
    time::{Duration, Instant},
};

use roomstate_core::{
    room::{Event, EventKind, RoomId, UserName},
    time,
};
use roomstate_journal::{
    redis::{RecentBounds, RedisJournal, RedisJournalConfig, RedisTarget},
    Epoch, Journal, JournalError, JournalMetrics,
};
use roomstate_testkit::{
    redis_admin::{log_seqs, query, stream_last_id, wait_until},
    redis_server::RedisServer,
    sentinel_set::{SentinelSet, MASTER_NAME},
};

/// A failover (election, promotion, replicas re-pointed) and the journal finding the new
/// primary, with room for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

fn events(room: &RoomId, seqs: RangeInclusive<u64>) -> Vec<Event> {
    seqs.map(|seq| Event {
        room: room.clone(),
        seq,
        at: time::now(),
        kind: match seq {
            1 => EventKind::Created {
                title: "failover".into(),
            },
            _ => EventKind::Joined {
                user: UserName::parse(&format!("u{seq}")).unwrap(),
                participants: seq as u32,
            },
        },
    })
    .collect()
}

fn open(addrs: Vec<String>, bounds: RecentBounds) -> (RedisJournal, JournalMetrics) {
    let target = RedisTarget::Sentinels {
        addrs,
        master_name: MASTER_NAME.into(),
    };
    let mut config = RedisJournalConfig::new(target, 1);
    config.recent = bounds;
    let metrics = JournalMetrics::detached().unwrap();
    let journal = RedisJournal::open(config, metrics.clone()).unwrap();
    (journal, metrics)
}

fn log_key(room: &RoomId) -> String {
    format!("roomstate:{{{room}}}:log")
}

fn seqs(seqs: impl IntoIterator<Item = u64>) -> Vec<u64> {
    seqs.into_iter().collect()
}

/// `host port` of `host:port`, as sentinels write addresses in their events.
fn spaced(addr: &str) -> String {
    addr.replacen(':', " ", 1)
}

/// Appends `events` until the journal acknowledges them (it fails while it finds the new
/// primary, repairs it and waits for a replica to attach).
async fn append_until_acknowledged(journal: &RedisJournal, set: &SentinelSet, events: &[Event]) {
    let result = wait_until("the journal to acknowledge", DEADLINE, || async {
        journal
            .append(Epoch::NONE, events.to_vec())
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    if let Err(e) = result {
        panic!("{e}\n{}", set.logs());
    }
}

#[actix_rt::test]
async fn a_failover_announced_by_a_sentinel_stops_acknowledgements_until_it_is_aborted() {
    let set = SentinelSet::start().await;
    // A plain Redis posing as a fourth sentinel: it names no primary (the writer passes over a
    // sentinel that does not answer), and the test publishes on it the events it needs.
    let herald_server = RedisServer::start().await;
    let herald = herald_server
        .url()
        .trim_start_matches("redis://")
        .to_owned();
    let mut addrs = set.sentinels();
    addrs.push(herald.clone());
    let (journal, _metrics) = open(addrs, RecentBounds::default());
    let room = RoomId::parse("fenced").unwrap();
    let primary = set.primary().await;
    journal
        .append(Epoch::NONE, events(&room, 1..=1))
        .await
        .unwrap();
    wait_until(
        "the watcher to subscribe to the herald",
        DEADLINE,
        || async {
            let patterns: i64 = query(&herald, redis::cmd("PUBSUB").arg("NUMPAT")).await?;
            (patterns > 0)
                .then_some(())
                .ok_or_else(|| "no pattern subscription yet".to_owned())
        },
    )
    .await
    .unwrap();

    let publish = |channel: &'static str, payload: String| {
        let herald = herald.clone();
        async move {
            let heard: i64 = query(&herald, redis::cmd("PUBLISH").arg(channel).arg(payload))
                .await
                .unwrap();
            assert_eq!(heard, 1, "the watcher is subscribed");
        }
    };
    publish(
        "+try-failover",
        format!("master {MASTER_NAME} {}", spaced(&primary)),
    )
    .await;

    // The watcher applies the event on the writer's thread, between two of its round trips: a
    // batch already on its way may still be acknowledged, none after it.
    let begun = Instant::now();
    let mut next = 2;
    // The refused batch may have been written before the fence stopped it: it is sent again
    // unchanged, as the rooms do (a different event under a stored seq is a conflict).
    let (refusal, refused) = loop {
        let batch = events(&room, next..=next);
        match journal.append(Epoch::NONE, batch.clone()).await {
            Ok(()) => next += 1,
            Err(error) => break (error, batch),
        }
        assert!(
            begun.elapsed() < DEADLINE,
            "the journal kept acknowledging on a primary being replaced"
        );
    };
    let fenced = |error: &JournalError| matches!(error, JournalError::Unavailable(why) if why.contains("failing over"));
    assert!(fenced(&refusal), "{refusal}");
    // The primary and both replicas are fine (WAIT would succeed): only the fence says no.
    for _ in 0..3 {
        let error = journal
            .append(Epoch::NONE, refused.clone())
            .await
            .expect_err("acknowledged during the failover");
        assert!(fenced(&error), "{error}");
    }
    let error = journal
        .check()
        .await
        .expect_err("ready during the failover");
    assert!(fenced(&error), "{error}");

    publish(
        "-failover-abort-not-elected",
        format!("master {MASTER_NAME} {}", spaced(&primary)),
    )
    .await;
    append_until_acknowledged(&journal, &set, &refused).await;
    journal.check().await.unwrap();
    assert_eq!(
        log_seqs(&primary, &log_key(&room)).await.unwrap(),
        seqs(1..=next),
        "the refused event was written once, acknowledged after the abort"
    );
}

/// Acknowledges seqs 1..=10 of a room, then makes both replicas lose 6..=10 — a replica's own
/// writes are not replicated, so with `replica-read-only no` the room's log is rewritten on each
/// to hold 1..=5 only — and fails over: whichever replica is promoted lacks five acknowledged
/// events, as after the window a manual failover leaves open with `WAIT 1`. Returns the room,
/// the events acknowledged and the new primary.
async fn lose_the_tail_in_a_failover(
    set: &SentinelSet,
    journal: &RedisJournal,
) -> (RoomId, Vec<Event>, String) {
    let room = RoomId::parse("repaired").unwrap();
    let key = log_key(&room);
    let appended = events(&room, 1..=10);
    journal
        .append(Epoch::NONE, appended[..5].to_vec())
        .await
        .unwrap();
    journal
        .append(Epoch::NONE, appended[5..].to_vec())
        .await
        .unwrap();
    let old = set.primary().await;
    for replica in set.replicas().await {
        wait_until(&format!("{replica} to hold seq 10"), DEADLINE, || async {
            let last = stream_last_id(&replica, &key).await?;
            (last.as_deref() == Some("10-0"))
                .then_some(())
                .ok_or_else(|| format!("its last id is {last:?}"))
        })
        .await
        .unwrap();
        let _: () = query(
            &replica,
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("replica-read-only")
                .arg("no"),
        )
        .await
        .unwrap();
        let head: redis::streams::StreamRangeReply = query(
            &replica,
            redis::cmd("XRANGE").arg(&key).arg("1-0").arg("5-0"),
        )
        .await
        .unwrap();
        let _: i64 = query(&replica, redis::cmd("DEL").arg(&key)).await.unwrap();
        for entry in head.ids {
            let mut xadd = redis::cmd("XADD");
            xadd.arg(&key).arg(&entry.id);
            for (field, value) in &entry.map {
                let value: String = redis::from_redis_value(value.clone()).unwrap();
                xadd.arg(field).arg(value);
            }
            let _: String = query(&replica, &xadd).await.unwrap();
        }
        assert_eq!(
            stream_last_id(&replica, &key).await.unwrap().as_deref(),
            Some("5-0")
        );
    }
    set.manual_failover().await;
    let new = set.wait_for_new_primary(&old, DEADLINE).await;
    (room, appended, new)
}

#[actix_rt::test]
async fn a_new_primary_lacking_acknowledged_events_gets_them_back_before_anything_new() {
    let set = SentinelSet::start().await;
    let (journal, metrics) = open(set.sentinels(), RecentBounds::default());
    let (room, mut appended, new) = lose_the_tail_in_a_failover(&set, &journal).await;
    assert_eq!(
        stream_last_id(&new, &log_key(&room))
            .await
            .unwrap()
            .as_deref(),
        Some("5-0"),
        "the new primary lacks 6..=10"
    );

    let next = events(&room, 11..=11);
    append_until_acknowledged(&journal, &set, &next).await;
    appended.extend(next);
    assert_eq!(journal.status().target, new);
    assert_eq!(
        log_seqs(&new, &log_key(&room)).await.unwrap(),
        seqs(1..=11),
        "6..=10 went back before 11"
    );
    assert_eq!(metrics.repaired_events.with_label_values(&[&new]).get(), 5);
    assert_eq!(
        metrics.unrepairable_events.with_label_values(&[&new]).get(),
        0
    );

    // Same payloads: the log reads back as what was acknowledged.
    let logs = journal.recover().await.unwrap();
    assert_eq!(logs.len(), 1);
    let read: Vec<(u64, EventKind)> = logs[0]
        .events
        .iter()
        .map(|e| (e.seq, e.kind.clone()))
        .collect();
    let written: Vec<(u64, EventKind)> = appended.iter().map(|e| (e.seq, e.kind.clone())).collect();
    assert_eq!(read, written);
}

#[actix_rt::test]
async fn acknowledged_events_older_than_the_record_are_reported_as_a_gap() {
    let set = SentinelSet::start().await;
    // The record holds the last 3 acknowledged events: 8..=10 of the 10.
    let bounds = RecentBounds {
        max_events: 3,
        ..RecentBounds::default()
    };
    let (journal, metrics) = open(set.sentinels(), bounds);
    let (room, _, new) = lose_the_tail_in_a_failover(&set, &journal).await;
    assert_eq!(
        metrics.recent_evictions.with_label_values(&["count"]).get(),
        7
    );

    append_until_acknowledged(&journal, &set, &events(&room, 11..=11)).await;
    assert_eq!(
        log_seqs(&new, &log_key(&room)).await.unwrap(),
        seqs((1..=5).chain(8..=11)),
        "what the record held went back; 6 and 7 are gone"
    );
    assert_eq!(metrics.repaired_events.with_label_values(&[&new]).get(), 3);
    assert_eq!(
        metrics.unrepairable_events.with_label_values(&[&new]).get(),
        2
    );
    let error = journal.recover().await.expect_err("a log with a gap");
    assert!(
        matches!(&error, JournalError::Corrupt(why) if why.contains("gap: seq 6 expected, found 8")),
        "{error}"
    );
}
