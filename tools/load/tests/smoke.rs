//! A few seconds of the benchmark's load generator against each target, the bare-handler floor
//! and a big room, and of its comparison of one engine with a cluster, so they cannot rot. (The benchmark itself is `scripts/bench`; its
//! numbers are in docs/benchmarks.md, never asserted.)

use std::process::Command;

use roomstate_testkit::{
    app::TestApp, engine::workspace_binary, mysql::TestDatabase, redis_server::RedisServer,
};
use serde_json::Value;

/// The engine, from this workspace's target directory (`cargo test --workspace` builds it).
fn engine() -> roomstate_testkit::app::Builder {
    TestApp::builder(workspace_binary("roomstate").unwrap_or_else(|e| panic!("{e}")))
}

/// Runs `roomstate-load run` with `args` for about a second; returns its JSON summary.
fn load(args: &[&str]) -> Value {
    load_rooms("2", args)
}

/// `roomstate-load run` of `rooms` rooms of 3 users for about a second.
fn short_run(rooms: &str) -> Command {
    let mut run = Command::new(env!("CARGO_BIN_EXE_roomstate-load"));
    run.args(["run", "--rooms", rooms, "--users", "3"]).args([
        "--duration",
        "1",
        "--warmup",
        "0.2",
    ]);
    run
}

