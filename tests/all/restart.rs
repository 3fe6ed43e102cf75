//! Restarts: after a clean stop or a crash, every open room is back exactly as acknowledged,
//! with nobody present.

use std::time::Duration;

use roomstate_core::room::RoomId;
use roomstate_store::Store;
use serde_json::{json, Value};

use crate::support::{
    app::{self, eventually},
    ws::WsClient,
};

fn durable_part(view: &Value) -> Value {
    let mut view = view.clone();
    view["participants"] = json!(0);
    view
}

#[actix_rt::test]
async fn sigterm_then_restart_recovers_every_open_room() {
    let mut app = app::start();
    let mut rooms = Vec::new();
    for r in 0..3 {
        let room = app.create_room(&format!("room {r}")).await;
        for u in 0..=r {
            let user = format!("u{u}");
            app.join(&room, &user).await;
            app.vote(&room, &user, if u % 2 == 0 { "pro" } else { "con" })
                .await;
            app.say(&room, &user, &format!("hello from {user}")).await;
        }
        rooms.push(room);
    }
    let mut before = Vec::new();
    for room in &rooms {
        before.push(app.room(room).await);
    }
    let status = app.stop();
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
    app.restart();
    for (room, before) in rooms.iter().zip(&before) {
        let after = app.room(room).await;
        assert_eq!(after, durable_part(before), "room {room}");
        let (_, msgs) = app.get(&format!("/rooms/{room}/messages")).await;
        assert_eq!(
            msgs["messages"].as_array().unwrap().len() as u64,
            before["messages"].as_u64().unwrap()
        );
    }
    let (_, listed) = app.get("/rooms").await;
    assert_eq!(listed["rooms"].as_array().unwrap().len(), 3);
    // Rooms keep working after recovery, with seq going on from where it was.
    let room = &rooms[0];
    let view = app.join(room, "late").await;
    assert_eq!(
        view["seq"].as_u64(),
        before[0]["seq"].as_u64().map(|s| s + 1)
    );
}

#[actix_rt::test]
async fn kill_9_under_load_loses_no_acknowledged_vote() {
    let mut app = app::start();
    let room = app.create_room("crash").await;
    let users: Vec<String> = (0..8).map(|i| format!("voter{i}")).collect();
    let mut sockets = Vec::new();
    for user in &users {
        let mut ws = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user={user}")))
            .await
            .unwrap();
        ws.next_of("state").await;
        sockets.push(ws);
    }
    // Every socket votes back and forth; remember each user's last acknowledged side.
    let mut acked: Vec<Option<(u64, &str)>> = vec![None; users.len()];
    for round in 0..25 {
        for (i, ws) in sockets.iter_mut().enumerate() {
            let side = if (round + i) % 2 == 0 { "pro" } else { "con" };
            ws.send_json(&json!({"type": "vote", "side": side, "req": format!("{round}")}))
                .await;
        }
        for (i, ws) in sockets.iter_mut().enumerate() {
            let ack = ws.next_of("ack").await;
            let side = if (round + i) % 2 == 0 { "pro" } else { "con" };
            acked[i] = Some((ack["seq"].as_u64().unwrap(), side));
        }
    }
    // Fire one more round without waiting, then crash mid-flight.
    for (i, ws) in sockets.iter_mut().enumerate() {
        let side = if (25 + i) % 2 == 0 { "pro" } else { "con" };
        ws.send_json(&json!({"type": "vote", "side": side, "req": "last"}))
            .await;
    }
    app.kill();
    drop(sockets);
    app.restart();

    let after = app.room(&room).await;
    let max_acked = acked.iter().flatten().map(|(s, _)| *s).max().unwrap();
    assert!(after["seq"].as_u64().unwrap() >= max_acked, "{after}");
    assert_eq!(
        after["participants"], 0,
        "nobody is present after a restart"
    );
    assert_eq!(after["participants_peak"], 8);
    // Each user's vote is either the last acknowledged one or the in-flight one: check via the
    // final record.
    let (status, closed) = app.close_room(&room).await;
    assert_eq!(status, 200, "{closed}");
    let pro = closed["pro"].as_u64().unwrap();
    let con = closed["con"].as_u64().unwrap();
    assert_eq!(pro + con, 8, "every user has exactly one vote: {closed}");
    let store = Store::open(&format!(
        "sqlite://{}",
        app.data_dir().join("roomstate.db").display()
    ))
    .unwrap();
    let stored = store.votes(&RoomId::parse(&room).unwrap()).await.unwrap();
    assert_eq!(stored.len(), 8);
    for (user, side) in stored {
        let i = users.iter().position(|u| u == user.as_str()).unwrap();
        let (_, acked_side) = acked[i].unwrap();
        let in_flight = if (25 + i) % 2 == 0 { "pro" } else { "con" };
        assert!(
            side.as_str() == acked_side || side.as_str() == in_flight,
            "{user}: stored {side:?}, acknowledged {acked_side}, in flight {in_flight}"
        );
    }
}

