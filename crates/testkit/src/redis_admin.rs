//! Asking Redis servers and sentinels about themselves, on fresh async connections with short
//! timeouts (a fixture must not hang on a server it just put to sleep, nor block the thread the
//! test's load runs on): `ROLE`, the primary the sentinels name, the replicas a primary sees, a
//! server's setting, and the keys a journal left (strings, sets, streams) as plain Rust values,
//! so a test needs no Redis client of its own; and polling until a condition holds.
//!
//! A fixture whose Redis has passwords or TLS (`redis_security`) registers, for each address it
//! runs a process on, how its admin queries reach it (`register`; `forget` when the process
//! goes); every query to that address then authenticates and uses TLS, so these functions keep
//! taking a bare `host:port` whatever the set's locks. Unregistered addresses are queried plainly.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use redis::AsyncConnectionConfig;
use roomstate_journal::{access, access::Access, sentinel};

/// Per-request timeout of the fixture's own Redis connections.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// Between two looks at a condition.
pub const POLL: Duration = Duration::from_millis(50);

fn config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(IO_TIMEOUT))
        .set_response_timeout(Some(IO_TIMEOUT))
}

/// Polls `probe` every 50 ms until it returns `Ok`, or returns the last error after `deadline`.
/// Async: the test's other tasks (its load) keep running meanwhile.
pub async fn wait_until<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let begun = Instant::now();
    loop {
        match probe().await {
            Ok(v) => return Ok(v),
            Err(e) if begun.elapsed() > deadline => {
                return Err(format!(
                    "timed out after {deadline:?} waiting for {what}; last: {e}"
                ))
            }
            Err(_) => actix_rt::time::sleep(POLL).await,
        }
    }
}

fn registry() -> &'static Mutex<HashMap<String, Access>> {
    static ACCESS: OnceLock<Mutex<HashMap<String, Access>>> = OnceLock::new();
    ACCESS.get_or_init(Default::default)
}

/// From now on, queries to `addr` (`host:port`) go through `access` (credentials, TLS).
pub fn register(addr: &str, access: Access) {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(addr.to_owned(), access);
}

/// Queries to `addr` are plain again (its process is gone).
pub fn forget(addr: &str) {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(addr);
}

/// How queries reach `addr`: as registered, else plainly.
pub fn access_for(addr: &str) -> Access {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(addr)
        .cloned()
        .unwrap_or_else(|| Access::plain(access::Role::Server))
}

/// One command on a fresh connection with ~1 s timeouts; any failure as text.
pub async fn query<T: redis::FromRedisValue>(addr: &str, cmd: &redis::Cmd) -> Result<T, String> {
    let access = access_for(addr);
    let client = access.client(addr).map_err(|e| e.to_string())?;
    let config = config();
    let connect = client.get_multiplexed_async_connection_with_config(&config);
    let mut con = actix_rt::time::timeout(IO_TIMEOUT * 2, connect)
        .await
        .map_err(|_| format!("connect: no answer within {:?}", IO_TIMEOUT * 2))?
        .map_err(|e| format!("connect: {}", access.describe(&e)))?;
    actix_rt::time::timeout(IO_TIMEOUT * 2, cmd.query_async(&mut con))
        .await
        .map_err(|_| format!("no reply within {:?}", IO_TIMEOUT * 2))?
        .map_err(|e| access.describe(&e))
}

/// Any command given as words, for tests that have no Redis client of their own (`ACL
/// SETUSER`, `CLIENT LIST`, `CLIENT KILL`): the reply as text (`OK`, a bulk string, a number).
pub async fn command(addr: &str, words: &[&str]) -> Result<String, String> {
    let (name, args) = words
        .split_first()
        .ok_or_else(|| "an empty command".to_owned())?;
    let mut cmd = redis::cmd(name);
    for arg in args {
        cmd.arg(*arg);
    }
    query(addr, &cmd).await
}

#[derive(Debug)]
pub struct Role {
    pub role: String,
    /// A replica's primary, `ip:port`.
    pub master: Option<String>,
    /// A replica's link state: `connect`, `connecting`, `sync` or `connected`.
    pub state: Option<String>,
}

pub async fn role_of(addr: &str) -> Result<Role, String> {
    let reply = query::<Vec<redis::Value>>(addr, &redis::cmd("ROLE")).await?;
    let text = |i: usize| -> Option<String> {
        reply
            .get(i)
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
    };
    let role = text(0).ok_or_else(|| format!("odd ROLE reply {reply:?}"))?;
    if role == "slave" {
        Ok(Role {
            role,
            master: Some(format!(
                "{}:{}",
                text(1).unwrap_or_default(),
                text(2).unwrap_or_default()
            )),
            state: text(3),
        })
    } else {
        Ok(Role {
            role,
            master: None,
            state: None,
        })
    }
}

/// What each sentinel names as the primary of `master_name` (`ip:port`; `None`: no answer), in
/// the order of `sentinels` — the same look-up the journal makes.
pub async fn named_primaries(sentinels: &[String], master_name: &str) -> Vec<Option<String>> {
    let config = config();
    let asks = sentinels.iter().map(|s| {
        let config = &config;
        async move {
            sentinel::ask_via(&access_for(s), s, master_name, config)
                .await
                .ok()
                .flatten()
        }
    });
    futures_util::future::join_all(asks).await
}

/// The replicas that `INFO replication` on `primary` lists as online, as `ip:port`.
pub async fn online_replicas(primary: &str) -> Result<Vec<String>, String> {
    let info = query::<String>(primary, redis::cmd("INFO").arg("replication")).await?;
    Ok(info
        .lines()
        .filter(|l| l.starts_with("slave") && l.contains(':'))
        .filter_map(|l| {
            let kv: BTreeMap<&str, &str> = l
                .split_once(':')?
                .1
                .split(',')
                .filter_map(|f| f.split_once('='))
                .collect();
            if kv.get("state") != Some(&"online") {
                return None;
            }
            Some(format!("{}:{}", kv.get("ip")?, kv.get("port")?))
        })
        .collect())
}

