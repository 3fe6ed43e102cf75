//! The sentinel-set fixture itself, against real Redis processes: it starts healthy and
//! replicating, and each way of losing the primary (`DEBUG SLEEP`, SIGKILL, `SENTINEL FAILOVER`,
//! all servers down) ends with a promoted replica, and a deposed primary back as a replica that
//! holds what was written meanwhile. Timings go to stderr (`--nocapture` shows them).

use std::time::{Duration, Instant};

use roomstate_testkit::sentinel_set::SentinelSet;

/// Detection (1 s) + election + promotion, with room for a loaded machine.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(15);
/// A deposed primary is demoted only after it has reported "master" for ~8 s.
const REJOIN_DEADLINE: Duration = Duration::from_secs(30);
const DATA_DEADLINE: Duration = Duration::from_secs(15);

fn connect(set: &SentinelSet, addr: &str) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}\n{}", set.logs()));
    con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    con.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    con
}

fn try_set(addr: &str, key: &str, value: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let mut con = client.get_connection_with_timeout(Duration::from_secs(1))?;
    con.set_read_timeout(Some(Duration::from_secs(2)))?;
    // Acknowledged only once a replica holds it, as the journal does: a write that only the
    // primary saw may legitimately vanish in a later failover.
    let acked: i64 = redis::pipe()
        .cmd("SET")
        .arg(key)
        .arg(value)
        .ignore()
        .cmd("WAIT")
        .arg(1)
        .arg(1000)
        .query::<(i64,)>(&mut con)?
        .0;
    if acked < 1 {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "no replica acknowledged the write",
        )));
    }
    Ok(())
}

fn try_get(addr: &str, key: &str) -> redis::RedisResult<Option<String>> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let mut con = client.get_connection_with_timeout(Duration::from_secs(1))?;
    con.set_read_timeout(Some(Duration::from_secs(2)))?;
    redis::cmd("GET").arg(key).query(&mut con)
}

