//! The cluster as an operator sees it: `GET /admin/cluster` on every node lists every node (id,
//! advertise URL, alive, rooms) and names itself; `GET /admin/rooms/{id}/owner` names one of them
//! — the same one on every node — for each room; new rooms spread over the nodes; the lease
//! gauge agrees; both routes want the admin token. Then a node dies: the others stop calling it
//! alive and take its rooms over, and count the takeovers.

use std::collections::{BTreeMap, BTreeSet};

use roomstate_testkit::cluster::{Owner, TestCluster};

use super::setup::{self, DEADLINE};
use crate::support::app::eventually;

const ROOMS: usize = 6;

/// Who owns each room, as every node that is up says (they must agree).
async fn owners_of(cluster: &TestCluster, rooms: &[String]) -> Option<BTreeMap<String, Owner>> {
    let mut owners = BTreeMap::new();
    for room in rooms {
        let mut named: Option<Owner> = None;
        for i in cluster.up() {
            let owner = cluster.owner_seen_by(i, room).await.ok()?;
            if named.as_ref().is_some_and(|n| *n != owner) {
                return None;
            }
            named = Some(owner);
        }
        owners.insert(room.clone(), named?);
    }
    Some(owners)
}

/// Rooms per owner.
fn count(owners: &BTreeMap<String, Owner>) -> BTreeMap<String, u64> {
    let mut rooms = BTreeMap::new();
    for owner in owners.values() {
        *rooms.entry(owner.node.clone()).or_default() += 1;
    }
    rooms
}

#[actix_rt::test]
async fn every_node_lists_the_cluster_and_names_one_owner_per_room() {
    let mut pieces = setup::start(3, 1500).await;
    let cluster = &mut pieces.cluster;
    let ids: BTreeSet<String> = (0..3).map(|i| cluster.node_id(i).to_owned()).collect();

    let mut rooms = Vec::new();
    for r in 0..ROOMS {
        rooms.push(cluster.create_room(r % 3, &format!("room {r}")).await);
    }

    for i in 0..3 {
        let view = cluster
            .cluster_view(i)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(view["self"], cluster.node_id(i), "{view}");
        let nodes = view["nodes"].as_array().expect("nodes");
        let listed: BTreeSet<String> = nodes
            .iter()
            .map(|n| n["id"].as_str().expect("a node's id").to_owned())
            .collect();
        assert_eq!(listed, ids, "{} lists {view}", cluster.node_id(i));
        for node in nodes {
            let j = cluster.index_of(node["id"].as_str().expect("id"));
            assert_eq!(node["advertise_url"], cluster.node(j), "{node}");
            assert_eq!(node["alive"], true, "{node}");
            assert!(node["rooms"].is_u64(), "rooms is a count: {node}");
        }
    }

    // One owner per room, the same on every node, one of the nodes; the rooms spread.
    let owners = eventually("every node to name one owner per room", DEADLINE, || {
        owners_of(cluster, &rooms)
    })
    .await;
    for (room, owner) in &owners {
        assert_eq!(owner.room, *room);
        assert!(ids.contains(&owner.node), "{owner:?} is not one of {ids:?}");
    }
    let per_node = count(&owners);
    assert_eq!(
        per_node.len(),
        3,
        "{ROOMS} rooms created one after the other go to the least-loaded node, so every \
         node owns some: {per_node:?}"
    );
    eventually(
        "/admin/cluster and roomstate_cluster_leases to count each node's rooms",
        DEADLINE,
        || async {
            for i in 0..3 {
                let view = cluster.cluster_view(i).await.ok()?;
                for node in view["nodes"].as_array()? {
                    let id = node["id"].as_str()?;
                    if node["rooms"].as_u64() != Some(per_node[id]) {
                        return None;
                    }
                }
                let leases = cluster.metric(i, "roomstate_cluster_leases").await;
                if leases != per_node[cluster.node_id(i)] as f64 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    for i in 0..3 {
        let (status, listed) = cluster.get(i, "/rooms").await;
        assert_eq!(status, 200);
        let listed: BTreeSet<&str> = listed["rooms"]
            .as_array()
            .expect("rooms")
            .iter()
            .filter_map(|r| r["id"].as_str())
            .collect();
        let all: BTreeSet<&str> = rooms.iter().map(String::as_str).collect();
        assert_eq!(listed, all, "GET /rooms on {}", cluster.node_id(i));
    }

    // Both routes are admin routes.
    for path in [
        "/admin/cluster".to_owned(),
        format!("/admin/rooms/{}/owner", rooms[0]),
    ] {
        let (status, body) = cluster.get(0, &path).await;
        assert_eq!(status, 401, "{path} without the admin token: {body}");
        assert_eq!(body["error"], "unauthorized", "{body}");
        let wrong = [("Authorization", "Bearer not-the-token".to_owned())];
        let (status, body) = cluster
            .try_request(0, "GET", &path, None, &wrong, DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 401, "{path} with a wrong token: {body}");
    }

    // A node dies: the others stop calling it alive and take its rooms over.
    let dead = 2;
    let dead_id = cluster.node_id(dead).to_owned();
    let lost = per_node[&dead_id];
    let before: Vec<u64> = owners.values().map(|o| o.epoch).collect();
    cluster.kill(dead);
    eventually(
        &format!("the survivors to see {dead_id} dead and hold every room's lease"),
        DEADLINE,
        || async {
            for i in cluster.up() {
                let view = cluster.cluster_view(i).await.ok()?;
                let entry = view["nodes"]
                    .as_array()?
                    .iter()
                    .find(|n| n["id"] == dead_id.as_str());
                // Listed as not alive, or no longer listed: either says it is gone.
                if entry.is_some_and(|n| n["alive"] != false) {
                    return None;
                }
            }
            let now = owners_of(cluster, &rooms).await?;
            if now.values().any(|o| o.node == dead_id) {
                return None;
            }
            // A lease is won in Redis a moment before the room opens on its new owner.
            let mut leases = 0.0;
            for i in cluster.up() {
                leases += cluster.metric(i, "roomstate_cluster_leases").await;
            }
            (leases == ROOMS as f64).then_some(())
        },
    )
    .await;
    let after = owners_of(cluster, &rooms)
        .await
        .expect("owners after the takeover");
    for ((room, owner), epoch) in after.iter().zip(&before) {
        if owners[room].node == dead_id {
            assert!(
                owner.epoch > *epoch,
                "{room} was taken over with epoch {} after {epoch}",
                owner.epoch
            );
        } else {
            assert_eq!(
                *owner, owners[room],
                "{room} was not {dead_id}'s and keeps its owner"
            );
        }
    }
    let mut takeovers = 0.0;
    let mut leases = 0.0;
    for i in cluster.up() {
        takeovers += cluster.metric(i, "roomstate_cluster_takeovers_total").await;
        leases += cluster.metric(i, "roomstate_cluster_leases").await;
    }
    assert!(
        takeovers >= lost as f64,
        "{dead_id} owned {lost} rooms; the survivors count {takeovers} takeovers"
    );
    assert_eq!(leases, ROOMS as f64, "the survivors hold every lease");
}
