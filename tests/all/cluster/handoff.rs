//! SIGTERM hand-off under load: the owner of a room is stopped with SIGTERM while socket voters
//! on every node and HTTP voters on the other nodes keep going. It hands the room over at once
//! (writes stall for less than a lease; waiting the lease out is what a dead node gets), exits 0,
//! and nobody is answered a 5xx other than a brief `503`; its socket voters move to a survivor;
//! nothing acknowledged is lost.

use std::time::{Duration, Instant};

use super::{
    record::{close_and_check, Expected},
    setup::{self, longest_stall_after, WatchedRoom, DEADLINE},
    voters::{Plan, Voters},
};

/// Long enough that a hand-off which waited for the lease to run out would show in the stall.
const LEASE_MS: u64 = 5000;

#[actix_rt::test]
async fn sigterm_hands_the_owners_room_over_under_load_with_no_error_and_no_lost_ack() {
    let mut pieces = setup::start(3, LEASE_MS).await;
    let cluster = &mut pieces.cluster;
    let roster = cluster.roster();
    let WatchedRoom {
        room,
        owner,
        o,
        survivors,
        watchers,
    } = setup::watched_room(cluster, "hand-off").await;
    // The voters answer every 5xx but `503 unavailable` with a failure, on the spot.
    let sockets = Voters::start(&roster, &room, Plan::ws("s", &[0, 1, 2], 2)).await;
    let http = Voters::start(&roster, &room, Plan::http("h", &survivors, 2)).await;
    sockets.wait_for_acks(40, DEADLINE).await;
    http.wait_for_acks(20, DEADLINE).await;

    let terminated_at = Instant::now();
    let status = cluster.terminate(o).await;
    let exited = terminated_at.elapsed();
    assert!(
        status.success(),
        "{} exits 0 after SIGTERM, having handed its room over: {status}",
        owner.node
    );
    let next = cluster
        .wait_for_owner_other_than(&room, &owner.node, DEADLINE)
        .await;
    assert!(
        next.epoch > owner.epoch,
        "the successor's epoch {} must be above {}",
        next.epoch,
        owner.epoch
    );
    sockets.wait_each_voter(5, DEADLINE).await;
    http.wait_each_voter(5, DEADLINE).await;
    let mut logs = sockets.stop().await;
    logs.extend(http.stop().await);

    let stall = longest_stall_after(&logs, terminated_at);
    let refusals: Vec<Duration> = logs
        .iter()
        .flat_map(|l| &l.refused_at)
        .filter(|at| **at > terminated_at)
        .map(|at| *at - terminated_at)
        .collect();
    eprintln!(
        "{} terminated: exited after {:.3} s, {} named the owner; writes stalled at most {:.3} s; \
         {} 503s, the last {:.3} s after the SIGTERM",
        owner.node,
        exited.as_secs_f64(),
        next.node,
        stall.as_secs_f64(),
        refusals.len(),
        refusals
            .iter()
            .max()
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
    );
    assert!(
        stall < Duration::from_millis(LEASE_MS),
        "writes stalled {stall:?} at the hand-off: not less than the lease ({LEASE_MS} ms), as if \
         the successor had waited for it to run out instead of taking the room at once"
    );
    for log in logs.iter().filter(|l| l.home == o) {
        assert!(
            log.nodes.len() >= 2 && log.nodes[1..].iter().all(|n| survivors.contains(n)),
            "{}: a voter of the stopped node moves to a survivor: {:?}",
            log.user,
            log.nodes
        );
    }

    let expected = Expected::from_voters(&logs);
    let final_view =
        close_and_check(cluster, survivors[0], &pieces.db.url(), &room, &expected).await;
    for watcher in watchers {
        watcher
            .finish()
            .await
            .check(&expected.transcript(), &final_view);
    }
}
