//! Operations: health, readiness, every metric on /metrics moving with what happens, admin
//! stats, shutdown behaviour, and settings the binary refuses (exit code 2, naming the key).

use std::{collections::BTreeMap, path::Path, time::Duration};

use roomstate_core::banner;
use roomstate_testkit::engine::{run_to_exit, DropPolicy, EngineProcess};
use serde_json::json;

use crate::support::{
    app::{self, TestApp, TOKEN},
    mysql::TestDatabase,
    ws::WsClient,
};

#[actix_rt::test]
async fn health_and_readiness() {
    let app = app::start();
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200);
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(ready, json!({"journal": "up", "store": "up"}));
}

/// How long `/readyz` may take to follow the store (its probe gives up after 2 s), on a loaded
/// machine.
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// `/readyz` once it answers `status`, its body.
async fn readiness(app: &TestApp, status: u16) -> serde_json::Value {
    roomstate_testkit::eventually(
        &format!("/readyz to say {status}"),
        READY_DEADLINE,
        || async {
            let (got, body) = app.get("/readyz").await;
            (got == status).then_some(body)
        },
    )
    .await
}

/// "200 when the durability log and the SQL store both take writes": a store whose table of
/// final records went away (renamed by another program) answers reads of anything else, but
/// takes no final record; `/readyz` says so, and is 200 again once the table is back.
async fn readiness_follows_whether_the_store_takes_writes(app: &TestApp, store_url: &str) {
    use diesel::{connection::SimpleConnection as _, Connection as _};

    let mut other = roomstate_store::DbConnection::establish(store_url).unwrap();
    readiness(app, 200).await;
    other
        .batch_execute("ALTER TABLE rooms RENAME TO rooms_away")
        .unwrap();
    let ready = readiness(app, 503).await;
    assert_eq!(
        (&ready["journal"], &ready["store"], &ready["error"]),
        (&json!("up"), &json!("down"), &json!("unavailable")),
        "{ready}"
    );
    other
        .batch_execute("ALTER TABLE rooms_away RENAME TO rooms")
        .unwrap();
    readiness(app, 200).await;
}

#[actix_rt::test]
async fn readiness_asks_whether_sqlite_takes_writes_without_waiting_for_its_lock() {
    use diesel::{connection::SimpleConnection as _, Connection as _};

    let app = app::start();
    let url = format!("sqlite://{}", app.data_dir().join("roomstate.db").display());
    readiness_follows_whether_the_store_takes_writes(&app, &url).await;

    // Another program writing (it holds the write lock) does not make the store look down: it
    // takes writes, in turn. Nor does the probe wait for the lock (the connections' 5 s
    // `busy_timeout` is longer than the probe's 2 s: a waiting probe would say 503).
    let path = app.data_dir().join("roomstate.db");
    let mut writer = diesel::SqliteConnection::establish(&path.display().to_string()).unwrap();
    writer.batch_execute("BEGIN IMMEDIATE").unwrap();
    for _ in 0..3 {
        // The store's verdict (the journal's, on a loaded machine, is not this test's).
        let (_, ready) = app.get("/readyz").await;
        assert_eq!(ready["store"], "up", "{ready}");
    }
    writer.batch_execute("ROLLBACK").unwrap();
    // The probes put their connections back as they were: a close writes its record.
    let room = app.create_room("after the probes").await;
    let (status, closed) = app.close_room(&room).await;
    assert_eq!(status, 200, "{closed}");
}

#[actix_rt::test]
async fn readiness_asks_whether_mariadb_takes_writes() {
    let db = TestDatabase::create();
    let app = app::builder().setting("STORE__URL", db.url()).start();
    readiness_follows_whether_the_store_takes_writes(&app, &db.url()).await;
}

