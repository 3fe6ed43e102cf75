//! A takeover while the SQL store hangs: replaying each room taken over asks the store whether
//! the room was closed, and every such call waits for the store's timeout. The node taking the
//! rooms over must go on beating meanwhile; if its beats waited for the takeover, the other
//! nodes would judge it dead after one lease and take its own rooms too. Once the store answers
//! again, the dead node's rooms serve again.

use std::time::Duration;

use roomstate_testkit::cluster::{Owner, TestCluster};

use super::setup::DEADLINE;
use crate::support::{
    app::{eventually, ENGINE},
    mysql::TestDatabase,
    sentinel::SentinelSet,
};

const LEASE_MS: u64 = 1500;
/// The store's timeout on every node: each room's replay waits this long while the store hangs.
const STORE_TIMEOUT_S: u64 = 3;
/// How long the store hangs after the dead node's rooms were claimed: several store timeouts,
/// each several leases long (the one fixed wait of the test: the length of the hang).
const HANG: Duration = Duration::from_secs(4 * STORE_TIMEOUT_S);
/// Rooms opened; placement spreads them over the three nodes.
const ROOMS: usize = 9;

#[actix_rt::test]
async fn a_node_taking_rooms_over_while_the_store_hangs_keeps_beating_and_its_own_rooms() {
    let set = SentinelSet::start().await;
    let db = TestDatabase::create();
    let (proxy, store_url) = db.behind_a_proxy();
    let mut cluster = TestCluster::builder(ENGINE)
        .nodes(3)
        .lease_ms(LEASE_MS)
        .setting("STORE__TIMEOUT_S", STORE_TIMEOUT_S)
        .start(&set, &store_url)
        .await;
    let mut owners: Vec<Owner> = Vec::new();
    for i in 0..ROOMS {
        let room = cluster.create_room(i % 3, &format!("room {i}")).await;
        owners.push(cluster.owner_of(&room).await);
    }
    let owns = |node: &str| owners.iter().filter(|o| o.node == node).count();
    let victim = (0..3)
        .max_by_key(|&i| owns(cluster.node_id(i)))
        .expect("three nodes");
    let victim_id = cluster.node_id(victim).to_owned();
    assert!(owns(&victim_id) > 0, "{owners:?}");

    proxy.stall();
    cluster.kill(victim);
    for owner in owners.iter().filter(|o| o.node == victim_id) {
        cluster
            .wait_for_owner_other_than(&owner.room, &victim_id, DEADLINE)
            .await;
    }
    actix_rt::time::sleep(HANG).await;
    // The survivors' own rooms: still theirs, under the same lease.
    for owner in owners.iter().filter(|o| o.node != victim_id) {
        let now = cluster.owner_of(&owner.room).await;
        assert_eq!(
            (&now.node, now.epoch),
            (&owner.node, owner.epoch),
            "room {} changed hands while a survivor took rooms over with the store hanging",
            owner.room
        );
    }

    proxy.resume();
    for owner in owners.iter().filter(|o| o.node == victim_id) {
        let path = format!("/rooms/{}", owner.room);
        eventually(
            &format!("room {} to serve again", owner.room),
            DEADLINE,
            || async {
                let survivor = cluster.up()[0];
                let (status, view) = cluster.get(survivor, &path).await;
                (status == 200 && view["status"] == "open").then_some(())
            },
        )
        .await;
        let survivor = cluster.up()[0];
        cluster.join(survivor, &owner.room, "ann").await;
        let (status, tally) = cluster.vote(survivor, &owner.room, "ann", "pro").await;
        assert_eq!(status, 200, "a vote in a room taken over: {tally}");
    }
}

/// A close through a node that does not own the room, while the store hangs for longer than all
/// the tries of a node-to-node call (three of 15 s): the non-owner waits for the owner's own
/// answer (the store's `503`, the room open again) instead of taking the slow owner for a gone
/// one.
#[actix_rt::test]
async fn a_slow_close_forwarded_to_the_owner_gets_the_owners_answer() {
    // Longer than the three tries of 15 s a call to a node that does not answer gets.
    const SLOW_STORE_S: u64 = 50;
    let set = SentinelSet::start().await;
    let db = TestDatabase::create();
    let (proxy, store_url) = db.behind_a_proxy();
    let cluster = TestCluster::builder(ENGINE)
        .nodes(2)
        .lease_ms(3000)
        .setting("STORE__TIMEOUT_S", SLOW_STORE_S)
        .start(&set, &store_url)
        .await;
    let room = cluster.create_room(0, "slow close").await;
    let owner = cluster.owner_of(&room).await;
    let other = 1 - cluster.index_of(&owner.node);

    proxy.stall();
    let (status, refused) = cluster.close_room(other, &room).await;
    assert_eq!(
        (status.as_u16(), refused["error"].as_str()),
        (503, Some("unavailable")),
        "{refused}"
    );
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("no answer within {}", SLOW_STORE_S * 1000)),
        "the owner's answer, about the store: {refused}"
    );
    proxy.resume();
    let closed = eventually("the close once the store answers", DEADLINE, || async {
        let (status, body) = cluster.close_room(other, &room).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(closed["status"], "closed");
}