pub fn missing(wanted: &[String], have: &[String]) -> Result<(), String> {
    let missing: Vec<&String> = wanted.iter().filter(|w| !have.contains(w)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "replicas not online: {missing:?} (online: {have:?})"
        ))
    }
}

/// A sentinel reply's flat `[key, value, ...]` list as a map.
pub fn fields(flat: &[String]) -> BTreeMap<String, String> {
    flat.chunks(2)
        .filter_map(|kv| match kv {
            [k, v] => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

/// `CONFIG GET name` on `addr`: the setting's value.
pub async fn config_get(addr: &str, name: &str) -> Result<String, String> {
    let reply: Vec<String> = query(addr, redis::cmd("CONFIG").arg("GET").arg(name)).await?;
    match reply.as_slice() {
        [key, value] if key == name => Ok(value.clone()),
        _ => Err(format!("odd CONFIG GET {name} reply {reply:?}")),
    }
}

/// `GET key`: `None` when the key does not exist.
pub async fn get(addr: &str, key: &str) -> Result<Option<String>, String> {
    query(addr, redis::cmd("GET").arg(key)).await
}

/// Whether `key` exists.
pub async fn exists(addr: &str, key: &str) -> Result<bool, String> {
    query::<i64>(addr, redis::cmd("EXISTS").arg(key))
        .await
        .map(|n| n > 0)
}

/// Whether `member` is in the set `key`.
pub async fn is_member(addr: &str, key: &str, member: &str) -> Result<bool, String> {
    query::<i64>(addr, redis::cmd("SISMEMBER").arg(key).arg(member))
        .await
        .map(|n| n > 0)
}

/// `XLEN key` (0 for a missing key).
pub async fn stream_len(addr: &str, key: &str) -> Result<u64, String> {
    query(addr, redis::cmd("XLEN").arg(key)).await
}

/// The entry ids of the stream `key`, oldest first (`XRANGE key - +`; empty for a missing key).
pub async fn stream_ids(addr: &str, key: &str) -> Result<Vec<String>, String> {
    let reply: redis::streams::StreamRangeReply =
        query(addr, redis::cmd("XRANGE").arg(key).arg("-").arg("+")).await?;
    Ok(reply.ids.into_iter().map(|entry| entry.id).collect())
}

/// One event of a room's log as a test reads it back (`log_events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub seq: u64,
    pub json: String,
    /// The epoch of its entry (field `o`), if any.
    pub epoch: Option<String>,
}

/// The events of the room log `key`, oldest first, read from its entries as a test sees them
/// (independently of the journal's own reader): an entry `<last seq>-0` holds one event (`e`) or
/// a run (`f` <first seq>, `b` <one event per line>), and maybe `o` <epoch>. Empty for a missing
/// key.
pub async fn log_events(addr: &str, key: &str) -> Result<Vec<LogEvent>, String> {
    let reply: redis::streams::StreamRangeReply =
        query(addr, redis::cmd("XRANGE").arg(key).arg("-").arg("+")).await?;
    let mut events = Vec::new();
    for entry in reply.ids {
        let text = |name: &str| -> Option<String> { entry.get(name) };
        let last: u64 = entry
            .id
            .split('-')
            .next()
            .and_then(|seq| seq.parse().ok())
            .ok_or_else(|| format!("{key}: entry id {}", entry.id))?;
        let epoch = text("o");
        let (first, body) = match (text("f"), text("b"), text("e")) {
            (Some(first), Some(body), _) => (
                first
                    .parse()
                    .map_err(|_| format!("{key}: entry {}: first seq {first}", entry.id))?,
                body,
            ),
            (None, None, Some(event)) => (last, event),
            _ => return Err(format!("{key}: entry {}: no event fields", entry.id)),
        };
        let lines: Vec<&str> = body.split('\n').collect();
        if first + lines.len() as u64 != last + 1 {
            return Err(format!(
                "{key}: entry {}: {} events from seq {first}",
                entry.id,
                lines.len()
            ));
        }
        for (seq, json) in (first..=last).zip(lines) {
            events.push(LogEvent {
                seq,
                json: json.to_owned(),
                epoch: epoch.clone(),
            });
        }
    }
    Ok(events)
}

/// The seqs of the events of the room log `key`, oldest first (`log_events`).
pub async fn log_seqs(addr: &str, key: &str) -> Result<Vec<u64>, String> {
    Ok(log_events(addr, key)
        .await?
        .into_iter()
        .map(|e| e.seq)
        .collect())
}

/// The last id ever added to the stream `key` (`XINFO STREAM`'s `last-generated-id`: kept when
/// the entry itself was trimmed away); `None` for a missing key.
pub async fn stream_last_id(addr: &str, key: &str) -> Result<Option<String>, String> {
    if !exists(addr, key).await? {
        return Ok(None);
    }
    let reply: Vec<redis::Value> = query(addr, redis::cmd("XINFO").arg("STREAM").arg(key)).await?;
    let text = |v: &redis::Value| redis::from_redis_value_ref::<String>(v).ok();
    for pair in reply.chunks(2) {
        if let [name, value] = pair {
            if text(name).as_deref() == Some("last-generated-id") {
                return text(value)
                    .map(Some)
                    .ok_or_else(|| format!("XINFO STREAM {key}: odd last-generated-id {value:?}"));
            }
        }
    }
    Err(format!(
        "XINFO STREAM {key}: no last-generated-id in {reply:?}"
    ))
}
