//! The promise of the Redis journal: what the engine acknowledged survives the loss of the
//! primary, of both replicas, or of the engine itself. Each test runs its own sentinel set (1
//! primary, 2 replicas, 3 sentinels, detection in about 1 s), its own engine and its own MariaDB
//! database, puts real voters on it, breaks Redis the way the seed experiment did (or kills the
//! engine), and checks the final record in MariaDB against every acknowledgement: each one with
//! a seq of its own, every acknowledged vote and message in the record, nothing else.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use roomstate_core::room::RoomId;
use roomstate_store::Store;
use roomstate_testkit::redis_admin;
use serde_json::{json, Value};

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

/// The engine on `set`, with whatever credentials and TLS the set's `Security` needs.
fn engine_on(set: &SentinelSet, db: &TestDatabase) -> TestApp {
    let mut builder = app::builder().setting("JOURNAL__KIND", "redis");
    for (key, value) in set.engine_settings() {
        builder = builder.setting(&key, value);
    }
    builder
        .setting("REDIS__MIN_REPLICA_ACKS", 1)
        .setting("STORE__URL", db.url())
        .start()
}

/// How the voters' requests ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ending {
    /// The engine lived through the test: every request was answered, and the engine's
    /// `/metrics` counted every refusal.
    Answered,
    /// The engine was SIGKILLed under the voters and restarted: each voter's last request may
    /// or may not have landed. The refusals were counted by the process that died: `counted` is
    /// what its `/metrics` said just before the kill.
    Crashed { counted: u64 },
}

/// Closes the room (retrying while the engine answers 503) and checks the record in MariaDB
/// against the voters' logs: every acknowledged vote and message, nothing unacknowledged,
/// nothing twice; every acknowledgement with a seq of its own, none past the final seq; every
/// 503 a voter got counted by the engine. Every voter's last request must have been answered.
/// Returns the final view.
pub async fn check_final_record(
    app: &TestApp,
    store_url: &str,
    room: &str,
    logs: &[VoterLog],
) -> Value {
    check_record(app, store_url, room, logs, Ending::Answered).await
}

/// `check_final_record` after the engine was SIGKILLed under the voters and restarted: a
/// request in flight at the crash may have landed or not, so a user's stored vote is the last
/// acknowledged side or, for a user with a vote in flight, that side; a message in flight is in
/// the transcript at most once. Everything else is as strict; the voters' 503s are held against
/// `counted`, the killed engine's `refusals_counted` read just before the kill.
pub async fn check_final_record_after_crash(
    app: &TestApp,
    store_url: &str,
    room: &str,
    logs: &[VoterLog],
    counted: u64,
) -> Value {
    check_record(app, store_url, room, logs, Ending::Crashed { counted }).await
}

/// The engine's count of `503 unavailable` refusals (`/metrics`). A refusal is counted before
/// it is sent, so it covers every 503 a client has seen by the time this is read.
pub async fn refusals_counted(app: &TestApp) -> u64 {
    metric(app, "roomstate_refusals_total{code=\"unavailable\"}").await
}

