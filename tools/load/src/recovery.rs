//! Recovery: how long an engine takes from start to serving when its journal holds many open
//! rooms. The journal is filled through the library (the same code path the engine writes
//! with), with events made by the real state machine, then the engine is started on it.

use std::{path::Path, sync::Arc, time::Instant};

use anyhow::{bail, Context as _};
use futures_util::future::join_all;
use roomstate_core::{
    room::{Command, Event, RoomId, RoomState, Side, UserName, Via},
    time,
};
use roomstate_journal::{
    redis::{RedisJournal, RedisJournalConfig, RedisTarget},
    Epoch, Journal, JournalMetrics,
};
use serde::Serialize;

use crate::{process::spawn_engine, settle::settle};

/// Rooms filled side by side.
const FILL_ROOMS_AT_ONCE: usize = 500;

#[derive(Debug, Serialize)]
pub struct RecoveryReport {
    pub rooms: usize,
    pub events_per_room: usize,
    /// Events per append while filling: the events of each log entry.
    pub events_per_append: usize,
    pub fill_s: f64,
    /// After the fill, before the engine starts: until the replicas caught up and no Redis
    /// server rewrites its append-only file (`settle`), so the restart is the engine's alone.
    pub settle_s: f64,
    /// From process start to serving requests, all rooms recovered.
    pub restart_s: f64,
    pub rooms_after: u64,
}

/// The events of one room: created, then joins, votes, switches and messages.
fn room_events(index: usize, events: usize) -> anyhow::Result<Vec<Event>> {
    let id = RoomId::parse(&format!("r_bench{index:06}"))?;
    let (mut state, created) = RoomState::create(id, format!("bench room {index}"), time::now())?;
    let mut log = vec![created];
    let users: Vec<UserName> = (0..10)
        .map(|u| UserName::parse(&format!("u{u}")))
        .collect::<Result<_, _>>()?;
    let mut n = 0usize;
    while log.len() < events {
        let user = users[n % users.len()].clone();
        let command = match n {
            n if n < users.len() => Command::Join {
                user,
                via: Via::Http,
            },
            n if n % 4 == 0 => Command::Say {
                user,
                text: format!("message {n} of room {index}"),
                key: None,
            },
            n => Command::Vote {
                user,
                side: if n % 3 == 0 { Side::Pro } else { Side::Con },
            },
        };
        n += 1;
        if let Some(event) = state.apply(command, time::now())?.event {
            log.push(event);
        }
    }
    Ok(log)
}

pub async fn measure(
    bin: &Path,
    work_dir: &Path,
    target: RedisTarget,
    extra_env: Vec<(String, String)>,
    rooms: usize,
    events: usize,
    per_append: usize,
) -> anyhow::Result<RecoveryReport> {
    std::fs::create_dir_all(work_dir)?;
    let journal: Arc<dyn Journal> = Arc::new(RedisJournal::open(
        RedisJournalConfig::new(target.clone(), 0),
        JournalMetrics::detached()?,
    )?);
    if per_append == 0 {
        bail!("--events-per-append must be at least 1");
    }
    let started = Instant::now();
    let indexes: Vec<usize> = (0..rooms).collect();
    // Rooms a few hundred at a time, each in appends of `per_append` events, the rooms' appends
    // side by side (so the writer batches many rooms, as under live load): the log holds
    // entries of `per_append` events (the journal writes one entry per room per batch).
    for chunk in indexes.chunks(FILL_ROOMS_AT_ONCE) {
        let logs: Vec<Vec<Event>> = chunk
            .iter()
            .map(|i| room_events(*i, events))
            .collect::<anyhow::Result<_>>()?;
        for from in (0..events).step_by(per_append) {
            let appends = logs.iter().filter(|log| log.len() > from).map(|log| {
                let part = log[from..log.len().min(from + per_append)].to_vec();
                journal.append(Epoch::NONE, part)
            });
            for result in join_all(appends).await {
                result.context("filling the journal")?;
            }
        }
    }
    let fill_s = started.elapsed().as_secs_f64();
    drop(journal);
    let primary = match &target {
        RedisTarget::Url(url) => url.clone(),
        RedisTarget::Sentinels { addrs, master_name } => {
            crate::baseline_redis::primary(addrs, master_name, None).await?
        }
    };
    let settle_s = settle(&primary).await?.as_secs_f64();

    let mut env = extra_env;
    env.push((
        "ROOMSTATE__DATA_DIR".into(),
        work_dir.join("data").display().to_string(),
    ));
    env.push(("ROOMSTATE__ADMIN__TOKEN".into(), "bench".into()));
    env.push(("ROOMSTATE__JOURNAL__KIND".into(), "redis".into()));
    let engine = spawn_engine(bin, &env, &work_dir.join("recovery-engine.log"))?;
    let restart_s = engine.startup.as_secs_f64();
    let mut resp = awc::Client::default()
        .get(format!("{}/admin/stats", engine.base))
        .insert_header(("Authorization", "Bearer bench"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("stats: {e}"))?;
    let stats: serde_json::Value = resp.json().await?;
    let rooms_after = stats["open_rooms"].as_u64().unwrap_or(0);
    if rooms_after < rooms as u64 {
        bail!("only {rooms_after} of {rooms} rooms came back");
    }
    Ok(RecoveryReport {
        rooms,
        events_per_room: events,
        events_per_append: per_append,
        fill_s,
        settle_s,
        restart_s,
        rooms_after,
    })
}
