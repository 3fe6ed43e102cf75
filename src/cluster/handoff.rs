//! Leaving the cluster at SIGTERM: this node stops taking rooms (its record says `leaving`),
//! drains every room (every pending event durable, sockets ended), releases each room's lease
//! and tells the node that ranks highest for it to take it now — the successor claims it at the
//! epoch it was released under, so nothing can slip in between. A room that did not drain in
//! time is not released: its lease lapses and a live node takes it over like a dead node's.

use std::{
    collections::HashMap,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use actix_web::http::Method;
use futures_util::future::join_all;
use roomstate_core::room::RoomId;
use roomstate_journal::Epoch;

use super::{
    placement,
    wire::{AdoptCall, HandedRoom},
    Cluster,
};

/// How long telling a successor may take before the lease scan is left to find the room.
const TELL_TIMEOUT: Duration = Duration::from_secs(3);

/// Drains this node's rooms within `deadline` and hands them to the other live nodes.
pub(crate) async fn hand_off(cluster: &Cluster, deadline: Duration) {
    cluster.leaving.store(true, Ordering::SeqCst);
    // Said at once, so no new room is placed here meanwhile.
    if let Err(error) = cluster.journal.heartbeat(cluster.record()).await {
        tracing::warn!(%error, "could not announce the hand-off; going on");
    }
    let drained = cluster.registry.shutdown(deadline).await;
    let released = join_all(drained.into_iter().map(|(room, epoch)| async move {
        match cluster.journal.release(epoch, room.clone()).await {
            Ok(()) => Some((room, epoch)),
            Err(error) => {
                tracing::warn!(room.id = %room, %epoch, %error, "lease not released; it will lapse");
                None
            }
        }
    }))
    .await;
    let released: Vec<(RoomId, Epoch)> = released.into_iter().flatten().collect();
    let successors = cluster.membership.lock().successors(Instant::now());
    let names: Vec<&str> = successors.iter().map(|(id, _)| id.as_str()).collect();
    let mut by_node: HashMap<&str, Vec<HandedRoom>> = HashMap::new();
    for (room, epoch) in &released {
        if let Some(node) = placement::successor(room, &names) {
            by_node.entry(node).or_default().push(HandedRoom {
                room: room.clone(),
                epoch: epoch.0,
            });
        }
    }
    let told = join_all(by_node.into_iter().map(|(node, rooms)| {
        let url = successors
            .iter()
            .find(|(id, _)| id == node)
            .map(|(_, url)| url.clone())
            .unwrap_or_default();
        async move {
            let count = rooms.len();
            let call = AdoptCall { rooms };
            let tell = cluster.client().send(
                node,
                &url,
                Method::POST,
                "/internal/cluster/adopt",
                Some(&call),
            );
            match tokio::time::timeout(TELL_TIMEOUT, tell).await {
                Ok(Ok(())) => {
                    tracing::info!(node.id = %node, rooms = count, "rooms handed over");
                }
                Ok(Err(error)) => {
                    tracing::warn!(node.id = %node, %error, "successor not told; its scan takes the rooms");
                }
                Err(_) => {
                    tracing::warn!(node.id = %node, "successor did not answer in time; its scan takes the rooms");
                }
            }
        }
    }));
    told.await;
    if let Err(error) = cluster.journal.forget_node(cluster.me().to_owned()).await {
        tracing::warn!(%error, "this node's record not removed; it will show as dead");
    }
    tracing::info!(node.id = %cluster.me(), rooms = released.len(), "left the cluster");
}
