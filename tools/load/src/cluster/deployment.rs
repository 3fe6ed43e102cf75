//! What the cluster benchmark measures: one engine with the cluster off, or a cluster of N
//! engines (the test kit's `TestCluster`), on the run's sentinel set and store, every process
//! with the benchmark's settings — one HTTP worker and one room thread each, as `scripts/bench`
//! runs the engine; replica acks on; the per-socket frame rate and the per-address request rate
//! off (every client is 127.0.0.1) — and the same log level (`info`, the test kit's for nodes).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, Context as _};
use roomstate_testkit::{
    cluster::TestCluster,
    engine::{DropPolicy, EngineProcess},
    sentinel_set::SentinelSet,
};

use crate::{cpu::Watched, process::spawn_engine};

/// Settings (without `ROOMSTATE__`) of every engine process the benchmark starts.
const BENCH_SETTINGS: &[(&str, &str)] = &[
    ("HTTP__WORKERS", "1"),
    ("ROOMS__THREADS", "1"),
    ("REDIS__MIN_REPLICA_ACKS", "1"),
    ("LIMITS__WS_RATE_PER_S", "1000000"),
    ("LIMITS__WS_BURST", "1000000"),
    ("LIMITS__HTTP_RATE_PER_S", "0"),
    // Every socket of the benchmark is of its one client.
    ("LIMITS__MAX_SOCKETS_PER_CLIENT", "1000000"),
];

/// The prefix of an engine process's name in the CPU figures (`engine`, `engine-node-0`, ...).
pub const ENGINE: &str = "engine";

/// Which deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One engine, `cluster.enabled = false`.
    Single,
    /// `nodes` engines in one cluster.
    Cluster { nodes: usize },
}

impl Shape {
    /// `single` or `cluster` (the JSON's `deployment`).
    pub fn slug(self) -> &'static str {
        match self {
            Shape::Single => "single",
            Shape::Cluster { .. } => "cluster",
        }
    }

    pub fn nodes(self) -> usize {
        match self {
            Shape::Single => 1,
            Shape::Cluster { nodes } => nodes,
        }
    }

    /// How a run is named in the output.
    pub fn label(self) -> String {
        match self {
            Shape::Single => "one engine".to_owned(),
            Shape::Cluster { nodes } => format!("{nodes}-node cluster"),
        }
    }
}

/// A running deployment; dropping it kills its processes.
pub enum Deployment {
    Single(EngineProcess),
    Cluster(TestCluster),
}

impl Deployment {
    /// Starts `shape` of `bin` on `set` and `store_url`, with its data dirs and logs under `dir`
    /// (a cluster's nodes with `cluster.lease_ms = lease_ms`), and waits until it serves.
    pub async fn start(
        shape: Shape,
        bin: &Path,
        set: &SentinelSet,
        store_url: &str,
        lease_ms: u64,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(match shape {
            Shape::Single => Deployment::Single(start_single(bin, set, store_url, dir)?),
            Shape::Cluster { nodes } => Deployment::Cluster(
                start_cluster(bin, set, store_url, nodes, lease_ms, dir.to_path_buf()).await,
            ),
        })
    }

    pub fn shape(&self) -> Shape {
        match self {
            Deployment::Single(_) => Shape::Single,
            Deployment::Cluster(cluster) => Shape::Cluster {
                nodes: cluster.len(),
            },
        }
    }

    /// Every node's base URL (`http://127.0.0.1:PORT`), in node order.
    pub fn bases(&self) -> Vec<String> {
        match self {
            Deployment::Single(engine) => vec![engine.base.clone()],
            Deployment::Cluster(cluster) => (0..cluster.len()).map(|i| cluster.node(i)).collect(),
        }
    }

    /// Every engine process, to watch its CPU (`engine`, or `engine-<node id>`).
    pub fn engine_processes(&self) -> anyhow::Result<Vec<Watched>> {
        match self {
            Deployment::Single(engine) => Ok(vec![Watched {
                name: ENGINE.to_owned(),
                pid: engine.pid().context("the engine is not running")?,
            }]),
            Deployment::Cluster(cluster) => Ok((0..cluster.len())
                .filter(|&i| cluster.roster().is_up(i))
                .map(|i| Watched {
                    name: format!("{ENGINE}-{}", cluster.node_id(i)),
                    pid: cluster.pid(i),
                })
                .collect()),
        }
    }

    /// How many of `rooms` each node owns (`GET /admin/rooms/{id}/owner`); one engine owns
    /// them all.
    pub async fn rooms_per_node(
        &self,
        rooms: &[String],
    ) -> anyhow::Result<BTreeMap<String, usize>> {
        match self {
            Deployment::Single(_) => Ok(BTreeMap::from([(ENGINE.to_owned(), rooms.len())])),
            Deployment::Cluster(cluster) => owners(cluster, 0, rooms)
                .await
                .map(|owners| count_by_node(owners.iter().map(|o| o.node.as_str()))),
        }
    }
}

/// Who owns each of `rooms`, as node `asked` says.
pub async fn owners(
    cluster: &TestCluster,
    asked: usize,
    rooms: &[String],
) -> anyhow::Result<Vec<roomstate_testkit::cluster::Owner>> {
    let mut owners = Vec::with_capacity(rooms.len());
    for room in rooms {
        owners.push(
            cluster
                .owner_seen_by(asked, room)
                .await
                .map_err(|e| anyhow!("the owner of {room}: {e}"))?,
        );
    }
    Ok(owners)
}

/// How many times each node id occurs.
pub fn count_by_node<'a>(nodes: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for node in nodes {
        *counts.entry(node.to_owned()).or_default() += 1;
    }
    counts
}

fn start_single(
    bin: &Path,
    set: &SentinelSet,
    store_url: &str,
    dir: &Path,
) -> anyhow::Result<EngineProcess> {
    let mut env: Vec<(String, String)> = vec![
        ("RUST_LOG".into(), "info".into()),
        ("ROOMSTATE__JOURNAL__KIND".into(), "redis".into()),
        ("ROOMSTATE__STORE__URL".into(), store_url.to_owned()),
        (
            "ROOMSTATE__DATA_DIR".into(),
            dir.join("data").display().to_string(),
        ),
        ("ROOMSTATE__ADMIN__TOKEN".into(), "bench".into()),
    ];
    env.extend(
        set.engine_settings()
            .into_iter()
            .map(|(key, value)| (format!("ROOMSTATE__{key}"), value)),
    );
    env.extend(
        BENCH_SETTINGS
            .iter()
            .map(|(key, value)| (format!("ROOMSTATE__{key}"), (*value).to_owned())),
    );
    spawn_engine(bin, &env, &dir.join("engine.log"))
}

/// A cluster of `nodes` with the benchmark's settings; its nodes die with it (SIGKILL: Redis is
/// emptied before the next deployment anyway).
pub async fn start_cluster(
    bin: &Path,
    set: &SentinelSet,
    store_url: &str,
    nodes: usize,
    lease_ms: u64,
    dir: PathBuf,
) -> TestCluster {
    let mut builder = TestCluster::builder(bin)
        .nodes(nodes)
        .lease_ms(lease_ms)
        .dir(dir)
        .on_drop(DropPolicy::Kill);
    for (key, value) in BENCH_SETTINGS {
        builder = builder.setting(key, value);
    }
    builder.start(set, store_url).await
}
