//! Shutdown with events still pending, through the binary on a Redis journal of the test's own:
//! SIGTERM while Redis is down. If Redis comes back within the drain deadline, every pending
//! request is made durable and answered, the engine exits 0 and a restart has them all; if it
//! stays down, the engine still exits soon after the deadline, reports nothing it did not make
//! durable as done, and a restart has every acknowledged mutation. A close caught by the shutdown
//! either completes with its final record or is refused and can be done after the restart —
//! never lost, never written twice.
//!
//! What the clients are told matters as much as what is stored: a socket's request made durable
//! during the drain gets its `ack` before the socket closes (1001); a request the drain gave up
//! on is answered `503 unavailable` (not durable, retry), and a close cut off by the deadline too
//! — the room is not closed.

use std::time::{Duration, Instant};

use roomstate_core::room::RoomId;
use roomstate_store::Store;
use serde_json::{json, Value};

use crate::{
    close::{store_rows, stored_transcript},
    support::{
        app::{self, eventually, TestApp, TOKEN},
        sentinel::RedisServer,
        ws::WsClient,
    },
};

/// `DRAIN_DEADLINE` in src/app.rs: how long shutdown waits for pending events.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// How long past the drain deadline an engine may take to exit: the HTTP server's own graceful
/// stop (`http.shutdown_timeout_s`, 10 s by default) plus a loaded machine's slack.
const EXIT_MARGIN: Duration = Duration::from_secs(20);
/// How long a test waits for an answer that comes once Redis is back.
const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

fn engine_on(redis: &RedisServer) -> TestApp {
    app::builder()
        .setting("JOURNAL__KIND", "redis")
        .setting("REDIS__URL", redis.url())
        .start()
}

fn store_url(app: &TestApp) -> String {
    format!("sqlite://{}", app.data_dir().join("roomstate.db").display())
}

/// Events applied in memory and not yet durable (`/admin/stats`).
async fn journal_lag(app: &TestApp) -> u64 {
    let (status, stats) = app.request("GET", "/admin/stats", None, Some(TOKEN)).await;
    assert_eq!(status, 200, "{stats}");
    stats["journal_lag"].as_u64().expect("journal_lag")
}

/// Waits until at least `n` events are pending: the requests sent meanwhile reached their room.
async fn pending(app: &TestApp, n: u64) {
    eventually(
        &format!("{n} events pending"),
        Duration::from_secs(30),
        || async { (journal_lag(app).await >= n).then_some(()) },
    )
    .await;
}

/// Waits until the engine's log says the signal was taken: the drain has begun.
async fn draining(app: &TestApp) {
    eventually(
        "the engine to begin its shutdown",
        Duration::from_secs(30),
        || async {
            app.log()
                .contains("signal received; shutting down")
                .then_some(())
        },
    )
    .await;
}

/// An HTTP request sent now and answered whenever the engine answers it: `None` when the
/// connection ended without an answer (the engine went away).
fn send_later(
    app: &TestApp,
    method: &'static str,
    path: String,
    body: Option<Value>,
    token: Option<&'static str>,
) -> actix_rt::task::JoinHandle<Option<(u16, Value)>> {
    let url = app.url(&path);
    actix_rt::spawn(async move {
        let client = awc::Client::builder().timeout(ANSWER_DEADLINE).finish();
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = client.request(method, url);
        if let Some(token) = token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let sent = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        };
        let mut response = sent.ok()?;
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Some((response.status().as_u16(), body))
    })
}

async fn socket(app: &TestApp, room: &str, user: &str) -> WsClient {
    let mut ws = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user={user}")))
        .await
        .unwrap();
    ws.next_of("state").await;
    ws.deadline = ANSWER_DEADLINE;
    ws
}

/// A room with alice (HTTP), bob and carol (sockets), where alice voted pro, bob voted con and
/// alice said one line, all acknowledged. Returns the room, the sockets and the view after that.
async fn room_with_three(app: &TestApp) -> (String, WsClient, WsClient, Value) {
    let room = app.create_room("pending at shutdown").await;
    app.join(&room, "alice").await;
    let mut bob = socket(app, &room, "bob").await;
    let carol = socket(app, &room, "carol").await;
    assert_eq!(app.vote(&room, "alice", "pro").await.0, 200);
    bob.send_json(&json!({"type": "vote", "side": "con", "req": "b0"}))
        .await;
    assert_eq!(bob.answer_to("b0").await.unwrap()["type"], "ack");
    assert_eq!(app.say(&room, "alice", "before the outage").await.0, 201);
    let view = app.room(&room).await;
    (room, bob, carol, view)
}

