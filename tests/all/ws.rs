//! The WebSocket protocol through a real server and a real client.

use std::{
    panic::AssertUnwindSafe,
    time::{Duration, Instant},
};

use futures_util::FutureExt;
use serde_json::json;

use crate::support::{app, ws::WsClient};

#[actix_rt::test]
async fn first_frame_is_state_then_acks_and_broadcasts() {
    let app = app::start();
    let room = app.create_room("sockets").await;
    let mut alice = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=alice")))
        .await
        .unwrap();
    let first = alice.next_json().await;
    assert_eq!(first["type"], "state");
    assert_eq!(first["id"], room.as_str());
    assert_eq!(first["participants"], 1, "opening the socket joins alice");

    let mut bob = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=bob")))
        .await
        .unwrap();
    assert_eq!(bob.next_of("state").await["participants"], 2);

    alice
        .send_json(&json!({"type": "vote", "side": "pro", "req": "v1"}))
        .await;
    let ack = alice.next_of("ack").await;
    assert_eq!(ack["req"], "v1");
    let seq = ack["seq"].as_u64().unwrap();
    let seen = bob.state_where(|s| s["seq"].as_u64() >= Some(seq)).await;
    assert_eq!(seen["pro"], 1, "bob sees alice's vote");

    // HTTP sees the same.
    assert_eq!(app.room(&room).await["pro"], 1);
}

#[actix_rt::test]
async fn chat_messages_arrive_in_order_none_skipped() {
    let app = app::start();
    let room = app.create_room("chat").await;
    let url = app.ws_url(&format!("/rooms/{room}/ws?user=reader"));
    let mut reader = WsClient::connect(&url).await.unwrap();
    reader.next_of("state").await;
    let mut writer = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=writer")))
        .await
        .unwrap();
    writer.next_of("state").await;
    for i in 0..40 {
        writer
            .send_json(&json!({"type": "say", "text": format!("line {i}"), "req": i.to_string()}))
            .await;
    }
    let mut texts = Vec::new();
    let mut last_seq = 0;
    while texts.len() < 40 {
        let frame = reader.next_of("message").await;
        let seq = frame["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "messages in seq order");
        last_seq = seq;
        assert_eq!(frame["user"], "writer");
        texts.push(frame["text"].as_str().unwrap().to_owned());
    }
    let expected: Vec<_> = (0..40).map(|i| format!("line {i}")).collect();
    assert_eq!(texts, expected);
}

#[actix_rt::test]
async fn state_frames_never_go_backwards() {
    let app = app::start();
    let room = app.create_room("order").await;
    let mut watcher = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=w")))
        .await
        .unwrap();
    watcher.next_of("state").await;
    let mut voter = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=v")))
        .await
        .unwrap();
    for i in 0..30 {
        let side = if i % 2 == 0 { "pro" } else { "con" };
        voter
            .send_json(&json!({"type": "vote", "side": side, "req": i.to_string()}))
            .await;
    }
    let mut acked = 0;
    let mut last_ack = 0;
    while acked < 30 {
        let frame = voter.next_json().await;
        if frame["type"] == "ack" {
            acked += 1;
            last_ack = last_ack.max(frame["seq"].as_u64().unwrap());
        }
    }
    let mut last = 0;
    loop {
        let state = watcher.next_of("state").await;
        let seq = state["seq"].as_u64().unwrap();
        assert!(seq >= last, "state seq went from {last} to {seq}");
        last = seq;
        if seq >= last_ack {
            assert_eq!(state["con"], 1, "the last vote was con");
            break;
        }
    }
}

#[actix_rt::test]
async fn two_sockets_of_one_user_count_once_and_closing_the_last_leaves() {
    let app = app::start();
    let room = app.create_room("tabs").await;
    let url = app.ws_url(&format!("/rooms/{room}/ws?user=alice"));
    let mut tab1 = WsClient::connect(&url).await.unwrap();
    tab1.next_of("state").await;
    let mut tab2 = WsClient::connect(&url).await.unwrap();
    assert_eq!(tab2.next_of("state").await["participants"], 1);
    drop(tab2);
    let mut watcher = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=bob")))
        .await
        .unwrap();
    assert_eq!(watcher.next_of("state").await["participants"], 2);
    drop(tab1);
    let left = watcher.state_where(|s| s["participants"] == 1).await;
    assert_eq!(left["participants_peak"], 2);
}

#[actix_rt::test]
async fn closing_the_room_sends_closed_then_code_1000() {
    let app = app::start();
    let room = app.create_room("closing").await;
    let mut alice = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=alice")))
        .await
        .unwrap();
    alice.next_of("state").await;
    alice
        .send_json(&json!({"type": "vote", "side": "con", "req": "a"}))
        .await;
    alice.next_of("ack").await;
    let (status, final_view) = app.close_room(&room).await;
    assert_eq!(status, 200, "{final_view}");
    let (code, frames) = alice.until_closed().await;
    assert_eq!(code, Some(1000));
    let closed = frames
        .iter()
        .find(|f| f["type"] == "closed")
        .expect("a closed frame");
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["con"], 1);
    assert_eq!(closed["seq"], final_view["seq"]);

    let status = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=alice")))
        .await
        .err()
        .map(|(status, _)| status);
    assert_eq!(status, Some(409), "a closed room refuses the upgrade");
}

