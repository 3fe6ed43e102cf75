//! `RedisTail` against real Redis processes of the test's own: a room written by a
//! `RedisJournal` is followed from 0 (a `Reload`, then `Events` in order with their epochs); a
//! snapshot that trims past a cursor brings a `Reload` with the messages in between; a claim by
//! another node is reported (`Owner`) in its place among the events; a closed room is `Gone`;
//! through sentinels with `min_replica_acks = 1` events arrive, also across a failover, with
//! nothing skipped or repeated; and with the only replica down nothing is handed out until it is
//! back.
//!
//! Every wait polls a condition with a deadline and says what it waited for.

use std::{
    collections::BTreeMap,
    ops::RangeInclusive,
    time::{Duration, Instant},
};

use roomstate_core::{
    room::{Event, EventKind, RoomId, Snapshot, UserName},
    time,
};
use roomstate_journal::{
    redis::{Cursor, RedisJournal, RedisJournalConfig, RedisTail, RedisTarget, TailUpdate},
    Epoch, Journal, JournalMetrics,
};
use roomstate_testkit::{
    redis_admin::{command, get, named_primaries, online_replicas, wait_until},
    redis_server::RedisServer,
    sentinel_set::{SentinelSet, MASTER_NAME},
};
use tokio::sync::mpsc::UnboundedReceiver;

/// For what one Redis does at once, with room for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(20);
/// A failover (election, promotion, replicas re-pointed) and both sides finding the new primary.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
const TAIL_NODE: &str = "edge";

/// Seq 1 creates the room; even seqs post a message, odd ones are joins.
fn events(room: &RoomId, seqs: RangeInclusive<u64>) -> Vec<Event> {
    seqs.map(|seq| Event {
        room: room.clone(),
        seq,
        at: time::now(),
        kind: match seq {
            1 => EventKind::Created {
                title: "followed".into(),
            },
            _ if seq % 2 == 0 => EventKind::Said {
                user: UserName::parse("alice").unwrap(),
                text: format!("message {seq}"),
                key: None,
            },
            _ => EventKind::Joined {
                user: UserName::parse(&format!("u{seq}")).unwrap(),
                participants: 1,
            },
        },
    })
    .collect()
}

/// The messages `seqs` post.
fn message_seqs(seqs: RangeInclusive<u64>) -> Vec<u64> {
    seqs.filter(|seq| *seq > 1 && seq % 2 == 0).collect()
}

fn snapshot(room: &RoomId, seq: u64) -> Snapshot {
    Snapshot {
        room: room.clone(),
        seq,
        title: "followed".into(),
        created_at: time::now(),
        participants_peak: 1,
        votes: Vec::new(),
        messages: Vec::new(),
        message_count: Some(message_seqs(1..=seq).len() as u32),
        older_upto: seq,
        keys: Vec::new(),
    }
}

fn config(target: RedisTarget, min_replica_acks: u32) -> RedisJournalConfig {
    let mut config = RedisJournalConfig::new(target, min_replica_acks);
    config.response_timeout = Duration::from_secs(5);
    config
}

fn journal(config: RedisJournalConfig) -> RedisJournal {
    RedisJournal::open(config, JournalMetrics::detached().unwrap()).unwrap()
}

fn open_tail(mut config: RedisJournalConfig) -> (RedisTail, UnboundedReceiver<TailUpdate>) {
    config.node = TAIL_NODE.into();
    RedisTail::open(config, POLL).unwrap()
}

fn sentinels(set: &SentinelSet) -> RedisTarget {
    RedisTarget::Sentinels {
        addrs: set.sentinels(),
        master_name: MASTER_NAME.into(),
    }
}

