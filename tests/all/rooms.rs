//! The room endpoints over real HTTP: create, list, join, vote, messages, leave.

use serde_json::json;

use crate::support::app;

#[actix_rt::test]
async fn create_list_and_get_a_room() {
    let app = app::start();
    let (status, view) = app
        .post("/rooms", json!({"title": "Ship on Friday?"}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(view["title"], "Ship on Friday?");
    assert_eq!(view["status"], "open");
    assert_eq!(view["seq"], 1);
    assert_eq!(view["participants"], 0);
    assert!(view["closed_at"].is_null());
    assert!(view["created_at"].as_str().unwrap().ends_with('Z'));
    let id = view["id"].as_str().unwrap();
    assert!(
        id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
    );

    let (status, list) = app.get("/rooms").await;
    assert_eq!(status, 200);
    assert_eq!(list["rooms"].as_array().unwrap().len(), 1);
    assert_eq!(list["rooms"][0]["id"], id);
    assert_eq!(app.room(id).await, view);
}

#[actix_rt::test]
async fn join_vote_switch_retract() {
    let app = app::start();
    let room = app.create_room("votes").await;
    let view = app.join(&room, "alice").await;
    assert_eq!(
        (view["participants"].as_u64(), view["seq"].as_u64()),
        (Some(1), Some(2))
    );

    let (status, tally) = app.vote(&room, "alice", "pro").await;
    assert_eq!(status, 200);
    assert_eq!(tally, json!({"seq": 3, "pro": 1, "con": 0}));
    let (_, same) = app.vote(&room, "alice", "pro").await;
    assert_eq!(
        same,
        json!({"seq": 3, "pro": 1, "con": 0}),
        "same side: no new seq"
    );
    let (_, switched) = app.vote(&room, "alice", "con").await;
    assert_eq!(switched, json!({"seq": 4, "pro": 0, "con": 1}));

    let (status, retracted) = app.delete(&format!("/rooms/{room}/votes/alice")).await;
    assert_eq!(status, 200);
    assert_eq!(retracted, json!({"seq": 5, "pro": 0, "con": 0}));
    let (status, again) = app.delete(&format!("/rooms/{room}/votes/alice")).await;
    assert_eq!(status, 200);
    assert_eq!(
        again,
        json!({"seq": 5, "pro": 0, "con": 0}),
        "no vote: no new seq"
    );
}

#[actix_rt::test]
async fn voting_and_posting_need_presence() {
    let app = app::start();
    let room = app.create_room("presence").await;
    let (status, body) = app.vote(&room, "bob", "pro").await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (409, Some("not_joined"))
    );
    let (status, body) = app.say(&room, "bob", "hi").await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (409, Some("not_joined"))
    );
    let (status, body) = app.delete(&format!("/rooms/{room}/votes/bob")).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (409, Some("not_joined"))
    );
    assert_eq!(app.room(&room).await["seq"], 1, "refusals take no seq");
}

#[actix_rt::test]
async fn a_vote_stays_after_leave_and_peak_is_kept() {
    let app = app::start();
    let room = app.create_room("leave").await;
    app.join(&room, "alice").await;
    app.join(&room, "bob").await;
    app.vote(&room, "alice", "con").await;
    let (status, view) = app
        .post(&format!("/rooms/{room}/leave"), json!({"user": "alice"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(view["participants"], 1);
    assert_eq!(view["participants_peak"], 2);
    assert_eq!(view["con"], 1);
    let (status, again) = app
        .post(&format!("/rooms/{room}/leave"), json!({"user": "alice"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["seq"], view["seq"], "leaving twice changes nothing");
}

#[actix_rt::test]
async fn messages_in_order_with_paging() {
    let app = app::start();
    let room = app.create_room("chat").await;
    app.join(&room, "alice").await;
    let mut seqs = Vec::new();
    for i in 0..7 {
        let (status, body) = app.say(&room, "alice", &format!("m{i}")).await;
        assert_eq!(status, 201);
        seqs.push(body["seq"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));

    let (status, page) = app.get(&format!("/rooms/{room}/messages?limit=3")).await;
    assert_eq!(status, 200);
    let page = page["messages"].as_array().unwrap().clone();
    assert_eq!(page.len(), 3);
    assert_eq!(page[0]["text"], "m0");
    assert_eq!(page[0]["user"], "alice");
    assert!(page[0]["sent_at"].is_string());
    let last = page[2]["seq"].as_u64().unwrap();
    let (_, rest) = app
        .get(&format!("/rooms/{room}/messages?after={last}&limit=500"))
        .await;
    let rest: Vec<_> = rest["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rest, ["m3", "m4", "m5", "m6"]);
    assert_eq!(app.room(&room).await["messages"], 7);
}

#[actix_rt::test]
async fn unknown_rooms_are_not_found() {
    let app = app::start();
    for (method, path) in [
        ("GET", "/rooms/r_nope"),
        ("POST", "/rooms/r_nope/join"),
        ("POST", "/rooms/r_nope/leave"),
        ("PUT", "/rooms/r_nope/votes/alice"),
        ("DELETE", "/rooms/r_nope/votes/alice"),
        ("POST", "/rooms/r_nope/messages"),
        ("GET", "/rooms/r_nope/messages"),
        ("GET", "/rooms/bad.id!/messages"),
    ] {
        let body = match method {
            "PUT" => Some(json!({"side": "pro"})),
            "POST" if path.ends_with("messages") => Some(json!({"user": "a", "text": "x"})),
            "POST" => Some(json!({"user": "a"})),
            _ => None,
        };
        let (status, err) = app.request(method, path, body.as_ref(), None).await;
        assert_eq!(status, 404, "{method} {path}: {err}");
        assert_eq!(err["error"], "not_found", "{method} {path}");
    }
}