/// The engine's threads are named for what they do, so `top -H`, a profile and the load tool's
/// CPU per ack by thread say which part of it spent the time.
#[actix_rt::test]
async fn the_engines_threads_are_named_for_their_work() {
    let app = app::start();
    // A room, so a rooms' thread has run; the HTTP workers named themselves as they started.
    app.create_room("threads").await;
    let tasks = format!("/proc/{}/task", app.pid());
    let names: Vec<String> = std::fs::read_dir(&tasks)
        .unwrap_or_else(|e| panic!("reading {tasks}: {e}"))
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    for wanted in ["roomstate-http", "roomstate-rooms"] {
        assert!(
            names.iter().any(|n| n == wanted),
            "no {wanted} thread in {names:?}"
        );
    }
}

/// Every metric family the engine exports (src/metrics.rs, crates/journal/src/metrics.rs) and
/// its Prometheus type.
const METRIC_FAMILIES: [(&str, &str); 24] = [
    ("roomstate_mutations_total", "counter"),
    ("roomstate_refusals_total", "counter"),
    ("roomstate_rooms_open", "gauge"),
    ("roomstate_ws_connections", "gauge"),
    ("roomstate_journal_pending_events", "gauge"),
    ("roomstate_journal_batches_total", "counter"),
    ("roomstate_journal_batch_events", "histogram"),
    ("roomstate_journal_commit_seconds", "histogram"),
    ("roomstate_journal_failures_total", "counter"),
    ("roomstate_journal_failovers_total", "counter"),
    ("roomstate_rooms_closed_total", "counter"),
    ("roomstate_rooms_recovered_total", "counter"),
    ("roomstate_ws_slow_clients_total", "counter"),
    ("roomstate_ws_send_buffer_bytes", "gauge"),
    ("roomstate_build_info", "gauge"),
    // Every HTTP request, by method, route pattern (and status).
    ("roomstate_http_requests_total", "counter"),
    ("roomstate_http_request_seconds", "histogram"),
    // The process's own, under their standard names.
    ("process_cpu_seconds_total", "counter"),
    ("process_max_fds", "gauge"),
    ("process_open_fds", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("process_threads", "gauge"),
    ("process_virtual_memory_bytes", "gauge"),
];

/// `/metrics` as sample -> value (`name{labels}` as written), and family -> type.
async fn scrape(app: &TestApp) -> (BTreeMap<String, f64>, BTreeMap<String, String>) {
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200, "{text}");
    let text = text.as_str().expect("metrics as text");
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(family) = line.strip_prefix("# TYPE ") {
            let (name, kind) = family.split_once(' ').expect("# TYPE name kind");
            types.insert(name.to_owned(), kind.to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (sample, value) = line.rsplit_once(' ').expect("sample value");
            let value = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            samples.insert(sample.to_owned(), value);
        }
    }
    (samples, types)
}

