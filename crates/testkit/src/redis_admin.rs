//! Asking Redis servers and sentinels about themselves, on fresh blocking connections with short
//! timeouts (a fixture must not hang on a server it just put to sleep): `ROLE`, the primary a
//! sentinel names, the replicas a primary sees; and polling until a condition holds.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// Per-request timeout of the fixture's own Redis connections.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// Between two looks at a condition.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `probe` every 50 ms until it returns `Ok`, or returns the last error after `deadline`.
pub fn wait_until<T>(
    what: &str,
    deadline: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let begun = Instant::now();
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(e) if begun.elapsed() > deadline => {
                return Err(format!(
                    "timed out after {deadline:?} waiting for {what}; last: {e}"
                ))
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// One command on a fresh connection with ~1 s timeouts; any failure as text.
pub fn query<T: redis::FromRedisValue>(addr: &str, cmd: &mut redis::Cmd) -> Result<T, String> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
    let mut con = client
        .get_connection_with_timeout(IO_TIMEOUT)
        .map_err(|e| format!("connect: {e}"))?;
    con.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| con.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    cmd.query(&mut con).map_err(|e| e.to_string())
}

#[derive(Debug)]
pub struct Role {
    pub role: String,
    /// A replica's primary, `ip:port`.
    pub master: Option<String>,
    /// A replica's link state: `connect`, `connecting`, `sync` or `connected`.
    pub state: Option<String>,
}

pub fn role_of(addr: &str) -> Result<Role, String> {
    let reply = query::<Vec<redis::Value>>(addr, &mut redis::cmd("ROLE"))?;
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

/// `SENTINEL get-master-addr-by-name roomstate` as `ip:port`.
pub fn master_addr(sentinel: &str, master_name: &str) -> Result<String, String> {
    let reply = query::<Option<Vec<String>>>(
        sentinel,
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(master_name),
    )?;
    match reply.as_deref() {
        Some([ip, port]) => Ok(format!("{ip}:{port}")),
        other => Err(format!("odd get-master-addr-by-name reply {other:?}")),
    }
}

/// The replicas that `INFO replication` on `primary` lists as online, as `ip:port`.
pub fn online_replicas(primary: &str) -> Result<Vec<String>, String> {
    let info = query::<String>(primary, redis::cmd("INFO").arg("replication"))?;
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