/// A follower of one room, as a mirror would be: it applies the tail's updates and refuses any
/// that skips or repeats an event.
#[derive(Debug)]
struct Follower {
    room: RoomId,
    cursor: u64,
    /// The epoch each seq applied by `Events` carried.
    epochs: BTreeMap<u64, Option<Epoch>>,
    owner: Option<(Epoch, String)>,
    gone: bool,
    /// What came, in order, in short: `reload 0..=5 snap=None msgs=[2, 4] epoch=1`,
    /// `events 6..=7`, `owner 2 b`, `gone`.
    trace: Vec<String>,
    /// Updates of other rooms.
    strays: Vec<TailUpdate>,
}

impl Follower {
    fn new(room: &RoomId, cursor: u64) -> Self {
        Self {
            room: room.clone(),
            cursor,
            epochs: BTreeMap::new(),
            owner: None,
            gone: false,
            trace: Vec::new(),
            strays: Vec::new(),
        }
    }

    fn apply(&mut self, update: TailUpdate) {
        let room = match &update {
            TailUpdate::Reload { log, .. } => &log.room,
            TailUpdate::Events { room, .. }
            | TailUpdate::Owner { room, .. }
            | TailUpdate::Gone { room } => room,
        };
        if *room != self.room {
            self.strays.push(update);
            return;
        }
        assert!(
            !self.gone,
            "{update:?} after Gone; so far: {:?}",
            self.trace
        );
        match update {
            TailUpdate::Reload { log, messages } => {
                assert_eq!(log.room, self.room);
                let snap = log.snapshot.as_ref().map(|s| s.seq);
                let mut next = snap.map_or(1, |s| s + 1);
                for event in &log.events {
                    assert_eq!(event.seq, next, "a reload with a gap: {log:?}");
                    next += 1;
                }
                let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
                self.trace.push(format!(
                    "reload {}..={} snap={snap:?} msgs={seqs:?} epoch={}",
                    self.cursor,
                    next - 1,
                    log.epoch
                ));
                self.cursor = next - 1;
            }
            TailUpdate::Events { room, events } => {
                assert_eq!(room, self.room);
                assert!(!events.is_empty(), "empty Events");
                for (event, epoch) in &events {
                    assert_eq!(event.room, self.room);
                    assert_eq!(
                        event.seq,
                        self.cursor + 1,
                        "an event skipped or repeated; so far: {:?}",
                        self.trace
                    );
                    self.cursor = event.seq;
                    self.epochs.insert(event.seq, *epoch);
                }
                self.trace
                    .push(format!("events {}..={}", events[0].0.seq, self.cursor));
            }
            TailUpdate::Owner { room, epoch, node } => {
                assert_eq!(room, self.room);
                self.trace.push(format!("owner {epoch} {node}"));
                self.owner = Some((epoch, node));
            }
            TailUpdate::Gone { room } => {
                assert_eq!(room, self.room);
                self.trace.push("gone".into());
                self.gone = true;
            }
        }
    }

    /// Applies whatever the tail has handed out by now.
    fn drain(&mut self, updates: &mut UnboundedReceiver<TailUpdate>) {
        while let Ok(update) = updates.try_recv() {
            self.apply(update);
        }
    }

    /// Applies updates until `done` holds, failing after `deadline`.
    async fn until(
        &mut self,
        updates: &mut UnboundedReceiver<TailUpdate>,
        what: &str,
        deadline: Duration,
        done: impl Fn(&Follower) -> bool,
    ) {
        let begun = Instant::now();
        while !done(self) {
            let left = deadline.saturating_sub(begun.elapsed());
            match tokio::time::timeout(left, updates.recv()).await {
                Ok(Some(update)) => self.apply(update),
                Ok(None) => panic!(
                    "the tail stopped while waiting for {what}: {:?}",
                    self.trace
                ),
                Err(_) => panic!(
                    "timed out after {deadline:?} waiting for {what}; so far: {:?}",
                    self.trace
                ),
            }
        }
    }
}

