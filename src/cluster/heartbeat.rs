//! The node's heartbeat loop, a quarter of the lease apart: write this node's record, read
//! everyone's, judge who is alive (`membership`), and act on it:
//! - a node judged dead, or gone from the records: the rooms here forget its sockets;
//! - rooms whose owner is dead, gone or nobody (released at a hand-off), and rooms this node's
//!   id owns but no actor here holds (a run of this node that ended): the live node that ranks
//!   highest for each (`placement::successor`) claims it under a new epoch and replays it;
//! - after a break in this node's own heartbeats longer than the lease (it was paused or cut
//!   off), and now and then anyway: every room here is checked against the journal's owner, and
//!   one taken meanwhile stops at once (its writes would be refused anyway — this stops its
//!   reads too).
//!
//! It never takes a room by its own clock alone: the claim in the journal is compare-and-set on
//! the epoch, so of two nodes that both think a room orphaned only one gets it.

use std::{
    collections::HashSet,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use roomstate_core::room::RoomId;
use roomstate_journal::Epoch;

use super::{placement, Cluster};

/// Scans for orphaned rooms every this many beats when nothing suggests one (a dead node, a
/// released room, a hint), so a room left by a crash in an odd moment is found anyway.
const SCAN_EVERY_BEATS: u64 = 8;
/// Checks this node's leases every this many beats even without a break in its heartbeats.
const CHECK_LEASES_EVERY_BEATS: u64 = 16;
/// A dead node's record is removed once it owns nothing and has been dead this long (it is
/// listed as not alive meanwhile).
const FORGET_DEAD_AFTER: Duration = Duration::from_secs(60);

pub(super) async fn run(cluster: Arc<Cluster>) {
    let every = (cluster.settings.lease / 4).max(Duration::from_millis(25));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dead_before: HashSet<String> = HashSet::new();
    let mut tick: u64 = 0;
    let mut chores = Chores::default();
    tracing::info!(node.id = %cluster.me(), lease_ms = cluster.settings.lease.as_millis() as u64,
        "joining the cluster");
    loop {
        ticker.tick().await;
        tick += 1;
        let record = cluster.record();
        let beat = tokio::time::timeout(cluster.settings.lease, cluster.journal.heartbeat(record));
        let sent = Instant::now();
        let records = match beat.await {
            Ok(Ok(records)) => records,
            Ok(Err(error)) => {
                beat_failed(&cluster, sent);
                tracing::debug!(%error, "heartbeat failed");
                continue;
            }
            Err(_) => {
                beat_failed(&cluster, sent);
                tracing::debug!("heartbeat timed out");
                continue;
            }
        };
        let now = Instant::now();
        cluster.placed.lock().clear();
        let (beat, dead, serving) = {
            let mut membership = cluster.membership.lock();
            let beat = membership.beat_ok(records, sent, now);
            let dead = membership.dead(now);
            let serving = membership.serving(now).len();
            (beat, dead, serving)
        };
        cluster.metrics.nodes_alive.set(serving as i64);
        cluster.refresh_gauges();
        if cluster.leaving.load(Ordering::SeqCst) {
            continue;
        }
        let newly_dead: Vec<&String> = dead.iter().filter(|n| !dead_before.contains(*n)).collect();
        for node in beat.vanished.iter().chain(newly_dead.iter().copied()) {
            tracing::warn!(node.id = %node, "node lost; its sockets here are gone, its rooms will be taken over");
            cluster.registry.forget_node(node);
        }
        for (node, started_ms) in &beat.restarted {
            tracing::info!(node.id = %node, started_ms, "node restarted; the sockets of its earlier run are gone");
            cluster.registry.forget_earlier_runs(node, *started_ms);
        }
        if beat.lapsed {
            tracing::warn!(node.id = %cluster.me(), "this node missed its heartbeats for longer than the lease; checking which rooms it still owns");
        }
        chores.leases_due |= beat.lapsed
            || cluster.leases_now.swap(false, Ordering::SeqCst)
            || tick.is_multiple_of(CHECK_LEASES_EVERY_BEATS);
        chores.scan_due |= cluster.scan_now.swap(false, Ordering::SeqCst)
            || !newly_dead.is_empty()
            || !beat.vanished.is_empty()
            || tick.is_multiple_of(SCAN_EVERY_BEATS);
        chores.start(&cluster, &dead);
        dead_before = dead.into_iter().collect();
    }
}

/// A heartbeat sent at `sent` failed: this node may be out of the cluster now, and counts
/// itself out of the live nodes once it is.
fn beat_failed(cluster: &Cluster, sent: Instant) {
    let mut membership = cluster.membership.lock();
    membership.beat_failed(sent);
    let serving = membership.serving(Instant::now()).len();
    cluster.metrics.nodes_alive.set(serving as i64);
}

/// The lease checks, and the scan for orphaned rooms with the clean-up of dead nodes, that the
/// beats asked for, each run as a task beside the loop, one of each kind at a time: taking many
/// rooms over, or a slow SQL store, can take longer than the lease, and a node whose beats waited
/// for that would be judged dead by the others, which would take its rooms, and stall the same
/// way. The lease checks have a task of their own so that a node back from a pause stops the
/// rooms taken from it at once, whatever scan is under way.
struct Chores {
    leases_due: bool,
    /// Due at the start, and whenever a scan left orphans for later.
    scan_due: bool,
    leases: Option<actix_rt::task::JoinHandle<()>>,
    scan: Option<actix_rt::task::JoinHandle<bool>>,
}

impl Default for Chores {
    fn default() -> Self {
        Self {
            leases_due: false,
            scan_due: true,
            leases: None,
            scan: None,
        }
    }
}

impl Chores {
    /// Starts what is due, unless the last task of its kind is still running (then it waits for
    /// a later beat, still due).
    fn start(&mut self, cluster: &Arc<Cluster>, dead: &[String]) {
        if self.leases_due && self.leases.as_ref().is_none_or(|task| task.is_finished()) {
            self.leases_due = false;
            let cluster = cluster.clone();
            self.leases = Some(actix_rt::spawn(async move {
                check_leases(&cluster).await;
            }));
        }
        if self.scan.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        if let Some(finished) = self.scan.take() {
            // Finished: its answer is ready (a scan that panicked left orphans, say).
            let orphans_left = futures_util::FutureExt::now_or_never(finished)
                .is_none_or(|answer| answer.unwrap_or(true));
            self.scan_due |= orphans_left;
        }
        let scan_now = std::mem::take(&mut self.scan_due);
        let (cluster, dead) = (cluster.clone(), dead.to_vec());
        self.scan = Some(actix_rt::spawn(async move {
            let orphans_left = scan_now && scan(&cluster).await;
            forget_long_dead(&cluster, &dead).await;
            orphans_left
        }));
    }
}

/// Takes the orphaned rooms this node ranks highest for. Answers whether any orphan was left
/// for later (someone else's, or not yet judgeable): the next beat scans again.
async fn scan(cluster: &Arc<Cluster>) -> bool {
    let rooms = match cluster.journal.open_rooms().await {
        Ok(rooms) => rooms,
        Err(error) => {
            tracing::debug!(%error, "scan for orphaned rooms failed");
            return true;
        }
    };
    let now = Instant::now();
    let me = cluster.me().to_owned();
    let (mine, left) = {
        let membership = cluster.membership.lock();
        if !membership.in_cluster(now) {
            return true;
        }
        let serving = membership.serving(now);
        let candidates: Vec<&str> = serving.iter().map(|n| n.id.as_str()).collect();
        let mut mine: Vec<(RoomId, Epoch)> = Vec::new();
        let mut left = false;
        for (room, owner) in rooms {
            if cluster.registry.get(&room).is_some()
                || cluster.is_claiming(&room)
                || cluster.registry.is_forgetting(&room)
            {
                continue;
            }
            let seen = match &owner {
                // Never claimed (written by an engine outside a cluster).
                None => Epoch::NONE,
                // Held by a run of this node that ended (a restart under the same id). Taken
                // back whoever ranks highest for it: the other nodes see this id alive (its
                // new run beats), so none of them takes it.
                Some(owner) if owner.node == me => {
                    mine.push((room, owner.epoch));
                    continue;
                }
                Some(owner) if membership.orphaned_by(&owner.node, now) => owner.epoch,
                Some(_) => continue,
            };
            match placement::successor(&room, &candidates) {
                Some(node) if node == me => mine.push((room, seen)),
                _ => left = true,
            }
        }
        (mine, left)
    };
    if !mine.is_empty() {
        tracing::info!(rooms = mine.len(), node.id = %me, "taking over orphaned rooms");
        cluster.adopt(mine).await;
    }
    left
}

/// Stops every room here whose lease the journal gives to someone else now.
async fn check_leases(cluster: &Arc<Cluster>) {
    let rooms = cluster.registry.open_room_ids();
    if rooms.is_empty() {
        return;
    }
    let owners = match cluster.journal.owners(rooms.clone()).await {
        Ok(owners) => owners,
        Err(error) => {
            tracing::warn!(%error, "cannot check this node's leases; retrying at the next beat");
            cluster.leases_now.store(true, Ordering::SeqCst);
            return;
        }
    };
    for (room, owner) in rooms.iter().zip(owners) {
        match owner {
            Some(owner) if owner.node == cluster.me() => cluster.registry.fence(room, owner.epoch),
            Some(owner) => {
                cluster.forget_owner(room);
                // Claimed by another node: under a newer epoch than any held here.
                cluster.registry.fence(room, owner.epoch);
                tracing::warn!(room.id = %room, node.id = %owner.node, epoch = %owner.epoch,
                    "room was taken over while this node was away");
            }
            // No owner at all: the room was closed (its log and lease deleted) by the node
            // that took it over while this one was away. A room closing here keeps its final
            // record and ignores this.
            None => {
                cluster.forget_owner(room);
                cluster.registry.fence(room, Epoch::NONE);
                tracing::warn!(room.id = %room,
                    "room was closed elsewhere while this node was away");
            }
        }
    }
}

/// Removes the records of nodes dead for long that own no room any more.
async fn forget_long_dead(cluster: &Arc<Cluster>, dead: &[String]) {
    let now = Instant::now();
    let long_dead: Vec<String> = {
        let membership = cluster.membership.lock();
        dead.iter()
            .filter(|node| {
                membership
                    .dead_for(node, now)
                    .is_some_and(|d| d >= FORGET_DEAD_AFTER)
            })
            .cloned()
            .collect()
    };
    if long_dead.is_empty() {
        return;
    }
    let Ok(rooms) = cluster.journal.open_rooms().await else {
        return;
    };
    for node in long_dead {
        let owns = rooms
            .iter()
            .any(|(_, owner)| owner.as_ref().is_some_and(|o| o.node == node));
        if !owns {
            if let Err(error) = cluster.journal.forget_node(node.clone()).await {
                tracing::debug!(node.id = %node, %error, "dead node's record not removed");
            } else {
                tracing::info!(node.id = %node, "removed the record of a node dead for long");
            }
        }
    }
}