/// `load` with `rooms` rooms.
fn load_rooms(rooms: &str, args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("summary.json");
    let out = short_run(rooms)
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running roomstate-load");
    assert!(
        out.status.success(),
        "roomstate-load {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("summary written");
    let summary: Value = serde_json::from_str(text.trim()).expect("one JSON summary");
    assert!(summary["acked"].as_u64() > Some(0), "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert!(
        summary["latency_ms"]["p99"].as_f64() > Some(0.0),
        "{summary}"
    );
    summary
}

#[actix_rt::test]
async fn the_load_generator_drives_the_engine_closed_and_open_loop() {
    let app = engine()
        .setting("LIMITS__WS_RATE_PER_S", 100_000)
        .setting("LIMITS__WS_BURST", 100_000)
        .setting("LIMITS__HTTP_RATE_PER_S", 0)
        .start();
    let closed = load(&["--target", "engine", "--url", &app.base]);
    assert_eq!(
        (closed["mode"].as_str(), closed["transport"].as_str()),
        (Some("closed"), Some("ws"))
    );
    let open = load(&["--target", "engine", "--url", &app.base, "--rate", "200"]);
    assert_eq!(open["mode"], "open");
    // An open loop reports how late its client sent; a closed one sends when it may.
    assert!(open["send_lag_ms"]["p99"].as_f64() > Some(0.0), "{open}");
    assert!(closed["send_lag_ms"].is_null(), "{closed}");
    let http = load(&[
        "--target",
        "engine",
        "--url",
        &app.base,
        "--transport",
        "http",
    ]);
    assert_eq!(http["transport"], "http");
    for summary in [&closed, &open, &http] {
        assert_measured_itself(summary);
    }
    let mix = &closed["mix"];
    assert!(
        mix["switches"].as_u64() > Some(0) && mix["messages"].as_u64() > Some(0),
        "{mix}"
    );
}

/// Runs `roomstate-load run` with `args`, which must fail; returns what it printed (stdout, then
/// stderr).
fn load_fails(args: &[&str]) -> String {
    let out = short_run("2")
        .args(args)
        .output()
        .expect("running roomstate-load");
    assert!(
        !out.status.success(),
        "roomstate-load {args:?} succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// With the engine's admin token, a run closes the rooms it created once it is done (over
/// WebSocket and HTTP, more rooms than it closes at a time), so that `scripts/bench`'s next run
/// starts from a journal without them; a wrong token is refused before the run, and the token
/// is refused for a target that has no rooms to close.
#[actix_rt::test]
async fn the_load_generator_closes_its_rooms_with_the_admin_token() {
    let app = engine()
        .setting("ADMIN__TOKEN", "smoke-admin")
        .setting("LIMITS__WS_RATE_PER_S", 100_000)
        .setting("LIMITS__WS_BURST", 100_000)
        .setting("LIMITS__HTTP_RATE_PER_S", 0)
        .start();
    let closing = ["--url", &app.base, "--admin-token", "smoke-admin"];
    let ws = load_rooms("20", &[&["--target", "engine"][..], &closing].concat());
    assert_eq!(ws["rooms_closed"], 20, "{ws}");
    let http = load_rooms(
        "20",
        &[&["--target", "engine", "--transport", "http"][..], &closing].concat(),
    );
    assert_eq!(http["rooms_closed"], 20, "{http}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, text) = app.get("/metrics").await;
        assert_eq!(status, 200, "{text}");
        let text = text.as_str().unwrap_or_default().to_owned();
        if text.lines().any(|line| line == "roomstate_rooms_open 0") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rooms still open 20 s after the run closed them:\n{text}"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let without = load(&["--target", "engine", "--url", &app.base]);
    assert!(without["rooms_closed"].is_null(), "{without}");

    let wrong = load_fails(&[
        "--target",
        "engine",
        "--url",
        &app.base,
        "--admin-token",
        "not-the-token",
    ]);
    assert!(
        wrong.contains("answered 401") && !wrong.contains(" acked, "),
        "refused before the run: {wrong}"
    );
    let baseline = load_fails(&[
        "--target",
        "redis-per-mutation",
        "--redis-url",
        "redis://127.0.0.1:1",
        "--admin-token",
        "smoke-admin",
    ]);
    assert!(baseline.contains("--target engine only"), "{baseline}");
}

/// The bare-handler floor (`roomstate-floor`) takes the engine's load over WebSocket and HTTP, so
/// `scripts/bench` can put its CPU per ack beside the engine's.
#[actix_rt::test]
async fn the_load_generator_drives_the_floor_like_the_engine() {
    let floor =
        TestApp::builder(workspace_binary("roomstate-floor").unwrap_or_else(|e| panic!("{e}")))
            .start();
    let pid = format!("engine={}", floor.pid());
    let ws = load(&["--target", "engine", "--url", &floor.base, "--cpu", &pid]);
    assert_eq!(ws["transport"], "ws");
    assert!(
        ws["cpu"]["engine"]["us_per_ack"].as_f64() > Some(0.0),
        "{ws}"
    );
    assert!(ws["mix"]["messages"].as_u64() > Some(0), "{ws}");
    let http = load(&[
        "--target",
        "engine",
        "--url",
        &floor.base,
        "--transport",
        "http",
    ]);
    assert_eq!(http["refused"], 0, "{http}");
    // The floor has no rooms to close: the admin token is refused before the run.
    let closing = load_fails(&[
        "--target",
        "engine",
        "--url",
        &floor.base,
        "--admin-token",
        "any",
    ]);
    assert!(closing.contains("no admin routes"), "{closing}");
}

/// `roomstate-load big-room` with a few sockets for a second: every vote shows up in every
/// socket's state, every message reaches every socket, and the CPU per delivered frame is there.
#[actix_rt::test]
async fn the_big_room_measures_visibility_delivery_and_cpu_per_frame() {
    let app = engine().setting("LIMITS__HTTP_RATE_PER_S", 0).start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("big-room.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_roomstate-load"))
        .args(["big-room", "--url", &app.base, "--sockets", "20"])
        .args(["--rate", "100", "--messages-per-s", "10"])
        .args(["--duration", "1", "--warmup", "0.3"])
        .args(["--cpu", &format!("engine={}", app.pid())])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running roomstate-load big-room");
    assert!(
        out.status.success(),
        "roomstate-load big-room failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("summary written");
    let run: Value = serde_json::from_str(text.trim()).expect("one JSON summary");
    assert_eq!(run["kind"], "big-room", "{run}");
    assert!(run["votes_acked"].as_u64() > Some(50), "{run}");
    assert!(run["messages_acked"].as_u64() > Some(0), "{run}");
    assert_eq!(
        (run["failed"].as_u64(), run["sockets_lost"].as_u64()),
        (Some(0), Some(0)),
        "{run}"
    );
    let states = &run["state_visibility"];
    assert!(states["pairs"].as_u64() > Some(20 * 50), "{run}");
    assert_eq!(states["missing"], 0, "{run}");
    assert!(states["p99_ms"].as_f64() > Some(0.0), "{run}");
    assert_eq!(run["message_delivery"]["missing"], 0, "{run}");
    assert_eq!(run["state_regressions"], 0, "{run}");
    assert!(
        run["frames_delivered"].as_u64() > run["acked_in_window"].as_u64(),
        "{run}"
    );
    assert!(
        run["cpu"]["engine"]["us_per_frame"].as_f64() > Some(0.0),
        "{run}"
    );
    assert!(
        run["cpu"]["load-generator"]["cpu_s"].as_f64().is_some(),
        "{run}"
    );
}

#[actix_rt::test]
async fn the_load_generator_drives_both_baselines() {
    let redis = RedisServer::start().await;
    let summary = load(&[
        "--target",
        "redis-per-mutation",
        "--redis-url",
        &redis.url(),
        "--replica-acks",
        "0",
    ]);
    assert_eq!(summary["target"], "redis-per-mutation");
    assert!(
        redis.keys("roomstate-baseline:*").await.is_empty(),
        "the baseline cleans up"
    );
    assert_measured_itself(&summary);

    let db = TestDatabase::create();
    let summary = load(&["--target", "mysql-per-mutation", "--mysql-url", &db.url()]);
    assert_eq!(summary["target"], "mysql-per-mutation");
    // The MariaDB baseline's clients are threads of their own: its CPU window still covers them.
    assert_measured_itself(&summary);
}

/// Every run reports the load generator's own CPU over its window (scripts/bench sums it with
/// the servers' to show what each design costs the shared machine per ack). Present, not above
/// zero: `/proc` counts in 10 ms ticks, and a short quiet run may use less.
fn assert_measured_itself(summary: &Value) {
    let me = &summary["cpu"]["load-generator"];
    assert!(
        me["cpu_s"].as_f64() >= Some(0.0) && me["us_per_ack"].as_f64() >= Some(0.0),
        "{summary}"
    );
}

/// `roomstate-load cluster` for a few seconds: one engine and a 2-node cluster under the same
/// load, then a takeover, each as a JSON line with the figures docs/benchmarks.md reports.
#[test]
fn the_cluster_benchmark_compares_one_engine_with_a_cluster_and_times_a_takeover() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("cluster.jsonl");
    let db = TestDatabase::create();
    let engine = workspace_binary("roomstate").unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_roomstate-load"))
        .arg("cluster")
        .arg("--engine-bin")
        .arg(&engine)
        .args(["--store-url", &db.url()])
        .args([
            "--rounds",
            "1",
            "--transports",
            "ws",
            "--rooms",
            "2",
            "--users",
            "2",
        ])
        .args(["--duration", "1", "--warmup", "0.5"])
        .args(["--takeover-lease-ms", "1500", "--takeover-rate", "100"])
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running roomstate-load cluster");
    assert!(
        out.status.success(),
        "roomstate-load cluster failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = std::fs::read_to_string(&json)
        .expect("JSON written")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let of = |kind: &str, deployment: Option<&str>| {
        lines
            .iter()
            .find(|l| l["kind"] == kind && deployment.is_none_or(|d| l["deployment"] == d))
            .unwrap_or_else(|| panic!("no {kind} {deployment:?} line in {lines:?}"))
    };
    let single = of("throughput", Some("single"));
    let cluster = of("throughput", Some("cluster"));
    for run in [single, cluster] {
        assert!(run["acked"].as_u64() > Some(0), "{run}");
        assert!(run["engine_us_per_ack"].as_f64() > Some(0.0), "{run}");
    }
    assert!(single["forwarded_share"].is_null(), "{single}");
    assert!(cluster["forwarded_share"].as_f64().is_some(), "{cluster}");
    assert_eq!(cluster["nodes"], 2, "{cluster}");
    let takeover = of("takeover", None);
    assert_eq!(takeover["lease_ms"], 1500, "{takeover}");
    assert!(takeover["rooms_moved"].as_u64() > Some(0), "{takeover}");
}