#[actix_rt::test]
async fn a_room_followed_from_zero_reloads_then_streams_its_events_with_their_epochs() {
    let redis = RedisServer::start().await;
    let target = RedisTarget::Url(redis.url());
    let journal = journal(config(target.clone(), 0));
    let room = RoomId::parse("r_followed").unwrap();
    let epoch = journal
        .claim(room.clone(), Some(Epoch::NONE), "a", true)
        .await
        .unwrap();
    assert_eq!(epoch, Epoch(1));
    journal.append(epoch, events(&room, 1..=4)).await.unwrap();

    let (tail, mut updates) = open_tail(config(target, 0));
    tail.follow(Cursor {
        room: room.clone(),
        seq: 0,
    });
    let mut follower = Follower::new(&room, 0);
    follower
        .until(&mut updates, "the reload and the owner", DEADLINE, |f| {
            f.owner.is_some()
        })
        .await;
    assert_eq!(
        follower.trace,
        ["reload 0..=4 snap=None msgs=[2, 4] epoch=1", "owner 1 a"]
    );

    journal.append(epoch, events(&room, 5..=7)).await.unwrap();
    journal.append(epoch, events(&room, 8..=8)).await.unwrap();
    follower
        .until(&mut updates, "events up to seq 8", DEADLINE, |f| {
            f.cursor == 8
        })
        .await;
    let epochs: Vec<Option<Epoch>> = (5..=8).map(|seq| follower.epochs[&seq]).collect();
    assert_eq!(epochs, vec![Some(Epoch(1)); 4]);
    assert_eq!(
        follower.trace[0..2],
        ["reload 0..=4 snap=None msgs=[2, 4] epoch=1", "owner 1 a"]
    );
    assert!(
        follower.trace[2..].iter().all(|t| t.starts_with("events")),
        "{:?}",
        follower.trace
    );

    // A room that was never claimed: its entries carry no epoch, and no owner is reported.
    let plain = RoomId::parse("r_plain").unwrap();
    journal
        .append(Epoch::NONE, events(&plain, 1..=2))
        .await
        .unwrap();
    tail.follow(Cursor {
        room: plain.clone(),
        seq: 1,
    });
    let mut other = Follower::new(&plain, 1);
    other
        .until(&mut updates, "the plain room's seq 2", DEADLINE, |f| {
            f.cursor == 2
        })
        .await;
    assert_eq!(other.epochs[&2], None);
    assert_eq!(other.owner, None);

    // Unfollowed: nothing more of it, once a later request is seen to have taken effect.
    tail.unfollow(&room);
    let third = RoomId::parse("r_third").unwrap();
    journal
        .append(Epoch::NONE, events(&third, 1..=1))
        .await
        .unwrap();
    tail.follow(Cursor {
        room: third.clone(),
        seq: 0,
    });
    let mut later = Follower::new(&third, 0);
    later
        .until(&mut updates, "the third room's reload", DEADLINE, |f| {
            f.cursor == 1
        })
        .await;
    journal.append(epoch, events(&room, 9..=9)).await.unwrap();
    journal
        .append(Epoch::NONE, events(&third, 2..=2))
        .await
        .unwrap();
    later
        .until(&mut updates, "the third room's seq 2", DEADLINE, |f| {
            f.cursor == 2
        })
        .await;
    later.drain(&mut updates);
    let unfollowed = |u: &TailUpdate| matches!(u, TailUpdate::Events { room: r, .. } if *r == room);
    assert!(
        !later.strays.iter().any(unfollowed),
        "an unfollowed room's events: {:?}",
        later.strays
    );
}

