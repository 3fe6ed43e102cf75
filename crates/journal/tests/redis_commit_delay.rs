//! The writer's commit delay (`redis.commit_delay_ms`), against a real Redis: after a batch that
//! held several rooms' writes, the next batch starts no sooner than the delay after it; a lone
//! room's writes, one after another, are never held back; and under a delay every write of many
//! rooms, sent at once and one after another, is acknowledged and lands in its room's log in order.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use roomstate_core::{
    room::{Event, EventKind, RoomId, UserName},
    time,
};
use roomstate_journal::{
    redis::{RedisJournal, RedisJournalConfig, RedisTarget},
    Epoch, Journal, JournalMetrics,
};
use roomstate_testkit::{
    redis_admin::{command, log_seqs},
    redis_server::RedisServer,
};

fn event(room: &RoomId, seq: u64) -> Event {
    Event {
        room: room.clone(),
        seq,
        at: time::now(),
        kind: match seq {
            1 => EventKind::Created {
                title: "delay".into(),
            },
            _ => EventKind::Said {
                user: UserName::parse("alice").unwrap(),
                text: format!("message {seq}"),
                key: None,
            },
        },
    }
}

fn open(redis: &RedisServer, delay: Duration) -> RedisJournal {
    let mut config = RedisJournalConfig::new(RedisTarget::Url(redis.url()), 0);
    config.response_timeout = Duration::from_secs(5);
    config.commit_delay = delay;
    RedisJournal::open(config, JournalMetrics::detached().unwrap()).unwrap()
}

/// How many function calls (batches with writes) the server has run.
async fn batches(redis: &RedisServer) -> u64 {
    let stats = command(&redis.addr(), &["INFO", "commandstats"])
        .await
        .unwrap();
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_fcall:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

#[actix_rt::test]
async fn after_a_batch_of_several_rooms_the_next_waits_out_the_delay() {
    const DELAY: Duration = Duration::from_millis(300);
    let redis = RedisServer::start().await;
    let journal = open(&redis, DELAY);
    let (a, b) = (RoomId::parse("r_a").unwrap(), RoomId::parse("r_b").unwrap());
    let mut seq = 1;
    // Both rooms' writes are queued together; the writer thread may still wake between them
    // and take them as two batches of one room each (after which nothing is held back), so try
    // until one batch held both.
    for _ in 0..500 {
        let before = batches(&redis).await;
        let started = Instant::now();
        let (x, y) = tokio::join!(
            journal.append(Epoch::NONE, vec![event(&a, seq)]),
            journal.append(Epoch::NONE, vec![event(&b, seq)])
        );
        x.unwrap();
        y.unwrap();
        let pair_took = started.elapsed();
        seq += 1;
        // One batch held both, and fast enough that what follows shows the hold, not a slow box.
        if batches(&redis).await - before != 1 || pair_took >= DELAY / 3 {
            continue;
        }
        journal
            .append(Epoch::NONE, vec![event(&a, seq)])
            .await
            .unwrap();
        let took = started.elapsed();
        assert!(
            took >= DELAY,
            "the batch after one of two rooms started {took:?} after it, within the {DELAY:?} delay"
        );
        assert!(took < DELAY + Duration::from_secs(20), "held back {took:?}");
        let logged = log_seqs(&redis.addr(), "roomstate:{r_a}:log")
            .await
            .unwrap();
        assert_eq!(logged, (1..=seq).collect::<Vec<_>>());
        return;
    }
    panic!(
        "in 500 tries the writer never took two rooms' writes queued together as one quick batch"
    );
}

#[actix_rt::test]
async fn a_lone_rooms_writes_one_after_another_are_not_held_back() {
    let redis = RedisServer::start().await;
    // A delay far above what ten round trips take: if any of them waited it out, the test sees it.
    let journal = open(&redis, Duration::from_secs(20));
    let room = RoomId::parse("r_lone").unwrap();
    let started = Instant::now();
    for seq in 1..=10 {
        journal
            .append(Epoch::NONE, vec![event(&room, seq)])
            .await
            .unwrap();
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "ten writes of one room took {took:?}: held back"
    );
    let logged = log_seqs(&redis.addr(), "roomstate:{r_lone}:log")
        .await
        .unwrap();
    assert_eq!(logged, (1..=10).collect::<Vec<_>>());
}

#[actix_rt::test]
async fn under_a_delay_every_write_of_many_rooms_lands_in_order() {
    let redis = RedisServer::start().await;
    let journal = open(&redis, Duration::from_millis(5));
    let rooms: Vec<RoomId> = (0..20)
        .map(|i| RoomId::parse(&format!("r_many_{i}")).unwrap())
        .collect();
    // Each room writes ten times, one after another; the rooms all at once.
    let results = join_all(rooms.iter().map(|room| {
        let journal = journal.clone();
        async move {
            for seq in 1..=10 {
                journal.append(Epoch::NONE, vec![event(room, seq)]).await?;
            }
            Ok::<_, roomstate_journal::JournalError>(())
        }
    }))
    .await;
    for (room, result) in rooms.iter().zip(results) {
        result.unwrap_or_else(|e| panic!("{room}: {e}"));
        let logged = log_seqs(&redis.addr(), &format!("roomstate:{{{room}}}:log"))
            .await
            .unwrap();
        assert_eq!(logged, (1..=10).collect::<Vec<_>>(), "{room}");
    }
}
