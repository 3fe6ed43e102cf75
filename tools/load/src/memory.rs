//! Memory: resident bytes per idle open room and per connected socket, measured on a fresh
//! engine process (its `VmRSS` before and after).

use std::{path::Path, time::Duration};

use anyhow::Context as _;
use futures_util::StreamExt;
use serde::Serialize;

use crate::{
    engine::create_rooms,
    process::{rss, spawn_engine},
};

#[derive(Debug, Serialize)]
pub struct MemoryReport {
    pub rooms: usize,
    pub sockets: usize,
    pub rss_start_bytes: u64,
    pub rss_rooms_bytes: u64,
    pub rss_sockets_bytes: u64,
    pub bytes_per_room: f64,
    pub bytes_per_socket: f64,
    pub create_rooms_s: f64,
}

/// Lets the engine settle (allocator, journal) before a reading.
const SETTLE: Duration = Duration::from_secs(2);

pub async fn measure(
    bin: &Path,
    work_dir: &Path,
    rooms: usize,
    sockets: usize,
) -> anyhow::Result<MemoryReport> {
    std::fs::create_dir_all(work_dir)?;
    let env = vec![
        (
            "ROOMSTATE__DATA_DIR".to_owned(),
            work_dir.join("data").display().to_string(),
        ),
        ("ROOMSTATE__ADMIN__TOKEN".to_owned(), "bench".to_owned()),
        (
            "ROOMSTATE__LIMITS__HTTP_RATE_PER_S".to_owned(),
            "0".to_owned(),
        ),
        // Every socket of the run is of this one client.
        (
            "ROOMSTATE__LIMITS__MAX_SOCKETS_PER_CLIENT".to_owned(),
            "1000000".to_owned(),
        ),
    ];
    let engine = spawn_engine(bin, &env, &work_dir.join("memory-engine.log"))?;
    actix_rt::time::sleep(SETTLE).await;
    let rss_start = rss(&engine)?;
    let started = std::time::Instant::now();
    let ids = create_rooms(&engine.base, rooms).await?;
    let create_rooms_s = started.elapsed().as_secs_f64();
    actix_rt::time::sleep(SETTLE).await;
    let rss_rooms = rss(&engine)?;

    // One client for every socket: its connection pool must not cap them (awc's default is 100).
    let client = awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .max_http_version(awc::http::Version::HTTP_11)
        .finish();
    let ws_base = engine.base.replacen("http", "ws", 1);
    let mut open = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let room = &ids[i % ids.len()];
        let url = format!("{ws_base}/rooms/{room}/ws?user=s{i}");
        let (_, mut framed) = client
            .ws(&url)
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("socket {i}: {e}"))?;
        framed.next().await.context("first state frame")?.ok();
        open.push(framed);
    }
    actix_rt::time::sleep(SETTLE).await;
    let rss_sockets = rss(&engine)?;
    drop(open);
    Ok(MemoryReport {
        rooms,
        sockets,
        rss_start_bytes: rss_start,
        rss_rooms_bytes: rss_rooms,
        rss_sockets_bytes: rss_sockets,
        bytes_per_room: (rss_rooms.saturating_sub(rss_start)) as f64 / rooms.max(1) as f64,
        bytes_per_socket: (rss_sockets.saturating_sub(rss_rooms)) as f64 / sockets.max(1) as f64,
        create_rooms_s,
    })
}