/// The state a restart shows of `view`'s room: nobody present.
fn after_restart(view: &Value) -> Value {
    let mut view = view.clone();
    view["participants"] = json!(0);
    view
}

async fn texts(app: &TestApp, room: &str) -> Vec<(u64, String)> {
    let (status, listed) = app.get(&format!("/rooms/{room}/messages?limit=500")).await;
    assert_eq!(status, 200, "{listed}");
    listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// (a) SIGTERM while Redis is down with requests pending; Redis is back before the drain deadline.
///
/// A socket's pending request made durable during the drain gets its `ack` before the socket
/// is closed.
async fn redis_back_within_the_drain_deadline() {
    let mut redis = RedisServer::start().await;
    let mut app = engine_on(&redis);
    let (room, mut bob, mut carol, before) = room_with_three(&app).await;

    redis.kill();
    // Four mutations that cannot become durable now: two over HTTP, two over sockets.
    let vote = send_later(
        &app,
        "PUT",
        format!("/rooms/{room}/votes/alice"),
        Some(json!({"side": "con"})),
        None,
    );
    let say = send_later(
        &app,
        "POST",
        format!("/rooms/{room}/messages"),
        Some(json!({"user": "alice", "text": "pending over HTTP"})),
        None,
    );
    bob.send_json(&json!({"type": "vote", "side": "pro", "req": "b1"}))
        .await;
    carol
        .send_json(&json!({"type": "say", "text": "pending on a socket", "req": "c1"}))
        .await;
    pending(&app, 4).await;
    assert_eq!(app.room(&room).await, before, "nothing pending is shown");

    app.terminate();
    draining(&app).await;
    redis.restart().await;

    let (status, voted) = vote.await.unwrap().expect("an answer to the pending vote");
    assert_eq!(status, 200, "{voted}");
    let (status, said) = say
        .await
        .unwrap()
        .expect("an answer to the pending message");
    assert_eq!(status, 201, "{said}");
    for (ws, req) in [(&mut bob, "b1"), (&mut carol, "c1")] {
        // Read to the close: the `ack` (if any), the durable events' broadcasts, then 1001.
        let (code, frames) = ws.until_closed().await;
        assert_eq!(code, Some(1001), "{req}: {frames:?}");
        let answer = frames
            .iter()
            .find(|f| f["req"] == req && (f["type"] == "ack" || f["type"] == "error"));
        match answer {
            Some(answer) => assert_eq!(answer["type"], "ack", "{req}: {answer}"),
            None => panic!("{req} was made durable but never acknowledged: {frames:?}"),
        }
    }
    let status = app.wait_exit();
    assert!(
        status.success(),
        "exits 0 once everything is durable: {status:?}"
    );

    app.restart();
    let after = app.room(&room).await;
    let seq = before["seq"].as_u64().unwrap();
    assert_eq!(after["seq"].as_u64(), Some(seq + 4), "{after}");
    assert_eq!(
        (after["pro"].as_u64(), after["con"].as_u64()),
        (Some(1), Some(1))
    );
    // Every pending message is in the transcript, after the one from before (the socket's may
    // have no acknowledged seq to compare with).
    let listed = texts(&app, &room).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed[0], (seq, "before the outage".to_owned()));
    assert!(
        listed.contains(&(
            said["seq"].as_u64().unwrap(),
            "pending over HTTP".to_owned()
        )),
        "{listed:?}"
    );
    assert!(
        listed.iter().any(|(_, text)| text == "pending on a socket"),
        "{listed:?}"
    );
    let (status, closed) = app.close_room(&room).await;
    assert_eq!(status, 200, "{closed}");
    let store = Store::open(&store_url(&app)).unwrap();
    let votes: Vec<(String, String)> = store
        .votes(&RoomId::parse(&room).unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|(u, s)| (u.to_string(), s.as_str().to_owned()))
        .collect();
    assert_eq!(
        votes,
        [("alice".into(), "con".into()), ("bob".into(), "pro".into())],
        "the votes made durable during the drain are the final ones"
    );
}

