//! A room its owner closed keeps its lease in Redis until the owner has deleted its log: for a
//! moment after every close (the close answers once the record is in MariaDB, and the log goes
//! after), and until the next scan when the deletion failed. Meanwhile the room is closed, not
//! moving: closing it again answers the final view through every node, the owner included (it
//! once answered `503` "moving" there), reads answer the closed room, and a vote `room_closed`
//! (the owner remembers for 30 s which rooms it closed).

use roomstate_testkit::redis_admin::command;

use super::setup::{self, DEADLINE};
use crate::support::app::eventually;

#[actix_rt::test]
async fn a_closed_room_whose_lease_is_still_in_redis_reads_as_closed_on_every_node() {
    let pieces = setup::start(2, 3000).await;
    let cluster = &pieces.cluster;
    let room = cluster.create_room(0, "closed, its lease left").await;
    let owner = cluster.owner_of(&room).await;
    let o = cluster.index_of(&owner.node);
    cluster.join(o, &room, "ann").await;
    let (status, tally) = cluster.vote(o, &room, "ann", "pro").await;
    assert_eq!(status, 200, "{tally}");

    let (status, final_view) = cluster.close_room(o, &room).await;
    assert_eq!(status, 200, "the close: {final_view}");
    assert_eq!(final_view["status"], "closed", "{final_view}");

    // Once the owner has deleted the log (and the lease with it, in one call), the lease is
    // written back as it stood before: the owner's node and epoch. The room is in no list of
    // open rooms (it has no log), so no scan takes it back meanwhile.
    let primary = pieces.set.primary().await;
    let (log, lease) = (
        format!("roomstate:{{{room}}}:log"),
        format!("roomstate:{{{room}}}:owner"),
    );
    eventually(
        "the owner to delete the closed room's log",
        DEADLINE,
        || async {
            let exists = command(&primary, &["EXISTS", &log, &lease]).await;
            (exists.as_deref() == Ok("0")).then_some(())
        },
    )
    .await;
    let epoch = owner.epoch.to_string();
    let words = ["HSET", &lease, "epoch", &epoch, "node", &owner.node];
    command(&primary, &words)
        .await
        .unwrap_or_else(|e| panic!("writing the lease back on {primary}: {e}"));

    for i in [o, 1 - o] {
        let node = cluster.node_id(i);
        let (status, again) = cluster.close_room(i, &room).await;
        assert_eq!(status, 200, "closing again through {node}: {again}");
        assert_eq!(again, final_view, "closing again through {node}");
        let view = cluster.room(i, &room).await;
        assert_eq!(view["status"], "closed", "the room through {node}: {view}");
        let (status, refused) = cluster.vote(i, &room, "ann", "con").await;
        assert_eq!(status, 409, "a vote through {node}: {refused}");
        assert_eq!(refused["error"], "room_closed", "a vote through {node}");
    }
}
