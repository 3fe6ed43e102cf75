//! The Redis journal on a Redis locked as production is: passwords on the servers and the
//! sentinels, an ACL user, TLS with a private CA (`redis.username`, `redis.password`,
//! `redis.sentinel_password`, `redis.tls`, `redis.tls_ca_file`, `rediss://` URLs). The failover
//! promises hold there as on an open set; a wrong or rotated password is reported as an
//! authentication failure (start-up error, `/readyz`), and no password ever shows in the
//! engine's log, `/readyz` or `/admin/stats`.

use std::time::Duration;

use roomstate_testkit::{
    engine::run_to_exit,
    redis_admin::{self, command},
    redis_security::Security,
};
use serde_json::{json, Value};

use crate::{
    failover::{survive, Break},
    support::{
        app::{self, eventually, TestApp, ENGINE, TOKEN},
        sentinel::{RedisServer, SentinelSet},
    },
};

/// Distinctive, so that finding one in a text is no accident.
const ADMIN_PW: &str = "Admin-Secret-4c1e9";
const APP_PW: &str = "App-Secret-8d27f";
const SENTINEL_PW: &str = "Sentinel-Secret-b5a30";
const WRONG_PW: &str = "Wrong-Secret-61e0d";
const ROTATED_PW: &str = "Rotated-Secret-93c2a";
const SECRETS: [&str; 5] = [ADMIN_PW, APP_PW, SENTINEL_PW, WRONG_PW, ROTATED_PW];
const DEADLINE: Duration = Duration::from_secs(30);

/// Passwords on every server and sentinel, and the ACL user `app` for the engine.
fn locked() -> Security {
    Security::none()
        .requirepass(ADMIN_PW)
        .acl_user("app", APP_PW)
        .sentinel_requirepass(SENTINEL_PW)
}

/// Fails naming the secret and where it showed.
fn assert_no_secret(place: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "a password ({secret}) shows in {place}:\n{text}"
        );
    }
}

/// The engine's log, `/readyz` and `/admin/stats` hold no password. Returns `/readyz`'s body.
async fn assert_nothing_shows_a_password(app: &TestApp) -> Value {
    let (_, ready) = app.get("/readyz").await;
    assert_no_secret("/readyz", &ready.to_string());
    let (status, stats) = app.request("GET", "/admin/stats", None, Some(TOKEN)).await;
    assert_eq!(status, 200, "{stats}");
    assert_no_secret("/admin/stats", &stats.to_string());
    assert_no_secret("engine.log", &app.log());
    ready
}

fn with_settings(mut builder: app::Builder, settings: Vec<(String, String)>) -> app::Builder {
    for (key, value) in settings {
        builder = builder.setting(&key, value);
    }
    builder
}

#[actix_rt::test]
async fn kill_9_of_a_password_protected_primary_loses_no_acknowledged_vote() {
    let mut set = SentinelSet::builder().security(locked()).start().await;
    survive(&mut set, Break::Kill).await;
}

#[actix_rt::test]
async fn a_manual_failover_of_a_password_protected_set_loses_no_acknowledged_vote() {
    let mut set = SentinelSet::builder().security(locked()).start().await;
    survive(&mut set, Break::Manual).await;
}

#[actix_rt::test]
async fn kill_9_of_the_primary_over_tls_loses_no_acknowledged_vote() {
    let mut set = SentinelSet::builder()
        .security(locked().tls())
        .start()
        .await;
    survive(&mut set, Break::Kill).await;
}