#[actix_rt::test]
async fn sigterm_with_redis_down_drains_every_pending_request_once_redis_is_back() {
    redis_back_within_the_drain_deadline().await;
}

/// (b) SIGTERM while Redis is down with requests pending, and Redis stays down.
///
/// The requests the drain gave up on are answered `503 unavailable` (not durable), not
/// `409 room_closed`: the room is not closed, it is open again after the restart.
async fn redis_staying_down() {
    let mut redis = RedisServer::start().await;
    let mut app = engine_on(&redis);
    let (room, mut bob, mut carol, before) = room_with_three(&app).await;

    redis.kill();
    let vote = send_later(
        &app,
        "PUT",
        format!("/rooms/{room}/votes/alice"),
        Some(json!({"side": "con"})),
        None,
    );
    let say = send_later(
        &app,
        "POST",
        format!("/rooms/{room}/messages"),
        Some(json!({"user": "alice", "text": "never durable"})),
        None,
    );
    bob.send_json(&json!({"type": "vote", "side": "pro", "req": "b1"}))
        .await;
    carol
        .send_json(&json!({"type": "say", "text": "never durable either", "req": "c1"}))
        .await;
    pending(&app, 4).await;

    let signalled = Instant::now();
    app.terminate();
    let status = app.wait_exit();
    let took = signalled.elapsed();
    assert!(
        took < DRAIN_DEADLINE + EXIT_MARGIN,
        "the engine exits within the drain deadline and a margin, not after {took:?} ({status:?})"
    );

    // Whatever the pending requests got, it is not a success.
    for (what, answer) in [
        ("vote", vote.await.unwrap()),
        ("message", say.await.unwrap()),
    ] {
        let (status, body) =
            answer.unwrap_or_else(|| panic!("the pending {what} got no answer at all"));
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("unavailable")),
            "the pending {what} is refused as not durable: {body}"
        );
    }
    for (ws, req) in [(&mut bob, "b1"), (&mut carol, "c1")] {
        let answer = ws
            .answer_to(req)
            .await
            .unwrap_or_else(|| panic!("{req} got no answer before the socket closed"));
        assert_eq!(
            (answer["type"].as_str(), answer["error"].as_str()),
            (Some("error"), Some("unavailable")),
            "{req} is refused as not durable: {answer}"
        );
    }

    redis.restart().await;
    app.restart();
    assert_eq!(
        app.room(&room).await,
        after_restart(&before),
        "every acknowledged mutation and nothing else"
    );
    assert_eq!(
        texts(&app, &room).await,
        [(
            before["seq"].as_u64().unwrap(),
            "before the outage".to_owned()
        )]
    );
    let (status, closed) = app.close_room(&room).await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(
        (closed["pro"].as_u64(), closed["con"].as_u64()),
        (Some(1), Some(1))
    );
}

#[actix_rt::test]
async fn sigterm_with_redis_staying_down_exits_and_reports_nothing_undurable_as_done() {
    redis_staying_down().await;
}

/// Starts a close of `room` that cannot finish while Redis is down (an event is pending), and
/// waits until the room refuses mutations as closed: the close is in progress. Returns the
/// pending vote's and the close's answers to come.
async fn close_in_progress(
    app: &TestApp,
    room: &str,
) -> (
    actix_rt::task::JoinHandle<Option<(u16, Value)>>,
    actix_rt::task::JoinHandle<Option<(u16, Value)>>,
) {
    let vote = send_later(
        app,
        "PUT",
        format!("/rooms/{room}/votes/alice"),
        Some(json!({"side": "con"})),
        None,
    );
    pending(app, 1).await;
    let close = send_later(
        app,
        "POST",
        format!("/admin/rooms/{room}/close"),
        None,
        Some(TOKEN),
    );
    // A vote of someone who never joined: `not_joined` while the room is open, `room_closed`
    // once the close began. (Refused before it is applied, so it adds nothing.)
    eventually("the close to begin", Duration::from_secs(30), || async {
        let (status, body) = app.vote(room, "ghost", "pro").await;
        match (status.as_u16(), body["error"].as_str()) {
            (409, Some("room_closed")) => Some(()),
            (409, Some("not_joined")) => None,
            _ => panic!(
                "unexpected {status} {body} (a 503 means the journal has been failing for \
                 longer than its grace: the set-up was too slow)"
            ),
        }
    })
    .await;
    (vote, close)
}

