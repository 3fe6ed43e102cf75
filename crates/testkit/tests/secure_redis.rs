//! The Redis fixtures locked as production is (`Security`): passwords on the servers and the
//! sentinels, an ACL user, TLS. Each starts healthy, the fixture's own queries get in, a client
//! without the password (or without TLS) does not, and a sentinel set still fails over.

use std::time::Duration;

use roomstate_journal::access::{Access, Credentials, Role};
use roomstate_testkit::{
    redis_admin::{query, role_of},
    redis_security::Security,
    redis_server::RedisServer,
    sentinel_set::SentinelSet,
};

const FAILOVER_DEADLINE: Duration = Duration::from_secs(60);

fn config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
}

/// `PING` on `addr` through `access`: `Ok` or the refusal in words.
async fn ping(access: &Access, addr: &str) -> Result<String, String> {
    let mut conn = access.connect(addr, &config()).await?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| access.describe(&e))
}

#[actix_rt::test]
async fn a_server_with_a_password_and_an_acl_user_lets_only_them_in() {
    let server = RedisServer::builder()
        .security(
            Security::none()
                .requirepass("admin-pw")
                .acl_user("app", "app-pw"),
        )
        .start()
        .await;
    // The fixture's own queries (the default user).
    assert!(server.keys("*").await.is_empty());
    let addr = server.addr();
    let app = Access::plain(Role::Server)
        .with_credentials(Some(Credentials::new(Some("app".into()), "app-pw")));
    assert_eq!(ping(&app, &addr).await.as_deref(), Ok("PONG"));
    let nobody = ping(&Access::plain(Role::Server), &addr).await.unwrap_err();
    assert!(nobody.contains("NOAUTH"), "{nobody}");
    let wrong = Access::plain(Role::Server)
        .with_credentials(Some(Credentials::new(Some("app".into()), "nope")));
    let wrong = ping(&wrong, &addr).await.unwrap_err();
    assert!(wrong.contains("authentication failed"), "{wrong}");
    let settings = server.engine_settings();
    assert!(
        settings.contains(&("REDIS__USERNAME".into(), "app".into())),
        "{settings:?}"
    );
    assert!(
        settings.contains(&("REDIS__PASSWORD".into(), "app-pw".into())),
        "{settings:?}"
    );
}

#[actix_rt::test]
async fn a_tls_server_speaks_only_tls_and_is_trusted_through_its_ca() {
    let server = RedisServer::builder()
        .security(Security::none().tls())
        .start()
        .await;
    assert!(
        server.url().starts_with("rediss://127.0.0.1:"),
        "{}",
        server.url()
    );
    assert!(server.keys("*").await.is_empty());
    let plain = ping(&Access::plain(Role::Server), &server.addr()).await;
    assert!(plain.is_err(), "a plain client got {plain:?}");
    // Without the test CA, the server's certificate is not trusted.
    let untrusted = ping(&Access::plain(Role::Server), &server.url()).await;
    assert!(untrusted.is_err(), "{untrusted:?}");
    let ca = std::fs::read(server.tls_ca_file().unwrap()).unwrap();
    let trusted = Access::plain(Role::Server).with_tls(Some(
        roomstate_journal::access::Tls::with_ca_pem(ca).unwrap(),
    ));
    assert_eq!(ping(&trusted, &server.addr()).await.as_deref(), Ok("PONG"));
}

#[actix_rt::test]
async fn a_locked_sentinel_set_starts_healthy_and_fails_over() {
    let mut set = SentinelSet::builder()
        .security(
            Security::none()
                .requirepass("admin-pw")
                .acl_user("app", "app-pw")
                .sentinel_requirepass("sentinel-pw"),
        )
        .start()
        .await;
    let sentinel = set.sentinels()[0].clone();
    let open: Result<String, String> =
        query_plain(&sentinel, redis::cmd("SENTINEL").arg("MASTERS")).await;
    assert!(open.unwrap_err().contains("NOAUTH"));
    let old = set.kill_primary().await;
    let new = set.wait_for_new_primary(&old, FAILOVER_DEADLINE).await;
    assert_eq!(role_of(&new).await.unwrap().role, "master");
    let _: String = query(&new, redis::cmd("SET").arg("k").arg("v"))
        .await
        .unwrap();
}

#[actix_rt::test]
async fn a_tls_sentinel_set_starts_healthy_and_fails_over() {
    let mut set = SentinelSet::builder()
        .security(Security::none().requirepass("admin-pw").tls())
        .start()
        .await;
    assert!(set.tls_ca_file().is_some());
    let old = set.kill_primary().await;
    let new = set.wait_for_new_primary(&old, FAILOVER_DEADLINE).await;
    assert_eq!(role_of(&new).await.unwrap().role, "master");
}

/// One command with no credentials and no TLS.
async fn query_plain<T: redis::FromRedisValue>(addr: &str, cmd: &redis::Cmd) -> Result<T, String> {
    let access = Access::plain(Role::Sentinel);
    let mut conn = access.connect(addr, &config()).await?;
    cmd.query_async(&mut conn)
        .await
        .map_err(|e| access.describe(&e))
}
