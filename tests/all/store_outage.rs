//! The SQL store (a real MariaDB) going down and coming back, played with a TCP proxy between the
//! engine and the server (`roomstate_testkit::tcp_proxy`): while it is down a close is refused
//! with 503 and `/readyz` says the store (not the journal) is down, and the room stays open
//! (listed, readable, its sockets up); once it is back the close succeeds and the record is in
//! MariaDB, once, holding exactly what was acknowledged. Also a close caught by SIGTERM while the
//! store is down: refused, and done after the restart.
//! After a refused close the room takes mutations again: a 503 promises nothing was applied.

use std::time::Duration;

use roomstate_core::room::RoomId;
use roomstate_store::Store;
use serde_json::{json, Value};

use crate::{
    close::{store_rows, stored_transcript},
    support::{
        app::{self, eventually, TestApp, TOKEN},
        mysql::TestDatabase,
        ws::WsClient,
    },
};

/// How long the engine may take to notice the store is down or back (its pool waits 3 s for a
/// connection, readiness probes 2 s), on a loaded machine.
const NOTICE_DEADLINE: Duration = Duration::from_secs(60);

/// `/readyz` once it answers `status` (fails after `NOTICE_DEADLINE`).
async fn readiness(app: &TestApp, status: u16) -> Value {
    eventually(
        &format!("/readyz to answer {status}"),
        NOTICE_DEADLINE,
        || async {
            let (got, body) = app.get("/readyz").await;
            (got == status).then_some(body)
        },
    )
    .await
}

/// The close of `room`, retried while it answers `503` (fails after `NOTICE_DEADLINE`).
async fn close_once_the_store_answers(app: &TestApp, room: &str) -> Value {
    app.close_room_retried(room, NOTICE_DEADLINE).await
}

/// A room where alice (HTTP) voted pro and said a line, and bob has a socket open.
async fn busy_room(app: &TestApp) -> (String, WsClient) {
    let room = app.create_room("store outage").await;
    app.join(&room, "alice").await;
    assert_eq!(app.vote(&room, "alice", "pro").await.0, 200);
    assert_eq!(app.say(&room, "alice", "before the outage").await.0, 201);
    let mut bob = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=bob")))
        .await
        .unwrap();
    bob.next_of("state").await;
    bob.send_json(&json!({"type": "vote", "side": "con", "req": "b0"}))
        .await;
    assert_eq!(bob.answer_to("b0").await.unwrap()["type"], "ack");
    (room, bob)
}

/// What was acknowledged in a room: each user's last vote, and the lines said (oldest first).
struct Acknowledged {
    votes: Vec<(String, String)>,
    lines: Vec<String>,
}

impl Acknowledged {
    /// What `busy_room` had acknowledged.
    fn busy_room() -> Self {
        Self {
            votes: vec![("alice".into(), "pro".into()), ("bob".into(), "con".into())],
            lines: vec!["before the outage".into()],
        }
    }
}

/// The record of `room` in MariaDB, read directly (not through the proxy): one room row, and
/// exactly what was acknowledged.
async fn check_record(db: &TestDatabase, room: &str, closed: &Value, acked: &Acknowledged) {
    let store = Store::open(&db.url()).expect("the test database");
    let id = RoomId::parse(room).unwrap();
    let mut votes: Vec<(String, String)> = store
        .votes(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|(u, s)| (u.to_string(), s.as_str().to_owned()))
        .collect();
    votes.sort();
    assert_eq!(
        votes, acked.votes,
        "the final votes are the acknowledged ones"
    );
    let transcript: Vec<String> = stored_transcript(&store, &id)
        .await
        .into_iter()
        .map(|(_, text)| text)
        .collect();
    assert_eq!(
        transcript, acked.lines,
        "the transcript is the acknowledged lines"
    );
    let stored = store.room(&id).await.unwrap().expect("the room row");
    assert_eq!(&serde_json::to_value(&stored).unwrap(), closed);
    assert_eq!(
        store_rows(&db.url(), room),
        (1, acked.votes.len() as i64, acked.lines.len() as i64),
        "written once"
    );
}