async fn check_record(
    app: &TestApp,
    store_url: &str,
    room: &str,
    logs: &[VoterLog],
    ending: Ending,
) -> Value {
    if ending == Ending::Answered {
        for log in logs {
            assert!(
                log.in_flight.is_none() && log.in_flight_text.is_none(),
                "{}: the engine never answered its last request: {log:?}",
                log.user
            );
        }
    }
    let mut expected: Vec<(u64, String)> = logs.iter().flat_map(|l| l.messages.clone()).collect();
    expected.sort();
    assert!(
        !expected.is_empty(),
        "no voter had a message acknowledged, so the transcript proves nothing: {logs:?}"
    );

    let refused: u64 = logs.iter().map(|l| l.refused).sum();
    let counted = match ending {
        Ending::Answered => refusals_counted(app).await,
        Ending::Crashed { counted } => counted,
    };
    assert!(
        refused <= counted,
        "the voters got {refused} 503s; the engine counted {counted}"
    );

    let final_view = app.close_room_retried(room, FAILOVER_DEADLINE).await;
    let (status, again) = app.close_room(room).await;
    assert_eq!(status, 200);
    assert_eq!(again, final_view, "closing twice returns the same record");

    // A seq is given to one mutation only, and only a durable one is acknowledged: two
    // acknowledgements with one seq, or one past the final seq, mean an acknowledged event was
    // lost and its seq given out again.
    let final_seq = final_view["seq"].as_u64().expect("final seq");
    let mut seqs: Vec<u64> = logs.iter().flat_map(|l| l.acked_seqs.clone()).collect();
    seqs.sort_unstable();
    let twice: Vec<u64> = seqs
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    assert!(twice.is_empty(), "seqs acknowledged twice: {twice:?}");
    if let Some(&last) = seqs.last() {
        assert!(
            last <= final_seq,
            "seq {last} was acknowledged; the final record ends at {final_seq}"
        );
    }

    let store = Store::open(store_url).expect("the engine's store");
    let id = RoomId::parse(room).unwrap();
    let stored: BTreeMap<String, String> = store
        .votes(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|(user, side)| (user.to_string(), side.as_str().to_owned()))
        .collect();
    match ending {
        Ending::Answered => {
            let acknowledged: BTreeMap<String, String> = logs
                .iter()
                .filter_map(|log| Some((log.user.clone(), log.last_acked.clone()?)))
                .collect();
            assert_eq!(
                stored, acknowledged,
                "final votes = the last acknowledged vote of each user"
            );
        }
        Ending::Crashed { .. } => {
            let users: BTreeSet<&str> = logs.iter().map(|l| l.user.as_str()).collect();
            for user in stored.keys() {
                assert!(
                    users.contains(user.as_str()),
                    "a vote of {user}, who never voted"
                );
            }
            for log in logs {
                let side = stored.get(&log.user).map(String::as_str);
                let landed = log.in_flight.is_some() && side == log.in_flight.as_deref();
                assert!(
                    side == log.last_acked.as_deref() || landed,
                    "{}: stored {side:?}; last acknowledged {:?}, in flight at the crash {:?}",
                    log.user,
                    log.last_acked,
                    log.in_flight
                );
            }
        }
    }
    let pro = stored.values().filter(|s| *s == "pro").count() as u64;
    let con = stored.len() as u64 - pro;
    assert_eq!(
        (final_view["pro"].as_u64(), final_view["con"].as_u64()),
        (Some(pro), Some(con))
    );

    let mut transcript = Vec::new();
    let mut after = 0;
    loop {
        let page = store.messages(&id, after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        transcript.extend(page.into_iter().map(|m| (m.seq, m.text)));
    }
    match ending {
        Ending::Answered => assert_eq!(
            transcript, expected,
            "the transcript is exactly the acknowledged messages"
        ),
        Ending::Crashed { .. } => check_transcript_after_crash(&transcript, &expected, logs),
    }
    assert_eq!(
        final_view["messages"].as_u64(),
        Some(transcript.len() as u64)
    );
    final_view
}

/// Every acknowledged message once, at its seq; a message in flight at the crash at most once;
/// nothing else.
fn check_transcript_after_crash(
    transcript: &[(u64, String)],
    acknowledged: &[(u64, String)],
    logs: &[VoterLog],
) {
    let acked: BTreeMap<u64, &str> = acknowledged
        .iter()
        .map(|(seq, text)| (*seq, text.as_str()))
        .collect();
    let in_flight: BTreeSet<&str> = logs
        .iter()
        .filter_map(|l| l.in_flight_text.as_deref())
        .collect();
    for (seq, text) in transcript {
        match acked.get(seq) {
            Some(acked) => assert_eq!(
                acked, text,
                "seq {seq} holds another message than the one acknowledged"
            ),
            None => assert!(
                in_flight.contains(text.as_str()),
                "message {seq} {text:?} was neither acknowledged nor in flight at the crash"
            ),
        }
    }
    for (seq, text) in acknowledged {
        assert!(
            transcript.iter().any(|(s, t)| s == seq && t == text),
            "the acknowledged message {seq} {text:?} is missing"
        );
    }
    let mut texts: Vec<&str> = transcript.iter().map(|(_, t)| t.as_str()).collect();
    texts.sort_unstable();
    let twice: Vec<&str> = texts
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    assert!(twice.is_empty(), "messages stored twice: {twice:?}");
}

/// The value of one series (`name{labels}` exactly as exported) on the engine's `/metrics`; 0
/// while it has not been exported yet (a counter with a label appears at its first increment).
async fn metric(app: &TestApp, series: &str) -> u64 {
    let (status, body) = app.get("/metrics").await;
    assert_eq!(status, 200, "{body}");
    let text = body.as_str().expect("/metrics is text");
    text.lines()
        .find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            Some(value.trim().parse::<f64>().expect("a metric value") as u64)
        })
        .unwrap_or(0)
}

async fn failovers_seen(app: &TestApp) -> u64 {
    let (status, stats) = app.request("GET", "/admin/stats", None, Some(TOKEN)).await;
    assert_eq!(status, 200);
    stats["failovers"].as_u64().unwrap_or(0)
}

