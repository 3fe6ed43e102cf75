//! One measured closed-loop run against a deployment: its rooms created through its first node
//! (a cluster opens each new room on its least-loaded node, so they spread over the owners), the
//! clients of `engine::drive` each on one node, taking the nodes in turn (so in a cluster half of
//! a room's clients are on a node that does not own it), and over the measured window the CPU of
//! every engine process, of the Redis primary and of the load generator itself, and the mutations
//! a cluster forwarded between its nodes.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::Serialize;

use super::{
    deployment::{Deployment, ENGINE},
    forwarded,
};
use crate::{
    cpu::{self, Watched},
    engine::{self, Transport},
    stats::Summary,
    workload::{Run, Workload},
};

/// The Redis primary's name in the CPU figures.
pub const REDIS: &str = "redis-primary";
/// The load generator's name in the CPU figures.
pub const LOAD: &str = "load";

/// What one run measured (a line of the JSON output, `"kind": "throughput"`).
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub kind: &'static str,
    /// `single` or `cluster`.
    pub deployment: &'static str,
    pub nodes: usize,
    pub round: usize,
    #[serde(flatten)]
    pub summary: Summary,
    /// CPU of every engine process together, per acknowledged mutation.
    pub engine_us_per_ack: f64,
    pub redis_us_per_ack: f64,
    pub load_us_per_ack: f64,
    /// Of the acknowledged mutations, the share forwarded to another node (cluster only).
    pub forwarded_share: Option<f64>,
    /// The run's rooms per owner.
    pub rooms_per_node: BTreeMap<String, usize>,
}

impl Measured {
    pub fn line(&self) -> String {
        let forwarded = self
            .forwarded_share
            .map(|share| format!(", {:.0} % forwarded", share * 100.0))
            .unwrap_or_default();
        let rooms: Vec<String> = self
            .rooms_per_node
            .iter()
            .map(|(node, n)| format!("{node} {n}"))
            .collect();
        format!(
            "round {} {:<16} {:<4} {:>7.0} acks/s  p50 {:>6.2} ms  p99 {:>7.2} ms  engine {:>5.1} µs/ack  redis {:>5.1} µs/ack  load {:>5.1} µs/ack{forwarded}  (rooms: {}; {} refused, {} failed)",
            self.round,
            self.summary.target,
            self.summary.transport,
            self.summary.throughput,
            self.summary.latency_ms.p50,
            self.summary.latency_ms.p99,
            self.engine_us_per_ack,
            self.redis_us_per_ack,
            self.load_us_per_ack,
            rooms.join(", "),
            self.summary.refused,
            self.summary.failed,
        )
    }
}

/// Runs `w` (closed loop) over `transport` against `deployment`, whose journal's primary is the
/// process `redis_pid`.
pub async fn measure(
    deployment: &Deployment,
    redis_pid: u32,
    transport: Transport,
    w: &Workload,
    round: usize,
) -> anyhow::Result<Measured> {
    let shape = deployment.shape();
    let bases = deployment.bases();
    let first = bases.first().context("a deployment without nodes")?;
    let rooms = engine::create_rooms(first, w.rooms).await?;
    let rooms_per_node = deployment.rooms_per_node(&rooms).await?;
    let mut watched = deployment.engine_processes()?;
    watched.push(Watched {
        name: REDIS.to_owned(),
        pid: redis_pid,
    });
    watched.push(Watched {
        name: LOAD.to_owned(),
        pid: std::process::id(),
    });

    let label = shape.label();
    let run = Run::start(w);
    let bar = crate::progress(
        (w.warmup + w.duration).as_secs_f64(),
        &format!("{label} {}", transport.name()),
    );
    let ticker = crate::tick(&bar, Some(run.acks.clone()));
    let (from, until) = (run.measure_from, run.end);
    let cpu_window = actix_rt::spawn(async move { cpu::over_window(&watched, from, until).await });
    let forwarded_window = matches!(deployment, Deployment::Cluster(_)).then(|| {
        let bases = bases.clone();
        actix_rt::spawn(forwarded::over_window(bases, from, until))
    });
    let driven = engine::drive(&bases, &rooms, transport, w, &run).await;
    ticker.abort();
    bar.finish_and_clear();
    driven?;

    let recorder = std::mem::take(&mut *run.recorder.borrow_mut());
    let mut summary = Summary::new(&label, w, transport.name(), w.clients(), &recorder);
    summary.cpu = cpu::per_ack(cpu_window.await.context("CPU sampler")??, summary.acked);
    let us_per_ack = |wanted: &dyn Fn(&str) -> bool| -> f64 {
        summary
            .cpu
            .iter()
            .filter(|(name, _)| wanted(name))
            .map(|(_, used)| used.us_per_ack)
            .sum()
    };
    let engine_us_per_ack = us_per_ack(&|name| name.starts_with(ENGINE));
    let redis_us_per_ack = us_per_ack(&|name| name == REDIS);
    let load_us_per_ack = us_per_ack(&|name| name == LOAD);
    let forwarded_share = match forwarded_window {
        Some(window) => {
            let forwarded = window.await.context("forwarded-calls sampler")??;
            Some(forwarded as f64 / summary.acked.max(1) as f64)
        }
        None => None,
    };
    Ok(Measured {
        kind: "throughput",
        deployment: shape.slug(),
        nodes: shape.nodes(),
        round,
        summary,
        engine_us_per_ack,
        redis_us_per_ack,
        load_us_per_ack,
        forwarded_share,
        rooms_per_node,
    })
}
