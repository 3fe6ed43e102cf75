//! Zombie: the owner of a room is SIGSTOPped past its lease while voters on every node (its own
//! included, with requests in flight) keep going; a survivor takes the room over under a higher
//! epoch and the room is mutated there; then the old owner is SIGCONTed. It must acknowledge
//! nothing more for the room on its own: the requests its sockets and HTTP clients had sent or
//! send now are answered by the new owner (through it) or refused with a clear `503`, and the
//! final record equals exactly what was acknowledged — two owners both acknowledging would show
//! as a seq given twice, a lost message, or a vote that differs.

use std::{
    cell::RefCell,
    time::{Duration, Instant},
};

use serde_json::json;

use super::{
    record::{close_and_check, Expected},
    setup::{self, WatchedRoom, DEADLINE},
    voters::{Plan, Voters},
};
use crate::support::app::eventually;

const LEASE_MS: u64 = 1500;
/// The least time the owner stays stopped: well past its lease.
const HOLD: Duration = Duration::from_millis(3 * LEASE_MS);

#[actix_rt::test]
async fn a_paused_owner_loses_its_room_and_acknowledges_nothing_more_for_it() {
    let mut pieces = setup::start(3, LEASE_MS).await;
    let cluster = &mut pieces.cluster;
    let roster = cluster.roster();
    let WatchedRoom {
        room,
        owner,
        o,
        survivors,
        watchers,
    } = setup::watched_room(cluster, "zombie").await;
    // Every other request a message: the transcript is what shows a second owner's
    // acknowledgement most plainly.
    let voters = Voters::start(&roster, &room, Plan::ws("z", &[0, 1, 2], 2).say_every(2)).await;
    // An HTTP client of the owner, joined through it before the pause.
    cluster.join(o, &room, "zhttp").await;
    voters.wait_for_acks(40, DEADLINE).await;
    voters.wait_through(&[0, 1, 2], 5, DEADLINE).await;

    let paused_at = Instant::now();
    cluster.pause(o);
    let next = cluster
        .wait_for_owner_other_than(&room, &owner.node, DEADLINE)
        .await;
    assert!(
        next.epoch > owner.epoch,
        "the takeover's epoch {} must be above {}",
        next.epoch,
        owner.epoch
    );
    eprintln!(
        "{} paused; {} took the room over (epoch {} -> {}) after {:.3} s",
        owner.node,
        next.node,
        owner.epoch,
        next.epoch,
        paused_at.elapsed().as_secs_f64()
    );
    // The new owner serves: the survivors' voters get on.
    voters.wait_through(&survivors, 20, DEADLINE).await;
    // Hold the stop for a fixed time past the lease (the one sleep of the test: it is the
    // length of the pause, not a wait for something).
    if let Some(left) = HOLD.checked_sub(paused_at.elapsed()) {
        actix_rt::time::sleep(left).await;
    }
    let through_zombie = voters.acks_through(o);

    cluster.resume(o);
    // The zombie's HTTP client asks it again at once: answered by the new owner, or 503.
    let text = "through the old owner after it woke";
    let path = format!("/rooms/{room}/messages");
    let key = [("Idempotency-Key", "zhttp-after-wake".to_owned())];
    let body = json!({"user": "zhttp", "text": text});
    let statuses = RefCell::new(Vec::new());
    let seq = eventually(
        "the old owner to answer its HTTP client with the new owner's 201",
        DEADLINE,
        || async {
            let answered = cluster
                .try_request(o, "POST", &path, Some(&body), &key, Duration::from_secs(30))
                .await;
            let (status, answer) = match answered {
                Ok(answered) => answered,
                // A keep-alive connection from before the pause, closed by the woken node as
                // idle: sent again, with the same key, as an HTTP client does.
                Err(error) => {
                    eprintln!("no answer, sending again: {error}");
                    return None;
                }
            };
            statuses.borrow_mut().push(status.as_u16());
            match status.as_u16() {
                201 => Some(answer["seq"].as_u64().expect("seq")),
                503 => {
                    assert_eq!(answer["error"], "unavailable", "{answer}");
                    None
                }
                // The HTTP join may have lapsed with the room's move (presence is rebuilt from
                // the sockets); joining again is what a client does.
                409 if answer["error"] == "not_joined" => {
                    let join = json!({"user": "zhttp"});
                    let _ = cluster
                        .try_request(
                            o,
                            "POST",
                            &format!("/rooms/{room}/join"),
                            Some(&join),
                            &[],
                            DEADLINE,
                        )
                        .await;
                    None
                }
                other => panic!(
                    "the old owner answered its HTTP client {other} (only 201 from the new \
                     owner or 503 are allowed): {answer}"
                ),
            }
        },
    )
    .await;
    eprintln!("the old owner's HTTP client got {:?}", statuses.borrow());

    // The zombie's own voters get on again, through it, answered by the new owner.
    voters.wait_through(&[o], 5, DEADLINE).await;
    assert!(voters.acks_through(o) >= through_zombie + 5);
    // It knows it lost the room, and holds no lease for it.
    eventually(
        "the old owner to name the new owner and hold no lease",
        DEADLINE,
        || async {
            let seen = cluster.owner_seen_by(o, &room).await.ok()?;
            let leases = cluster.metric(o, "roomstate_cluster_leases").await;
            (seen.node == next.node && seen.epoch >= next.epoch && leases == 0.0).then_some(())
        },
    )
    .await;
    voters.wait_for_acks(20, DEADLINE).await;
    let logs = voters.stop().await;

    let mut expected = Expected::from_voters(&logs);
    expected.message(seq, text);
    // Close through the old owner: it must hand the close to the new one.
    let final_view = close_and_check(cluster, o, &pieces.db.url(), &room, &expected).await;
    for watcher in watchers {
        watcher
            .finish()
            .await
            .check(&expected.transcript(), &final_view);
    }
}
