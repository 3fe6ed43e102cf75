//! Operations: health, readiness, metrics, admin stats, and shutdown behaviour.

use std::{path::Path, time::Duration};

use roomstate_core::banner;
use roomstate_testkit::engine::{run_to_exit, DropPolicy, EngineProcess};
use serde_json::json;

use crate::support::{
    app::{self, TOKEN},
    ws::WsClient,
};

#[actix_rt::test]
async fn health_readiness_and_metrics() {
    let app = app::start();
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200);
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(ready, json!({"journal": "up", "store": "up"}));

    let room = app.create_room("metrics").await;
    app.join(&room, "alice").await;
    app.vote(&room, "alice", "pro").await;
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    let text = text.as_str().unwrap_or_default().to_owned();
    assert!(
        text.contains("roomstate_mutations_total{kind=\"voted\"} 1"),
        "{text}"
    );
    assert!(text.contains("roomstate_rooms_open 1"), "{text}");
    assert!(text.contains("roomstate_journal_batches_total"), "{text}");
}

#[actix_rt::test]
async fn admin_stats_counts_rooms_and_connections() {
    let app = app::start();
    let room = app.create_room("stats").await;
    app.create_room("other").await;
    let mut ws = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=a")))
        .await
        .unwrap();
    ws.next_of("state").await;
    let (status, stats) = app.request("GET", "/admin/stats", None, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(stats["open_rooms"], 2);
    assert_eq!(stats["connections"], 1);
    assert_eq!(stats["journal_lag"], 0);
    assert!(stats["last_failover"].is_null());
    assert_eq!(stats["journal"]["kind"], "local");
}

#[actix_rt::test]
async fn sigterm_closes_sockets_with_going_away_and_exits_zero() {
    let mut app = app::start();
    let room = app.create_room("shutdown").await;
    let mut ws = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=a")))
        .await
        .unwrap();
    ws.next_of("state").await;
    ws.send_json(&json!({"type": "vote", "side": "pro", "req": "1"}))
        .await;
    ws.next_of("ack").await;
    app.terminate();
    let (code, _) = ws.until_closed().await;
    let status = app.wait_exit();
    assert!(status.success(), "{status:?}");
    assert_eq!(code, Some(1001));
}

/// How long a run of the binary that should exit by itself may take.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn a_config_file_without_an_admin_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prod.toml");
    std::fs::write(&config, "[http]\nbind = \"127.0.0.1:0\"\n").unwrap();
    let env = [
        ("ROOMSTATE_CONFIG".to_owned(), config.display().to_string()),
        (
            "ROOMSTATE__DATA_DIR".to_owned(),
            dir.path().join("data").display().to_string(),
        ),
    ];
    let run = run_to_exit(Path::new(app::ENGINE), &[], &env, EXIT_DEADLINE)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(run.stderr.contains("admin.token"), "{}", run.stderr);
}

#[test]
fn the_dev_default_prints_a_generated_token() {
    let dir = tempfile::tempdir().unwrap();
    let env = [(
        "ROOMSTATE__DATA_DIR".to_owned(),
        dir.path().join("data").display().to_string(),
    )];
    let engine = EngineProcess::spawn(
        Path::new(app::ENGINE),
        &env,
        &dir.path().join("engine.log"),
        EXIT_DEADLINE,
        DropPolicy::Kill,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        engine.early_lines[0].starts_with(&format!("{}http://127.0.0.1:", banner::LISTENING_ON)),
        "{:?}",
        engine.early_lines
    );
    let line = engine
        .stdout
        .recv_timeout(EXIT_DEADLINE)
        .unwrap_or_else(|e| panic!("no second line within {EXIT_DEADLINE:?}: {e}"));
    let token = line
        .strip_prefix("admin token (generated for this dev run): ")
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(token.len() >= 32);
}
