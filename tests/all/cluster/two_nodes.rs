//! Two nodes, one room: votes and messages through both nodes, over HTTP and WebSocket, are one
//! room — each answer's seq is the room's, both nodes show the same committed state and list the
//! room, a socket on each node sees every message in seq order — and a close through the node
//! that does not own the room writes the final record once.

use std::time::Duration;

use serde_json::{json, Value};

use super::{
    record::{close_and_check, Expected},
    setup,
    watchers::Watcher,
};
use crate::support::{app::eventually, ws::WsClient};

/// Rounds of mutations; each round goes through both nodes, over HTTP and over a socket.
const ROUNDS: usize = 4;

fn side(round: usize, node: usize) -> &'static str {
    if (round + node).is_multiple_of(2) {
        "pro"
    } else {
        "con"
    }
}

/// Sends `frame` (with `req`) on `ws` and returns the seq of its `ack`.
async fn acked(ws: &mut WsClient, frame: Value, req: &str, who: &str) -> u64 {
    ws.send_json(&frame).await;
    let answer = ws
        .answer_to(req)
        .await
        .unwrap_or_else(|| panic!("{who}: the socket closed before {req} was answered"));
    assert_eq!(answer["type"], "ack", "{who}: {frame} -> {answer}");
    answer["seq"].as_u64().expect("an ack's seq")
}

#[actix_rt::test]
async fn two_nodes_serve_one_room_and_a_close_on_the_non_owner_writes_the_record_once() {
    // The default lease: nothing here waits for one to run out, and a shorter one lets a stall
    // of the loaded test machine (a test beside this one) hand the room to the other node
    // mid-test, which is right for the engine and wrong for what this test checks.
    let pieces = setup::start(2, 3000).await;
    let cluster = &pieces.cluster;
    let roster = cluster.roster();
    let room = cluster.create_room(0, "two nodes, one room").await;
    let owner = cluster.owner_of(&room).await;
    let o = cluster.index_of(&owner.node);
    let other = 1 - o;
    for i in 0..2 {
        assert_eq!(
            cluster.owner_seen_by(i, &room).await,
            Ok(owner.clone()),
            "both nodes name one owner"
        );
    }

    let watchers = [
        Watcher::start(&roster, 0, &room, "watch0").await,
        Watcher::start(&roster, 1, &room, "watch1").await,
    ];
    let mut sockets = Vec::new();
    for i in 0..2 {
        let url = cluster.ws_url(i, &format!("/rooms/{room}/ws?user=ws{i}"));
        let mut ws = WsClient::connect(&url)
            .await
            .unwrap_or_else(|(status, _)| panic!("socket on {}: {status}", cluster.node_id(i)));
        ws.next_of("state").await;
        sockets.push(ws);
    }
    for i in 0..2 {
        cluster.join(i, &room, &format!("http{i}")).await;
    }

    let mut expected = Expected::default();
    let mut last_seq = 0;
    let mut seen = |seq: u64, what: &str| {
        assert!(
            seq > last_seq,
            "{what} got seq {seq} after seq {last_seq}: one room, one seq"
        );
        last_seq = seq;
    };
    for round in 0..ROUNDS {
        for (i, socket) in sockets.iter_mut().enumerate() {
            let node = cluster.node_id(i).to_owned();
            let user = format!("http{i}");
            let (status, tally) = cluster.vote(i, &room, &user, side(round, i)).await;
            assert_eq!(status, 200, "vote through {node}: {tally}");
            let seq = tally["seq"].as_u64().expect("seq");
            seen(seq, &format!("an HTTP vote through {node}"));
            expected.vote(&user, side(round, i), seq);

            let text = format!("over HTTP through {node}, round {round}");
            let (status, body) = cluster.say(i, &room, &user, &text).await;
            assert_eq!(status, 201, "message through {node}: {body}");
            let seq = body["seq"].as_u64().expect("seq");
            seen(seq, &format!("an HTTP message through {node}"));
            expected.message(seq, &text);

            let user = format!("ws{i}");
            let req = format!("v{round}");
            let frame = json!({"type": "vote", "side": side(round, i), "req": req});
            let seq = acked(socket, frame, &req, &node).await;
            seen(seq, &format!("a socket vote on {node}"));
            expected.vote(&user, side(round, i), seq);

            let text = format!("over a socket on {node}, round {round}");
            let req = format!("m{round}");
            let frame = json!({"type": "say", "text": text, "req": req});
            let seq = acked(socket, frame, &req, &node).await;
            seen(seq, &format!("a socket message on {node}"));
            expected.message(seq, &text);
        }
    }

    // Both nodes show the same committed state, list the room, and serve its transcript.
    let transcript = expected.transcript();
    for i in 0..2 {
        let node = cluster.node_id(i).to_owned();
        eventually(
            &format!("{node} to show seq {last_seq}"),
            Duration::from_secs(20),
            || async {
                (cluster.room(i, &room).await["seq"].as_u64() == Some(last_seq)).then_some(())
            },
        )
        .await;
        let view = cluster.room(i, &room).await;
        assert_eq!(
            (view["pro"].as_u64(), view["con"].as_u64()),
            (
                Some(expected.votes.values().filter(|s| *s == "pro").count() as u64),
                Some(expected.votes.values().filter(|s| *s == "con").count() as u64)
            ),
            "the tally on {node}: {view}"
        );
        let (status, listed) = cluster.get(i, "/rooms").await;
        assert_eq!(status, 200, "{listed}");
        assert!(
            listed["rooms"]
                .as_array()
                .is_some_and(|rooms| rooms.iter().any(|r| r["id"] == room.as_str())),
            "GET /rooms on {node} lists the room: {listed}"
        );
        let (status, page) = cluster
            .get(i, &format!("/rooms/{room}/messages?after=0&limit=500"))
            .await;
        assert_eq!(status, 200, "{page}");
        let listed: Vec<(u64, String)> = page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| {
                (
                    m["seq"].as_u64().expect("seq"),
                    m["text"].as_str().expect("text").to_owned(),
                )
            })
            .collect();
        assert_eq!(listed, transcript, "GET /messages on {node}");
    }

    // The owner holds the lease; the other node forwarded the HTTP calls it got and mirrors the
    // room for its sockets.
    assert_eq!(cluster.metric(o, "roomstate_cluster_leases").await, 1.0);
    assert_eq!(cluster.metric(other, "roomstate_cluster_leases").await, 0.0);
    assert!(
        cluster
            .metric(other, "roomstate_cluster_forwarded_total")
            .await
            >= 1.0,
        "{} forwarded nothing to the owner",
        cluster.node_id(other)
    );
    let metrics = cluster.metrics_text(other).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("roomstate_cluster_mirror_lag_seconds")),
        "no roomstate_cluster_mirror_lag_seconds on the non-owner, which mirrors the room:\n{metrics}"
    );

    // Close through the node that does not own the room.
    let final_view = close_and_check(cluster, other, &pieces.db.url(), &room, &expected).await;
    for watcher in watchers {
        watcher.finish().await.check(&transcript, &final_view);
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        let (code, frames) = ws.until_closed().await;
        assert_eq!(code, Some(1000), "the socket on {}", cluster.node_id(i));
        assert!(
            frames.iter().any(|f| f["type"] == "closed"),
            "the socket on {} got no `closed` frame",
            cluster.node_id(i)
        );
    }
    for i in 0..2 {
        let (_, listed) = cluster.get(i, "/rooms").await;
        assert!(
            !listed["rooms"]
                .as_array()
                .is_some_and(|rooms| rooms.iter().any(|r| r["id"] == room.as_str())),
            "GET /rooms on {} still lists the closed room: {listed}",
            cluster.node_id(i)
        );
        assert_eq!(cluster.room(i, &room).await, final_view);
    }
}