/// Writes `key` on `addr`, retrying while it refuses (a just-promoted primary answers
/// `NOREPLICAS` until a replica has attached: `min-replicas-to-write 1`).
fn write_eventually(set: &SentinelSet, addr: &str, key: &str, value: &str) {
    let begun = Instant::now();
    loop {
        match try_set(addr, key, value) {
            Ok(()) => return,
            Err(e) if begun.elapsed() > DATA_DEADLINE => {
                panic!("SET {key} on {addr} kept failing: {e}\n{}", set.logs())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Waits until `GET key` on `addr` returns `value`.
fn read_eventually(set: &SentinelSet, addr: &str, key: &str, value: &str) {
    let begun = Instant::now();
    loop {
        let got = try_get(addr, key);
        if matches!(&got, Ok(Some(v)) if v == value) {
            return;
        }
        if begun.elapsed() > DATA_DEADLINE {
            panic!(
                "{addr} never returned {key}={value}; last: {got:?}\n{}",
                set.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes `key` on the primary and waits until both replicas acknowledge it.
fn write_replicated(set: &SentinelSet, key: &str, value: &str) {
    let primary = set.primary();
    let mut con = connect(set, &primary);
    let () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query(&mut con)
        .unwrap_or_else(|e| panic!("SET on the primary {primary}: {e}\n{}", set.logs()));
    let acks: i64 = redis::cmd("WAIT")
        .arg(2)
        .arg(5000)
        .query(&mut con)
        .expect("WAIT");
    assert_eq!(
        acks,
        2,
        "both replicas acknowledge the write\n{}",
        set.logs()
    );
}

#[test]
fn starts_with_a_primary_two_replicas_and_three_sentinels_that_replicate() {
    let begun = Instant::now();
    let set = SentinelSet::start();
    eprintln!("start: {:?}", begun.elapsed());

    let servers = set.servers();
    let sentinels = set.sentinels();
    assert_eq!(servers.len(), 3);
    assert_eq!(sentinels.len(), 3);
    assert_eq!(set.sentinels_setting(), sentinels.join(","));
    assert!(sentinels.iter().all(|s| s.starts_with("127.0.0.1:")));

    let primary = set.primary();
    assert!(servers.contains(&primary), "{primary} in {servers:?}");
    assert_eq!(set.role(&primary).as_deref(), Some("master"));
    let replicas: Vec<&String> = servers.iter().filter(|s| **s != primary).collect();
    assert_eq!(replicas.len(), 2);
    for r in &replicas {
        assert_eq!(set.role(r).as_deref(), Some("slave"), "{r}");
    }

    write_replicated(&set, "greeting", "hello");
    for r in &replicas {
        read_eventually(&set, r, "greeting", "hello");
        let refused = try_set(r, "greeting", "from a replica").unwrap_err();
        assert_eq!(refused.code(), Some("READONLY"), "{refused}");
    }
}

#[test]
fn a_sleeping_primary_is_replaced_and_comes_back_as_a_replica() {
    let set = SentinelSet::start();
    write_replicated(&set, "before", "1");

    let old = set.sleep_primary(5);
    let begun = Instant::now();
    // The caller is not blocked: the primary is asleep right now.
    assert_eq!(set.role(&old), None, "{old} should be asleep");
    let new = set.wait_for_new_primary(&old, FAILOVER_DEADLINE);
    eprintln!(
        "DEBUG SLEEP 5: new primary {new} after {:?}",
        begun.elapsed()
    );
    assert_ne!(new, old);
    read_eventually(&set, &new, "before", "1");

    set.wait_for_role(&old, "slave", REJOIN_DEADLINE);
    eprintln!(
        "DEBUG SLEEP 5: old primary {old} a replica after {:?}",
        begun.elapsed()
    );
    write_eventually(&set, &new, "after", "2");
    read_eventually(&set, &old, "after", "2");
    let refused = try_set(&old, "after", "on the deposed primary").unwrap_err();
    assert_eq!(refused.code(), Some("READONLY"), "{refused}");
}

#[test]
fn a_killed_primary_is_replaced() {
    let mut set = SentinelSet::start();
    write_replicated(&set, "before", "1");

    let old = set.kill_primary();
    let begun = Instant::now();
    assert_eq!(set.role(&old), None, "{old} was killed");
    let new = set.wait_for_new_primary(&old, FAILOVER_DEADLINE);
    eprintln!("SIGKILL: new primary {new} after {:?}", begun.elapsed());
    assert_ne!(new, old);
    read_eventually(&set, &new, "before", "1");
    write_eventually(&set, &new, "after", "2");
    let replica = set
        .servers()
        .into_iter()
        .find(|s| *s != old && *s != new)
        .unwrap();
    set.wait_for_role(&replica, "slave", FAILOVER_DEADLINE);
    read_eventually(&set, &replica, "after", "2");
}

#[test]
fn a_manual_failover_promotes_a_replica() {
    let set = SentinelSet::start();
    write_replicated(&set, "before", "1");

    let old = set.primary();
    let begun = Instant::now();
    set.manual_failover();
    let new = set.wait_for_new_primary(&old, FAILOVER_DEADLINE);
    eprintln!(
        "SENTINEL FAILOVER: new primary {new} after {:?}",
        begun.elapsed()
    );
    assert_ne!(new, old);
    read_eventually(&set, &new, "before", "1");
    write_eventually(&set, &new, "after", "2");
    // (The deposed primary, alive all along, is demoted only ~10 s later: see the restart test.)
}

#[test]
fn a_killed_primary_restarted_rejoins_as_a_replica_with_the_new_data() {
    let mut set = SentinelSet::start();
    write_replicated(&set, "before", "1");

    let old = set.kill_primary();
    let new = set.wait_for_new_primary(&old, FAILOVER_DEADLINE);
    write_eventually(&set, &new, "while-down", "2");

    set.restart_server(&old);
    let begun = Instant::now();
    set.wait_for_role(&old, "slave", REJOIN_DEADLINE);
    eprintln!(
        "restart: old primary {old} a replica after {:?}",
        begun.elapsed()
    );
    read_eventually(&set, &old, "while-down", "2");
    read_eventually(&set, &old, "before", "1");
    // Under a loaded machine the sentinels may fail over once more meanwhile (a legitimate
    // outcome); what must hold is a healthy set that still has the data.
    let primary = set.wait_healthy(REJOIN_DEADLINE);
    read_eventually(&set, &primary, "while-down", "2");
}

#[test]
fn all_servers_down_then_up_again_heals_with_the_data_kept() {
    let mut set = SentinelSet::start();
    write_replicated(&set, "kept", "1");

    set.stop_all_servers();
    for s in set.servers() {
        assert_eq!(set.role(&s), None, "{s} was stopped");
    }
    set.restart_all_servers();
    let begun = Instant::now();
    let primary = set.wait_healthy(REJOIN_DEADLINE);
    eprintln!("all down, restarted: healthy after {:?}", begun.elapsed());
    read_eventually(&set, &primary, "kept", "1");
    write_replicated(&set, "after", "2");
}
