//! Idempotent retries (docs/api.md): a `POST /messages` with an `Idempotency-Key`, or a socket
//! `say` with a `req` (any string), repeated by the same user in the same room, answers like the
//! first time and adds nothing — over HTTP and WebSocket, after the user left, after an engine
//! crash and restart, and after a Redis primary failover. Another user's same key is another
//! message; a malformed key is refused and harms nothing.

use std::time::Duration;

use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    app::{self, TestApp},
    mysql::TestDatabase,
    sentinel::SentinelSet,
    ws::WsClient,
};

/// How long a failover (detection, election, the engine finding the new primary) may take.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(60);

/// `POST /rooms/{room}/messages` as `user` with `key` as the `Idempotency-Key` header.
async fn say_keyed(app: &TestApp, room: &str, user: &str, text: &str, key: &str) -> (u16, Value) {
    let mut resp = awc::Client::default()
        .post(app.url(&format!("/rooms/{room}/messages")))
        .insert_header(("Idempotency-Key", key))
        .send_json(&json!({ "user": user, "text": text }))
        .await
        .unwrap_or_else(|e| panic!("POST /messages: {e}"));
    let body = resp.body().await.expect("response body");
    (
        resp.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// The room's transcript as (seq, user, text).
async fn transcript(app: &TestApp, room: &str) -> Vec<(u64, String, String)> {
    let (status, body) = app.get(&format!("/rooms/{room}/messages?limit=500")).await;
    assert_eq!(status, 200, "{body}");
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["user"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[actix_rt::test]
async fn the_same_key_twice_over_http_is_one_message() {
    let app = app::start();
    let room = app.create_room("retries").await;
    app.join(&room, "alice").await;
    app.join(&room, "bob").await;

    let (status, first) = say_keyed(&app, &room, "alice", "hello", "msg-1").await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = say_keyed(&app, &room, "alice", "hello", "msg-1").await;
    assert_eq!(
        (status, &again),
        (201, &first),
        "a repeat answers like the first"
    );
    let (_, bobs) = say_keyed(&app, &room, "bob", "hello", "msg-1").await;
    assert_ne!(
        bobs["seq"], first["seq"],
        "another user's same key is another message"
    );
    let seq = first["seq"].as_u64().unwrap();
    assert_eq!(
        transcript(&app, &room).await,
        [
            (seq, "alice".to_owned(), "hello".to_owned()),
            (seq + 1, "bob".to_owned(), "hello".to_owned())
        ]
    );

    // Recognised before the presence rule: alice left, her repeat still answers the same.
    app.post(&format!("/rooms/{room}/leave"), json!({"user": "alice"}))
        .await;
    let (status, late) = say_keyed(&app, &room, "alice", "hello", "msg-1").await;
    assert_eq!((status, &late), (201, &first));
    let (status, fresh) = say_keyed(&app, &room, "alice", "new", "msg-2").await;
    assert_eq!((status, fresh["error"].as_str()), (409, Some("not_joined")));

    // Without a key, a repeat is a new message.
    let (s1, a) = app.say(&room, "bob", "twice").await;
    let (s2, b) = app.say(&room, "bob", "twice").await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_ne!(a["seq"], b["seq"]);
    assert_eq!(transcript(&app, &room).await.len(), 4);
}

#[actix_rt::test]
async fn a_malformed_key_is_a_bad_request_and_adds_nothing() {
    let app = app::start();
    let room = app.create_room("bad keys").await;
    app.join(&room, "alice").await;
    let before = app.room(&room).await["seq"].clone();
    for bad in ["has space", "slash/no", &"k".repeat(65), "ümlaut"] {
        let (status, body) = say_keyed(&app, &room, "alice", "x", bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_request")),
            "{bad:?}: {body}"
        );
    }
    assert_eq!(app.room(&room).await["seq"], before, "nothing was applied");
    assert!(transcript(&app, &room).await.is_empty());
    let (status, _) = say_keyed(&app, &room, "alice", "fine", "ok:key_1.2-3").await;
    assert_eq!(status, 201, "the room still works");
}

#[actix_rt::test]
async fn the_same_req_twice_over_a_socket_is_one_message() {
    let app = app::start();
    let room = app.create_room("socket retries").await;
    let url = app.ws_url(&format!("/rooms/{room}/ws?user=alice"));
    let mut ws = WsClient::connect(&url).await.unwrap();
    ws.next_of("state").await;
    let say = json!({"type": "say", "text": "once", "req": "say-1"});
    ws.send_json(&say).await;
    let first = ws.answer_to("say-1").await.expect("an answer");
    ws.send_json(&say).await;
    let again = ws.answer_to("say-1").await.expect("an answer");
    assert_eq!(first["type"], "ack", "{first}");
    assert_eq!(again, first, "the repeat is acked with the first seq");
    // Any string `req` serves as the key, one that no header could carry included (a space,
    // over 64 characters, beyond ASCII); another `req` is another message.
    let long = "r".repeat(300);
    for req in ["not a header key", long.as_str(), "ключ 1"] {
        let loose = json!({"type": "say", "text": "loose", "req": req});
        ws.send_json(&loose).await;
        let a = ws.answer_to(req).await.expect("an answer");
        ws.send_json(&loose).await;
        let b = ws.answer_to(req).await.expect("an answer");
        assert_eq!(a["type"], "ack", "{a}");
        assert_eq!(b, a, "{req}: the repeat is acked with the first seq");
    }
    let texts: Vec<String> = transcript(&app, &room)
        .await
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    assert_eq!(texts, ["once", "loose", "loose", "loose"]);
    // An HTTP repeat of the socket's key by the same user is the same message too.
    let (status, http) = say_keyed(&app, &room, "alice", "once", "say-1").await;
    assert_eq!((status, &http["seq"]), (201, &first["seq"]));
}

#[actix_rt::test]
async fn a_key_is_recognised_after_a_crash_and_restart() {
    let mut app = app::start();
    let room = app.create_room("crash").await;
    app.join(&room, "alice").await;
    let (_, first) = say_keyed(&app, &room, "alice", "before the crash", "k-crash").await;
    app.kill();
    app.restart();
    // Nobody is present after a restart, and the repeat is still recognised.
    let (status, again) = say_keyed(&app, &room, "alice", "before the crash", "k-crash").await;
    assert_eq!((status, &again), (201, &first));
    assert_eq!(transcript(&app, &room).await.len(), 1);
}

#[actix_rt::test]
async fn a_key_is_recognised_after_a_redis_primary_failover() {
    let mut set = SentinelSet::start().await;
    let db = TestDatabase::create();
    let mut app = app::builder()
        .setting("JOURNAL__KIND", "redis")
        .setting("REDIS__SENTINELS", set.sentinels_setting())
        .setting("REDIS__MIN_REPLICA_ACKS", 1)
        .setting("STORE__URL", db.url())
        .start();
    let room = app.create_room("failover").await;
    app.join(&room, "alice").await;
    let (status, first) = say_keyed(&app, &room, "alice", "before", "k-failover").await;
    assert_eq!(status, 201, "{first}");

    let old = set.kill_primary().await;
    set.wait_for_new_primary(&old, FAILOVER_DEADLINE).await;
    // The engine forgets everything it held: what it recovers comes from the promoted replica.
    app.kill();
    app.restart();
    // Retried until the engine reads and writes the new primary (503 meanwhile is allowed).
    let again = app::eventually("the engine to answer again", FAILOVER_DEADLINE, || async {
        match say_keyed(&app, &room, "alice", "before", "k-failover").await {
            (201, body) => Some(body),
            (503, _) => None,
            (status, body) => panic!("the repeat answered {status}: {body}"),
        }
    })
    .await;
    assert_eq!(
        again, first,
        "the key came through the failover, on the replica"
    );
    assert_eq!(transcript(&app, &room).await.len(), 1);
    let (status, closed) = app.close_room(&room).await;
    assert_eq!(
        (status, closed["messages"].as_u64()),
        (StatusCode::OK, Some(1))
    );
}
