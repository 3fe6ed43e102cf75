//! Asking Redis servers and sentinels about themselves, on fresh async connections with short
//! timeouts (a fixture must not hang on a server it just put to sleep, nor block the thread the
//! test's load runs on): `ROLE`, the primary the sentinels name, the replicas a primary sees; and
//! polling until a condition holds.

use std::{
    collections::BTreeMap,
    future::Future,
    time::{Duration, Instant},
};

use redis::AsyncConnectionConfig;
use roomstate_journal::sentinel;

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

/// One command on a fresh connection with ~1 s timeouts; any failure as text.
pub async fn query<T: redis::FromRedisValue>(addr: &str, cmd: &redis::Cmd) -> Result<T, String> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
    let config = config();
    let connect = client.get_multiplexed_async_connection_with_config(&config);
    let mut con = actix_rt::time::timeout(IO_TIMEOUT * 2, connect)
        .await
        .map_err(|_| format!("connect: no answer within {:?}", IO_TIMEOUT * 2))?
        .map_err(|e| format!("connect: {e}"))?;
    actix_rt::time::timeout(IO_TIMEOUT * 2, cmd.query_async(&mut con))
        .await
        .map_err(|_| format!("no reply within {:?}", IO_TIMEOUT * 2))?
        .map_err(|e| e.to_string())
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
    sentinel::ask_all(sentinels, master_name, &config()).await
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
