//! A cluster of engines (docs/api.md and docs/architecture.md, "A cluster of engines"): several
//! nodes share one Redis journal and one SQL store and serve as one. Each open room has one owner,
//! under a lease (node, epoch) kept in the room's owner hash; the journal's fenced append refuses
//! any write under an older epoch, so a node that lost a room can make nothing durable for it.
//!
//! This module is the cluster's half of the engine; the rooms (`room`) know nothing of it:
//! - `membership`: who is alive, judged from heartbeat progress alone (pure);
//! - `placement`: where a new room goes, who takes an orphaned one (pure);
//! - `heartbeat`: the loop that beats, judges, takes over dead nodes' rooms and checks this
//!   node's own leases after a pause;
//! - `router`: what the edges call: a room here goes to the registry, a room elsewhere to its
//!   owner (`client`, `wire`), and a socket for a room elsewhere to this node's mirror of it;
//! - `mirror`, `mirrors`: following rooms owned elsewhere from the journal, for sockets here;
//! - `handoff`: giving every room to other nodes at SIGTERM;
//! - `metrics`: what it counts on `/metrics`.

pub(crate) mod client;
mod handoff;
mod heartbeat;
mod membership;
pub(crate) mod metrics;
mod mirror;
pub(crate) mod mirrors;
mod placement;
pub(crate) mod router;
pub(crate) mod wire;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use parking_lot::{Mutex, RwLock};
use roomstate_core::room::RoomId;
use roomstate_journal::{
    redis::{Adopted, NodeRecord, Owner, RedisJournal},
    Epoch,
};
use serde::Serialize;

pub(crate) use self::handoff::hand_off;
use self::{client::NodeClient, membership::Membership, metrics::ClusterMetrics, mirrors::Mirrors};
use crate::room::{
    failure::RoomFailure,
    registry::{Adoption, RecoveryError, Registry},
};

/// The cluster settings (`[cluster]`), checked at start.
#[derive(Debug, Clone)]
pub(crate) struct ClusterSettings {
    pub(crate) node_id: String,
    pub(crate) advertise_url: String,
    pub(crate) secret: String,
    /// How long a silent node keeps its rooms.
    pub(crate) lease: Duration,
}

/// `GET /admin/cluster`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClusterView {
    #[serde(rename = "self")]
    pub(crate) me: String,
    pub(crate) nodes: Vec<NodeView>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeView {
    pub(crate) id: String,
    pub(crate) advertise_url: String,
    pub(crate) alive: bool,
    pub(crate) rooms: u64,
}

/// Owners cached at most: past it the cache starts over (a closed room's entry is never read
/// again, so without a bound a long-lived node would keep one per room it ever routed).
const OWNERS_CACHED: usize = 65_536;

/// This node's part in the cluster.
pub(crate) struct Cluster {
    settings: ClusterSettings,
    journal: RedisJournal,
    registry: Arc<Registry>,
    membership: Mutex<Membership>,
    client: NodeClient,
    /// Room owners as last read from the journal (dropped when a call finds one wrong).
    owners: RwLock<HashMap<RoomId, Owner>>,
    /// Rooms this node is claiming right now (created or adopted): not orphans, whatever their
    /// owner hash says meanwhile.
    claiming: Mutex<HashSet<RoomId>>,
    /// Rooms placed on each node since its last heartbeat count (so a burst of creations does
    /// not all go to the node that was least loaded a moment ago).
    placed: Mutex<HashMap<String, u64>>,
    mirrors: Mirrors,
    metrics: ClusterMetrics,
    /// This run's start (its own clock), and its heartbeats so far.
    started_ms: u64,
    beats: AtomicU64,
    /// Handing over at SIGTERM: takes no new rooms.
    leaving: AtomicBool,
    /// An adoption hint arrived (a hand-off), or a takeover failed: the next tick scans at once.
    scan_now: AtomicBool,
    /// A lease check failed: the next tick checks again.
    leases_now: AtomicBool,
}

impl Cluster {
    pub(crate) fn new(
        settings: ClusterSettings,
        journal: RedisJournal,
        registry: Arc<Registry>,
        mirrors: Mirrors,
        metrics: ClusterMetrics,
    ) -> Arc<Self> {
        let started_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        crate::room::outbound::start_run(started_ms);
        Arc::new(Self {
            membership: Mutex::new(Membership::new(settings.node_id.clone(), settings.lease)),
            client: NodeClient::new(settings.secret.clone()),
            settings,
            journal,
            registry,
            owners: RwLock::new(HashMap::new()),
            claiming: Mutex::new(HashSet::new()),
            placed: Mutex::new(HashMap::new()),
            mirrors,
            metrics,
            started_ms,
            beats: AtomicU64::new(0),
            leaving: AtomicBool::new(false),
            scan_now: AtomicBool::new(false),
            leases_now: AtomicBool::new(false),
        })
    }

    /// Starts the heartbeat loop on `arbiter`.
    pub(crate) fn start(self: &Arc<Self>, arbiter: &actix::ArbiterHandle) {
        let cluster = self.clone();
        arbiter.spawn(async move { heartbeat::run(cluster).await });
    }

