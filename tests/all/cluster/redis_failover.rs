//! A Redis primary failover while a takeover is under way: the owner of a room is SIGKILLed and,
//! right after, so is the Redis primary — the survivors must take the lease (an INCR of the
//! epoch, a replay, renewals) through the sentinels' promotion of a replica. When both are over,
//! the room serves again on a survivor, every voter gets on, and the final record holds every
//! acknowledgement: neither the lost node nor the lost primary may take one back.

use std::time::{Duration, Instant};

use super::{
    record::{close_and_check, Expected},
    setup::{self, WatchedRoom, DEADLINE},
    voters::{Plan, Voters},
};

const LEASE_MS: u64 = 1500;
/// A takeover through a failover: detection (1 s), election, promotion, the nodes finding the
/// new primary, then the lease — on a loaded machine.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(90);

#[actix_rt::test]
async fn a_redis_primary_failover_during_a_takeover_loses_no_acknowledgement() {
    let mut pieces = setup::start(3, LEASE_MS).await;
    let cluster = &mut pieces.cluster;
    let set = &mut pieces.set;
    let roster = cluster.roster();
    let WatchedRoom {
        room,
        owner,
        o,
        survivors,
        watchers,
    } = setup::watched_room(cluster, "takeover through a failover").await;
    let voters = Voters::start(&roster, &room, Plan::ws("f", &[0, 1, 2], 2)).await;
    voters.wait_for_acks(40, DEADLINE).await;
    voters.wait_through(&[0, 1, 2], 5, DEADLINE).await;

    let begun = Instant::now();
    cluster.kill(o);
    // Within the lease: the takeover is due while the primary is gone.
    let old_primary = set.kill_primary().await;
    let primary_killed = begun.elapsed();
    assert!(
        primary_killed < cluster.lease(),
        "the primary went {primary_killed:?} after the node, not within its lease: the takeover \
         was not under way yet"
    );
    let new_primary = set
        .wait_for_new_primary(&old_primary, FAILOVER_DEADLINE)
        .await;
    let promoted = begun.elapsed();
    let next = cluster
        .wait_for_owner_other_than(&room, &owner.node, FAILOVER_DEADLINE)
        .await;
    assert!(
        next.epoch > owner.epoch,
        "the takeover's epoch {} must be above {}",
        next.epoch,
        owner.epoch
    );
    voters.wait_each_voter(5, FAILOVER_DEADLINE).await;
    let resumed = begun.elapsed();
    voters.wait_for_acks(40, DEADLINE).await;
    let logs = voters.stop().await;
    eprintln!(
        "{} and primary {old_primary} killed; {new_primary} promoted after {:.3} s; {} owns \
         the room (epoch {}); every voter on again after {:.3} s",
        owner.node,
        promoted.as_secs_f64(),
        next.node,
        next.epoch,
        resumed.as_secs_f64()
    );

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