/// A socket request for a room owned elsewhere that never becomes a socket (no upgrade headers:
/// `400`) leaves no mirror behind: the node does not follow the room for as long as it is open.
#[actix_rt::test]
async fn a_socket_request_that_is_no_upgrade_leaves_no_mirror_on_the_non_owner() {
    let pieces = setup::start(2, 3000).await;
    let cluster = &pieces.cluster;
    let room = cluster.create_room(0, "no upgrade").await;
    let owner = cluster.owner_of(&room).await;
    let other = 1 - cluster.index_of(&owner.node);

    let (status, body) = cluster
        .get(other, &format!("/rooms/{room}/ws?user=carol"))
        .await;
    assert_eq!(status, 400, "a request that is no upgrade: {body}");
    // A mirror started for it (and may have stopped already on a slow machine).
    assert!(mirrors(cluster, other).await <= 1);
    eventually(
        "the mirror nobody attached to to stop",
        Duration::from_secs(60),
        || async { (mirrors(cluster, other).await == 0).then_some(()) },
    )
    .await;
}

/// `roomstate_cluster_mirrors` on node `i`.
async fn mirrors(cluster: &roomstate_testkit::cluster::TestCluster, i: usize) -> i64 {
    let metrics = cluster.metrics_text(i).await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("roomstate_cluster_mirrors "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no roomstate_cluster_mirrors on node {i}:\n{metrics}"))
}