    pub(crate) fn me(&self) -> &str {
        &self.settings.node_id
    }

    pub(crate) fn secret(&self) -> &str {
        &self.settings.secret
    }

    pub(crate) fn client(&self) -> &NodeClient {
        &self.client
    }

    pub(crate) fn mirrors(&self) -> &Mirrors {
        &self.mirrors
    }

    pub(crate) fn metrics(&self) -> &ClusterMetrics {
        &self.metrics
    }

    /// Brings the gauges up to date (before `/metrics` is rendered): the leases this node holds
    /// are the rooms open here now, not as of the last heartbeat.
    pub(crate) fn refresh_gauges(&self) {
        self.metrics
            .leases
            .set(i64::try_from(self.registry.open_rooms()).unwrap_or(i64::MAX));
    }

    /// Whether this node is in the cluster now (`/readyz`): `None` if so, else why not.
    pub(crate) fn not_ready(&self) -> Option<String> {
        let now = Instant::now();
        if self.leaving.load(Ordering::SeqCst) {
            return Some("this node is handing its rooms over and leaving the cluster".into());
        }
        (!self.membership.lock().in_cluster(now)).then(|| {
            format!(
                "this node is not in the cluster: no heartbeat reached Redis within the last \
                 {} ms (cluster.lease_ms)",
                self.settings.lease.as_millis()
            )
        })
    }

    /// `GET /admin/cluster`.
    pub(crate) fn view(&self) -> ClusterView {
        let now = Instant::now();
        let nodes = self
            .membership
            .lock()
            .view(now)
            .into_iter()
            .map(|(record, alive)| NodeView {
                id: record.id,
                advertise_url: record.advertise_url,
                alive,
                rooms: record.rooms,
            })
            .collect();
        ClusterView {
            me: self.settings.node_id.clone(),
            nodes,
        }
    }

    /// The room's owner as the journal says now (`GET /admin/rooms/{id}/owner`).
    pub(crate) async fn owner_now(&self, room: &RoomId) -> Result<Option<Owner>, RoomFailure> {
        self.owners.write().remove(room);
        self.owner(room).await
    }

    /// The room's owner: cached, or read from the journal.
    pub(crate) async fn owner(&self, room: &RoomId) -> Result<Option<Owner>, RoomFailure> {
        if let Some(owner) = self.owners.read().get(room) {
            return Ok(Some(owner.clone()));
        }
        let owners = self
            .journal
            .owners(vec![room.clone()])
            .await
            .map_err(|e| RoomFailure::Unavailable(e.to_string()))?;
        let owner = owners.into_iter().next().flatten();
        if let Some(owner) = &owner {
            self.cache_owner(room, owner.clone());
        }
        Ok(owner)
    }

    fn cache_owner(&self, room: &RoomId, owner: Owner) {
        let mut owners = self.owners.write();
        if owners.len() >= OWNERS_CACHED {
            owners.clear();
        }
        owners.insert(room.clone(), owner);
    }

    /// A call found the cached owner of `room` wrong: read it again next time.
    pub(crate) fn forget_owner(&self, room: &RoomId) {
        self.owners.write().remove(room);
    }

    /// Where a live node that owns rooms is reached, if `node` is one.
    pub(crate) fn url_of_live(&self, node: &str) -> Option<String> {
        let now = Instant::now();
        let membership = self.membership.lock();
        if node.is_empty() || !membership.alive(node, now) {
            return None;
        }
        membership.url_of(node).map(str::to_owned)
    }

    /// Whether a call to `node` for `room` is still worth waiting for: the node is alive as far
    /// as this node can tell, and the room has not been opened here meanwhile (taken over).
    pub(crate) fn still_owner(&self, room: &RoomId, node: &str) -> bool {
        self.registry.get(room).is_none() && self.url_of_live(node).is_some()
    }

    /// How often a call waiting on another node checks that it is `still_owner`.
    pub(crate) fn owner_check_every(&self) -> Duration {
        self.settings.lease / 4
    }

    /// Every live node other than this one, with its URL (`GET /rooms` asks them all).
    pub(crate) fn live_peers(&self) -> Vec<(String, String)> {
        let now = Instant::now();
        let membership = self.membership.lock();
        membership
            .view(now)
            .into_iter()
            .filter(|(record, alive)| *alive && record.id != self.settings.node_id)
            .map(|(record, _)| (record.id, record.advertise_url))
            .collect()
    }

    /// The node a new room goes to: the least loaded live one (this one when the cluster
    /// cannot tell, or is only this node). Counts the placement.
    pub(crate) fn place_new_room(&self) -> (String, String) {
        let now = Instant::now();
        let me = (
            self.settings.node_id.clone(),
            self.settings.advertise_url.clone(),
        );
        let membership = self.membership.lock();
        let serving = membership.serving(now);
        let mut placed = self.placed.lock();
        let chosen = placement::least_loaded(&serving, &self.settings.node_id, |id| {
            placed.get(id).copied().unwrap_or(0)
        })
        .map(|node| (node.id.clone(), node.advertise_url.clone()));
        let (id, url) = match chosen {
            Some(node) => node,
            None => me,
        };
        *placed.entry(id.clone()).or_default() += 1;
        (id, url)
    }

