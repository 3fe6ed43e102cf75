//! Waiting for a Redis sentinel set to settle after a bulk write, so that what is timed next is
//! the engine and not Redis catching up: every connected replica has the primary's writes
//! (`WAIT`), and no server is rewriting its append-only file or about to (a rewrite forks a child
//! that takes a core for seconds after a large fill; on a 2-core machine it halves what the engine
//! gets).

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use redis::{aio::MultiplexedConnection, AsyncConnectionConfig, ConnectionAddr};
use roomstate_core::redact;

/// How long Redis may take to settle before the measurement is given up.
const DEADLINE: Duration = Duration::from_secs(120);

/// The key `settle` writes (and deletes) so that its `WAIT` covers everything written before.
const MARK: &str = "roomstate-load:settle";

/// Waits until the primary at `url` and each replica it lists are settled (see the module);
/// returns how long that took.
pub async fn settle(url: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let shown = redact::url(url);
    let client = redis::Client::open(url).with_context(|| format!("redis url {shown}"))?;
    let mut primary = connect(&client, &shown).await?;
    let replication: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut primary)
        .await
        .context("INFO replication")?;
    let replicas = replicas(&replication);
    if !replicas.is_empty() {
        caught_up(&mut primary, replicas.len()).await?;
    }
    let mut servers = vec![(shown, primary)];
    for (host, port) in replicas {
        let name = format!("replica {host}:{port}");
        let addr = match client.get_connection_info().addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        let info = client.get_connection_info().clone().set_addr(addr);
        let replica = redis::Client::open(info).with_context(|| name.clone())?;
        let conn = connect(&replica, &name).await?;
        servers.push((name, conn));
    }
    // Until one pass over every server finds none rewriting: a replica may start its rewrite
    // while the primary's ends.
    loop {
        let mut busy = None;
        for (name, conn) in &mut servers {
            let persistence: String = redis::cmd("INFO")
                .arg("persistence")
                .query_async(conn)
                .await
                .with_context(|| format!("INFO persistence of {name}"))?;
            if rewriting(&persistence) {
                busy = Some(name.clone());
            }
        }
        let Some(name) = busy else { break };
        if started.elapsed() > DEADLINE {
            bail!("{name} still rewrites its append-only file after {DEADLINE:?}");
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}

/// Waits until `count` replicas have every write the primary (`conn`) took before.
async fn caught_up(conn: &mut MultiplexedConnection, count: usize) -> anyhow::Result<()> {
    // `WAIT` counts the replicas that have this connection's last write, and a connection that
    // wrote nothing has none to wait for: a write first, which comes after every write before it
    // in the replication stream, so once the replicas have it they have those too.
    let timeout_ms = DEADLINE.as_millis() as u64;
    let (acked,): (usize,) = redis::pipe()
        .cmd("SET")
        .arg(MARK)
        .arg(1)
        .ignore()
        .cmd("WAIT")
        .arg(count)
        .arg(timeout_ms)
        .cmd("DEL")
        .arg(MARK)
        .ignore()
        .query_async(conn)
        .await
        .context("WAIT for the replicas")?;
    if acked < count {
        bail!("only {acked} of {count} replicas caught up within {timeout_ms} ms");
    }
    Ok(())
}

async fn connect(client: &redis::Client, name: &str) -> anyhow::Result<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(DEADLINE + Duration::from_secs(5)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("connecting to {name}"))
}

/// The replicas `INFO replication` lists (`slaveN:ip=...,port=...,state=online,...`), as host
/// and port.
fn replicas(info: &str) -> Vec<(String, u16)> {
    info.lines()
        .filter(|line| line.starts_with("slave") && line.contains(":ip="))
        .filter_map(|line| {
            let fields = line.split_once(':')?.1;
            let field = |key: &str| {
                (fields.split(','))
                    .find_map(|f| f.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            };
            Some((field("ip")?.to_owned(), field("port")?.parse().ok()?))
        })
        .collect()
}

/// Whether `INFO persistence` says an append-only file rewrite runs or is scheduled.
fn rewriting(info: &str) -> bool {
    info.lines().any(|line| {
        matches!(
            line.trim_end(),
            "aof_rewrite_in_progress:1" | "aof_rewrite_scheduled:1"
        )
    })
}

#[cfg(test)]
mod tests {
    use roomstate_testkit::{redis_server::RedisServer, sentinel_set::SentinelSet};

    use super::*;

    /// Against a sentinel set: a replica that cannot apply the primary's writes for a second
    /// (`DEBUG SLEEP`, on the wire before the wait starts) holds the wait until it has them.
    #[actix_rt::test]
    async fn waits_for_a_replica_that_lags() {
        let set = SentinelSet::start().await;
        let primary = set.primary().await;
        let replica = (set.servers().into_iter())
            .find(|s| *s != primary)
            .expect("a replica");
        let client = redis::Client::open(format!("redis://{replica}")).unwrap();
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap();
        let sleep = redis::cmd("DEBUG").arg("SLEEP").arg(1).get_packed_command();
        conn.send_packed_command(&sleep).unwrap();
        let started = Instant::now();
        let primary = redis::Client::open(format!("redis://{primary}")).unwrap();
        let mut to_primary = connect(&primary, "the primary").await.unwrap();
        caught_up(&mut to_primary, 2).await.unwrap();
        let took = started.elapsed();
        let _ = conn.recv_response();
        assert!(
            took >= Duration::from_millis(500),
            "settled in {took:?} while a replica slept for 1 s"
        );
    }

    /// Against a real server (no replicas): a rewrite started just before is over when `settle`
    /// returns.
    #[actix_rt::test]
    async fn settles_once_the_rewrite_under_way_is_over() {
        let redis = RedisServer::start().await;
        let client = redis::Client::open(redis.url()).unwrap();
        let mut conn = connect(&client, "the test's server").await.unwrap();
        let _: () = redis::pipe()
            .cmd("SET")
            .arg("k")
            .arg("v")
            .ignore()
            .cmd("BGREWRITEAOF")
            .ignore()
            .query_async(&mut conn)
            .await
            .unwrap();
        settle(&redis.url()).await.unwrap();
        let persistence: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!rewriting(&persistence), "{persistence}");
    }

    #[test]
    fn reads_the_replicas_of_info_replication() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
            slave0:ip=127.0.0.1,port=6451,state=online,offset=123,lag=0\r\n\
            slave1:ip=10.0.0.7,port=6452,state=wait_bgsave,offset=0,lag=1\r\n\
            master_failover_state:no-failover\r\nslave_read_only:1\r\n";
        assert_eq!(
            replicas(info),
            vec![
                ("127.0.0.1".to_owned(), 6451),
                ("10.0.0.7".to_owned(), 6452)
            ]
        );
        assert!(replicas("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n").is_empty());
    }

    #[test]
    fn a_rewrite_in_progress_or_scheduled_is_not_settled() {
        let quiet = "# Persistence\r\naof_enabled:1\r\naof_rewrite_in_progress:0\r\n\
            aof_rewrite_scheduled:0\r\n";
        assert!(!rewriting(quiet));
        assert!(rewriting(&quiet.replace("in_progress:0", "in_progress:1")));
        assert!(rewriting(&quiet.replace("scheduled:0", "scheduled:1")));
    }
}