/// `rediss://app:<password>@host:port` (credentials in the URL, TLS from the scheme, the
/// private CA from `redis.tls_ca_file`): rooms live there, survive a restart, and leave no key
/// when closed; the URL shows redacted.
#[actix_rt::test]
async fn a_rediss_url_with_a_password_keeps_rooms_across_a_restart() {
    let redis = RedisServer::builder()
        .security(
            Security::none()
                .requirepass(ADMIN_PW)
                .acl_user("app", APP_PW)
                .tls(),
        )
        .start()
        .await;
    let url = format!("rediss://app:{APP_PW}@{}", redis.addr());
    let ca = redis.tls_ca_file().expect("a TLS server has a CA");
    let mut app = app::builder()
        .setting("JOURNAL__KIND", "redis")
        .setting("REDIS__URL", &url)
        .setting("REDIS__TLS_CA_FILE", ca.display())
        .start();
    let room = app.create_room("behind a password").await;
    app.join(&room, "alice").await;
    app.vote(&room, "alice", "pro").await;
    app.say(&room, "alice", "hello over TLS").await;
    let before = app.room(&room).await;
    let keys = redis.keys("roomstate:*").await;
    assert!(keys.len() >= 2, "{keys:?}");

    assert!(app.stop().success());
    app.restart();
    let mut after = app.room(&room).await;
    assert_eq!(after["participants"], 0);
    after["participants"] = before["participants"].clone();
    assert_eq!(after, before);

    let (status, stats) = app.request("GET", "/admin/stats", None, Some(TOKEN)).await;
    assert_eq!(status, 200, "{stats}");
    let target = stats["journal"]["target"].as_str().unwrap_or_default();
    assert!(target.contains(&redis.addr()), "{stats}");
    let (status, closed) = app.close_room(&room).await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["pro"], 1);
    eventually("the room's keys to go", DEADLINE, || async {
        redis.keys("roomstate:*").await.is_empty().then_some(())
    })
    .await;
    let ready = assert_nothing_shows_a_password(&app).await;
    assert_eq!(ready, json!({"journal": "up", "store": "up"}));
    assert!(
        app.log().contains("app:***@"),
        "the URL is logged redacted:\n{}",
        app.log()
    );
}

/// What an engine that cannot get in at start prints: it exits (as with no Redis at all), and
/// says that authentication failed and which settings to check, with no password.
fn start_refused(settings: Vec<(String, String)>) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("ROOMSTATE__HTTP__BIND".to_owned(), "127.0.0.1:0".to_owned()),
        (
            "ROOMSTATE__DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
        ("ROOMSTATE__ADMIN__TOKEN".to_owned(), TOKEN.to_owned()),
        ("ROOMSTATE__JOURNAL__KIND".to_owned(), "redis".to_owned()),
    ];
    env.extend(
        settings
            .into_iter()
            .map(|(k, v)| (format!("ROOMSTATE__{k}"), v)),
    );
    let ended = run_to_exit(
        std::path::Path::new(ENGINE),
        &[],
        &env,
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!ended.status.success(), "the engine started: {ended:?}");
    let out = format!("{}{}", ended.stdout, ended.stderr);
    assert_no_secret("the engine's output", &out);
    out
}

#[actix_rt::test]
async fn a_wrong_server_password_at_start_is_named_without_the_password() {
    let redis = RedisServer::builder()
        .security(
            Security::none()
                .requirepass(ADMIN_PW)
                .acl_user("app", APP_PW),
        )
        .start()
        .await;
    let mut settings = redis.engine_settings();
    settings.push(("REDIS__PASSWORD".into(), WRONG_PW.into()));
    let out = start_refused(settings);
    assert!(
        out.contains("authentication failed (WRONGPASS") && out.contains("redis.password"),
        "{out}"
    );
    // No password at all: the server says NOAUTH.
    let out = start_refused(vec![("REDIS__URL".into(), redis.url())]);
    assert!(out.contains("authentication failed (NOAUTH"), "{out}");
}

#[actix_rt::test]
async fn a_wrong_sentinel_password_at_start_is_named_without_the_password() {
    let set = SentinelSet::builder().security(locked()).start().await;
    let mut settings = set.engine_settings();
    settings.push(("REDIS__SENTINEL_PASSWORD".into(), WRONG_PW.into()));
    let out = start_refused(settings);
    assert!(
        out.contains("no sentinel named a primary")
            && out.contains("authentication failed (WRONGPASS")
            && out.contains("redis.sentinel_password"),
        "{out}"
    );
}

/// Drops the engine's connections to the server at `addr`: every normal client without a name
/// (the engine's; replicas are flagged `S`, sentinels name theirs, and the fixture's own queries
/// are short-lived) but the one asking.
async fn drop_engine_connections(addr: &str) {
    let clients = command(addr, &["CLIENT", "LIST"])
        .await
        .unwrap_or_else(|e| panic!("CLIENT LIST on {addr}: {e}"));
    for line in clients.lines() {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        };
        if field("name") != Some("") || field("flags") != Some("N") {
            continue;
        }
        if field("cmd") == Some("client|list") {
            continue;
        }
        let Some(id) = field("id") else { continue };
        let _ = command(addr, &["CLIENT", "KILL", "ID", id]).await;
    }
}

