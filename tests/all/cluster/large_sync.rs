//! The node-to-node calls that carry lists are not bound by what one client may send: a node
//! that holds the sockets of a room watched by some thousand of its clients tells the room's
//! owner all of them in one call (after an owner change, and every 10 s), a body well over
//! `limits.max_body_bytes`. It once got `413`, and the new owner never learnt of those sockets.

use roomstate_testkit::cluster::SECRET_HEADER;
use serde_json::json;

use super::setup::{self, DEADLINE};
use crate::support::app::eventually;

/// Sockets in the sync: ~60 bytes each in JSON, over 64 KiB in all.
const SOCKETS: u64 = 2000;

#[actix_rt::test]
async fn a_sync_of_a_big_rooms_sockets_is_taken_whole() {
    let pieces = setup::start(2, 3000).await;
    let cluster = &pieces.cluster;
    let room = cluster.create_room(0, "watched by thousands").await;
    let owner = cluster.owner_of(&room).await;
    let o = cluster.index_of(&owner.node);
    let other = cluster.node_id(1 - o).to_owned();
    // Session ids as a node numbers them: its run's start in the high bits.
    let first = 1_790_000_000_000u64 << 16;
    let sockets: Vec<_> = (0..SOCKETS)
        .map(|i| json!({"session": first + i, "user": format!("viewer{i}")}))
        .collect();
    let body = serde_json::to_vec(&json!({ "sockets": sockets })).unwrap();
    assert!(body.len() > 64 * 1024, "{} bytes", body.len());
    let path = format!("/internal/cluster/rooms/{room}/sockets/{other}");
    let secret = [(SECRET_HEADER, cluster.secret().to_owned())];
    let (status, answer) = cluster
        .try_raw(o, "PUT", &path, &secret, body, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 204, "{answer}");
    eventually("every viewer present", DEADLINE, || async {
        (cluster.room(o, &room).await["participants"] == SOCKETS).then_some(())
    })
    .await;

    // The client's limit still holds on the public routes.
    let (status, answer) = cluster
        .post(o, "/rooms", json!({ "title": "t".repeat(70 * 1024) }))
        .await;
    assert_eq!(status, 413, "{answer}");

    // And the next sync, with none, lets them all go.
    let (status, answer) = cluster
        .try_raw(
            o,
            "PUT",
            &path,
            &secret,
            br#"{"sockets": []}"#.to_vec(),
            DEADLINE,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 204, "{answer}");
    eventually("every viewer gone", DEADLINE, || async {
        (cluster.room(o, &room).await["participants"] == 0).then_some(())
    })
    .await;
}