#[actix_rt::test]
async fn sigterm_during_a_close_waiting_for_the_journal_completes_it_when_redis_is_back() {
    let mut redis = RedisServer::start().await;
    let mut app = engine_on(&redis);
    let (room, mut bob, _carol, _) = room_with_three(&app).await;

    redis.kill();
    let (vote, close) = close_in_progress(&app, &room).await;
    app.terminate();
    draining(&app).await;
    redis.restart().await;

    let (status, voted) = vote.await.unwrap().expect("an answer to the pending vote");
    assert_eq!(status, 200, "{voted}");
    let (status, closed) = close.await.unwrap().expect("an answer to the close");
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["status"], "closed");
    assert_eq!(
        (closed["pro"].as_u64(), closed["con"].as_u64()),
        (Some(0), Some(2))
    );
    let (code, frames) = bob.until_closed().await;
    assert_eq!(
        code,
        Some(1000),
        "the room's close ends the socket: {frames:?}"
    );
    assert!(frames.iter().any(|f| f["type"] == "closed"), "{frames:?}");
    let status = app.wait_exit();
    assert!(status.success(), "{status:?}");

    app.restart();
    assert_eq!(
        app.room(&room).await,
        closed,
        "the record survives the restart"
    );
    let (_, listed) = app.get("/rooms").await;
    assert_eq!(listed["rooms"], json!([]), "and the room is not open again");
    assert_eq!(store_rows(&store_url(&app), &room), (1, 2, 1));
    eventually(
        "the closed room's log to go",
        Duration::from_secs(20),
        || async { redis.keys("roomstate:*").await.is_empty().then_some(()) },
    )
    .await;
}

/// (c) SIGTERM while a close waits for Redis, and Redis stays down.
///
/// The close cut off by the drain deadline is answered `503 unavailable` (retry), not
/// `404 not_found` ("no such room").
async fn close_with_redis_staying_down() {
    let mut redis = RedisServer::start().await;
    let mut app = engine_on(&redis);
    let (room, _bob, _carol, before) = room_with_three(&app).await;

    redis.kill();
    let (vote, close) = close_in_progress(&app, &room).await;
    let signalled = Instant::now();
    app.terminate();
    let status = app.wait_exit();
    let took = signalled.elapsed();
    assert!(
        took < DRAIN_DEADLINE + EXIT_MARGIN,
        "exited after {took:?} ({status:?})"
    );
    if let Some((status, body)) = vote.await.unwrap() {
        assert!(
            status >= 400,
            "the pending vote is not reported as done: {body}"
        );
    }
    let (status, body) = close
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("the close got no answer at all"));
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("unavailable")),
        "the cut-off close is refused, not reported done or unknown: {body}"
    );

    redis.restart().await;
    app.restart();
    assert_eq!(
        app.room(&room).await,
        after_restart(&before),
        "the room is open, as acknowledged"
    );
    let (status, closed) = app.close_room(&room).await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(
        (closed["pro"].as_u64(), closed["con"].as_u64()),
        (Some(1), Some(1))
    );
    let (status, again) = app.close_room(&room).await;
    assert_eq!((status.as_u16(), &again), (200, &closed));
    let store = Store::open(&store_url(&app)).unwrap();
    let id = RoomId::parse(&room).unwrap();
    assert_eq!(
        stored_transcript(&store, &id).await,
        [(
            before["seq"].as_u64().unwrap(),
            "before the outage".to_owned()
        )]
    );
    assert_eq!(
        store_rows(&store_url(&app), &room),
        (1, 2, 1),
        "written once"
    );
}

#[actix_rt::test]
async fn sigterm_during_a_close_with_redis_staying_down_leaves_the_room_closable() {
    close_with_redis_staying_down().await;
}
