//! `roomstate-load cluster`: one engine against a cluster of engines on this machine, side by
//! side in one run, and the time a cluster takes to take over the rooms of a killed node.
//!
//! It starts what it needs with the test kit: a Redis sentinel set of its own (1 primary, 2
//! replicas, 3 sentinels on free loopback ports; replica acks on) and a MariaDB database of its
//! own unless `--store-url` names a store. Then, round by round (the order swapped every round,
//! Redis emptied before each deployment), one engine with the cluster off and an N-node cluster
//! each take the same closed-loop load over WebSocket and over HTTP (`throughput`): the
//! cluster's rooms spread over its owners, its clients over its nodes. Then, per lease given, a
//! cluster under a steady load has the owner of some rooms killed (`takeover`). Each run prints
//! a line and appends a JSON line to `--json`; a summary with the medians and ratios ends it.

mod deployment;
mod forwarded;
mod report;
mod takeover;
mod throughput;

use std::{path::PathBuf, time::Duration};

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use roomstate_testkit::{
    engine::workspace_binary, mysql::TestDatabase, redis_admin, sentinel_set::SentinelSet,
};

use self::deployment::{Deployment, Shape};
use crate::{engine::Transport, workload::Workload};

#[derive(Args)]
pub struct ClusterArgs {
    /// The `roomstate` binary (default: the one next to this tool).
    #[arg(long)]
    engine_bin: Option<PathBuf>,
    /// The SQL store of every engine (`mysql://...`); default: a MariaDB database of the run's
    /// own on the test server (`ROOMSTATE_TEST_MYSQL_URL`), dropped at the end.
    #[arg(long)]
    store_url: Option<String>,
    /// Nodes of the cluster measured against one engine.
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// Rounds; each runs one engine and the cluster, in turns.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Transports of the throughput runs, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ws,http")]
    transports: Vec<Transport>,
    #[arg(long, default_value_t = 20)]
    rooms: usize,
    /// Users (clients) per room.
    #[arg(long, default_value_t = 10)]
    users: usize,
    /// Measured seconds of each throughput run.
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    /// Seconds before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Share of requests that are chat messages, in percent.
    #[arg(long, default_value_t = 20)]
    messages: u32,
    /// The throughput runs' `cluster.lease_ms` (the engine's default).
    #[arg(long, default_value_t = 3000)]
    lease_ms: u64,
    /// `cluster.lease_ms` of each takeover measurement, comma-separated; `0` for none.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000")]
    takeover_lease_ms: Vec<u64>,
    /// Takeover measurements per lease, each on a fresh cluster (all the rooms of the killed
    /// node move at once, so each measurement is one takeover).
    #[arg(long, default_value_t = 3)]
    takeover_runs: usize,
    /// Nodes of the takeover measurements' cluster.
    #[arg(long, default_value_t = 2)]
    takeover_nodes: usize,
    /// Requests per second (all clients together, open loop) during a takeover measurement.
    #[arg(long, default_value_t = 4000.0)]
    takeover_rate: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The nodes' data dirs and logs.
    #[arg(long, default_value = "target/bench/cluster")]
    work_dir: PathBuf,
    /// Append one JSON object per run to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The SQL store: the one given, or a database of the run's own.
struct Store {
    url: String,
    _own: Option<TestDatabase>,
}

impl Store {
    fn open(url: Option<String>) -> anyhow::Result<Self> {
        match url {
            Some(url) => Ok(Store { url, _own: None }),
            None if cfg!(feature = "mysql") => {
                let own = TestDatabase::create();
                Ok(Store {
                    url: own.url(),
                    _own: Some(own),
                })
            }
            None => bail!(
                "give --store-url, or build with the feature `mysql` for a database of the run's own"
            ),
        }
    }
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    if args.nodes < 2 || args.takeover_nodes < 2 {
        bail!("a cluster to measure has at least 2 nodes");
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let bin = match &args.engine_bin {
        Some(bin) => bin.clone(),
        None => workspace_binary("roomstate").map_err(|e| anyhow!("{e}"))?,
    };
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("creating {}", args.work_dir.display()))?;
    eprintln!("starting a Redis sentinel set (1 primary, 2 replicas, 3 sentinels)");
    let set = SentinelSet::start().await;
    let store = Store::open(args.store_url.clone())?;
    let w = Workload {
        rooms: args.rooms,
        users: args.users,
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
        message_percent: args.messages,
        rate: None,
        seed: args.seed,
    };

    let mut runs = Vec::new();
    let cluster = Shape::Cluster { nodes: args.nodes };
    for round in 1..=args.rounds {
        let order = if round % 2 == 1 {
            [Shape::Single, cluster]
        } else {
            [cluster, Shape::Single]
        };
        for shape in order {
            empty_journal(&set).await?;
            let dir = args
                .work_dir
                .join(format!("round-{round}-{}", shape.slug()));
            let deployment =
                Deployment::start(shape, &bin, &set, &store.url, args.lease_ms, &dir).await?;
            let redis_pid = primary_pid(&set).await?;
            for &transport in &args.transports {
                let measured =
                    throughput::measure(&deployment, redis_pid, transport, &w, round).await?;
                println!("{}", measured.line());
                crate::write_json(&args.json, &measured)?;
                runs.push(measured);
            }
        }
    }

    let mut takeovers = Vec::new();
    let steady = Workload {
        rate: Some(args.takeover_rate),
        ..w.clone()
    };
    for &lease_ms in args.takeover_lease_ms.iter().filter(|&&ms| ms > 0) {
        for repeat in 1..=args.takeover_runs {
            empty_journal(&set).await?;
            let dir = args
                .work_dir
                .join(format!("takeover-{lease_ms}ms-{repeat}"));
            let takeover = takeover::measure(
                &bin,
                &set,
                &store.url,
                args.takeover_nodes,
                lease_ms,
                &steady,
                &dir,
            )
            .await?;
            println!("{}", takeover.line());
            crate::write_json(&args.json, &takeover)?;
            takeovers.push(takeover);
        }
    }
    report::print(&runs, &takeovers);
    Ok(())
}

/// The process id of the set's primary (`INFO server`), to watch its CPU.
async fn primary_pid(set: &SentinelSet) -> anyhow::Result<u32> {
    let primary = set.primary().await;
    let info = redis_admin::command(&primary, &["INFO", "server"])
        .await
        .map_err(|e| anyhow!("INFO server on {primary}: {e}"))?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .with_context(|| format!("no process_id in INFO server of {primary}"))
}

/// Empties the journal (and waits for both replicas to have it so), so the next deployment
/// starts with no rooms to recover and no nodes of the last one on record. Redis functions stay.
async fn empty_journal(set: &SentinelSet) -> anyhow::Result<()> {
    let primary = set.primary().await;
    redis_admin::command(&primary, &["FLUSHALL"])
        .await
        .map_err(|e| anyhow!("FLUSHALL on {primary}: {e}"))?;
    redis_admin::command(&primary, &["WAIT", "2", "900"])
        .await
        .map_err(|e| anyhow!("WAIT on {primary}: {e}"))?;
    Ok(())
}