/// A close while MariaDB is down, then again once it is back.
///
/// After the refused close the room takes mutations again (nothing of the close was applied).
async fn close_while_mariadb_is_down() {
    let db = TestDatabase::create();
    let (proxy, url) = db.behind_a_proxy();
    let app = app::builder().setting("STORE__URL", &url).start();
    let (room, mut bob) = busy_room(&app).await;
    let before = app.room(&room).await;
    assert_eq!(
        app.get("/readyz").await.1,
        json!({"journal": "up", "store": "up"})
    );

    proxy.down();
    let ready = readiness(&app, 503).await;
    assert_eq!(ready["error"], "unavailable", "{ready}");
    assert_eq!(
        (&ready["journal"], &ready["store"]),
        (&json!("up"), &json!("down"))
    );
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(message.contains("store down"), "{ready}");
    assert!(!message.contains("journal down"), "{ready}");

    let (status, refused) = app.close_room(&room).await;
    assert_eq!(
        (status.as_u16(), refused["error"].as_str()),
        (503, Some("unavailable")),
        "{refused}"
    );
    // The room is still open: listed, readable, as it was; its socket still up.
    let view = app.room(&room).await;
    assert_eq!(view, before, "the room is as it was");
    let (_, listed) = app.get("/rooms").await;
    assert_eq!(listed["rooms"][0]["id"], room.as_str(), "{listed}");
    let (status, messages) = app.get(&format!("/rooms/{room}/messages")).await;
    assert_eq!(status, 200);
    assert_eq!(messages["messages"].as_array().map(Vec::len), Some(1));
    // Mutations are taken again, and what is acknowledged ends up in the record.
    let mut acked = Acknowledged::busy_room();
    let (status, vote) = app.vote(&room, "alice", "con").await;
    assert_eq!(status, 200, "a vote after the refused close: {vote}");
    acked.votes[0].1 = "con".into();
    bob.send_json(&json!({"type": "say", "text": "still here", "req": "b1"}))
        .await;
    let answer = bob.answer_to("b1").await.expect("the socket is still open");
    assert_eq!(
        answer["type"], "ack",
        "a socket message after the refused close: {answer}"
    );
    acked.lines.push("still here".into());

    proxy.up();
    let ready = readiness(&app, 200).await;
    assert_eq!(ready, json!({"journal": "up", "store": "up"}));
    let closed = close_once_the_store_answers(&app, &room).await;
    assert_eq!(closed["status"], "closed");
    let (code, frames) = bob.until_closed().await;
    assert_eq!(code, Some(1000), "{frames:?}");
    assert!(frames.iter().any(|f| f["type"] == "closed"), "{frames:?}");
    check_record(&db, &room, &closed, &acked).await;
    assert_eq!(app.room(&room).await, closed);
}

#[actix_rt::test]
async fn a_close_while_mariadb_is_down_is_refused_and_done_once_it_is_back() {
    close_while_mariadb_is_down().await;
}