#[actix_rt::test]
async fn a_snapshot_that_trims_past_the_cursor_brings_a_reload_with_the_messages_in_between() {
    let redis = RedisServer::start().await;
    let target = RedisTarget::Url(redis.url());
    let journal = journal(config(target.clone(), 0));
    let room = RoomId::parse("r_trimmed").unwrap();
    // Two appends, two entries (1..=4 and 5..=8): the snapshot at 6 trims the first one away.
    for seqs in [1..=4, 5..=8] {
        journal
            .append(Epoch::NONE, events(&room, seqs))
            .await
            .unwrap();
    }
    journal
        .snapshot(Epoch::NONE, snapshot(&room, 6))
        .await
        .unwrap();

    // Behind the snapshot, with entries after it: the first entry read (5..=8) leaves a gap.
    let (tail, mut updates) = open_tail(config(target, 0));
    tail.follow(Cursor {
        room: room.clone(),
        seq: 3,
    });
    let mut follower = Follower::new(&room, 3);
    follower
        .until(&mut updates, "a reload", DEADLINE, |f| f.cursor == 8)
        .await;
    assert_eq!(
        follower.trace,
        ["reload 3..=8 snap=Some(6) msgs=[4, 6, 8] epoch=0"]
    );

    // Behind a snapshot that trimmed the whole log: nothing to read, the owner check sees it.
    // (A new tail: nothing is read while these are written.)
    drop((tail, updates));
    journal
        .append(Epoch::NONE, events(&room, 9..=12))
        .await
        .unwrap();
    journal
        .snapshot(Epoch::NONE, snapshot(&room, 12))
        .await
        .unwrap();
    let (tail, mut updates) = open_tail(config(RedisTarget::Url(redis.url()), 0));
    tail.follow(Cursor {
        room: room.clone(),
        seq: 8,
    });
    let mut follower = Follower::new(&room, 8);
    follower
        .until(&mut updates, "a second reload", DEADLINE, |f| {
            f.cursor == 12
        })
        .await;
    assert_eq!(
        follower.trace,
        ["reload 8..=12 snap=Some(12) msgs=[10, 12] epoch=0"]
    );

    // And from there on, events again.
    journal
        .append(Epoch::NONE, events(&room, 13..=14))
        .await
        .unwrap();
    follower
        .until(&mut updates, "seq 14", DEADLINE, |f| f.cursor == 14)
        .await;
    assert_eq!(follower.trace[1..], ["events 13..=14"]);
}

#[actix_rt::test]
async fn a_claim_by_another_node_is_reported_in_its_place_and_a_closed_room_is_gone() {
    let redis = RedisServer::start().await;
    let target = RedisTarget::Url(redis.url());
    let journal = journal(config(target.clone(), 0));
    let room = RoomId::parse("r_claimed").unwrap();
    let first = journal
        .claim(room.clone(), Some(Epoch::NONE), "a", true)
        .await
        .unwrap();
    journal.append(first, events(&room, 1..=3)).await.unwrap();

    let (tail, mut updates) = open_tail(config(target, 0));
    tail.follow(Cursor {
        room: room.clone(),
        seq: 0,
    });
    let mut follower = Follower::new(&room, 0);
    follower
        .until(&mut updates, "the reload and the owner", DEADLINE, |f| {
            f.owner.is_some()
        })
        .await;

    // Node b takes the room over while nobody reads: one read returns the events of both
    // epochs, and the change is reported between them.
    // (A new tail: nothing is read while these are written.)
    drop((tail, updates));
    journal.append(first, events(&room, 4..=5)).await.unwrap();
    let second = journal
        .claim(room.clone(), Some(first), "b", false)
        .await
        .unwrap();
    assert_eq!(second, Epoch(2));
    journal.append(second, events(&room, 6..=7)).await.unwrap();
    let (tail, mut updates) = open_tail(config(RedisTarget::Url(redis.url()), 0));
    tail.follow(Cursor {
        room: room.clone(),
        seq: 3,
    });
    let mut follower = Follower::new(&room, 3);
    follower
        .until(&mut updates, "seq 7 and the owner", DEADLINE, |f| {
            f.cursor == 7 && f.owner.is_some()
        })
        .await;
    assert_eq!(
        follower.trace,
        ["events 4..=5", "owner 2 b", "events 6..=7"],
        "the owner change between the epochs' events"
    );
    let epochs: Vec<Option<Epoch>> = (4..=7).map(|seq| follower.epochs[&seq]).collect();
    assert_eq!(
        epochs,
        [Some(first), Some(first), Some(second), Some(second)]
    );

    // While followed: a claim by a third node, then its events.
    let third = journal
        .claim(room.clone(), Some(second), "c", false)
        .await
        .unwrap();
    journal.append(third, events(&room, 8..=9)).await.unwrap();
    follower
        .until(&mut updates, "seq 9", DEADLINE, |f| f.cursor == 9)
        .await;
    let owner_at = follower.trace.iter().position(|t| t == "owner 3 c");
    let events_at = follower
        .trace
        .iter()
        .position(|t| t.starts_with("events 8"));
    assert!(
        matches!((owner_at, events_at), (Some(o), Some(e)) if o < e),
        "{:?}",
        follower.trace
    );
    assert_eq!(follower.epochs[&9], Some(third));

    // A release names nobody.
    journal.release(third, room.clone()).await.unwrap();
    follower
        .until(&mut updates, "the release", DEADLINE, |f| {
            f.owner == Some((third, String::new()))
        })
        .await;

    // Closed: gone, and not followed any more.
    let fourth = journal
        .claim(room.clone(), Some(third), "c", false)
        .await
        .unwrap();
    journal.delete_room(fourth, room.clone()).await.unwrap();
    follower
        .until(&mut updates, "Gone", DEADLINE, |f| f.gone)
        .await;
    assert_eq!(follower.trace.last().map(String::as_str), Some("gone"));
}

