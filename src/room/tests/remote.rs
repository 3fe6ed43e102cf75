//! Sockets other nodes hold: a departure that overtook the socket's last request (or a sync the
//! node built before the socket went) does not leave its user present; the request finds the
//! user gone, as it would have had it come in order.

use roomstate_core::room::{Command, RoomError, Side};

use super::{settings, user, Setup};
use crate::room::{
    failure::RoomFailure,
    messages::{DetachRemote, GetView, RemoteMutate, SyncRemote},
};

#[actix_rt::test]
async fn a_departure_that_overtook_the_sockets_request_leaves_nobody_present() {
    let setup = Setup::new();
    let registry = setup.registry(settings());
    let (_, room) = setup.room_with_alice(&registry, "remote sockets").await;
    let present = || async { room.send(GetView).await.unwrap().counters.participants };
    assert_eq!(present().await, 1, "alice");
    let node = "node-b".to_owned();

    // Bob's socket on node-b votes and closes at once; the departure arrives first.
    room.send(DetachRemote {
        node: node.clone(),
        session: 7,
    })
    .await
    .unwrap();
    let vote = Command::Vote {
        user: user("bob"),
        side: Side::Pro,
    };
    let applied = room
        .send(RemoteMutate {
            node: node.clone(),
            session: 7,
            command: vote,
        })
        .await
        .unwrap();
    // Nobody waits for its answer (the socket is gone); it finds bob not present.
    assert!(
        matches!(applied, Err(RoomFailure::Rule(RoomError::NotJoined(_)))),
        "{applied:?}"
    );
    assert_eq!(present().await, 1, "bob's gone socket did not come back");

    // A sync node-b built before the departure lists the socket still: not taken back either;
    // its other socket is.
    room.send(SyncRemote {
        node: node.clone(),
        sessions: vec![(7, user("bob")), (8, user("cid"))],
    })
    .await
    .unwrap();
    // The sync answers nothing, and its joins are shown once durable: cid's vote, answered
    // once it is durable, is ordered after them.
    let vote = Command::Vote {
        user: user("cid"),
        side: Side::Con,
    };
    let applied = room
        .send(RemoteMutate {
            node,
            session: 8,
            command: vote,
        })
        .await
        .unwrap();
    assert!(applied.is_ok(), "cid is present: {applied:?}");
    assert_eq!(present().await, 2, "alice and cid, not bob");
}
