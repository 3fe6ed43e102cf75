//! Building connection info: which credentials go where, TLS on and off, and what is shown.

use redis::{ConnectionAddr, ErrorKind, RedisError};

use super::*;

const SECRET: &str = "s3cr3t-pa55";

fn creds(user: Option<&str>) -> Option<Credentials> {
    Some(Credentials::new(user.map(str::to_owned), SECRET))
}

fn ca() -> Vec<u8> {
    // A self-signed CA certificate, made once with `openssl req -x509` (P-256, valid 100 years).
    b"-----BEGIN CERTIFICATE-----
MIIBkDCCATWgAwIBAgIUbl+GPIEk/PokNba/4PEsO8wZCyUwCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRcm9vbXN0YXRlLXRlc3QtY2EwIBcNMjYxMTI2MjAwNDIwWhgP
MjEyNjExMDIyMDA0MjBaMBwxGjAYBgNVBAMMEXJvb21zdGF0ZS10ZXN0LWNhMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEt58LvuL98qhJRR244cinrNuNGW9KU1pj
PHUTaIbr+2tqydjCyN+7FQGXPuhQQnjZsfaCeAexEC9myEvUMBX2mKNTMFEwHQYD
VR0OBBYEFP1dnn/zhdF9DSQqRU7mOJwV5NDIMB8GA1UdIwQYMBaAFP1dnn/zhdF9
DSQqRU7mOJwV5NDIMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIh
AP84s2UO7pPXulPLDeFJ7Del3oZ0a6DsbEuuDayD8qtfAiEA9F4JTbvveS0/yplm
jnv2+P5MBFvAPwM/hrKaXLB14Oo=
-----END CERTIFICATE-----
"
    .to_vec()
}

fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

#[test]
fn a_sentinel_named_primary_gets_the_server_credentials() {
    let access = Access::plain(Role::Server).with_credentials(creds(Some("app")));
    let info = access.connection_info("127.0.0.1:6400").unwrap();
    assert_eq!(info.redis_settings().username(), Some("app"));
    assert_eq!(info.redis_settings().password(), Some(SECRET));
    assert!(!is_tls(&info));
    assert_eq!(info.addr().to_string(), "127.0.0.1:6400");
}

#[test]
fn a_password_without_a_user_is_the_default_users() {
    let access = Access::plain(Role::Sentinel).with_credentials(creds(None));
    let info = access.connection_info("127.0.0.1:26400").unwrap();
    assert_eq!(info.redis_settings().username(), None);
    assert_eq!(info.redis_settings().password(), Some(SECRET));
}

#[test]
fn no_credentials_means_no_auth() {
    let info = Access::plain(Role::Server)
        .connection_info("redis://127.0.0.1:6379")
        .unwrap();
    assert_eq!(info.redis_settings().username(), None);
    assert_eq!(info.redis_settings().password(), None);
}

#[test]
fn credentials_in_the_url_keep_working() {
    let info = Access::plain(Role::Server)
        .connection_info("redis://app:p%40ss@127.0.0.1:6379/2")
        .unwrap();
    assert_eq!(info.redis_settings().username(), Some("app"));
    assert_eq!(info.redis_settings().password(), Some("p@ss"));
    assert_eq!(info.redis_settings().db(), 2);
}

#[test]
fn credentials_of_the_access_replace_those_of_the_url() {
    let access = Access::plain(Role::Server).with_credentials(creds(None));
    let info = access
        .connection_info("redis://old:pw@127.0.0.1:6379/3")
        .unwrap();
    assert_eq!(info.redis_settings().username(), None);
    assert_eq!(info.redis_settings().password(), Some(SECRET));
    assert_eq!(info.redis_settings().db(), 3, "the database number stays");
}

