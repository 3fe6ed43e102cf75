//! Bad input of every kind gets its API error, and the room keeps working afterwards.

use serde_json::{json, Value};

use crate::support::{
    app::{self, TestApp, TOKEN},
    ws::WsClient,
};

async fn room_still_works(app: &TestApp, room: &str) {
    app.join(room, "checker").await;
    let (status, tally) = app.vote(room, "checker", "pro").await;
    assert_eq!(status, 200, "the room must keep working: {tally}");
}

fn code(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("<no error code>")
}

#[actix_rt::test]
async fn malformed_json_and_wrong_types_are_bad_requests() {
    let app = app::start();
    let room = app.create_room("bad json").await;
    let cases: Vec<(&str, String, &[u8])> = vec![
        ("POST", "/rooms".into(), b"{not json"),
        ("POST", "/rooms".into(), b"{\"title\": 5}"),
        ("POST", "/rooms".into(), b"{\"title\": \"\"}"),
        ("POST", "/rooms".into(), b"{}"),
        ("POST", "/rooms".into(), b"[]"),
        (
            "POST",
            "/rooms".into(),
            b"{\"title\": \"t\", \"extra\": true}",
        ),
        ("POST", format!("/rooms/{room}/join"), b"{\"user\": 7}"),
        (
            "POST",
            format!("/rooms/{room}/join"),
            b"{\"user\": \"has space\"}",
        ),
        ("POST", format!("/rooms/{room}/join"), b"{\"user\": \"\"}"),
        ("POST", format!("/rooms/{room}/join"), b""),
        (
            "PUT",
            format!("/rooms/{room}/votes/alice"),
            b"{\"side\": \"maybe\"}",
        ),
        (
            "PUT",
            format!("/rooms/{room}/votes/alice"),
            b"{\"side\": null}",
        ),
        (
            "PUT",
            format!("/rooms/{room}/votes/bad%20user"),
            b"{\"side\": \"pro\"}",
        ),
        (
            "POST",
            format!("/rooms/{room}/messages"),
            b"{\"user\": \"alice\"}",
        ),
        (
            "POST",
            format!("/rooms/{room}/messages"),
            b"{\"user\": \"alice\", \"text\": [1]}",
        ),
        (
            "POST",
            format!("/rooms/{room}/messages"),
            "\u{0}\u{ff}".as_bytes(),
        ),
    ];
    for (method, path, body) in cases {
        let (status, err) = app.raw(method, &path, body.to_vec()).await;
        assert_eq!(
            status,
            400,
            "{method} {path} {:?}: {err}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(code(&err), "bad_request");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let long_user = "u".repeat(65);
    let (status, _) = app
        .post(&format!("/rooms/{room}/join"), json!({"user": long_user}))
        .await;
    assert_eq!(status, 400);
    let long_title = "t".repeat(201);
    let (status, _) = app.post("/rooms", json!({"title": long_title})).await;
    assert_eq!(status, 400);
    room_still_works(&app, &room).await;
}

#[actix_rt::test]
async fn message_text_limits() {
    let app = app::start();
    let room = app.create_room("text").await;
    app.join(&room, "alice").await;
    for text in [String::new(), "   ".into(), "x".repeat(2001)] {
        let (status, err) = app.say(&room, "alice", &text).await;
        assert_eq!(
            (status.as_u16(), code(&err)),
            (400, "bad_request"),
            "{}",
            text.len()
        );
    }
    let (status, _) = app.say(&room, "alice", &"é".repeat(2000)).await;
    assert_eq!(
        status, 201,
        "2000 characters is allowed, whatever their byte length"
    );
    let (status, err) = app.get(&format!("/rooms/{room}/messages?limit=501")).await;
    assert_eq!((status.as_u16(), code(&err)), (400, "bad_request"));
    let (status, err) = app.get(&format!("/rooms/{room}/messages?after=abc")).await;
    assert_eq!((status.as_u16(), code(&err)), (400, "bad_request"));
    room_still_works(&app, &room).await;
}

#[actix_rt::test]
async fn oversize_bodies_are_too_large() {
    let app = app::start();
    let room = app.create_room("big").await;
    let huge = format!("{{\"title\": \"{}\"}}", "x".repeat(70 * 1024));
    let (status, err) = app.raw("POST", "/rooms", huge.into_bytes()).await;
    assert_eq!((status.as_u16(), code(&err)), (413, "too_large"));
    let huge = format!("{{\"user\": \"a\", \"text\": \"{}\"}}", "x".repeat(1 << 20));
    let (status, err) = app
        .raw(
            "POST",
            &format!("/rooms/{room}/messages"),
            huge.into_bytes(),
        )
        .await;
    assert_eq!((status.as_u16(), code(&err)), (413, "too_large"));
    room_still_works(&app, &room).await;
}

#[actix_rt::test]
async fn unknown_routes_and_methods_are_json_404s() {
    let app = app::start();
    for (method, path) in [
        ("GET", "/nope"),
        ("PATCH", "/rooms"),
        ("GET", "/rooms/r_x/join"),
    ] {
        let (status, err) = app.request(method, path, None, None).await;
        assert_eq!(
            (status.as_u16(), code(&err)),
            (404, "not_found"),
            "{method} {path}"
        );
    }
}

#[actix_rt::test]
async fn admin_needs_the_right_token() {
    let app = app::start();
    let room = app.create_room("admin").await;
    let close = format!("/admin/rooms/{room}/close");
    for token in [None, Some("wrong"), Some("")] {
        for path in [close.as_str(), "/admin/stats"] {
            let method = if path == close { "POST" } else { "GET" };
            let (status, err) = app.request(method, path, None, token).await;
            assert_eq!(
                (status.as_u16(), code(&err)),
                (401, "unauthorized"),
                "{path} {token:?}"
            );
        }
    }
    assert_eq!(
        app.room(&room).await["status"],
        "open",
        "a refused close changes nothing"
    );
    let (status, _) = app.request("GET", "/admin/stats", None, Some(TOKEN)).await;
    assert_eq!(status, 200);
    let (status, _) = app
        .request_with_header(
            "GET",
            "/admin/stats",
            ("Authorization", format!("bearer {TOKEN}")),
        )
        .await;
    assert_eq!(status, 200, "the auth scheme is case-insensitive");
    let (status, err) = app.close_room("r_unknown").await;
    assert_eq!((status.as_u16(), code(&err)), (404, "not_found"));
}

#[actix_rt::test]
async fn http_flood_is_rate_limited_and_the_room_recovers() {
    let app = app::builder()
        .setting("LIMITS__HTTP_RATE_PER_S", 5)
        .setting("LIMITS__HTTP_BURST", 10)
        .start();
    let room = app.create_room("flood").await;
    app.join(&room, "alice").await;
    let mut limited = 0;
    for _ in 0..40 {
        let (status, err) = app.vote(&room, "alice", "pro").await;
        if status == 429 {
            assert_eq!(code(&err), "rate_limited");
            limited += 1;
        }
    }
    assert!(limited > 0, "40 requests at once must pass a burst of 10");
    crate::support::app::eventually(
        "the limit to lift",
        std::time::Duration::from_secs(10),
        || async {
            let (status, _) = app.vote(&room, "alice", "con").await;
            (status == 200).then_some(())
        },
    )
    .await;
    assert_eq!(app.room(&room).await["con"], 1);
}

#[actix_rt::test]
async fn bad_frames_get_error_frames_and_the_socket_stays_open() {
    let app = app::start();
    let (_, mut ws) = socket_in_a_new_room(&app, "alice").await;
    ws.send_text("{nope".into()).await;
    let err = ws.next_of("error").await;
    assert_eq!(
        (err["error"].as_str(), err["req"].is_null()),
        (Some("bad_request"), true)
    );
    for (frame, req) in [
        (json!({"type": "vote", "side": "maybe", "req": "r1"}), "r1"),
        (json!({"type": "dance", "req": "r2"}), "r2"),
        (json!({"type": "say", "text": "", "req": "r3"}), "r3"),
        (
            json!({"type": "say", "text": "x".repeat(2001), "req": "r4"}),
            "r4",
        ),
    ] {
        ws.send_json(&frame).await;
        let err = ws.next_of("error").await;
        assert_eq!(err["error"], "bad_request", "{frame}");
        assert_eq!(err["req"], req);
    }
    ws.send_binary(vec![1, 2, 3]).await;
    assert_eq!(ws.next_of("error").await["error"], "bad_request");
    ws.send_json(&json!({"type": "vote", "side": "pro", "req": "ok"}))
        .await;
    let ack = ws.next_of("ack").await;
    assert_eq!(ack["req"], "ok", "the socket still works");
}

/// A socket of `user` in a new room, past its first `state`.
async fn socket_in_a_new_room(app: &TestApp, user: &str) -> (String, WsClient) {
    let room = app.create_room("frames").await;
    let mut ws = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user={user}")))
        .await
        .unwrap();
    ws.next_of("state").await;
    (room, ws)
}

/// The socket gets an `error` frame `too_large`, then is closed with 1009.
async fn closed_as_too_large(ws: &mut WsClient) {
    let (code_, frames) = ws.until_closed().await;
    assert!(
        frames.iter().any(|f| f["error"] == "too_large"),
        "frames before the close: {frames:?}"
    );
    assert_eq!(code_, Some(1009));
}

#[actix_rt::test]
async fn oversize_frames_are_too_large_and_the_room_survives() {
    let app = app::start();
    let (room, mut ws) = socket_in_a_new_room(&app, "big").await;
    ws.send_text("x".repeat(65 * 1024)).await;
    closed_as_too_large(&mut ws).await;
    room_still_works(&app, &room).await;
}

#[actix_rt::test]
async fn a_frame_declared_over_the_limit_is_too_large_before_its_payload_comes() {
    let app = app::start();
    let (room, mut ws) = socket_in_a_new_room(&app, "liar").await;
    // A text frame whose header declares 1 GiB, then 1 KiB of it and no more: refused on its
    // header, not once a gigabyte has been read into memory, nor at the 30 s silence timeout.
    let mut start = vec![0x81, 0x80 | 127];
    start.extend_from_slice(&(1u64 << 30).to_be_bytes());
    start.extend_from_slice(&[7, 7, 7, 7]);
    start.extend_from_slice(&[b'x'; 1024]);
    ws.send_raw(&start).await;
    ws.deadline = std::time::Duration::from_secs(10);
    closed_as_too_large(&mut ws).await;
    room_still_works(&app, &room).await;
}

#[actix_rt::test]
async fn socket_flood_is_rate_limited_and_the_room_is_unharmed() {
    let app = app::builder()
        .setting("LIMITS__WS_RATE_PER_S", 5)
        .setting("LIMITS__WS_BURST", 5)
        .start();
    let room = app.create_room("ws flood").await;
    let mut ws = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=flood")))
        .await
        .unwrap();
    ws.next_of("state").await;
    for i in 0..30 {
        ws.send_json(&json!({"type": "say", "text": "spam", "req": i.to_string()}))
            .await;
    }
    let mut acks = 0;
    let mut limited = 0;
    while acks + limited < 30 {
        let frame = ws.next_json().await;
        match frame["type"].as_str() {
            Some("ack") => acks += 1,
            Some("error") => {
                assert_eq!(frame["error"], "rate_limited");
                limited += 1;
            }
            _ => {}
        }
    }
    assert!(limited > 0 && acks >= 5, "acks {acks}, limited {limited}");
    let (_, listed) = app.get(&format!("/rooms/{room}/messages?limit=500")).await;
    assert_eq!(
        listed["messages"].as_array().unwrap().len(),
        acks,
        "exactly the acked ones"
    );
    room_still_works(&app, &room).await;
}

#[actix_rt::test]
async fn a_plain_get_of_the_socket_path_is_a_json_400() {
    let app = app::start();
    let room = app.create_room("no upgrade").await;
    let (status, err) = app.get(&format!("/rooms/{room}/ws?user=alice")).await;
    assert_eq!((status.as_u16(), code(&err)), (400, "bad_request"), "{err}");
    let (status, _) = app.get(&format!("/rooms/{room}/messages?_=123")).await;
    assert_eq!(status, 200, "unknown query parameters are ignored");
    // In the documented order: a path id that cannot be a room (404) before a malformed query
    // (400), before a request that is no upgrade (400).
    let (status, err) = app.get("/rooms/bad.id/ws?user=a&user=b").await;
    assert_eq!((status.as_u16(), code(&err)), (404, "not_found"), "{err}");
    let (status, err) = app.get(&format!("/rooms/{room}/ws?user=a&user=b")).await;
    assert_eq!((status.as_u16(), code(&err)), (400, "bad_request"), "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bad query"),
        "{err}"
    );
    room_still_works(&app, &room).await;
}

#[actix_rt::test]
async fn a_flood_of_garbage_frames_is_rate_limited_too() {
    let app = app::builder()
        .setting("LIMITS__WS_RATE_PER_S", 2)
        .setting("LIMITS__WS_BURST", 2)
        .start();
    let room = app.create_room("garbage").await;
    let mut ws = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=g")))
        .await
        .unwrap();
    ws.next_of("state").await;
    for _ in 0..80 {
        ws.send_text("{garbage".into()).await;
    }
    let (code_, frames) = ws.until_closed().await;
    assert!(
        frames.iter().any(|f| f["error"] == "rate_limited"),
        "{frames:?}"
    );
    assert_eq!(
        code_,
        Some(1008),
        "a client that keeps flooding is disconnected"
    );
    room_still_works(&app, &room).await;
}