/// Waits until every `(sample, value)` of `want` is on `/metrics` (a sample not shown counts as
/// 0: a labelled counter appears with its first count); fails showing what differs.
async fn metrics_reach(app: &TestApp, what: &str, want: &[(&str, f64)]) -> BTreeMap<String, f64> {
    let mut last = BTreeMap::new();
    let reached = actix_rt::time::timeout(Duration::from_secs(20), async {
        loop {
            let (samples, _) = scrape(app).await;
            let off: Vec<_> = want
                .iter()
                .filter(|(name, value)| samples.get(*name).copied().unwrap_or(0.0) != *value)
                .map(|(name, value)| format!("{name}: want {value}, got {:?}", samples.get(*name)))
                .collect();
            if off.is_empty() {
                return samples;
            }
            last = samples;
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await;
    reached.unwrap_or_else(|_| {
        let off: Vec<_> = want
            .iter()
            .filter(|(name, value)| last.get(*name).copied().unwrap_or(0.0) != *value)
            .collect();
        panic!("timed out after 20 s waiting for the metrics {what}: off {off:?}; all: {last:#?}")
    })
}

#[actix_rt::test]
async fn metrics_name_every_family_and_move_with_what_happens() {
    let mut app = app::start();
    metrics_reach(
        &app,
        "of a fresh engine",
        &[
            ("roomstate_rooms_open", 0.0),
            ("roomstate_ws_connections", 0.0),
            ("roomstate_journal_pending_events", 0.0),
            ("roomstate_journal_batches_total", 0.0),
            ("roomstate_journal_failures_total", 0.0),
            ("roomstate_journal_failovers_total", 0.0),
            ("roomstate_rooms_closed_total", 0.0),
            ("roomstate_rooms_recovered_total", 0.0),
            ("roomstate_mutations_total{kind=\"voted\"}", 0.0),
        ],
    )
    .await;

    let room = app.create_room("metrics").await;
    app.join(&room, "alice").await;
    let (status, _) = app.vote(&room, "alice", "pro").await;
    assert_eq!(status, 200);
    metrics_reach(
        &app,
        "after an HTTP vote",
        &[
            ("roomstate_mutations_total{kind=\"created\"}", 1.0),
            ("roomstate_mutations_total{kind=\"joined\"}", 1.0),
            ("roomstate_mutations_total{kind=\"voted\"}", 1.0),
            ("roomstate_rooms_open", 1.0),
        ],
    )
    .await;

    let mut bob = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=bob")))
        .await
        .unwrap();
    bob.next_of("state").await;
    metrics_reach(
        &app,
        "with a socket open",
        &[("roomstate_ws_connections", 1.0)],
    )
    .await;
    // A refusal: a vote for no side.
    bob.send_json(&json!({"type": "vote", "side": "maybe", "req": "bad"}))
        .await;
    assert_eq!(bob.answer_to("bad").await.unwrap()["error"], "bad_request");
    bob.send_json(&json!({"type": "vote", "side": "con", "req": "good"}))
        .await;
    assert_eq!(bob.answer_to("good").await.unwrap()["type"], "ack");
    metrics_reach(
        &app,
        "after a refused and an accepted socket vote",
        &[
            ("roomstate_refusals_total{code=\"bad_request\"}", 1.0),
            ("roomstate_mutations_total{kind=\"joined\"}", 2.0),
            ("roomstate_mutations_total{kind=\"voted\"}", 2.0),
            ("roomstate_journal_pending_events", 0.0),
        ],
    )
    .await;

    // HTTP refusals are counted too, each once, by their code.
    let (status, _) = app.vote(&room, "nobody", "pro").await;
    assert_eq!(status, 409, "not joined");
    let (status, _) = app.get("/rooms/r_none").await;
    assert_eq!(status, 404);
    let (status, _) = app
        .request("GET", "/admin/stats", None, Some("wrong-token"))
        .await;
    assert_eq!(status, 401);
    metrics_reach(
        &app,
        "after three refused HTTP requests",
        &[
            ("roomstate_refusals_total{code=\"not_joined\"}", 1.0),
            ("roomstate_refusals_total{code=\"not_found\"}", 1.0),
            ("roomstate_refusals_total{code=\"unauthorized\"}", 1.0),
            ("roomstate_refusals_total{code=\"bad_request\"}", 1.0),
        ],
    )
    .await;

    let (status, closed) = app.close_room(&room).await;
    assert_eq!(status, 200, "{closed}");
    let (code, _) = bob.until_closed().await;
    assert_eq!(code, Some(1000));
    let samples = metrics_reach(
        &app,
        "after the close",
        &[
            ("roomstate_rooms_closed_total", 1.0),
            ("roomstate_rooms_open", 0.0),
            ("roomstate_ws_connections", 0.0),
            ("roomstate_journal_failures_total", 0.0),
            ("roomstate_journal_failovers_total", 0.0),
        ],
    )
    .await;
    // The journal counted every durable event in its batches, and timed every batch.
    let mutations: f64 = samples
        .iter()
        .filter(|(name, _)| name.starts_with("roomstate_mutations_total{"))
        .map(|(_, value)| value)
        .sum();
    assert_eq!(mutations, 5.0, "created, 2 joins, 2 votes: {samples:#?}");
    assert_eq!(samples["roomstate_journal_batch_events_sum"], mutations);
    let batches = samples["roomstate_journal_batches_total"];
    assert!((1.0..=mutations).contains(&batches), "{samples:#?}");
    assert_eq!(samples["roomstate_journal_batch_events_count"], batches);
    assert_eq!(samples["roomstate_journal_commit_seconds_count"], batches);

    let (_, types) = scrape(&app).await;
    for (family, kind) in METRIC_FAMILIES {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family} is exported as a {kind}: {types:#?}"
        );
    }
    assert_eq!(
        types.len(),
        METRIC_FAMILIES.len(),
        "no family this test does not know: {types:#?}"
    );

    // A restart recovers the open room, and counts it.
    let open = app.create_room("still open").await;
    assert!(app.stop().success());
    app.restart();
    metrics_reach(
        &app,
        "after a restart",
        &[
            ("roomstate_rooms_recovered_total", 1.0),
            ("roomstate_rooms_open", 1.0),
            ("roomstate_rooms_closed_total", 0.0),
        ],
    )
    .await;
    assert_eq!(app.room(&open).await["status"], "open");
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

/// Settings the engine must refuse: a config file's text (or none) and environment variables.
#[derive(Debug)]
struct BadSettings {
    file: Option<String>,
    env: &'static [(&'static str, &'static str)],
}

impl BadSettings {
    /// A file that is fine but for `tail`: it sets the admin token a file must set, so the only
    /// reason to refuse it is what `tail` holds.
    fn file(tail: &str) -> Self {
        Self {
            file: Some(format!("[admin]\ntoken = \"file-token\"\n{tail}")),
            env: &[],
        }
    }

    fn env(env: &'static [(&'static str, &'static str)]) -> Self {
        Self { file: None, env }
    }

    /// Runs the binary with these settings, expecting a refusal: exit code 2, nothing on stdout
    /// (it never says it listens); returns what it printed on stderr.
    fn refusal(&self) -> String {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![(
            "ROOMSTATE__DATA_DIR".to_owned(),
            dir.path().join("data").display().to_string(),
        )];
        if let Some(text) = &self.file {
            let config = dir.path().join("roomstate.toml");
            std::fs::write(&config, text).unwrap();
            env.push(("ROOMSTATE_CONFIG".to_owned(), config.display().to_string()));
        }
        env.extend(self.env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let run = run_to_exit(Path::new(app::ENGINE), &[], &env, EXIT_DEADLINE)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            run.status.code(),
            Some(2),
            "{self:?} is refused with exit code 2: {run:?}"
        );
        assert!(run.stdout.is_empty(), "{self:?}: {run:?}");
        run.stderr
    }
}

#[test]
fn unknown_config_keys_are_refused_naming_the_key() {
    let cases = [
        (
            BadSettings::file("[http]\nbimd = \"x\"\n"),
            &["bimd", "http"][..],
        ),
        (BadSettings::file("[nonsense]\nx = 1\n"), &["nonsense"][..]),
        (
            BadSettings::env(&[("ROOMSTATE__HTTP__BIMD", "x")]),
            &["bimd", "http"][..],
        ),
        (
            BadSettings::env(&[("ROOMSTATE__BOGUS", "1")]),
            &["bogus"][..],
        ),
    ];
    for (settings, names) in cases {
        let stderr = settings.refusal();
        for name in names {
            assert!(
                stderr.contains(name),
                "the message for {settings:?} names `{name}`: {stderr}"
            );
        }
    }
}

#[test]
fn bad_config_values_are_refused_naming_the_key() {
    let cases = [
        (
            BadSettings::file("[presence]\nhttp_ttl_s = \"soon\"\n"),
            "presence.http_ttl_s",
        ),
        (
            BadSettings::file("[journal]\nkind = \"postgres\"\n"),
            "journal.kind",
        ),
        (
            BadSettings::file("[http]\nbind = \"nowhere\"\n"),
            "http.bind",
        ),
        (
            BadSettings::env(&[("ROOMSTATE__PRESENCE__HTTP_TTL_S", "soon")]),
            "presence.http_ttl_s",
        ),
        (
            BadSettings::env(&[("ROOMSTATE__PRESENCE__HTTP_TTL_S", "0")]),
            "presence.http_ttl_s",
        ),
    ];
    for (settings, key) in cases {
        let stderr = settings.refusal();
        assert!(
            stderr.contains(key),
            "the message for {settings:?} names `{key}`: {stderr}"
        );
    }
}