#[actix_rt::test]
async fn upgrade_refusals() {
    let app = app::start();
    let room = app.create_room("refusals").await;
    for (path, want) in [
        ("/rooms/r_unknown/ws?user=a".to_owned(), 404),
        (format!("/rooms/{room}/ws?user=bad%20name"), 400),
        (format!("/rooms/{room}/ws"), 400),
    ] {
        let got = WsClient::connect(&app.ws_url(&path))
            .await
            .err()
            .map(|e| e.0);
        assert_eq!(got, Some(want), "{path}");
    }
}

#[actix_rt::test]
async fn a_silent_socket_is_dropped_and_counts_as_a_leave() {
    let app = app::builder().setting("PRESENCE__WS_TIMEOUT_S", 1).start();
    let room = app.create_room("silence").await;
    let mut silent = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=mute")))
        .await
        .unwrap();
    silent.answer_pings = false;
    silent.next_of("state").await;
    let mut watcher = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=w")))
        .await
        .unwrap();
    watcher.next_of("state").await;
    let after = watcher.state_where(|s| s["participants"] == 1).await;
    assert_eq!(after["participants_peak"], 2);
    // The server hangs up on the silent client (until_closed fails the test on a timeout).
    silent.until_closed().await;
}

/// A planted hang: a test that waits for a frame that never comes (an `ack` for a request it
/// never sent) while other frames keep coming (another user's votes make `state` frames). The
/// wait must fail on its own deadline, with a message saying what it waited for — not run as
/// long as frames arrive, as a per-frame deadline would.
#[actix_rt::test]
async fn a_wait_for_a_frame_that_never_comes_fails_on_its_deadline() {
    let app = app::start();
    let room = app.create_room("hang").await;
    app.join(&room, "busy").await;
    let mut waiting = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=w")))
        .await
        .unwrap();
    waiting.next_of("state").await;
    waiting.deadline = Duration::from_secs(3);

    let busy = {
        let (base, room) = (app.base.clone(), room.clone());
        actix_rt::spawn(async move {
            let client = awc::Client::default();
            for i in 0.. {
                let side = if i % 2 == 0 { "pro" } else { "con" };
                let _ = client
                    .put(format!("{base}/rooms/{room}/votes/busy"))
                    .send_json(&json!({ "side": side }))
                    .await;
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    let outcome = AssertUnwindSafe(waiting.next_of("ack"))
        .catch_unwind()
        .await;
    let took = started.elapsed();
    busy.abort();
    let panic = outcome.expect_err("the wait for an ack that never comes must fail");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("waited") && message.contains("`ack` frame"),
        "the failure says what it waited for: {message}"
    );
    assert!(
        message.contains("other frames came") && !message.contains("; 0 other frames"),
        "and what came instead (state frames kept coming): {message}"
    );
    assert!(
        took < Duration::from_secs(30),
        "it failed on its 3 s deadline, not later ({took:?})"
    );
}

/// A socket may have at most 256 requests awaiting their answers, and their `req`s at most as
/// many bytes as its send buffer: past either, a request is refused at once (`rate_limited`,
/// its `req` echoed) without reaching the room, so a client cannot pile up requests in the
/// engine's memory while the journal is slow. Those awaiting are answered once it writes again.
#[actix_rt::test]
async fn requests_past_what_a_socket_may_have_awaiting_answers_are_refused_at_once() {
    use roomstate_testkit::redis_admin::command;

    use crate::support::sentinel::RedisServer;

    const SEND_BUFFER: usize = 131_072;
    let redis = RedisServer::start().await;
    let app = app::builder()
        .setting("JOURNAL__KIND", "redis")
        .setting("REDIS__URL", redis.url())
        .setting("LIMITS__WS_RATE_PER_S", 10_000)
        .setting("LIMITS__WS_BURST", 10_000)
        .setting("LIMITS__WS_SEND_BUFFER_BYTES", SEND_BUFFER)
        .start();
    let room = app.create_room("held").await;
    let url = |user: &str| app.ws_url(&format!("/rooms/{room}/ws?user={user}"));
    let mut many = WsClient::connect(&url("many")).await.unwrap();
    many.next_of("state").await;
    let mut large = WsClient::connect(&url("large")).await.unwrap();
    large.next_of("state").await;

    // The journal's writes wait while Redis is paused: every request awaits its answer.
    command(&redis.addr(), &["CLIENT", "PAUSE", "60000", "WRITE"])
        .await
        .unwrap();
    let side = |i: usize| if i.is_multiple_of(2) { "pro" } else { "con" };
    for i in 0..300 {
        let vote = json!({"type": "vote", "side": side(i), "req": format!("c{i}")});
        many.send_json(&vote).await;
    }
    let mut refused: Vec<String> = Vec::new();
    while refused.len() < 44 {
        let error = many.next_of("error").await;
        assert_eq!(error["error"], "rate_limited", "{error}");
        refused.push(error["req"].as_str().unwrap_or_default().to_owned());
    }
    let past_the_count: Vec<String> = (256..300).map(|i| format!("c{i}")).collect();
    assert_eq!(refused, past_the_count, "the requests past 256, at once");

    // A `req` of 8000 characters is 8002 bytes of JSON: 16 fit the 131072 bytes, the 17th not.
    let long_req = |i: usize| format!("{i:02}{}", "x".repeat(7998));
    for i in 0..20 {
        let vote = json!({"type": "vote", "side": side(i), "req": long_req(i)});
        large.send_json(&vote).await;
    }
    for i in 16..20 {
        let error = large.next_of("error").await;
        assert_eq!(
            (&error["error"], &error["req"]),
            (&json!("rate_limited"), &json!(long_req(i))),
            "the requests past the send buffer's bytes, at once"
        );
    }

    command(&redis.addr(), &["CLIENT", "UNPAUSE"])
        .await
        .unwrap();
    let mut acked = 0;
    while acked < 256 {
        let ack = many.next_of("ack").await;
        assert_eq!(ack["req"], format!("c{acked}"), "acknowledged in order");
        acked += 1;
    }
    for i in 0..16 {
        let ack = large.next_of("ack").await;
        assert_eq!(ack["req"], long_req(i));
    }
    // Nothing refused reached the room: 256 + 16 votes, the last of each user's standing.
    let view = app.room(&room).await;
    assert_eq!(
        (view["pro"].as_u64(), view["con"].as_u64()),
        (Some(0), Some(2)),
        "{view}"
    );
}
