//! The command line and process behaviour a user meets first: `--help`, `--version`,
//! `check-config` (valid: the merged settings with secrets redacted, exit 0; invalid: the reason,
//! exit 2), `--config FILE`, the documented exit codes, SIGHUP draining like SIGTERM, JSON logs,
//! and the build and process metrics.

use std::{path::Path, time::Duration};

use roomstate_testkit::engine::{run_to_exit, Finished};

use crate::support::app;

/// How long a run of the binary that should exit by itself may take.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

fn roomstate(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    run_to_exit(Path::new(app::ENGINE), args, &env, EXIT_DEADLINE).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn help_and_version_answer_and_exit_zero_without_starting_a_server() {
    let help = roomstate(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0), "{help:?}");
    for want in ["--config", "check-config", "Exit codes", "ROOMSTATE__"] {
        assert!(
            help.stdout.contains(want),
            "--help mentions {want}: {}",
            help.stdout
        );
    }
    assert!(!help.stdout.contains("listening on"), "no server started");
    let version = roomstate(&["--version"], &[]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        version.stdout.trim(),
        format!("roomstate {}", env!("CARGO_PKG_VERSION"))
    );
    let wrong = roomstate(&["--no-such-flag"], &[]);
    assert_eq!(wrong.status.code(), Some(2), "a usage error: {wrong:?}");
    assert!(wrong.stderr.contains("--no-such-flag"), "{}", wrong.stderr);
}

#[test]
fn check_config_prints_the_merged_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prod.toml");
    std::fs::write(
        &file,
        "[http]\nbind = \"127.0.0.1:9191\"\n[auth]\nmode = \"open\"\n\
         [store]\nurl = \"mysql://app:hunter2@db.example:3306/rooms\"\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let ok = roomstate(
        &["check-config", "--config", &file],
        &[("ROOMSTATE__ADMIN__TOKEN", "s3cret-admin-token")],
    );
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let printed: toml::Value = toml::from_str(&ok.stdout).expect("check-config prints TOML");
    assert_eq!(
        printed["http"]["bind"].as_str(),
        Some("127.0.0.1:9191"),
        "the file's value"
    );
    assert_eq!(printed["admin"]["token"].as_str(), Some("***"));
    assert_eq!(
        printed["store"]["url"].as_str(),
        Some("mysql://app:***@db.example:3306/rooms")
    );
    assert!(
        !ok.stdout.contains("s3cret") && !ok.stdout.contains("hunter2"),
        "{}",
        ok.stdout
    );
    assert!(!ok.stdout.contains("listening on"), "no server started");

    // Invalid: the reason, exit 2, and still no secret.
    let bad = roomstate(
        &["check-config", "--config", &file],
        &[
            ("ROOMSTATE__ADMIN__TOKEN", "s3cret-admin-token"),
            ("ROOMSTATE__PRESENCE__HTTP_TTL_S", "0"),
        ],
    );
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(bad.stderr.contains("http_ttl_s"), "{}", bad.stderr);
    assert!(!bad.stderr.contains("s3cret"), "{}", bad.stderr);

    // --config wins over ROOMSTATE_CONFIG; a missing file is a settings error.
    let missing = roomstate(
        &["check-config", "--config", "/nonexistent/roomstate.toml"],
        &[("ROOMSTATE_CONFIG", &file)],
    );
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(
        missing.stderr.contains("/nonexistent/roomstate.toml"),
        "{}",
        missing.stderr
    );
}

#[actix_rt::test]
async fn sighup_drains_like_sigterm_and_exits_zero() {
    let mut app = app::start();
    let room = app.create_room("hup").await;
    app.join(&room, "alice").await;
    let pid = app.pid().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = app.wait_exit();
    assert!(status.success(), "{status:?}");
    assert!(app.log().contains("signal received"), "{}", app.log());
}

#[actix_rt::test]
async fn json_logs_and_build_and_process_metrics() {
    let app = app::builder().setting("LOG__FORMAT", "json").start();
    app.create_room("logged").await;
    let log = app.log();
    let first = log.lines().next().expect("a log line");
    let line: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("not JSON ({e}): {first}"));
    assert!(
        line["timestamp"].is_string() && line["level"].is_string(),
        "{line}"
    );

    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    let text = text.as_str().unwrap_or_default().to_owned();
    let build = text
        .lines()
        .find(|l| l.starts_with("roomstate_build_info{"))
        .unwrap_or_else(|| panic!("no roomstate_build_info: {text}"));
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            && build.ends_with(" 1"),
        "{build}"
    );
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(family)),
            "{family} is exported: {text}"
        );
    }

    let bad = roomstate(&["check-config"], &[("ROOMSTATE__LOG__FORMAT", "xml")]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}
