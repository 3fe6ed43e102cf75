//! The Redis journal against a plain Redis URL (no sentinels): for users who start small.

use std::time::Duration;

use serde_json::json;

use crate::{
    failover::check_final_record,
    support::{
        app::{self, eventually, TestApp},
        load::{VoterLog, Voters},
        mysql::TestDatabase,
        sentinel::RedisServer,
    },
};

fn engine_on(redis: &RedisServer, store_url: Option<&str>) -> TestApp {
    let mut builder = app::builder()
        .setting("JOURNAL__KIND", "redis")
        .setting("REDIS__URL", redis.url());
    if let Some(url) = store_url {
        builder = builder.setting("STORE__URL", url);
    }
    builder.start()
}

#[actix_rt::test]
async fn rooms_live_in_redis_survive_a_restart_and_leave_no_keys_when_closed() {
    let redis = RedisServer::start().await;
    let mut app = engine_on(&redis, None);
    let room = app.create_room("plain redis").await;
    app.join(&room, "alice").await;
    app.vote(&room, "alice", "pro").await;
    app.say(&room, "alice", "hello").await;
    let before = app.room(&room).await;
    let keys = redis.keys("roomstate:*").await;
    assert!(keys.len() >= 2, "{keys:?}");

    assert!(app.stop().success());
    app.restart();
    let mut after = app.room(&room).await;
    assert_eq!(after["participants"], 0);
    after["participants"] = before["participants"].clone();
    assert_eq!(after, before);

    let (status, closed) = app.close_room(&room).await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["pro"], 1);
    eventually("the room's keys to go", Duration::from_secs(10), || async {
        redis.keys("roomstate:*").await.is_empty().then_some(())
    })
    .await;
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(
        (status.as_u16(), ready),
        (200, json!({"journal": "up", "store": "up"}))
    );
}

#[actix_rt::test]
async fn redis_fully_down_gives_503s_loses_nothing_and_service_resumes() {
    let mut redis = RedisServer::start().await;
    let db = TestDatabase::create();
    let app = engine_on(&redis, Some(&db.url()));
    let room = app.create_room("outage").await;
    let voters = Voters::start(&app, &room, "o", 4).await;
    // A probe that only ever votes pro: however many of its attempts land, its vote is pro.
    app.join(&room, "probe").await;
    let (status, first) = app.vote(&room, "probe", "pro").await;
    assert_eq!(status, 200, "{first}");
    voters.wait_for_acks(40, Duration::from_secs(30)).await;

    redis.kill();
    // The voters' requests in flight wait for Redis; new requests are refused once the log has
    // been failing for longer than a failover takes.
    let probe = format!("/rooms/{room}/votes/probe");
    eventually(
        "new requests to get 503 unavailable",
        Duration::from_secs(30),
        || async {
            let answer = app
                .put_within(&probe, json!({"side": "pro"}), Duration::from_secs(1))
                .await;
            match answer {
                Some((status, body)) if status == 503 => {
                    assert_eq!(body["error"], "unavailable");
                    Some(())
                }
                _ => None,
            }
        },
    )
    .await;
    let ready = eventually(
        "/readyz to say the journal is down",
        Duration::from_secs(30),
        || async {
            let (status, ready) = app.get("/readyz").await;
            (status == 503 && ready["journal"] == "down").then_some(ready)
        },
    )
    .await;
    assert_eq!(ready["store"], "up", "{ready}");
    let (status, err) = app
        .post("/rooms", json!({"title": "during the outage"}))
        .await;
    assert_eq!(
        (status.as_u16(), err["error"].as_str()),
        (503, Some("unavailable"))
    );

    redis.restart().await;
    voters.wait_for_acks(40, Duration::from_secs(60)).await;
    let mut logs = voters.stop().await;
    logs.push(VoterLog {
        user: "probe".into(),
        last_acked: Some("pro".into()),
        acked_seqs: vec![first["seq"].as_u64().expect("seq")],
        ..VoterLog::default()
    });
    check_final_record(&app, &db.url(), &room, &logs).await;
}

/// An engine on Redis and MySQL keeps nothing on its own disk: it starts, and closes a room,
/// where its `data_dir` cannot even be made (a read-only container's file system, say; here its
/// parent is a file, which no user, root included, can make a directory in).
#[actix_rt::test]
async fn an_engine_on_redis_and_mysql_needs_no_data_dir() {
    let redis = RedisServer::start().await;
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let app = app::builder()
        .setting("JOURNAL__KIND", "redis")
        .setting("REDIS__URL", redis.url())
        .setting("STORE__URL", db.url())
        .setting("DATA_DIR", file.join("data").display())
        .start();
    let room = app.create_room("no disk").await;
    app.join(&room, "alice").await;
    app.vote(&room, "alice", "pro").await;
    let (status, closed) = app.close_room(&room).await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["pro"], 1, "{closed}");
    assert!(!file.join("data").exists());
}