#[actix_rt::test]
async fn through_sentinels_durable_events_arrive_and_a_failover_skips_or_repeats_nothing() {
    let set = SentinelSet::start().await;
    let journal = journal(config(sentinels(&set), 1));
    let room = RoomId::parse("r_failover").unwrap();
    // (A room that does not exist yet would be gone at once.)
    journal
        .append(Epoch::NONE, events(&room, 1..=1))
        .await
        .unwrap();
    let (tail, mut updates) = open_tail(config(sentinels(&set), 1));
    tail.follow(Cursor {
        room: room.clone(),
        seq: 0,
    });
    let mut follower = Follower::new(&room, 0);

    let old = set.primary().await;
    let begun = Instant::now();
    let (mut seq, mut failing_over, mut last) = (1, false, None);
    while last != Some(seq) {
        seq += 1;
        // The same event until it is acknowledged (the journal fails while it finds the new
        // primary); seqs make re-sends idempotent.
        let event = events(&room, seq..=seq);
        let acknowledged = wait_until("the journal to acknowledge", FAILOVER_DEADLINE, || async {
            journal
                .append(Epoch::NONE, event.clone())
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        if let Err(e) = acknowledged {
            panic!("{e}\n{}", set.logs());
        }
        follower.drain(&mut updates);
        if seq == 20 {
            follower
                .until(&mut updates, "seq 20 before the failover", DEADLINE, |f| {
                    f.cursor == 20
                })
                .await;
            set.manual_failover().await;
            failing_over = true;
        }
        // Writing on through the failover, and 20 more once a majority names the new primary.
        if failing_over && last.is_none() {
            let named = named_primaries(&set.sentinels(), MASTER_NAME).await;
            let moved = named
                .iter()
                .filter(|p| p.as_deref().is_some_and(|p| p != old))
                .count();
            if moved >= 2 {
                last = Some(seq + 20);
            } else {
                set.nudge_manual_failover().await;
            }
            assert!(
                begun.elapsed() < FAILOVER_DEADLINE,
                "no new primary named: {named:?}\n{}",
                set.logs()
            );
        }
    }
    let total = seq;
    eprintln!(
        "{total} events written, the new primary named from seq {:?} on",
        last.map(|l| l - 20)
    );
    let new = set.wait_for_new_primary(&old, FAILOVER_DEADLINE).await;
    follower
        .until(&mut updates, "every event", FAILOVER_DEADLINE, |f| {
            f.cursor == total
        })
        .await;
    assert!(
        follower.trace[0].starts_with("reload 0..="),
        "{:?}",
        follower.trace
    );
    assert!(
        follower.trace[1..].iter().all(|t| t.starts_with("events")),
        "no reload after the first: {:?}",
        follower.trace
    );
    // The tail now confirms its reads on the new primary.
    let probe = format!("roomstate:tail-probe:{TAIL_NODE}");
    let before: u64 = get(&new, &probe)
        .await
        .unwrap()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    journal
        .append(Epoch::NONE, events(&room, total + 1..=total + 1))
        .await
        .unwrap();
    follower
        .until(&mut updates, "one more event", DEADLINE, |f| {
            f.cursor == total + 1
        })
        .await;
    let after: u64 = get(&new, &probe)
        .await
        .unwrap()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        after > before,
        "the tail's probe on {new}: {before} -> {after}"
    );
}

/// Makes `replica` a replica of `primary`.
async fn replicate(primary: &RedisServer, replica: &RedisServer) {
    let addr = primary.addr();
    let (host, port) = addr.split_once(':').unwrap();
    command(&replica.addr(), &["REPLICAOF", host, port])
        .await
        .unwrap();
}

/// Waits until `primary` lists `replica` online.
async fn attached(primary: &RedisServer, replica: &RedisServer) {
    let (primary, replica) = (primary.addr(), replica.addr());
    wait_until(
        &format!("{replica} to attach to {primary}"),
        DEADLINE,
        || async {
            let online = online_replicas(&primary).await?;
            online
                .contains(&replica)
                .then_some(())
                .ok_or_else(|| format!("online: {online:?}"))
        },
    )
    .await
    .unwrap();
}

#[actix_rt::test]
async fn with_the_only_replica_down_nothing_is_handed_out_until_it_is_back() {
    let primary = RedisServer::start().await;
    let mut replica = RedisServer::start().await;
    // A replica (re)attaching is synced at once, not after the default 5 s.
    command(
        &primary.addr(),
        &["CONFIG", "SET", "repl-diskless-sync-delay", "0"],
    )
    .await
    .unwrap();
    replicate(&primary, &replica).await;
    attached(&primary, &replica).await;

    let target = RedisTarget::Url(primary.url());
    // The writer asks for no replica: its events reach the primary whatever the replica does.
    let journal = journal(config(target.clone(), 0));
    let room = RoomId::parse("r_unreplicated").unwrap();
    journal
        .append(Epoch::NONE, events(&room, 1..=3))
        .await
        .unwrap();
    let mut tail_config = config(target, 1);
    tail_config.wait_timeout = Duration::from_millis(200);
    let (tail, mut updates) = open_tail(tail_config);
    tail.follow(Cursor {
        room: room.clone(),
        seq: 0,
    });
    let mut follower = Follower::new(&room, 0);
    follower
        .until(&mut updates, "the reload", DEADLINE, |f| f.cursor == 3)
        .await;

    replica.kill();
    wait_until("the primary to list no replica", DEADLINE, || async {
        let online = online_replicas(&primary.addr()).await?;
        online
            .is_empty()
            .then_some(())
            .ok_or_else(|| format!("online: {online:?}"))
    })
    .await
    .unwrap();
    let probe = format!("roomstate:tail-probe:{TAIL_NODE}");
    let probes = || async {
        get(&primary.addr(), &probe)
            .await
            .map(|n| n.and_then(|n| n.parse::<u64>().ok()).unwrap_or(0))
    };
    journal
        .append(Epoch::NONE, events(&room, 4..=6))
        .await
        .unwrap();
    // The tail has read seqs 4..=6 and tried to confirm them three times since.
    let begun = probes().await.unwrap();
    wait_until("the tail to try three confirmations", DEADLINE, || async {
        let now = probes().await?;
        (now >= begun + 3)
            .then_some(())
            .ok_or_else(|| format!("probe at {now}, was {begun}"))
    })
    .await
    .unwrap();
    follower.drain(&mut updates);
    assert_eq!(
        follower.cursor, 3,
        "handed out unreplicated: {:?}",
        follower.trace
    );

    replica.restart().await;
    replicate(&primary, &replica).await;
    attached(&primary, &replica).await;
    follower
        .until(
            &mut updates,
            "seqs 4..=6 once the replica is back",
            DEADLINE,
            |f| f.cursor == 6,
        )
        .await;
    assert_eq!(follower.trace[1..], ["events 4..=6"]);
}

#[actix_rt::test]
async fn an_undecodable_entry_is_never_handed_out_and_a_snapshot_past_it_reloads_the_room() {
    let redis = RedisServer::start().await;
    let target = RedisTarget::Url(redis.url());
    let journal = journal(config(target.clone(), 0));
    let (broken, fine) = (
        RoomId::parse("r_broken").unwrap(),
        RoomId::parse("r_fine").unwrap(),
    );
    journal
        .append(Epoch::NONE, events(&broken, 1..=4))
        .await
        .unwrap();
    journal
        .append(Epoch::NONE, events(&fine, 1..=1))
        .await
        .unwrap();
    let (tail, mut updates) = open_tail(config(target, 0));
    for room in [&broken, &fine] {
        tail.follow(Cursor {
            room: room.clone(),
            seq: 0,
        });
    }
    let mut follower = Follower::new(&broken, 0);
    follower
        .until(&mut updates, "the broken room's reload", DEADLINE, |f| {
            f.cursor == 4
        })
        .await;

    command(
        &redis.addr(),
        &[
            "XADD",
            &format!("roomstate:{{{broken}}}:log"),
            "5-0",
            "e",
            "garbage",
        ],
    )
    .await
    .unwrap();
    // The other room goes on; the broken one hands out nothing (its reload fails too).
    journal
        .append(Epoch::NONE, events(&fine, 2..=3))
        .await
        .unwrap();
    let mut other = Follower::new(&fine, 0);
    for update in std::mem::take(&mut follower.strays) {
        other.apply(update);
    }
    other
        .until(&mut updates, "the other room's seq 3", DEADLINE, |f| {
            f.cursor == 3
        })
        .await;
    follower.drain(&mut updates);
    assert_eq!(follower.cursor, 4, "{:?}", follower.trace);

    // A snapshot at 5 trims the broken entry: the room reads back again.
    journal
        .snapshot(Epoch::NONE, snapshot(&broken, 5))
        .await
        .unwrap();
    follower
        .until(
            &mut updates,
            "the reload past the broken entry",
            DEADLINE,
            |f| f.cursor == 5,
        )
        .await;
    assert_eq!(
        follower.trace[1..],
        ["reload 4..=5 snap=Some(5) msgs=[] epoch=0"]
    );

    // An owner hash that does not read stops its room only.
    command(
        &redis.addr(),
        &[
            "HSET",
            &format!("roomstate:{{{fine}}}:owner"),
            "epoch",
            "bogus",
        ],
    )
    .await
    .unwrap();
    journal
        .append(Epoch::NONE, events(&broken, 6..=7))
        .await
        .unwrap();
    follower
        .until(
            &mut updates,
            "seq 7 past a bogus owner hash",
            DEADLINE,
            |f| f.cursor == 7,
        )
        .await;
}

#[actix_rt::test]
async fn more_rooms_than_one_xread_names_are_all_followed() {
    const ROOMS: usize = 1100;
    let redis = RedisServer::start().await;
    let target = RedisTarget::Url(redis.url());
    let journal = journal(config(target.clone(), 0));
    let rooms: Vec<RoomId> = (0..ROOMS)
        .map(|i| RoomId::parse(&format!("r_many{i:04}")).unwrap())
        .collect();
    let appends = rooms
        .iter()
        .map(|room| journal.append(Epoch::NONE, events(room, 1..=2)));
    for result in futures_util::future::join_all(appends).await {
        result.unwrap();
    }
    let (tail, mut updates) = open_tail(config(target, 0));
    let mut cursors: BTreeMap<RoomId, u64> = BTreeMap::new();
    for room in &rooms {
        tail.follow(Cursor {
            room: room.clone(),
            seq: 0,
        });
        cursors.insert(room.clone(), 0);
    }
    // Every room reloaded; then one event in each chunk's first and last room.
    receive_until(&mut updates, &mut cursors, "every room's reload", |c| {
        c.values().all(|s| *s == 2)
    })
    .await;
    for room in [&rooms[0], &rooms[1023], &rooms[1024], &rooms[ROOMS - 1]] {
        journal
            .append(Epoch::NONE, events(room, 3..=3))
            .await
            .unwrap();
    }
    receive_until(&mut updates, &mut cursors, "an event in each chunk", |c| {
        c.values().filter(|s| **s == 3).count() == 4
    })
    .await;
}

/// Applies updates of many rooms to their cursors (each room reloaded once, then gap-free
/// events) until `done` holds.
async fn receive_until(
    updates: &mut UnboundedReceiver<TailUpdate>,
    cursors: &mut BTreeMap<RoomId, u64>,
    what: &str,
    done: impl Fn(&BTreeMap<RoomId, u64>) -> bool,
) {
    let begun = Instant::now();
    while !done(cursors) {
        let left = DEADLINE.saturating_sub(begun.elapsed());
        let update = match tokio::time::timeout(left, updates.recv()).await {
            Ok(Some(update)) => update,
            _ => panic!("timed out waiting for {what}"),
        };
        match update {
            TailUpdate::Reload { log, .. } => {
                assert_eq!(cursors[&log.room], 0, "a second reload of {}", log.room);
                let last = log.events.last().map_or(0, |e| e.seq);
                cursors.insert(log.room, last);
            }
            TailUpdate::Events { room, events } => {
                for (event, _) in events {
                    assert_eq!(event.seq, cursors[&room] + 1, "room {room}");
                    cursors.insert(room.clone(), event.seq);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A room followed from 0 whose archive holds more messages than one read gives: the reload
/// carries the newest `MESSAGES_PER_READ` of them, oldest first, not the whole archive in one
/// reply (a room open for weeks would block Redis with it).
#[actix_rt::test]
async fn a_first_load_reads_only_the_newest_messages_of_a_long_archive() {
    let redis = RedisServer::start().await;
    let target = RedisTarget::Url(redis.url());
    let journal = journal(config(target.clone(), 0));
    let room = RoomId::parse("r_long").unwrap();
    // Messages at the even seqs: 12 001 of them, past one read's 10 000.
    let last: u64 = 24_002;
    for first in (1..=last).step_by(4000) {
        let upto = (first + 3999).min(last);
        journal
            .append(Epoch::NONE, events(&room, first..=upto))
            .await
            .unwrap();
    }

    let (tail, mut updates) = open_tail(config(target, 0));
    tail.follow(Cursor {
        room: room.clone(),
        seq: 0,
    });
    let end = Instant::now() + DEADLINE;
    let messages = loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, updates.recv()).await {
            Ok(Some(TailUpdate::Reload { messages, .. })) => break messages,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the tail ended"),
            Err(_) => panic!("no reload within {DEADLINE:?}"),
        }
    };
    let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
    let newest = message_seqs(1..=last);
    assert_eq!(
        seqs,
        newest[newest.len() - roomstate_journal::MESSAGES_PER_READ..],
        "the newest messages, oldest first"
    );
}