    /// Claims a new room for this node before anything of it is written: every node then
    /// knows its owner. The guard keeps the room from being taken for an orphan meanwhile.
    pub(crate) async fn claim_new(&self, room: &RoomId) -> Result<Claiming<'_>, RoomFailure> {
        let mut guard = self.claiming(room.clone());
        guard.epoch = self
            .journal
            .claim(room.clone(), Some(Epoch::NONE), self.me(), true)
            .await
            .map_err(|e| RoomFailure::Unavailable(e.to_string()))?;
        self.cache_owner(
            room,
            Owner {
                node: self.me().to_owned(),
                epoch: guard.epoch,
            },
        );
        Ok(guard)
    }

    fn claiming(&self, room: RoomId) -> Claiming<'_> {
        self.claiming.lock().insert(room.clone());
        Claiming {
            cluster: self,
            room,
            epoch: Epoch::NONE,
        }
    }

    /// Takes `rooms` (each at the epoch it was seen at) for this node and starts those won.
    /// Answers how many this node now owns.
    pub(crate) async fn adopt(&self, rooms: Vec<(RoomId, Epoch)>) -> usize {
        if self.leaving.load(Ordering::SeqCst) {
            // A node leaving too (two stopped at once) would hold them only to hand them on:
            // the nodes that stay find them in their scans.
            tracing::info!(rooms = rooms.len(), "not taking rooms while leaving");
            return 0;
        }
        let rooms: Vec<(RoomId, Epoch)> = {
            let mut claiming = self.claiming.lock();
            rooms
                .into_iter()
                .filter(|(room, _)| {
                    self.registry.get(room).is_none() && claiming.insert(room.clone())
                })
                .collect()
        };
        if rooms.is_empty() {
            return 0;
        }
        let ids: Vec<RoomId> = rooms.iter().map(|(room, _)| room.clone()).collect();
        let started = Instant::now();
        let adopted = self.journal.adopt(rooms, self.me()).await;
        let mut won = 0;
        match adopted {
            Ok(adopted) => {
                for outcome in adopted {
                    match outcome {
                        Adopted::Won(log) => {
                            let (room, epoch) = (log.room.clone(), log.epoch);
                            self.cache_owner(
                                &room,
                                Owner {
                                    node: self.me().to_owned(),
                                    epoch,
                                },
                            );
                            match self.registry.adopt(log).await {
                                Ok(Adoption::Opened) => {
                                    won += 1;
                                    self.metrics.takeovers.inc();
                                    tracing::info!(room.id = %room, %epoch, node.id = %self.me(), "room taken over");
                                }
                                Ok(Adoption::Closed) => {}
                                Err(error @ RecoveryError::Replay(_)) => {
                                    tracing::error!(room.id = %room, %epoch, %error,
                                        "a room taken over cannot be replayed; it needs an operator");
                                }
                                // The journal or the store did not answer: claimed and not
                                // started, the room is taken back (as this node's) by a scan.
                                Err(error) => {
                                    tracing::warn!(room.id = %room, %epoch, %error,
                                        "a room taken over could not be started yet; retrying at the next scan");
                                    self.scan_now.store(true, Ordering::SeqCst);
                                }
                            }
                        }
                        Adopted::Lost { room, why } => {
                            self.forget_owner(&room);
                            tracing::debug!(room.id = %room, %why, "room not taken over");
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(rooms = ids.len(), %error, "taking rooms over failed; retrying at the next beat");
                self.scan_now.store(true, Ordering::SeqCst);
            }
        }
        {
            let mut claiming = self.claiming.lock();
            for room in &ids {
                claiming.remove(room);
            }
        }
        if won > 0 {
            tracing::info!(
                rooms = won,
                seconds = started.elapsed().as_secs_f64(),
                "rooms taken over"
            );
        }
        won
    }

    /// Rooms handed to this node (a hand-off): take them at once.
    pub(crate) fn adopt_soon(self: &Arc<Self>, rooms: Vec<(RoomId, Epoch)>) {
        let cluster = self.clone();
        actix_rt::spawn(async move {
            cluster.adopt(rooms).await;
        });
        self.scan_now.store(true, Ordering::SeqCst);
    }

    /// A node's record for this node's next heartbeat.
    fn record(&self) -> NodeRecord {
        NodeRecord {
            id: self.settings.node_id.clone(),
            advertise_url: self.settings.advertise_url.clone(),
            rooms: self.registry.open_rooms() as u64,
            beat: self.beats.fetch_add(1, Ordering::SeqCst) + 1,
            started_ms: self.started_ms,
            leaving: self.leaving.load(Ordering::SeqCst),
        }
    }

    fn is_claiming(&self, room: &RoomId) -> bool {
        self.claiming.lock().contains(room)
    }
}

/// A room this node is claiming: kept from the orphan scan until dropped.
pub(crate) struct Claiming<'a> {
    cluster: &'a Cluster,
    room: RoomId,
    pub(crate) epoch: Epoch,
}

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        self.cluster.claiming.lock().remove(&self.room);
    }
}