#[test]
fn tls_from_the_access_or_from_rediss() {
    let tls = Access::plain(Role::Server).with_tls(Some(Tls::system_roots()));
    assert!(is_tls(&tls.connection_info("127.0.0.1:6400").unwrap()));
    assert!(is_tls(
        &tls.connection_info("redis://127.0.0.1:6400").unwrap()
    ));
    let plain = Access::plain(Role::Server);
    assert!(is_tls(
        &plain.connection_info("rediss://127.0.0.1:6400").unwrap()
    ));
    assert!(!is_tls(&plain.connection_info("127.0.0.1:6400").unwrap()));
    assert!(!is_tls(
        &plain.connection_info("redis://127.0.0.1:6400").unwrap()
    ));
}

#[test]
fn tls_clients_build_with_system_roots_or_an_own_ca() {
    let own = Tls::with_ca_pem(ca()).unwrap();
    assert!(own.has_own_ca());
    for tls in [Tls::system_roots(), own] {
        let access = Access::plain(Role::Server).with_tls(Some(tls));
        access.client("127.0.0.1:6400").unwrap();
        access.client("rediss://127.0.0.1:6400").unwrap();
    }
}

#[test]
fn a_ca_file_without_a_certificate_is_refused() {
    let none = Tls::with_ca_pem(b"hello".to_vec()).unwrap_err();
    assert!(none.to_string().contains("no certificate"), "{none}");
    let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec();
    let bad = Tls::with_ca_pem(garbage).unwrap_err();
    assert!(
        bad.to_string().contains("not a usable CA certificate"),
        "{bad}"
    );
}

#[test]
fn ipv6_and_bad_addresses() {
    let info = Access::plain(Role::Server)
        .connection_info("::1:6379")
        .unwrap();
    assert_eq!(info.addr().to_string(), "::1:6379");
    for bad in ["127.0.0.1", "127.0.0.1:http", ":6379", "postgres://x"] {
        assert!(
            Access::plain(Role::Server).connection_info(bad).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn errors_and_debug_never_show_a_password() {
    let err = Access::plain(Role::Server)
        .connection_info(&format!("redis://app:{SECRET}@127.0.0.1:notaport"))
        .unwrap_err()
        .to_string();
    assert!(!err.contains(SECRET), "{err}");
    assert!(err.contains("app:***@"), "{err}");
    let access = RedisAccess {
        servers: Access::plain(Role::Server).with_credentials(creds(Some("app"))),
        sentinels: Access::plain(Role::Sentinel).with_credentials(creds(None)),
    };
    let shown = format!("{access:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("app"), "{shown}");
    let mut config = crate::redis::RedisJournalConfig::new(
        crate::redis::RedisTarget::Url(format!("rediss://app:{SECRET}@127.0.0.1:6380")),
        0,
    );
    config.access = access;
    let shown = format!("{config:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("rediss://app:***@127.0.0.1:6380"), "{shown}");
}

#[test]
fn an_authentication_failure_says_so_and_names_the_settings() {
    let wrong = RedisError::from((
        ErrorKind::AuthenticationFailed,
        "Password authentication failed",
    ));
    let server = Access::plain(Role::Server).describe(&wrong);
    assert!(
        server.starts_with("authentication failed (WRONGPASS"),
        "{server}"
    );
    assert!(server.contains("redis.password"), "{server}");
    let sentinel = Access::plain(Role::Sentinel).describe(&wrong);
    assert!(sentinel.contains("redis.sentinel_password"), "{sentinel}");

    let noauth =
        redis::make_extension_error("NOAUTH".into(), Some("Authentication required.".into()));
    let text = Access::plain(Role::Sentinel).describe(&noauth);
    assert!(text.starts_with("authentication failed (NOAUTH"), "{text}");

    let noperm = redis::make_extension_error(
        "NOPERM".into(),
        Some("this user has no permissions to run the 'xadd' command".into()),
    );
    let text = Access::plain(Role::Server).describe(&noperm);
    assert!(
        text.starts_with("permission denied") && text.contains("xadd"),
        "{text}"
    );

    let other = RedisError::from((ErrorKind::Io, "connection refused"));
    assert!(!Access::plain(Role::Server)
        .describe(&other)
        .contains("authentication"));
}
