//! Closing a room writes its final record to the SQL store (SQLite and a real MariaDB), once,
//! equal to what was acknowledged.

use std::collections::BTreeMap;

use roomstate_core::room::RoomId;
use roomstate_store::Store;
use serde_json::{json, Value};

use crate::support::{
    app::{self, TestApp},
    mysql::TestDatabase,
};

/// Drives a room through joins, votes, switches, retracts and messages; returns the
/// acknowledged final votes and transcript.
async fn debate(app: &TestApp, room: &str) -> (BTreeMap<String, String>, Vec<(u64, String)>) {
    let mut votes = BTreeMap::new();
    let mut transcript = Vec::new();
    for i in 0..6 {
        app.join(room, &format!("u{i}")).await;
    }
    for i in 0..6 {
        let user = format!("u{i}");
        let side = if i % 3 == 0 { "con" } else { "pro" };
        let (status, _) = app.vote(room, &user, side).await;
        assert_eq!(status, 200);
        votes.insert(user.clone(), side.to_owned());
        let text = format!("{user} says ünïcode ✓ {i}");
        let (status, body) = app.say(room, &user, &text).await;
        assert_eq!(status, 201);
        transcript.push((body["seq"].as_u64().unwrap(), text));
    }
    let (status, _) = app.vote(room, "u1", "con").await;
    assert_eq!(status, 200);
    votes.insert("u1".into(), "con".into());
    let (status, _) = app.delete(&format!("/rooms/{room}/votes/u2")).await;
    assert_eq!(status, 200);
    votes.remove("u2");
    (votes, transcript)
}

async fn closes_once_with_the_acknowledged_record(app: &TestApp, store_url: &str) {
    let room = app.create_room("final record").await;
    let (votes, transcript) = debate(app, &room).await;
    let before = app.room(&room).await;

    let (status, first) = app.close_room(&room).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "closed");
    assert!(first["closed_at"].is_string());
    for key in [
        "pro",
        "con",
        "messages",
        "seq",
        "participants_peak",
        "title",
        "created_at",
    ] {
        assert_eq!(first[key], before[key], "{key}");
    }
    let (status, second) = app.close_room(&room).await;
    assert_eq!(status, 200);
    assert_eq!(second, first, "closing twice returns the same record");
    assert_eq!(
        app.room(&room).await,
        first,
        "GET reads the closed room from the store"
    );

    let (status, listed) = app.get("/rooms").await;
    assert_eq!(status, 200);
    assert!(listed["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["id"] != room.as_str()));

    let (status, err) = app.vote(&room, "u0", "pro").await;
    assert_eq!(
        (status.as_u16(), err["error"].as_str()),
        (409, Some("room_closed"))
    );
    let (status, err) = app
        .post(&format!("/rooms/{room}/join"), json!({"user": "late"}))
        .await;
    assert_eq!(
        (status.as_u16(), err["error"].as_str()),
        (409, Some("room_closed"))
    );

    let (_, msgs) = app.get(&format!("/rooms/{room}/messages?limit=500")).await;
    let got: Vec<(u64, String)> = msgs["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m: &Value| {
            (
                m["seq"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, transcript);

    // The store itself, read directly.
    let store = Store::open(store_url).expect("opening the store the engine used");
    let id = RoomId::parse(&room).unwrap();
    let stored: BTreeMap<String, String> = store
        .votes(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|(u, s)| (u.to_string(), s.as_str().to_owned()))
        .collect();
    assert_eq!(stored, votes);
    assert_eq!(
        store.messages(&id, 0, 500).await.unwrap().len(),
        transcript.len()
    );
}

#[actix_rt::test]
async fn close_writes_the_final_record_to_sqlite() {
    let app = app::start();
    let url = format!("sqlite://{}", app.data_dir().join("roomstate.db").display());
    closes_once_with_the_acknowledged_record(&app, &url).await;
}

#[actix_rt::test]
async fn close_writes_the_final_record_to_mariadb() {
    let db = TestDatabase::create();
    let app = app::builder().setting("STORE__URL", db.url()).start();
    closes_once_with_the_acknowledged_record(&app, &db.url()).await;
}

#[actix_rt::test]
async fn closed_rooms_survive_a_restart_and_the_log_is_gone() {
    let mut app = app::start();
    let room = app.create_room("closed then restarted").await;
    app.join(&room, "alice").await;
    app.vote(&room, "alice", "pro").await;
    let (_, closed) = app.close_room(&room).await;
    assert!(app.stop().success());
    app.restart();
    assert_eq!(app.room(&room).await, closed);
    let (_, listed) = app.get("/rooms").await;
    assert_eq!(
        listed["rooms"],
        json!([]),
        "a closed room is not recovered as open"
    );
}
