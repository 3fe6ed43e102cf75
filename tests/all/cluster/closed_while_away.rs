//! A room's owner is SIGSTOPped past its lease; another node takes the room over and an admin
//! closes it there (the final record in MariaDB, the room's log and lease deleted). Once the old
//! owner runs again it must stop serving the room as open: its socket on the room is closed (to
//! reconnect and find the room closed), and a read through it answers the closed record, not
//! the open room it held when it stopped.

use std::time::{Duration, Instant};

use roomstate_testkit::ws::WsClient;

use super::setup::{self, DEADLINE};
use crate::support::app::eventually;

const LEASE_MS: u64 = 1500;
/// The least time the owner stays stopped: well past its lease.
const HOLD: Duration = Duration::from_millis(3 * LEASE_MS);

#[actix_rt::test]
async fn a_node_back_from_a_pause_stops_serving_a_room_closed_elsewhere_meanwhile() {
    let mut pieces = setup::start(3, LEASE_MS).await;
    let cluster = &mut pieces.cluster;
    let room = cluster.create_room(0, "closed while away").await;
    let owner = cluster.owner_of(&room).await;
    let o = cluster.index_of(&owner.node);
    cluster.join(o, &room, "ann").await;
    let (status, tally) = cluster.vote(o, &room, "ann", "pro").await;
    assert_eq!(status, 200, "{tally}");
    let mut socket = WsClient::connect(&cluster.ws_url(o, &format!("/rooms/{room}/ws?user=bo")))
        .await
        .unwrap_or_else(|e| panic!("socket on the owner: {e:?}"));
    socket.next_of("state").await;

    let paused_at = Instant::now();
    cluster.pause(o);
    let next = cluster
        .wait_for_owner_other_than(&room, &owner.node, DEADLINE)
        .await;
    let n = cluster.index_of(&next.node);
    // The lease in the journal may name the new owner before it has replayed the room: until
    // then the room is "moving" (503), as the contract says; a client retries.
    let record = cluster.close_room_retried(n, &room, DEADLINE).await;
    assert_eq!(record["status"], "closed", "{record}");
    assert_eq!(record["pro"], 1, "{record}");
    // Hold the stop for a fixed time past the lease (the one sleep of the test: it is the
    // length of the pause, not a wait for something).
    if let Some(left) = HOLD.checked_sub(paused_at.elapsed()) {
        actix_rt::time::sleep(left).await;
    }
    cluster.resume(o);

    // Read at once (the client answers the node's pings while it reads): a room left open there
    // would keep this socket open past the deadline.
    let (code, frames) = socket.until_closed().await;
    eprintln!("the resumed node's socket on the room closed with {code:?} after {frames:?}");
    assert_eq!(
        code,
        Some(1013),
        "try again later: the room is not served here"
    );
    eventually(
        "the resumed node to answer the room's closed record",
        DEADLINE,
        || async {
            let (status, view) = cluster.get(o, &format!("/rooms/{room}")).await;
            (status == 200 && view["status"] == "closed").then_some(())
        },
    )
    .await;
    let (status, listed) = cluster.get(o, "/rooms").await;
    assert_eq!(status, 200, "{listed}");
    assert!(
        !listed.to_string().contains(&room),
        "a closed room listed as open by the resumed node: {listed}"
    );
}
