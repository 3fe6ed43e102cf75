//! Operations: health, readiness, metrics, admin stats, and shutdown behaviour.

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

#[test]
fn a_config_file_without_an_admin_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prod.toml");
    std::fs::write(&config, "[http]\nbind = \"127.0.0.1:0\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roomstate"))
        .env("ROOMSTATE_CONFIG", &config)
        .env("ROOMSTATE__DATA_DIR", dir.path().join("data"))
        .env_remove("ROOMSTATE__ADMIN__TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("admin.token"), "{stderr}");
}

#[test]
fn the_dev_default_prints_a_generated_token() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_roomstate"))
        .env_remove("ROOMSTATE_CONFIG")
        .env_remove("ROOMSTATE__ADMIN__TOKEN")
        .env("ROOMSTATE__HTTP__BIND", "127.0.0.1:0")
        .env("ROOMSTATE__DATA_DIR", dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take(2)
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines[0].starts_with("roomstate listening on http://127.0.0.1:"),
        "{lines:?}"
    );
    let token = lines[1]
        .strip_prefix("admin token (generated for this dev run): ")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(token.len() >= 32);
}
