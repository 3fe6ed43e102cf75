//! The promise of the Redis journal: what the engine acknowledged survives the loss of the
//! primary. Each test runs its own sentinel set (1 primary, 2 replicas, 3 sentinels, detection
//! in about 1 s), its own engine and its own MariaDB database, puts real voters on it, breaks
//! Redis the way the seed experiment did, and checks the final record in MariaDB against every
//! acknowledgement.

use std::{collections::BTreeMap, time::Duration};

use roomstate_core::room::RoomId;
use roomstate_store::Store;
use serde_json::Value;

use crate::support::{
    app::{self, eventually, TestApp, TOKEN},
    load::{VoterLog, Voters},
    mysql::TestDatabase,
    sentinel::SentinelSet,
};

/// Voters per test.
const VOTERS: usize = 6;
/// How long a failover (detection, election, the engine finding the new primary) may take.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(60);

fn engine_on(set: &SentinelSet, db: &TestDatabase) -> TestApp {
    app::builder()
        .setting("JOURNAL__KIND", "redis")
        .setting("REDIS__SENTINELS", set.sentinels_setting())
        .setting("REDIS__MIN_REPLICA_ACKS", 1)
        .setting("STORE__URL", db.url())
        .start()
}

/// Closes the room (retrying while the engine answers 503) and checks the record in MariaDB
/// against the voters' logs: every acknowledged vote and message, nothing unacknowledged,
/// nothing twice. Returns the final view.
pub async fn check_final_record(
    app: &TestApp,
    store_url: &str,
    room: &str,
    logs: &[VoterLog],
) -> Value {
    let final_view = eventually("the room to close", FAILOVER_DEADLINE, || async {
        let (status, view) = app.close_room(room).await;
        match status.as_u16() {
            200 => Some(view),
            503 => None,
            other => panic!("close answered {other}: {view}"),
        }
    })
    .await;
    let (status, again) = app.close_room(room).await;
    assert_eq!(status, 200);
    assert_eq!(again, final_view, "closing twice returns the same record");

    let store = Store::open(store_url).expect("the engine's store");
    let id = RoomId::parse(room).unwrap();
    let stored: BTreeMap<String, String> = store
        .votes(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|(user, side)| (user.to_string(), side.as_str().to_owned()))
        .collect();
    let acknowledged: BTreeMap<String, String> = logs
        .iter()
        .filter_map(|log| Some((log.user.clone(), log.last_acked.clone()?)))
        .collect();
    assert_eq!(
        stored, acknowledged,
        "final votes = the last acknowledged vote of each user"
    );
    let pro = stored.values().filter(|s| *s == "pro").count() as u64;
    let con = stored.len() as u64 - pro;
    assert_eq!(
        (final_view["pro"].as_u64(), final_view["con"].as_u64()),
        (Some(pro), Some(con))
    );

    let mut expected: Vec<(u64, String)> = logs.iter().flat_map(|l| l.messages.clone()).collect();
    expected.sort();
    let mut transcript = Vec::new();
    let mut after = 0;
    loop {
        let page = store.messages(&id, after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        transcript.extend(page.into_iter().map(|m| (m.seq, m.text)));
    }
    assert_eq!(
        transcript, expected,
        "the transcript is exactly the acknowledged messages"
    );
    assert_eq!(final_view["messages"].as_u64(), Some(expected.len() as u64));
    final_view
}

async fn failovers_seen(app: &TestApp) -> u64 {
    let (status, stats) = app.request("GET", "/admin/stats", None, Some(TOKEN)).await;
    assert_eq!(status, 200);
    stats["failovers"].as_u64().unwrap_or(0)
}

/// How a test takes the primary away.
enum Break {
    /// `DEBUG SLEEP` for this many seconds.
    Sleep(u64),
    /// SIGKILL.
    Kill,
    /// `SENTINEL FAILOVER`.
    Manual,
}

/// Takes the primary away (the voters keep voting meanwhile); returns its address.
async fn break_primary(set: &mut SentinelSet, how: Break) -> String {
    match how {
        Break::Sleep(secs) => set.sleep_primary(secs).await,
        Break::Kill => set.kill_primary().await,
        Break::Manual => {
            let old = set.primary().await;
            set.manual_failover().await;
            old
        }
    }
}

/// Runs voters, breaks the primary, waits for the promotion and for the engine to acknowledge
/// again, then checks the final record.
async fn survive(set: &mut SentinelSet, how: Break) {
    let db = TestDatabase::create();
    let app = engine_on(set, &db);
    let room = app.create_room("failover").await;
    let voters = Voters::start(&app, &room, "v", VOTERS).await;
    voters.wait_for_acks(50, FAILOVER_DEADLINE).await;

    let old = break_primary(set, how).await;
    let new = set.wait_for_new_primary(&old, FAILOVER_DEADLINE).await;
    assert_ne!(old, new);
    voters.wait_for_acks(50, FAILOVER_DEADLINE).await;
    eventually(
        "the engine to count the failover",
        FAILOVER_DEADLINE,
        || async { (failovers_seen(&app).await >= 1).then_some(()) },
    )
    .await;
    let logs = voters.stop().await;
    check_final_record(&app, &db.url(), &room, &logs).await;
}

#[actix_rt::test]
async fn debug_sleep_of_the_primary_loses_no_acknowledged_vote() {
    let mut set = SentinelSet::start().await;
    // Longer than down-after-milliseconds: the sentinels promote a replica meanwhile, and the
    // old primary wakes up still believing it is the primary.
    survive(&mut set, Break::Sleep(8)).await;
}

#[actix_rt::test]
async fn kill_9_of_the_primary_loses_no_acknowledged_vote() {
    let mut set = SentinelSet::start().await;
    survive(&mut set, Break::Kill).await;
}

#[actix_rt::test]
async fn a_manual_failover_loses_no_acknowledged_vote() {
    let mut set = SentinelSet::start().await;
    survive(&mut set, Break::Manual).await;
}

#[actix_rt::test]
async fn the_old_primary_comes_back_as_a_replica_and_a_second_failover_is_safe() {
    let mut set = SentinelSet::start().await;
    let db = TestDatabase::create();
    let app = engine_on(&set, &db);
    let room = app.create_room("twice").await;
    let voters = Voters::start(&app, &room, "w", VOTERS).await;
    voters.wait_for_acks(30, FAILOVER_DEADLINE).await;

    let first = set.kill_primary().await;
    let second = set.wait_for_new_primary(&first, FAILOVER_DEADLINE).await;
    voters.wait_for_acks(30, FAILOVER_DEADLINE).await;
    set.restart_server(&first).await;
    set.wait_for_role(&first, "slave", FAILOVER_DEADLINE).await;
    set.wait_healthy(FAILOVER_DEADLINE).await;
    voters.wait_for_acks(30, FAILOVER_DEADLINE).await;

    // Fail over again: the returned server may now be the one promoted.
    set.manual_failover().await;
    set.wait_for_new_primary(&second, FAILOVER_DEADLINE).await;
    voters.wait_for_acks(30, FAILOVER_DEADLINE).await;
    let logs = voters.stop().await;
    check_final_record(&app, &db.url(), &room, &logs).await;
    assert!(failovers_seen(&app).await >= 2);
}

#[actix_rt::test]
async fn kill_9_of_the_engine_under_load_then_restart_recovers_every_room() {
    let set = SentinelSet::start().await;
    let db = TestDatabase::create();
    let mut app = engine_on(&set, &db);
    let rooms = [app.create_room("a").await, app.create_room("b").await];
    let mut all_voters = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        all_voters.push(Voters::start(&app, room, &format!("r{i}v"), 3).await);
    }
    for voters in &all_voters {
        voters.wait_for_acks(40, FAILOVER_DEADLINE).await;
    }
    app.kill();
    let mut logs = Vec::new();
    for voters in all_voters {
        logs.push(voters.stop().await);
    }
    app.restart();

    for (room, logs) in rooms.iter().zip(&logs) {
        let view = app.room(room).await;
        assert_eq!(view["participants"], 0, "nobody is present after a restart");
        assert_eq!(view["participants_peak"], 3);
        // A request in flight at the crash may or may not have landed. A vote is settled by
        // voting the same side again; a message is looked up. Then the record must hold exactly
        // the acknowledged state.
        let (_, listed) = app.get(&format!("/rooms/{room}/messages?limit=500")).await;
        let landed: Vec<(u64, String)> = listed["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["seq"].as_u64().unwrap(),
                    m["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let settled: Vec<VoterLog> = logs
            .iter()
            .map(|log| {
                let mut log = log.clone();
                if let Some(side) = log.in_flight.take() {
                    log.last_acked = Some(side);
                }
                if let Some(text) = log.in_flight_text.take() {
                    log.messages
                        .extend(landed.iter().filter(|(_, t)| *t == text).cloned());
                }
                log
            })
            .collect();
        for log in logs.iter().filter(|l| l.in_flight.is_some()) {
            app.join(room, &log.user).await;
            let side = log.in_flight.as_deref().unwrap();
            let (status, _) = app.vote(room, &log.user, side).await;
            assert_eq!(status, 200);
        }
        check_final_record(&app, &db.url(), room, &settled).await;
    }
}

#[actix_rt::test]
async fn a_room_closed_right_after_a_failover_is_written_once() {
    let mut set = SentinelSet::start().await;
    let db = TestDatabase::create();
    let app = engine_on(&set, &db);
    let room = app.create_room("close after failover").await;
    let voters = Voters::start(&app, &room, "c", VOTERS).await;
    voters.wait_for_acks(40, FAILOVER_DEADLINE).await;
    let old = set.kill_primary().await;
    let logs = voters.stop().await;
    set.wait_for_new_primary(&old, FAILOVER_DEADLINE).await;
    // Close at once: the engine may still be finding the new primary.
    check_final_record(&app, &db.url(), &room, &logs).await;
    assert_eq!(app.room(&room).await["status"], "closed");
}
