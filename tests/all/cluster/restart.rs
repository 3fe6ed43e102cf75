//! A node restarted under its own id within its lease (a supervisor bringing a crashed engine
//! back): the other nodes never judged it dead, so none of them takes its rooms over; it must
//! take every one of them back itself — also those another node ranks higher for — and each must
//! serve again through every node, with what was acknowledged before the crash.

use std::time::{Duration, Instant};

use roomstate_testkit::{cluster::TestCluster, ws::WsClient};

use super::setup::{self, DEADLINE};
use crate::support::app::eventually;

/// Long enough for a debug engine to start again well within it on a loaded machine.
const LEASE_MS: u64 = 12_000;
/// Rooms node 0 owns before it is killed. Each room ranks one of the three nodes highest, so
/// about two thirds of them rank another node higher: the ones a restarted node left behind
/// (that none of nine does is one chance in 20 000).
const OWNED: usize = 9;

#[actix_rt::test]
async fn a_node_restarted_within_its_lease_takes_back_every_room_it_owned() {
    let mut pieces = setup::start(3, LEASE_MS).await;
    let cluster = &mut pieces.cluster;
    let me = cluster.node_id(0).to_owned();
    // Rooms opened through every node, until node 0 owns enough (new rooms go to the
    // least-loaded node), each with one vote acknowledged.
    let mut owned = Vec::new();
    for n in 0.. {
        assert!(n < 200, "node 0 owns {} rooms of {n}", owned.len());
        let room = cluster.create_room(n % 3, &format!("restart {n}")).await;
        let owner = cluster.owner_of(&room).await;
        if owner.node == me {
            cluster.join(0, &room, "ann").await;
            let (status, tally) = cluster.vote(0, &room, "ann", "pro").await;
            assert_eq!(status, 200, "{tally}");
            owned.push((room, owner));
            if owned.len() == OWNED {
                break;
            }
        }
    }

    let killed_at = Instant::now();
    cluster.kill(0);
    cluster.restart(0).await;
    let back_after = killed_at.elapsed();
    eprintln!("{me} killed and back in the cluster after {back_after:.3?}");
    assert!(
        back_after < cluster.lease() - Duration::from_secs(2),
        "the restart took {back_after:?}, too close to the lease ({:?}): the other nodes may have \
         judged it dead, which is not what this test is about",
        cluster.lease()
    );

    for (room, before) in &owned {
        eventually(
            &format!("room {room} to serve again through every node, owned by {me}"),
            DEADLINE,
            || async {
                for i in 0..3 {
                    let (status, view) = cluster.get(i, &format!("/rooms/{room}")).await;
                    if status != 200 || view["pro"] != 1 {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
        let now = cluster.owner_of(room).await;
        assert_eq!(now.node, me, "{room}");
        assert!(
            now.epoch > before.epoch,
            "{room}: taken back under a new epoch ({} after {})",
            now.epoch,
            before.epoch
        );
    }
    eprintln!(
        "all {OWNED} rooms served again {:.3?} after the kill",
        killed_at.elapsed()
    );
}

/// A node killed and restarted within its lease: its sockets on rooms another node owns died
/// with it, and their users must leave those rooms, also where nothing of the new run tells the
/// owner so (the owner never judged the node dead, and the new run has no socket there to
/// resync). The new run's sockets are new ones, though its process numbers them from scratch:
/// in a room where the old run had a socket under the number a new one gets, its user joins.
#[actix_rt::test]
async fn the_sockets_of_a_restarted_nodes_earlier_run_leave_the_rooms_owned_elsewhere() {
    let mut pieces = setup::start(2, LEASE_MS).await;
    let cluster = &mut pieces.cluster;
    let owner_id = cluster.node_id(0).to_owned();
    let mut rooms = Vec::new();
    for n in 0.. {
        assert!(n < 100, "node 0 owns {} of {n} rooms", rooms.len());
        let room = cluster.create_room(n % 2, &format!("ghosts {n}")).await;
        if cluster.owner_of(&room).await.node == owner_id {
            rooms.push(room);
            if rooms.len() == 3 {
                break;
            }
        }
    }
    let (left, shared, other) = (&rooms[0], &rooms[1], &rooms[2]);
    let url = |cluster: &TestCluster, room: &str, user: &str| {
        cluster.ws_url(1, &format!("/rooms/{room}/ws?user={user}"))
    };
    let participants = |view: &serde_json::Value| view["participants"].as_u64();
    // The old run's first and second sockets, in `left` and in `shared`.
    let mut ghost = WsClient::connect(&url(cluster, left, "ghost"))
        .await
        .unwrap();
    assert_eq!(participants(&ghost.next_of("state").await), Some(1));
    let mut old = WsClient::connect(&url(cluster, shared, "old"))
        .await
        .unwrap();
    assert_eq!(participants(&old.next_of("state").await), Some(1));

    cluster.kill(1);
    cluster.restart(1).await;
    // The new run's first and second sockets: in `other`, and in `shared`.
    let mut probe = WsClient::connect(&url(cluster, other, "probe"))
        .await
        .unwrap();
    probe.next_of("state").await;
    let mut fresh = WsClient::connect(&url(cluster, shared, "fresh"))
        .await
        .unwrap();
    fresh.next_of("state").await;
    eventually(
        "the killed run's sockets to leave both rooms, the new run's to stay",
        DEADLINE,
        || async {
            for (room, present) in [(left, 0), (shared, 1), (other, 1)] {
                let (status, view) = cluster.get(0, &format!("/rooms/{room}")).await;
                if status != 200 || participants(&view) != Some(present) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    fresh
        .send_json(&serde_json::json!({"type": "vote", "side": "pro", "req": "v1"}))
        .await;
    let answer = fresh.answer_to("v1").await.expect("the socket is open");
    assert_eq!(
        answer["type"], "ack",
        "the new run's user is present: {answer}"
    );
    drop((ghost, old, probe));
}
