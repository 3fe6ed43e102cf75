//! Bad input on the node-to-node route (`POST /internal/cluster/rooms/{id}/commands`): without
//! the cluster secret, or with a wrong one, it is `401 unauthorized`; with the secret but a body
//! that is not JSON, JSON of the wrong shape, or too large, it is `400 bad_request` (or `413
//! too_large`). Every refusal has the usual error body, nothing is applied to the room, and both
//! nodes keep serving.

use awc::http::StatusCode;
use serde_json::Value;

use roomstate_testkit::cluster::SECRET_HEADER;

use super::setup::{self, DEADLINE};

/// A refusal case: what it is, the headers, the body.
type Case = (&'static str, Vec<(&'static str, String)>, Vec<u8>);

/// Larger than the 64 KiB body limit.
const OVERSIZE: usize = 70 * 1024;

fn assert_error_body(body: &Value, codes: &[&str], what: &str) {
    let code = body["error"].as_str().unwrap_or("<no error code>");
    assert!(
        codes.contains(&code),
        "{what}: error {code:?}, expected one of {codes:?}: {body}"
    );
    assert!(
        body["message"].is_string(),
        "{what}: the error body has a message: {body}"
    );
}

#[actix_rt::test]
async fn the_internal_route_refuses_bad_input_and_nothing_is_harmed() {
    let pieces = setup::start(2, 1500).await;
    let cluster = &pieces.cluster;
    let room = cluster.create_room(0, "internal route").await;
    let owner = cluster.owner_of(&room).await;
    cluster.join(0, &room, "alice").await;
    let (status, tally) = cluster.vote(1, &room, "alice", "pro").await;
    assert_eq!(status, 200, "{tally}");
    let before = cluster.room(0, &room).await;

    let path = format!("/internal/cluster/rooms/{room}/commands");
    // A body of the announced shape, so only the secret is wrong.
    let plausible =
        br#"{"command": {"type": "vote", "user": "mallory", "side": "con"}, "req": "x"}"#.to_vec();
    let wrong_secret = format!("not-{}", cluster.secret());
    let right = [(SECRET_HEADER, cluster.secret().to_owned())];
    let mut padded = br#"{"command": {"type": "say", "user": "mallory", "text": ""#.to_vec();
    padded.extend(std::iter::repeat_n(b'a', OVERSIZE));
    padded.extend(br#""}}"#);

    for i in 0..2 {
        let node = cluster.node_id(i).to_owned();
        let unauthorized: Vec<Case> = vec![
            ("no secret", vec![], plausible.clone()),
            (
                "an empty secret",
                vec![(SECRET_HEADER, String::new())],
                plausible.clone(),
            ),
            (
                "a wrong secret",
                vec![(SECRET_HEADER, wrong_secret.clone())],
                plausible.clone(),
            ),
            (
                "the admin token instead of the secret",
                roomstate_testkit::cluster::admin_auth(),
                plausible.clone(),
            ),
            ("no secret and no JSON", vec![], b"{not json".to_vec()),
        ];
        for (what, headers, body) in unauthorized {
            let (status, answer) = cluster
                .try_raw(i, "POST", &path, &headers, body, DEADLINE)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let what = format!("{what} on {node}");
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
            assert_error_body(&answer, &["unauthorized"], &what);
        }

        let malformed: Vec<(&str, Vec<u8>)> = vec![
            ("not JSON", b"{not json".to_vec()),
            ("an empty body", Vec::new()),
            ("bytes that are not UTF-8", b"\x00\xff\xfe".to_vec()),
            ("a JSON array", b"[]".to_vec()),
            ("an empty object", b"{}".to_vec()),
            ("a number as the command", br#"{"command": 5}"#.to_vec()),
            (
                "an unknown command",
                br#"{"command": {"type": "dance"}}"#.to_vec(),
            ),
            ("null", b"null".to_vec()),
        ];
        for (what, body) in malformed {
            let (status, answer) = cluster
                .try_raw(i, "POST", &path, &right, body, DEADLINE)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let what = format!("{what} with the secret on {node}");
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
            assert_error_body(&answer, &["bad_request"], &what);
        }

        let (status, answer) = cluster
            .try_raw(i, "POST", &path, &right, padded.clone(), DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let what = format!("a {OVERSIZE}-byte body with the secret on {node}");
        assert!(
            status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::BAD_REQUEST,
            "{what}: {status} {answer}"
        );
        assert_error_body(&answer, &["too_large", "bad_request"], &what);
        let (status, answer) = cluster
            .try_raw(i, "POST", &path, &[], padded.clone(), DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::PAYLOAD_TOO_LARGE,
            "an oversize body without the secret on {node}: {status} {answer}"
        );
    }

    // Harmless: nothing was applied, the owner is the same, both nodes serve.
    for i in 0..2 {
        let node = cluster.node_id(i).to_owned();
        let view = cluster.room(i, &room).await;
        for key in ["seq", "pro", "con", "messages", "participants"] {
            assert_eq!(
                view[key], before[key],
                "{key} on {node}: {view} vs {before}"
            );
        }
        assert_eq!(cluster.owner_seen_by(i, &room).await, Ok(owner.clone()));
        let (status, ready) = cluster.get(i, "/readyz").await;
        assert_eq!(status, 200, "/readyz on {node}: {ready}");
    }
    let (status, tally) = cluster.vote(0, &room, "alice", "con").await;
    assert_eq!(status, 200, "{tally}");
    let (status, tally) = cluster.vote(1, &room, "alice", "pro").await;
    assert_eq!(status, 200, "{tally}");
    let (status, said) = cluster.say(1, &room, "alice", "still here").await;
    assert_eq!(status, 201, "{said}");
    assert_eq!(
        said["seq"].as_u64(),
        before["seq"].as_u64().map(|s| s + 3),
        "the next seqs follow the ones before the bad input: nothing was applied"
    );
}
