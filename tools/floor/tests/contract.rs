//! The floor answers the part of the contract the load generator uses with the engine's shapes:
//! the same statuses and bodies over HTTP, the same first `state` frame and `ack` frames over a
//! WebSocket, the same error body — with its sockets on actix-web-actors (the default) and taken
//! out of the HTTP dispatcher at the upgrade (`--raw-sockets`). (That `roomstate-load` drives it
//! is `tools/load/tests/smoke.rs`.)

use roomstate_testkit::{app::TestApp, ws::WsClient};
use serde_json::{json, Value};

fn floor(raw_sockets: bool) -> TestApp {
    TestApp::builder(env!("CARGO_BIN_EXE_roomstate-floor"))
        .setting("FLOOR__RAW_SOCKETS", raw_sockets)
        .start()
}

#[actix_rt::test]
async fn http_answers_with_the_contract_shapes() {
    http_contract(floor(false)).await;
}

#[actix_rt::test]
async fn http_answers_with_the_contract_shapes_with_raw_sockets() {
    http_contract(floor(true)).await;
}

#[actix_rt::test]
async fn a_socket_joins_gets_its_state_and_acks() {
    socket_contract(floor(false)).await;
}

#[actix_rt::test]
async fn a_raw_socket_joins_gets_its_state_and_acks() {
    socket_contract(floor(true)).await;
}

/// Upgrades for anything but a room's socket are refused with the contract's error body, and the
/// floor goes on serving.
#[actix_rt::test]
async fn raw_sockets_refuse_other_upgrades_and_bad_frames() {
    let app = floor(true);
    let room = app.create_room("floor").await;
    for (path, status) in [
        ("/elsewhere/ws?user=bob".to_owned(), 404),
        (format!("/rooms/{room}/ws"), 400),
        (format!("/rooms/{room}/ws?user=no%20spaces"), 400),
        ("/rooms/r_nope/ws?user=bob".to_owned(), 404),
    ] {
        let refused = WsClient::connect(&app.ws_url(&path)).await;
        assert!(
            matches!(&refused, Err((s, _)) if *s == status),
            "{path}: expected {status}"
        );
        // The refusal carries the contract's error body.
        let mut answer = awc::Client::new()
            .get(app.url(&path))
            .insert_header(("connection", "upgrade"))
            .insert_header(("upgrade", "websocket"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(answer.status().as_u16(), status, "{path}");
        let body: Value = answer
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let keys: Vec<&String> = body
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["error", "message"], "{path}: {body}");
    }
    let mut socket = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=bob")))
        .await
        .unwrap_or_else(|(status, _)| panic!("upgrade refused: {status}"));
    assert_eq!(socket.next_json().await["type"], json!("state"));
    socket
        .send_json(&json!({"type": "vote", "side": "maybe", "req": "r1"}))
        .await;
    let error = socket.next_json().await;
    assert_eq!(
        (&error["error"], &error["req"]),
        (&json!("bad_request"), &json!("r1"))
    );
    let (status, _) = app.get(&format!("/rooms/{room}")).await;
    assert_eq!(status, 200);
}

async fn http_contract(app: TestApp) {
    let room = app.create_room("floor").await;
    let view = app.join(&room, "alice").await;
    assert_eq!(
        (view["seq"].as_u64(), view["participants"].as_u64()),
        (Some(2), Some(1))
    );
    let (status, count) = app.vote(&room, "alice", "pro").await;
    assert_eq!(status, 200);
    assert_eq!(count, json!({"seq": 3, "pro": 1, "con": 0}));
    let (status, said) = app.say(&room, "alice", "hi").await;
    assert_eq!((status.as_u16(), said), (201, json!({"seq": 4})));

    let (status, refused) = app.vote(&room, "bob", "con").await;
    assert_eq!(
        (status.as_u16(), &refused["error"]),
        (409, &json!("not_joined"))
    );
    let (status, refused) = app
        .put(&format!("/rooms/{room}/votes/alice"), json!({"sid": "pro"}))
        .await;
    assert_eq!(
        (status.as_u16(), &refused["error"]),
        (400, &json!("bad_request"))
    );
    let (status, refused) = app.get("/rooms/r_nope").await;
    assert_eq!(
        (status.as_u16(), &refused["error"]),
        (404, &json!("not_found"))
    );
    let keys: Vec<&String> = refused
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["error", "message"]);
}

async fn socket_contract(app: TestApp) {
    let room = app.create_room("floor").await;
    let mut socket = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=bob")))
        .await
        .unwrap_or_else(|(status, _)| panic!("upgrade refused: {status}"));
    let state = socket.next_json().await;
    assert_eq!(
        (&state["type"], &state["participants"]),
        (&json!("state"), &json!(1))
    );
    assert_eq!(state["id"], room);

    socket
        .send_json(&json!({"type": "vote", "side": "con", "req": "r1"}))
        .await;
    let ack = socket.answer_to("r1").await;
    assert_eq!(ack, Some(json!({"type": "ack", "req": "r1", "seq": 3})));
    socket
        .send_json(&json!({"type": "say", "text": "hi", "req": 7}))
        .await;
    let ack: Value = socket.next_json().await;
    assert_eq!(ack, json!({"type": "ack", "req": 7, "seq": 4}));
    socket.send_text("{nope".to_owned()).await;
    let error = socket.next_json().await;
    assert_eq!(
        (&error["type"], &error["error"]),
        (&json!("error"), &json!("bad_request"))
    );

    let (status, _) = app.get(&format!("/rooms/{room}")).await;
    assert_eq!(status, 200);
    let refused = WsClient::connect(&app.ws_url("/rooms/r_nope/ws?user=bob")).await;
    assert!(
        matches!(refused, Err((404, _))),
        "unknown room before the upgrade"
    );
}