/// The HTTP idle time of `http_presence_lapses_after_the_idle_time`: short, so the test is quick,
/// and still far longer than one HTTP round trip on a loaded machine, which is all that "busy"
/// needs to stay present. Nothing in the set-up has to fit in it (see the test).
const SHORT_TTL_S: u64 = 3;

#[actix_rt::test]
async fn http_presence_lapses_after_the_idle_time() {
    let app = app::builder()
        .setting("PRESENCE__HTTP_TTL_S", SHORT_TTL_S)
        .start();
    let room = app.create_room("lapse").await;
    // The socket first: it never lapses. Then the HTTP joins, "idle" last, so the answer to its
    // join shows all three present however long the set-up took (an answer is the state as of
    // its own event, before any lapse).
    let mut ws = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=watcher")))
        .await
        .unwrap();
    ws.next_of("state").await;
    app.join(&room, "busy").await;
    let joined = app.join(&room, "idle").await;
    assert_eq!(joined["participants"], 3, "{joined}");
    let joined_seq = joined["seq"].as_u64().unwrap();
    // Keep "busy" active with requests; "idle" lapses.
    let lapsed = eventually("idle's join to lapse", Duration::from_secs(60), || async {
        let (status, body) = app.vote(&room, "busy", "pro").await;
        assert_eq!(
            status, 200,
            "busy stays present while it sends requests: {body}"
        );
        let view = app.room(&room).await;
        (view["participants"] == 2).then_some(view)
    })
    .await;
    assert_eq!(lapsed["participants_peak"], 3);
    let state = ws.state_where(|s| s["participants"] == 2).await;
    assert!(
        state["seq"].as_u64() > Some(joined_seq),
        "the lapse is an event after the join: {state}"
    );
    let (status, err) = app.vote(&room, "idle", "pro").await;
    assert_eq!(
        (status.as_u16(), err["error"].as_str()),
        (409, Some("not_joined"))
    );
    let (status, _) = app.vote(&room, "busy", "con").await;
    assert_eq!(status, 200, "busy is still present");
}

/// Two engines on one data dir would both write its rooms, each taking the other's events for
/// its own: the second one must refuse to start, say why, and leave the first one serving.
#[actix_rt::test]
async fn a_second_engine_on_the_same_data_dir_exits_saying_why() {
    let first = app::start();
    let room = first.create_room("mine").await;
    let env = [
        (
            "ROOMSTATE__DATA_DIR".to_owned(),
            first.data_dir().display().to_string(),
        ),
        ("ROOMSTATE__ADMIN__TOKEN".to_owned(), "other".to_owned()),
        ("ROOMSTATE__HTTP__BIND".to_owned(), "127.0.0.1:0".to_owned()),
    ];
    let second = roomstate_testkit::engine::run_to_exit(
        std::path::Path::new(app::ENGINE),
        &[],
        &env,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!second.status.success(), "{second:?}");
    assert!(
        second.stderr.contains("in use by another roomstate engine"),
        "{}",
        second.stderr
    );
    assert_eq!(
        first.room(&room).await["title"],
        "mine",
        "the first one still serves"
    );
}
