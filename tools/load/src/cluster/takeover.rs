//! Takeover time. A cluster under a steady open-loop WebSocket load (each client on one node,
//! every room with clients on every node) has the node that owns the most rooms killed with
//! SIGKILL; for each room it owned, the takeover time runs from the kill to the first
//! acknowledgement of a write sent after the kill. Only a survivor can give it (the killed node's
//! clients went with it), and only once it owns the room: after the killed node has been silent
//! for `cluster.lease_ms`, a survivor claims the room under a new epoch and replays it from the
//! journal. Meanwhile the survivors' clients keep sending on their schedule and get `unavailable`
//! (the room is moving), so the first ack after the takeover comes within one send interval of
//! a room's clients.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context as _};
use futures_util::future::join;
use roomstate_testkit::{cluster::TestCluster, sentinel_set::SentinelSet};
use serde::Serialize;

use super::deployment::{count_by_node, owners, start_cluster};
use crate::{
    engine::{self, Transport},
    room_acks::RoomAcks,
    stats::{median, Summary},
    workload::{Run, Workload},
};

/// Load after the warm-up before the kill.
const BEFORE_KILL: Duration = Duration::from_secs(1);
/// Load after the kill on top of the lease: the takeover itself (heartbeat, claim, replay) and
/// room to see it on a loaded machine.
const AFTER_LEASE: Duration = Duration::from_secs(6);

/// What one takeover measurement saw (a line of the JSON output, `"kind": "takeover"`).
#[derive(Debug, Clone, Serialize)]
pub struct Takeover {
    pub kind: &'static str,
    pub nodes: usize,
    pub lease_ms: u64,
    /// The node killed, and how many of the run's rooms it owned.
    pub killed: String,
    pub rooms: usize,
    pub rooms_moved: usize,
    /// Per moved room, from the kill to its first ack of a request sent after it, sorted.
    pub takeover_ms: Vec<f64>,
    /// Moved rooms that acknowledged nothing sent after the kill before the load ended.
    pub not_resumed: usize,
    pub min_ms: Option<f64>,
    pub median_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// The moved rooms' owners afterwards, and whether every one's epoch grew.
    pub new_owners: BTreeMap<String, usize>,
    pub epochs_grew: bool,
    /// The load over the whole run (the killed node's clients count as failed).
    pub load: Summary,
}

impl Takeover {
    pub fn line(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
        let owners: Vec<String> = self
            .new_owners
            .iter()
            .map(|(node, n)| format!("{node} {n}"))
            .collect();
        format!(
            "takeover: {} nodes, lease {} ms: killed {} (owner of {} of {} rooms); kill to first ack on a survivor: min {} ms, median {} ms, max {} ms{}; now owned by {}{}; {} requests refused meanwhile",
            self.nodes,
            self.lease_ms,
            self.killed,
            self.rooms_moved,
            self.rooms,
            ms(self.min_ms),
            ms(self.median_ms),
            ms(self.max_ms),
            if self.not_resumed > 0 {
                format!(" ({} rooms not resumed)", self.not_resumed)
            } else {
                String::new()
            },
            owners.join(", "),
            if self.epochs_grew { "" } else { " (an epoch did not grow!)" },
            self.load.refused,
        )
    }
}