/// How a test takes the primary away.
pub(crate) enum Break {
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
/// again, then checks the final record. The set may be locked (`Security`): the engine gets its
/// credentials and TLS settings.
pub(crate) async fn survive(set: &mut SentinelSet, how: Break) {
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

/// `survive`, then SIGKILL of the engine: the restarted engine has nothing but Redis to go by,
/// so its record shows whether every acknowledged event reached the new primary. (A live
/// engine writes the record from its memory, which would hide an event the failover lost.)
async fn survive_then_crash(set: &mut SentinelSet, how: Break) {
    let db = TestDatabase::create();
    let mut app = engine_on(set, &db);
    let room = app.create_room("failover then crash").await;
    let voters = Voters::start(&app, &room, "x", VOTERS).await;
    voters.wait_for_acks(50, FAILOVER_DEADLINE).await;

    let old = break_primary(set, how).await;
    set.wait_for_new_primary(&old, FAILOVER_DEADLINE).await;
    voters.wait_for_acks(50, FAILOVER_DEADLINE).await;
    eventually(
        "the engine to count the failover",
        FAILOVER_DEADLINE,
        || async { (failovers_seen(&app).await >= 1).then_some(()) },
    )
    .await;
    let counted = refusals_counted(&app).await;
    app.kill();
    let logs = voters.stop().await;
    // A gap in the log (an acknowledged event the new primary lacks) stops the start here, and
    // the failure shows the engine's log saying so.
    app.restart();
    check_final_record_after_crash(&app, &db.url(), &room, &logs, counted).await;
}

#[actix_rt::test]
async fn after_a_debug_sleep_of_the_primary_a_restarted_engine_finds_every_acknowledgement() {
    let mut set = SentinelSet::start().await;
    survive_then_crash(&mut set, Break::Sleep(8)).await;
}

#[actix_rt::test]
async fn after_a_kill_9_of_the_primary_a_restarted_engine_finds_every_acknowledgement() {
    let mut set = SentinelSet::start().await;
    survive_then_crash(&mut set, Break::Kill).await;
}

/// The deposed primary stays writable, with the replica that is not promoted still attached,
/// for about a second after the promotion: `WAIT 1` counts that replica, which the sentinels then
/// re-point and which full-resyncs from the new primary, dropping what it held. Without the
/// journal's fence (it stops acknowledging on the old primary at the sentinels' first failover
/// event) and repair (it re-appends what it acknowledged lately and the new primary lacks), the
/// new primary's log had a gap of about a second of acknowledged events and the restarted engine
/// refused to start ("gap: seq N expected").
#[actix_rt::test]
async fn after_a_manual_failover_a_restarted_engine_finds_every_acknowledgement() {
    let mut set = SentinelSet::start().await;
    survive_then_crash(&mut set, Break::Manual).await;
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
    // The engine may have acknowledged those on the deposed primary before it refused writes
    // (NOREPLICAS once its replicas follow the new one): the switch is counted when it happens.
    eventually(
        "the engine to count the second failover",
        FAILOVER_DEADLINE,
        || async { (failovers_seen(&app).await >= 2).then_some(()) },
    )
    .await;
    let logs = voters.stop().await;
    check_final_record(&app, &db.url(), &room, &logs).await;
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
    let counted = refusals_counted(&app).await;
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
        let acked = logs.iter().flat_map(|l| &l.acked_seqs).max().copied();
        assert!(
            view["seq"].as_u64() >= acked,
            "recovered {view}; seq {acked:?} was acknowledged"
        );
        // A request in flight at the crash may or may not have landed; the check allows both
        // outcomes for that request alone. Nothing is sent to "settle" it: voting again would
        // overwrite exactly the vote whose durability is in question.
        check_final_record_after_crash(&app, &db.url(), room, logs, counted).await;
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

/// The seq of the last event the server at `addr` holds for `room`: its log's last entry id
/// (`<seq>-0`, kept by the stream even when a snapshot trimmed the entry); 0 before any.
async fn last_seq_on(addr: &str, room: &str) -> u64 {
    let key = format!("roomstate:{{{room}}}:log");
    let id = redis_admin::stream_last_id(addr, &key)
        .await
        .unwrap_or_else(|e| panic!("{key} on {addr}: {e}"));
    id.map_or(0, |id| {
        id.strip_suffix("-0")
            .and_then(|seq| seq.parse().ok())
            .unwrap_or_else(|| panic!("{key}: entry id {id} is not <seq>-0"))
    })
}

/// Both replicas SIGKILLed while voters run, on servers that take writes without replicas
/// (`min-replicas-to-write 0`): the primary stores every batch, and only the journal's `WAIT`
/// count can tell that no replica holds it. The engine must acknowledge nothing it sent after
/// the replicas were gone: requests in flight wait, new ones get 503 after the grace, `/readyz`
/// says the journal is down; once the replicas are back and attached, the waiting requests are
/// acknowledged and the final record holds every acknowledgement.
#[actix_rt::test]
async fn with_both_replicas_killed_the_wait_count_alone_holds_back_every_acknowledgement() {
    let mut set = SentinelSet::builder()
        .min_replicas_to_write(0)
        .start()
        .await;
    // Otherwise the servers, not the journal, would refuse the writes (NOREPLICAS).
    for server in set.servers() {
        let setting = redis_admin::config_get(&server, "min-replicas-to-write").await;
        assert_eq!(setting.as_deref(), Ok("0"), "{server}");
    }
    let primary = set.primary().await;
    let db = TestDatabase::create();
    let app = engine_on(&set, &db);
    let room = app.create_room("replicas down").await;
    let voters = Voters::start(&app, &room, "d", VOTERS).await;
    // A probe that only ever votes pro: its vote stays pro however its later attempts end.
    app.join(&room, "probe").await;
    let probe = format!("/rooms/{room}/votes/probe");
    let (status, first) = app.put(&probe, json!({"side": "pro"})).await;
    assert_eq!(status, 200, "{first}");
    voters.wait_for_acks(30, FAILOVER_DEADLINE).await;

    let killed = set.kill_replicas().await;
    assert_eq!(killed.len(), 2, "{killed:?}");
    // The primary has seen both replicas go: every event after this one reached the primary
    // alone, and none of them may be acknowledged while the replicas are away.
    let replicated = last_seq_on(&primary, &room).await;

    eventually(
        "new requests to get 503 unavailable",
        FAILOVER_DEADLINE,
        || async {
            let answer = app
                .put_within(&probe, json!({"side": "pro"}), Duration::from_secs(1))
                .await;
            match answer {
                Some((status, body)) if status == 503 => {
                    assert_eq!(body["error"], "unavailable", "{body}");
                    Some(())
                }
                // The same side again is no change: answered at once, with the committed seq,
                // when nothing is pending (the voters were between requests).
                Some((status, body)) if status == 200 => {
                    let seq = body["seq"].as_u64().expect("seq");
                    assert!(
                        seq <= replicated,
                        "the probe saw seq {seq} committed: {body}"
                    );
                    None
                }
                Some((status, body)) => panic!("the probe got {status}: {body}"),
                // Still waiting for the pending events (the grace has not run out yet).
                None => None,
            }
        },
    )
    .await;
    let ready = eventually(
        "/readyz to say the journal is down",
        FAILOVER_DEADLINE,
        || async {
            let (status, ready) = app.get("/readyz").await;
            (status == 503 && ready["journal"] == "down").then_some(ready)
        },
    )
    .await;
    assert_eq!(ready["store"], "up", "{ready}");

    // The journal keeps trying (and failing) to make the voters' requests durable; they wait,
    // neither acknowledged nor refused, however many more attempts fail.
    let (acks, refusals) = (voters.acks(), voters.refusals());
    let failures = metric(&app, "roomstate_journal_failures_total").await;
    eventually(
        "3 more failed journal batches",
        FAILOVER_DEADLINE,
        || async {
            let now = metric(&app, "roomstate_journal_failures_total").await;
            (now >= failures + 3).then_some(())
        },
    )
    .await;
    assert_eq!(
        (voters.acks(), voters.refusals()),
        (acks, refusals),
        "the voters' waiting requests were answered while no replica could hold them"
    );
    assert!(
        voters.max_acked_seq() <= replicated,
        "seq {} was acknowledged; the replicas were gone after seq {replicated}",
        voters.max_acked_seq()
    );

    for replica in &killed {
        set.restart_server(replica).await;
    }
    // Attached and online on the primary, and seen as replicas by every sentinel.
    let healthy = set.wait_healthy(FAILOVER_DEADLINE).await;
    assert_eq!(
        healthy, primary,
        "the primary stayed up; nothing failed over"
    );
    voters.wait_for_acks(30, FAILOVER_DEADLINE).await;
    eventually(
        "/readyz to say the journal is up",
        FAILOVER_DEADLINE,
        || async {
            let (status, ready) = app.get("/readyz").await;
            (status == 200).then_some(ready)
        },
    )
    .await;
    let (status, body) = app.put(&probe, json!({"side": "pro"})).await;
    assert_eq!(status, 200, "{body}");

    let mut logs = voters.stop().await;
    logs.push(VoterLog {
        user: "probe".into(),
        last_acked: Some("pro".into()),
        acked_seqs: vec![first["seq"].as_u64().expect("seq")],
        ..VoterLog::default()
    });
    check_final_record(&app, &db.url(), &room, &logs).await;
}