/// `/readyz` once it says the journal is down because authentication failed (the first probe
/// after the connection was dropped may still report the broken connection itself).
async fn readyz_says_authentication_failed(app: &TestApp) -> Value {
    eventually(
        "/readyz to say the journal is down: authentication failed",
        DEADLINE,
        || async {
            let (status, ready) = app.get("/readyz").await;
            let message = ready["message"].as_str().unwrap_or_default();
            (status == 503 && ready["journal"] == "down" && message.contains("authentication"))
                .then_some(ready)
        },
    )
    .await
}

/// The engine's ACL user gets a new password while the engine runs (`redis://` URL with
/// `redis.tls = true`, the user and password as settings): once its connection is gone, the
/// journal is down because authentication failed, and says so in `/readyz`; with the old
/// password back, it writes again. No password shows anywhere.
#[actix_rt::test]
async fn a_rotated_server_password_shows_in_readyz_as_an_authentication_failure() {
    let redis = RedisServer::builder()
        .security(
            Security::none()
                .requirepass(ADMIN_PW)
                .acl_user("app", APP_PW)
                .tls(),
        )
        .start()
        .await;
    let settings = with_settings(
        app::builder().setting("JOURNAL__KIND", "redis"),
        redis.engine_settings(),
    );
    let app = settings
        .setting("REDIS__URL", format!("redis://{}", redis.addr()))
        .start();
    let room = app.create_room("rotation").await;
    app.join(&room, "bob").await;
    let (status, body) = app.vote(&room, "bob", "con").await;
    assert_eq!(status, 200, "{body}");

    let rule = format!(">{ROTATED_PW}");
    let old = format!("<{APP_PW}");
    command(&redis.addr(), &["ACL", "SETUSER", "app", &old, &rule])
        .await
        .unwrap();
    drop_engine_connections(&redis.addr()).await;
    let ready = readyz_says_authentication_failed(&app).await;
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("authentication failed (WRONGPASS") && message.contains("redis.password"),
        "{ready}"
    );
    assert_eq!(ready["store"], "up", "{ready}");
    assert_nothing_shows_a_password(&app).await;

    let back = format!(">{APP_PW}");
    command(&redis.addr(), &["ACL", "SETUSER", "app", &back])
        .await
        .unwrap();
    eventually("/readyz to say the journal is up", DEADLINE, || async {
        let (status, _) = app.get("/readyz").await;
        (status == 200).then_some(())
    })
    .await;
    let (status, body) = app.vote(&room, "bob", "pro").await;
    assert_eq!(status, 200, "{body}");
    assert_nothing_shows_a_password(&app).await;
}

/// The sentinels' password changes while the engine runs: the next time the journal asks them
/// for the primary, each refuses it, and `/readyz` says that authentication with the sentinels
/// failed. No password shows anywhere.
#[actix_rt::test]
async fn a_rotated_sentinel_password_shows_in_readyz_as_an_authentication_failure() {
    let set = SentinelSet::builder().security(locked()).start().await;
    let app = with_settings(
        app::builder().setting("JOURNAL__KIND", "redis"),
        set.engine_settings(),
    )
    .start();
    let room = app.create_room("sentinel rotation").await;
    app.join(&room, "carol").await;
    let (status, body) = app.vote(&room, "carol", "pro").await;
    assert_eq!(status, 200, "{body}");

    let primary = set.primary().await;
    let rule = format!(">{ROTATED_PW}");
    for sentinel in set.sentinels() {
        command(
            &sentinel,
            &["ACL", "SETUSER", "default", "resetpass", &rule],
        )
        .await
        .unwrap_or_else(|e| panic!("ACL SETUSER on sentinel {sentinel}: {e}"));
        // The fixture's own queries follow the new password.
        let access = redis_admin::access_for(&sentinel).with_credentials(Some(
            roomstate_journal::access::Credentials::new(None, ROTATED_PW),
        ));
        redis_admin::register(&sentinel, access);
    }
    drop_engine_connections(&primary).await;
    let ready = readyz_says_authentication_failed(&app).await;
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no sentinel named a primary")
            && message.contains("authentication failed (WRONGPASS")
            && message.contains("redis.sentinel_password"),
        "{ready}"
    );
    assert_nothing_shows_a_password(&app).await;
}