/// Starts a `nodes`-node cluster with `cluster.lease_ms = lease_ms` (data and logs under `dir`),
/// drives `w` over WebSocket at `w.rate` (open loop; its duration is set here), kills the node
/// owning the most rooms and times each of its rooms' takeover.
pub async fn measure(
    bin: &Path,
    set: &SentinelSet,
    store_url: &str,
    nodes: usize,
    lease_ms: u64,
    w: &Workload,
    dir: &Path,
) -> anyhow::Result<Takeover> {
    if w.rate.is_none() {
        bail!("the takeover load is open loop: give it a rate");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cluster = start_cluster(bin, set, store_url, nodes, lease_ms, dir.to_path_buf()).await;
    let bases: Vec<String> = (0..cluster.len()).map(|i| cluster.node(i)).collect();
    let rooms = engine::create_rooms(&bases[0], w.rooms).await?;
    let w = Workload {
        duration: BEFORE_KILL + Duration::from_millis(lease_ms) + AFTER_LEASE,
        ..w.clone()
    };
    let room_acks = RoomAcks::default();
    let run = Run::start(&w).with_room_acks(room_acks.clone());
    let bar = crate::progress(
        (w.warmup + w.duration).as_secs_f64(),
        &format!("takeover {lease_ms} ms"),
    );
    let ticker = crate::tick(&bar, Some(run.acks.clone()));
    let kill_at = run.measure_from + BEFORE_KILL;
    let (driven, killed) = join(
        engine::drive(&bases, &rooms, Transport::Ws, &w, &run),
        kill_the_busiest_owner(&mut cluster, &rooms, &room_acks, kill_at),
    )
    .await;
    ticker.abort();
    bar.finish_and_clear();
    driven?;
    let Killed { node, at, moved } = killed?;

    let mut takeover_ms = Vec::new();
    let mut not_resumed = 0;
    for (index, _, _) in &moved {
        match room_acks.first_after_mark(*index) {
            Some(acked) => takeover_ms.push((acked - at).as_secs_f64() * 1e3),
            None => not_resumed += 1,
        }
    }
    takeover_ms.sort_by(f64::total_cmp);
    let survivor = cluster.up().first().copied().context("no node survived")?;
    let moved_rooms: Vec<String> = moved.iter().map(|(_, room, _)| room.clone()).collect();
    let after = owners(&cluster, survivor, &moved_rooms).await?;
    let epochs_grew = after
        .iter()
        .zip(&moved)
        .all(|(now, (_, _, epoch))| now.epoch > *epoch);
    let recorder = std::mem::take(&mut *run.recorder.borrow_mut());
    let load = Summary::new(
        &format!("{nodes}-node cluster, takeover"),
        &w,
        Transport::Ws.name(),
        w.clients(),
        &recorder,
    );
    Ok(Takeover {
        kind: "takeover",
        nodes,
        lease_ms,
        killed: node,
        rooms: rooms.len(),
        rooms_moved: moved.len(),
        min_ms: takeover_ms.first().copied(),
        median_ms: median(&takeover_ms),
        max_ms: takeover_ms.last().copied(),
        takeover_ms,
        not_resumed,
        new_owners: count_by_node(after.iter().map(|o| o.node.as_str())),
        epochs_grew,
        load,
    })
}

/// The node killed, when, and its rooms: (index in the run, id, epoch before).
struct Killed {
    node: String,
    at: Instant,
    moved: Vec<(usize, String, u64)>,
}

/// At `kill_at`, reads every room's owner, marks the clock and kills the node owning the most
/// (the lowest index among equals).
async fn kill_the_busiest_owner(
    cluster: &mut TestCluster,
    rooms: &[String],
    room_acks: &RoomAcks,
    kill_at: Instant,
) -> anyhow::Result<Killed> {
    actix_rt::time::sleep_until(kill_at.into()).await;
    let before = owners(cluster, 0, rooms).await?;
    let counts = count_by_node(before.iter().map(|o| o.node.as_str()));
    let victim = (0..cluster.len())
        .max_by_key(|&i| {
            (
                counts.get(cluster.node_id(i)).copied().unwrap_or(0),
                usize::MAX - i,
            )
        })
        .ok_or_else(|| anyhow!("a cluster without nodes"))?;
    let node = cluster.node_id(victim).to_owned();
    let moved = before
        .iter()
        .enumerate()
        .filter(|(_, owner)| owner.node == node)
        .map(|(i, owner)| (i, owner.room.clone(), owner.epoch))
        .collect();
    let at = Instant::now();
    room_acks.mark(at);
    cluster.kill(victim);
    Ok(Killed { node, at, moved })
}
