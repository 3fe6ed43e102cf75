//! What every cluster test starts: a sentinel set and a MariaDB database of its own, and a
//! cluster of this package's `roomstate` binary on them — and the small questions the tests ask
//! of it (which nodes are not the owner, when writes resumed).

use std::time::{Duration, Instant};

use roomstate_testkit::cluster::{Owner, TestCluster};

use super::{voters::VoterLog, watchers::Watcher};
use crate::support::{app::ENGINE, mysql::TestDatabase, sentinel::SentinelSet};

/// How long the cluster may take to take a room over, catch up with load, or agree on an owner
/// on a loaded 2-core machine (the contract's own bound, `lease_ms` + 2 s, is asserted apart).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The pieces of one cluster test. Dropped in reverse order: the nodes, then the database, then
/// the sentinel set.
pub struct Pieces {
    pub cluster: TestCluster,
    pub db: TestDatabase,
    pub set: SentinelSet,
}

/// A sentinel set, a MariaDB database, and `nodes` nodes on them with a lease of `lease_ms`.
pub async fn start(nodes: usize, lease_ms: u64) -> Pieces {
    let set = SentinelSet::start().await;
    let db = TestDatabase::create();
    let cluster = TestCluster::builder(ENGINE)
        .nodes(nodes)
        .lease_ms(lease_ms)
        .start(&set, &db.url())
        .await;
    Pieces { cluster, db, set }
}

/// A room opened through node 0, with its owner and a watching socket on every other node.
pub struct WatchedRoom {
    pub room: String,
    pub owner: Owner,
    /// The owner's index.
    pub o: usize,
    /// Every other node's index.
    pub survivors: Vec<usize>,
    pub watchers: Vec<Watcher>,
}

/// Opens a room titled `title` and watches it from every node but its owner.
pub async fn watched_room(cluster: &TestCluster, title: &str) -> WatchedRoom {
    let roster = cluster.roster();
    let room = cluster.create_room(0, title).await;
    let owner = cluster.owner_of(&room).await;
    let o = cluster.index_of(&owner.node);
    let survivors = others(cluster, o);
    let mut watchers = Vec::new();
    for &i in &survivors {
        watchers.push(Watcher::start(&roster, i, &room, &format!("watch{i}")).await);
    }
    WatchedRoom {
        room,
        owner,
        o,
        survivors,
        watchers,
    }
}

/// Every node but `node`.
pub fn others(cluster: &TestCluster, node: usize) -> Vec<usize> {
    (0..cluster.len()).filter(|&i| i != node).collect()
}

/// When writes resumed after `since`, and through which node: the first acknowledgement of a
/// request *sent* after it (a request sent after a node died cannot have been acknowledged by
/// that node). `None` when none came.
pub fn resumed_after(logs: &[VoterLog], since: Instant) -> Option<(Duration, usize)> {
    logs.iter()
        .flat_map(|l| &l.acks)
        .filter(|a| a.sent > since)
        .map(|a| (a.at - since, a.node))
        .min()
}

/// The longest time between two consecutive acknowledgements (over all voters) in the window
/// that starts at `since`: how long writes stalled.
pub fn longest_stall_after(logs: &[VoterLog], since: Instant) -> Duration {
    let mut times: Vec<Instant> = logs
        .iter()
        .flat_map(|l| l.acks.iter().map(|a| a.at))
        .collect();
    times.push(since);
    times.sort_unstable();
    times
        .windows(2)
        .filter(|w| w[1] > since)
        .map(|w| w[1] - w[0].max(since))
        .max()
        .unwrap_or_default()
}
