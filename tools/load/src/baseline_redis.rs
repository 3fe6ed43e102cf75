//! Baseline (b), `redis-per-mutation`: what the engine replaces with group commit. Every vote or
//! message is its own Redis round trip — the write and a `WAIT` for the replicas, one pipeline
//! per mutation, no batching — on a connection per client, against the same primary and with
//! the same replica acknowledgement as the engine.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use redis::{aio::MultiplexedConnection, AsyncConnectionConfig};
use roomstate_journal::sentinel;

use crate::{
    mix::{Mixer, Op},
    workload::{Run, Workload},
};

/// Key prefix of the baseline's writes (apart from the engine's `roomstate:`).
const PREFIX: &str = "roomstate-baseline";

/// Asks the sentinels (first that answers) for the primary, or uses `url`.
pub async fn primary(
    sentinels: &[String],
    master: &str,
    url: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(url) = url {
        return Ok(url.to_owned());
    }
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let candidates = sentinel::primary_candidates(sentinels, master, &config).await?;
    match candidates.first() {
        Some(primary) => Ok(format!("redis://{primary}")),
        None => bail!("no sentinel of {} named a primary", sentinels.join(",")),
    }
}

async fn connection(url: &str) -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(url).with_context(|| format!("redis url {url}"))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("connecting to {url}"))
}

pub async fn run(url: &str, replica_acks: u32, w: &Workload, run: &Run) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for r in 0..w.rooms {
        for u in 0..w.users {
            let conn = connection(url).await?;
            let mixer = Mixer::new(w.seed ^ ((r as u64) << 20) ^ u as u64, w.message_percent);
            let keys = (
                format!("{PREFIX}:{{r{r}}}:votes"),
                format!("{PREFIX}:{{r{r}}}:msgs"),
            );
            tasks.push(actix_rt::spawn(client(
                conn,
                keys,
                format!("u{u}"),
                mixer,
                replica_acks,
                w.client_interval(),
                run.clone(),
            )));
        }
    }
    for task in tasks {
        task.await.context("baseline client")?;
    }
    Ok(())
}

async fn client(
    mut conn: MultiplexedConnection,
    (votes, msgs): (String, String),
    user: String,
    mut mixer: Mixer,
    replica_acks: u32,
    interval: Option<Duration>,
    run: Run,
) {
    let mut next_due = Instant::now();
    while !run.over() {
        let due = match interval {
            Some(interval) => {
                tokio::time::sleep_until(next_due.into()).await;
                let due = next_due;
                next_due += interval;
                due
            }
            None => Instant::now(),
        };
        let op = mixer.next_op();
        let mut pipe = redis::pipe();
        match &op {
            Op::Vote(side) | Op::Switch(side) => {
                pipe.cmd("HSET").arg(&votes).arg(&user).arg(*side).ignore();
            }
            Op::Say(text) => {
                pipe.cmd("XADD")
                    .arg(&msgs)
                    .arg("*")
                    .arg("u")
                    .arg(&user)
                    .arg("t")
                    .arg(text)
                    .ignore();
            }
        }
        if replica_acks > 0 {
            pipe.cmd("WAIT").arg(replica_acks).arg(1000);
        }
        if interval.is_some() {
            run.sending(due);
        }
        let reply: redis::RedisResult<Vec<i64>> = pipe.query_async(&mut conn).await;
        match reply {
            Ok(acked)
                if acked.first().copied().unwrap_or(0) >= i64::from(replica_acks)
                    || replica_acks == 0 =>
            {
                run.answered(due, op.kind(), true)
            }
            Ok(_) => run.answered(due, op.kind(), false),
            Err(_) => run.failed(due),
        }
    }
}

/// Deletes the baseline's keys.
pub async fn clean(url: &str) -> anyhow::Result<()> {
    let mut conn = connection(url).await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{PREFIX}:*"))
        .query_async(&mut conn)
        .await?;
    for chunk in keys.chunks(500) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
    }
    Ok(())
}
