//! A new room placed on another node whose answer is lost is opened again, under the same id, by
//! the node that placed it. The journal refuses the second opening of an id, so the room is made
//! once: never two rooms for one `POST /rooms`. Here the node-to-node route is called as the two
//! openings would call it, with one id: the first makes the room, every later one is refused,
//! and the room exists once.

use roomstate_core::room::RoomId;
use roomstate_testkit::cluster::SECRET_HEADER;
use serde_json::json;

use super::setup::{self, DEADLINE};

#[actix_rt::test]
async fn a_room_opened_twice_under_one_id_is_made_once() {
    let pieces = setup::start(2, 1500).await;
    let cluster = &pieces.cluster;
    let id = RoomId::generate().as_str().to_owned();
    let secret = [(SECRET_HEADER, cluster.secret().to_owned())];
    let body = json!({"title": "made once", "id": id})
        .to_string()
        .into_bytes();
    let open = |i: usize| {
        let body = body.clone();
        let secret = secret.clone();
        async move {
            cluster
                .try_raw(
                    i,
                    "POST",
                    "/internal/cluster/rooms",
                    &secret,
                    body,
                    DEADLINE,
                )
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let (status, made) = open(1).await;
    assert_eq!(status.as_u16(), 201, "{made}");
    assert_eq!(made["id"], id.as_str());
    for i in [1, 0] {
        let (status, again) = open(i).await;
        assert_eq!(
            (status.as_u16(), again["error"].as_str()),
            (503, Some("unavailable")),
            "the same id opened again on {}: {again}",
            cluster.node_id(i)
        );
    }
    for i in 0..2 {
        let (status, listed) = cluster.get(i, "/rooms").await;
        assert_eq!(status, 200, "{listed}");
        let with_id = listed["rooms"].as_array().map_or(0, |rooms| {
            rooms.iter().filter(|r| r["id"] == id.as_str()).count()
        });
        assert_eq!(
            with_id,
            1,
            "listed through {}: {listed}",
            cluster.node_id(i)
        );
    }
    assert_eq!(cluster.owner_of(&id).await.node, cluster.node_id(1));
}