/// SIGTERM while a close is writing to a MariaDB that is down: the close is refused, the engine
/// exits 0, and after a restart with MariaDB back the room is open and its close writes the
/// record once.
#[actix_rt::test]
async fn sigterm_during_a_close_while_mariadb_is_down_leaves_the_room_closable() {
    let db = TestDatabase::create();
    let (proxy, url) = db.behind_a_proxy();
    let mut app = app::builder().setting("STORE__URL", &url).start();
    let (room, mut bob) = busy_room(&app).await;
    let before = app.room(&room).await;

    proxy.down();
    let close = {
        let url = app.url(&format!("/admin/rooms/{room}/close"));
        actix_rt::spawn(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish();
            let mut response = client
                .post(url)
                .insert_header(("Authorization", format!("Bearer {TOKEN}")))
                .send()
                .await
                .ok()?;
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            Some((response.status().as_u16(), body))
        })
    };
    // A vote of someone who never joined: `not_joined` while the room is open, `room_closed`
    // once the close began.
    eventually("the close to begin", NOTICE_DEADLINE, || async {
        let (status, body) = app.vote(&room, "ghost", "pro").await;
        match (status.as_u16(), body["error"].as_str()) {
            (409, Some("room_closed")) => Some(()),
            (409, Some("not_joined")) => None,
            _ => panic!("unexpected {status} {body}"),
        }
    })
    .await;
    // The store write waits up to 3 s for a connection: the close is still in progress.
    assert!(
        !close.is_finished(),
        "the close ended before the signal; the machine was too slow for this test"
    );
    app.terminate();
    let (status, refused) = close
        .await
        .unwrap()
        .expect("the close is answered before the engine exits");
    assert_eq!(
        (status, refused["error"].as_str()),
        (503, Some("unavailable")),
        "{refused}"
    );
    assert_eq!(
        bob.until_closed().await.0,
        Some(1001),
        "a shutdown, not a close"
    );
    let status = app.wait_exit();
    assert!(status.success(), "{status:?}");

    proxy.up();
    app.restart();
    let mut open = before.clone();
    open["participants"] = json!(0);
    assert_eq!(
        app.room(&room).await,
        open,
        "the room is open, as acknowledged"
    );
    let (status, closed) = app.close_room(&room).await;
    assert_eq!(status, 200, "{closed}");
    check_record(&db, &room, &closed, &Acknowledged::busy_room()).await;
    let (status, again) = app.close_room(&room).await;
    assert_eq!((status.as_u16(), &again), (200, &closed));
}

/// MariaDB stops answering (a hung server: connections stay up, nothing crosses them) during a
/// close: the close answers 503 within `store.timeout_s` saying the store did not answer, and
/// the room takes mutations again at once, not only once the server is back. When it is back,
/// the abandoned write may land after all (here it does: the proxy held its bytes); the next
/// close replaces that record with one holding everything acknowledged since.
#[actix_rt::test]
async fn a_close_while_mariadb_hangs_is_refused_within_the_store_timeout_and_the_room_goes_on() {
    let db = TestDatabase::create();
    let (proxy, url) = db.behind_a_proxy();
    let app = app::builder()
        .setting("STORE__URL", &url)
        .setting("STORE__TIMEOUT_S", "2")
        .start();
    let (room, mut bob) = busy_room(&app).await;

    proxy.stall();
    let started = std::time::Instant::now();
    let (status, refused) = app.close_room(&room).await;
    let waited = started.elapsed();
    assert_eq!(
        (status.as_u16(), refused["error"].as_str()),
        (503, Some("unavailable")),
        "{refused}"
    );
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no answer within 2000 ms") && message.contains("retry the close"),
        "{refused}"
    );
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(7),
        "answered after {waited:?}: the store's 2 s, before the close's own 7 s"
    );
    // While the server still hangs, the room is open and takes mutations.
    let mut acked = Acknowledged::busy_room();
    let (status, vote) = app.vote(&room, "alice", "con").await;
    assert_eq!(status, 200, "a vote after the refused close: {vote}");
    acked.votes[0].1 = "con".into();
    bob.send_json(&json!({"type": "say", "text": "still here", "req": "b1"}))
        .await;
    let answer = bob.answer_to("b1").await.expect("the socket is still open");
    assert_eq!(answer["type"], "ack", "{answer}");
    acked.lines.push("still here".into());

    proxy.resume();
    let closed = close_once_the_store_answers(&app, &room).await;
    assert_eq!(closed["status"], "closed");
    let (code, frames) = bob.until_closed().await;
    assert_eq!(code, Some(1000), "{frames:?}");
    check_record(&db, &room, &closed, &acked).await;
}
