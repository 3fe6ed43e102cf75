//! Settings from the embedded defaults, a file and the environment: what the contract says, and what is refused.

use std::io::Write;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn embedded_defaults_match_the_contract() {
    let loaded = Settings::load_from(None, env(&[])).unwrap();
    let s = &loaded.settings;
    assert_eq!(s.http.bind, "127.0.0.1:8080");
    assert_eq!(s.data_dir, PathBuf::from("data"));
    assert_eq!(s.journal.kind, JournalKind::Local);
    assert_eq!(s.redis.master_name, "roomstate");
    assert_eq!(s.redis.min_replica_acks, 0);
    assert_eq!(
        s.redis.commit_delay_ms, 0,
        "no commit delay unless asked for"
    );
    assert_eq!(s.presence.http_ttl_s, 300);
    assert_eq!(loaded.store_url, "sqlite://data/roomstate.db");
    assert_eq!(s.store.timeout(), Duration::from_secs(10));
    let token = loaded.admin_token.unwrap();
    assert!(token.generated && token.token.len() >= 32);
}

#[test]
fn environment_overrides_with_double_underscores() {
    let loaded = Settings::load_from(
        None,
        env(&[
            ("ROOMSTATE__HTTP__BIND", "0.0.0.0:9000"),
            ("ROOMSTATE__DATA_DIR", "/tmp/rs"),
            ("ROOMSTATE__ADMIN__TOKEN", "secret"),
            ("ROOMSTATE__REDIS__SENTINELS", "127.0.0.1:1,127.0.0.1:2"),
            ("ROOMSTATE__PRESENCE__HTTP_TTL_S", "7"),
            ("ROOMSTATE_CONFIG_UNRELATED", "x"),
        ]),
    )
    .unwrap();
    let s = &loaded.settings;
    assert_eq!(s.http.bind, "0.0.0.0:9000");
    assert_eq!(s.redis.sentinels, ["127.0.0.1:1", "127.0.0.1:2"]);
    assert_eq!(s.presence.http_ttl_s, 7);
    assert_eq!(loaded.store_url, "sqlite:///tmp/rs/roomstate.db");
    let token = loaded.admin_token.unwrap();
    assert_eq!((token.token.as_str(), token.generated), ("secret", false));
}

#[test]
fn a_config_file_without_a_token_is_refused() {
    // Named without `.toml`: the format is TOML whatever the name.
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "[http]\nbind = \"127.0.0.1:9999\"").unwrap();
    let path = file.path().with_extension("conf");
    std::fs::copy(file.path(), &path).unwrap();
    let err = Settings::load_from(Some(path.clone()), env(&[])).unwrap_err();
    assert!(err.to_string().contains("admin.token"), "{err}");
    // A file that serves admin routes must also choose auth.mode (here through the environment).
    let ok = Settings::load_from(
        Some(path.clone()),
        env(&[
            ("ROOMSTATE__ADMIN__TOKEN", "t"),
            ("ROOMSTATE__AUTH__MODE", "open"),
        ]),
    );
    assert_eq!(ok.unwrap().settings.http.bind, "127.0.0.1:9999");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn env_values_stay_strings_where_strings_are_wanted() {
    let loaded = Settings::load_from(
        None,
        env(&[
            ("ROOMSTATE__ADMIN__TOKEN", "0123"),
            ("ROOMSTATE__REDIS__MASTER_NAME", "1e3"),
            ("ROOMSTATE__REDIS__MIN_REPLICA_ACKS", "2"),
            ("ROOMSTATE__ADMIN__ENABLED", "true"),
        ]),
    )
    .unwrap();
    assert_eq!(loaded.admin_token.unwrap().token, "0123");
    assert_eq!(loaded.settings.redis.master_name, "1e3");
    assert_eq!(loaded.settings.redis.min_replica_acks, 2);
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    assert!(Settings::load_from(None, env(&[("ROOMSTATE__HTTP__BIMD", "x")])).is_err());
    assert!(Settings::load_from(None, env(&[("ROOMSTATE__HTTP__BIND", "nope")])).is_err());
    assert!(
        Settings::load_from(None, env(&[("ROOMSTATE__JOURNAL__KIND", "redis")])).is_err(),
        "redis without an address"
    );
    assert!(Settings::load_from(None, env(&[("ROOMSTATE__JOURNAL__KIND", "paper")])).is_err());
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn a_commit_delay_is_taken_up_to_its_bound_and_refused_above_or_garbled() {
    let loaded =
        Settings::load_from(None, env(&[("ROOMSTATE__REDIS__COMMIT_DELAY_MS", "2")])).unwrap();
    assert_eq!(loaded.settings.redis.commit_delay_ms, 2);
    let at_bound =
        Settings::load_from(None, env(&[("ROOMSTATE__REDIS__COMMIT_DELAY_MS", "50")])).unwrap();
    assert_eq!(at_bound.settings.redis.commit_delay_ms, 50);
    let err = refusal(&[("ROOMSTATE__REDIS__COMMIT_DELAY_MS", "51")]);
    assert!(
        err.contains("redis.commit_delay_ms") && err.contains("at most 50") && err.contains("51"),
        "{err}"
    );
    for garbled in ["-1", "1.5", "soon"] {
        let err = refusal(&[("ROOMSTATE__REDIS__COMMIT_DELAY_MS", garbled)]);
        assert!(err.contains("commit_delay_ms"), "{garbled}: {err}");
    }
}

#[test]
fn a_store_timeout_is_taken_from_one_to_300_seconds_and_refused_otherwise() {
    for (given, seconds) in [("1", 1), ("300", 300), ("25", 25)] {
        let loaded =
            Settings::load_from(None, env(&[("ROOMSTATE__STORE__TIMEOUT_S", given)])).unwrap();
        assert_eq!(
            loaded.settings.store.timeout(),
            Duration::from_secs(seconds)
        );
    }
    for out_of_range in ["0", "301"] {
        let err = refusal(&[("ROOMSTATE__STORE__TIMEOUT_S", out_of_range)]);
        assert!(
            err.contains("store.timeout_s") && err.contains("from 1 to 300"),
            "{out_of_range}: {err}"
        );
    }
    for garbled in ["-1", "1.5", "soon"] {
        let err = refusal(&[("ROOMSTATE__STORE__TIMEOUT_S", garbled)]);
        assert!(err.contains("timeout_s"), "{garbled}: {err}");
    }
}

/// The refusal's text for these settings (embedded defaults and `pairs`).
fn refusal(pairs: &[(&str, &str)]) -> String {
    Settings::load_from(None, env(pairs))
        .unwrap_err()
        .to_string()
}

#[test]
fn the_dev_default_is_open_and_says_so() {
    let loaded = Settings::load_from(None, env(&[])).unwrap();
    assert!(loaded.auth.verifier.is_none());
    assert_eq!(loaded.auth.create_rooms, CreateRooms::Anyone);
    assert!(loaded.auth.summary().contains("(dev default)"));
    let chosen = Settings::load_from(None, env(&[("ROOMSTATE__AUTH__MODE", "open")])).unwrap();
    assert!(!chosen.auth.summary().contains("dev default"));
}

#[test]
fn a_config_file_serving_admin_routes_must_choose_auth_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prod.toml");
    std::fs::write(&path, "[admin]\ntoken = \"t\"\n").unwrap();
    let err = Settings::load_from(Some(path.clone()), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("auth.mode") && err.contains("[auth]") && err.contains("mode = \"token\""),
        "{err}"
    );
    let open = "[admin]\ntoken = \"t\"\n[auth]\nmode = \"open\"\n";
    std::fs::write(&path, open).unwrap();
    let loaded = Settings::load_from(Some(path.clone()), env(&[])).unwrap();
    assert!(loaded.auth.verifier.is_none() && !loaded.auth.dev_default);
    std::fs::write(&path, "[admin]\nenabled = false\n").unwrap();
    assert!(
        Settings::load_from(Some(path), env(&[])).is_ok(),
        "no admin routes: the file need not choose"
    );
}

#[test]
fn token_mode_needs_exactly_one_good_key() {
    let token = ("ROOMSTATE__AUTH__MODE", "token");
    let err = refusal(&[token]);
    assert!(
        err.contains("auth.hs256_secret") && err.contains("auth.public_key_file"),
        "{err}"
    );
    let err = refusal(&[
        token,
        ("ROOMSTATE__AUTH__HS256_SECRET", SECRET),
        ("ROOMSTATE__AUTH__PUBLIC_KEY_FILE", "/k.pem"),
    ]);
    assert!(err.contains("both"), "{err}");
    let err = refusal(&[token, ("ROOMSTATE__AUTH__HS256_SECRET", "short")]);
    assert!(
        err.contains("auth.hs256_secret") && err.contains("5 bytes") && err.contains("32"),
        "{err}"
    );
    let missing = "/nonexistent/roomstate-jwt.pem";
    let err = refusal(&[token, ("ROOMSTATE__AUTH__PUBLIC_KEY_FILE", missing)]);
    assert!(
        err.contains("auth.public_key_file") && err.contains(missing) && err.contains("read"),
        "{err}"
    );
    let mut garbage = tempfile::NamedTempFile::new().unwrap();
    writeln!(garbage, "not a key").unwrap();
    let path = garbage.path().display().to_string();
    let err = refusal(&[token, ("ROOMSTATE__AUTH__PUBLIC_KEY_FILE", &path)]);
    assert!(
        err.contains("auth.public_key_file") && err.contains(&path) && err.contains("PEM"),
        "{err}"
    );
    let loaded = Settings::load_from(
        None,
        env(&[
            token,
            ("ROOMSTATE__AUTH__HS256_SECRET", SECRET),
            ("ROOMSTATE__AUTH__CREATE_ROOMS", "users"),
        ]),
    )
    .unwrap();
    let verifier = loaded.auth.verifier.as_ref().expect("token mode");
    assert_eq!(verifier.algorithm_name(), "HS256");
    assert_eq!(loaded.auth.create_rooms, CreateRooms::Users);
    let shown = format!("{:?}", loaded.settings);
    assert!(
        !shown.contains(SECRET),
        "the secret is never shown: {shown}"
    );
}

#[test]
fn settings_that_cannot_mean_what_they_say_are_refused() {
    let err = refusal(&[("ROOMSTATE__AUTH__HS256_SECRET", SECRET)]);
    assert!(
        err.contains("auth.hs256_secret") && err.contains("\"open\""),
        "a key in open mode would check nothing: {err}"
    );
    let err = refusal(&[("ROOMSTATE__AUTH__CREATE_ROOMS", "users")]);
    assert!(err.contains("auth.create_rooms"), "{err}");
    let err = refusal(&[
        ("ROOMSTATE__AUTH__CREATE_ROOMS", "admin"),
        ("ROOMSTATE__ADMIN__ENABLED", "false"),
    ]);
    assert!(
        err.contains("auth.create_rooms") && err.contains("admin"),
        "{err}"
    );
    let err = refusal(&[("ROOMSTATE__AUTH__MODE", "jwt")]);
    assert!(err.contains("auth.mode") || err.contains("jwt"), "{err}");
    // An empty value unsets, as environments do.
    let loaded = Settings::load_from(None, env(&[("ROOMSTATE__AUTH__HS256_SECRET", "")])).unwrap();
    assert!(loaded.auth.verifier.is_none());
}

/// The example files the README starts the engine with stay valid (with the secrets their
/// comments say to give by environment).
#[test]
fn the_shipped_example_configs_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sentinel = Settings::load_from(
        Some(root.join("config/sentinel.toml")),
        env(&[
            ("ROOMSTATE__ADMIN__TOKEN", "change-me"),
            (
                "ROOMSTATE__AUTH__HS256_SECRET",
                "0123456789abcdef0123456789abcdef",
            ),
        ]),
    )
    .unwrap_or_else(|e| panic!("config/sentinel.toml: {e}"));
    assert_eq!(sentinel.settings.journal.kind, JournalKind::Redis);
    let mysql = Settings::load_from(
        Some(root.join("config/mysql.toml")),
        env(&[("ROOMSTATE__ADMIN__TOKEN", "change-me")]),
    )
    .unwrap_or_else(|e| panic!("config/mysql.toml: {e}"));
    assert!(mysql.store_url.starts_with("mysql://"));
    // Without the secret, token mode refuses to start, naming what is missing.
    let err = Settings::load_from(
        Some(root.join("config/sentinel.toml")),
        env(&[("ROOMSTATE__ADMIN__TOKEN", "change-me")]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("hs256_secret"), "{err}");
}

#[test]
fn edge_settings_default_to_trusting_nobody_and_the_same_origin() {
    let loaded = Settings::load_from(None, env(&[])).unwrap();
    assert!(loaded.edge.proxies.is_empty());
    assert_eq!(loaded.edge.origins.describe(), "the same origin");
    assert_eq!(loaded.settings.limits.max_open_rooms, 100_000);
    assert_eq!(loaded.settings.limits.ws_send_buffer_bytes, 1 << 20);
}

#[test]
fn edge_settings_come_from_lists_or_comma_separated_env() {
    let loaded = Settings::load_from(
        None,
        env(&[
            (
                "ROOMSTATE__HTTP__TRUSTED_PROXIES",
                "10.0.0.0/8, 127.0.0.1/32",
            ),
            (
                "ROOMSTATE__HTTP__ALLOWED_ORIGINS",
                "https://app.example,http://localhost:3000",
            ),
            ("ROOMSTATE__LIMITS__MAX_OPEN_ROOMS", "5"),
            ("ROOMSTATE__LIMITS__WS_SEND_BUFFER_BYTES", "131072"),
        ]),
    )
    .unwrap();
    assert_eq!(loaded.edge.proxies.describe(), "10.0.0.0/8, 127.0.0.1/32");
    assert_eq!(
        loaded.edge.origins.describe(),
        "the same origin, https://app.example, http://localhost:3000"
    );
    assert_eq!(loaded.settings.limits.max_open_rooms, 5);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "[admin]\ntoken = \"t\"\n[auth]\nmode = \"open\"\n[http]\ntrusted_proxies = \
         [\"fd00::/8\"]\nallowed_origins = [\"*\"]"
    )
    .unwrap();
    let loaded = Settings::load_from(Some(file.path().to_path_buf()), env(&[])).unwrap();
    assert_eq!(loaded.edge.proxies.describe(), "fd00::/8");
    assert_eq!(loaded.edge.origins.describe(), "any origin");
    // An empty value unsets, as environments do.
    let loaded =
        Settings::load_from(None, env(&[("ROOMSTATE__HTTP__TRUSTED_PROXIES", "")])).unwrap();
    assert!(loaded.edge.proxies.is_empty());
}

#[test]
fn bad_edge_settings_are_refused_naming_the_key_and_the_entry() {
    for (key, value, names) in [
        (
            "HTTP__TRUSTED_PROXIES",
            "10.0.0.0/8,10.0.0.0/33",
            "10.0.0.0/33",
        ),
        ("HTTP__TRUSTED_PROXIES", "proxy.local", "proxy.local"),
        ("HTTP__ALLOWED_ORIGINS", "rooms.example", "rooms.example"),
        (
            "HTTP__ALLOWED_ORIGINS",
            "https://rooms.example/",
            "https://rooms.example/",
        ),
        ("LIMITS__MAX_OPEN_ROOMS", "0", "limits.max_open_rooms"),
        (
            "LIMITS__WS_SEND_BUFFER_BYTES",
            "1024",
            "limits.ws_send_buffer_bytes",
        ),
        (
            "LIMITS__WS_SEND_BUFFER_BYTES",
            "lots",
            "ws_send_buffer_bytes",
        ),
        // Under the default frame limit (65536) + an answer's envelope: a long `req` echoed in
        // its `ack` would get a reading client dropped.
        (
            "LIMITS__WS_SEND_BUFFER_BYTES",
            "65536",
            "limits.max_frame_bytes + 1024",
        ),
    ] {
        let err = refusal(&[(&format!("ROOMSTATE__{key}"), value)]);
        let key = key.to_ascii_lowercase().replace("__", ".");
        assert!(
            err.contains(&key) && err.contains(names),
            "{key}={value}: {err}"
        );
    }
}

// --- redis.* authentication and TLS ---------------------------------------------------------

/// A CA certificate for `redis.tls_ca_file` (made once with `openssl req -x509`).
const REDIS_CA: &str = "-----BEGIN CERTIFICATE-----
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
";

/// Loads with the Redis journal on and `pairs` (keys after `ROOMSTATE__REDIS__`).
fn redis_with(pairs: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let mut all = vec![("ROOMSTATE__JOURNAL__KIND".to_owned(), "redis".to_owned())];
    all.extend(
        pairs
            .iter()
            .map(|(k, v)| (format!("ROOMSTATE__REDIS__{k}"), v.to_string())),
    );
    Settings::load_from(None, all)
}

#[test]
fn redis_credentials_go_to_the_servers_and_the_sentinels_apart() {
    let loaded = redis_with(&[
        ("SENTINELS", "127.0.0.1:1,127.0.0.1:2"),
        ("USERNAME", "app"),
        ("PASSWORD", "server-pw"),
        ("SENTINEL_PASSWORD", "sentinel-pw"),
    ])
    .unwrap();
    let access = &loaded.redis_access;
    let servers = access.servers.credentials().expect("server credentials");
    assert_eq!(servers.username(), Some("app"));
    assert_eq!(
        servers,
        &Credentials::new(Some("app".into()), "server-pw"),
        "the server password goes to the servers"
    );
    assert_eq!(
        access.sentinels.credentials(),
        Some(&Credentials::new(None, "sentinel-pw"))
    );
    assert!(access.servers.tls().is_none() && access.sentinels.tls().is_none());
    // None at all: both plain.
    let plain = redis_with(&[("URL", "redis://127.0.0.1:6379")]).unwrap();
    assert_eq!(plain.redis_access, RedisAccess::default());
}

#[test]
fn redis_tls_from_the_setting_or_from_rediss() {
    let on = redis_with(&[("SENTINELS", "127.0.0.1:1"), ("TLS", "true")]).unwrap();
    let (servers, sentinels) = (&on.redis_access.servers, &on.redis_access.sentinels);
    assert_eq!(servers.tls(), Some(&Tls::system_roots()));
    assert_eq!(sentinels.tls(), Some(&Tls::system_roots()));
    let rediss = redis_with(&[("URL", "rediss://127.0.0.1:6380")]).unwrap();
    assert!(rediss.redis_access.servers.tls().is_some());
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, REDIS_CA).unwrap();
    let own = redis_with(&[
        ("URL", "rediss://127.0.0.1:6380"),
        ("TLS_CA_FILE", ca.to_str().unwrap()),
    ])
    .unwrap();
    assert!(own.redis_access.servers.tls().unwrap().has_own_ca());
}

#[test]
fn redis_settings_that_do_not_fit_together_are_refused() {
    let refused = |pairs: &[(&str, &str)]| redis_with(pairs).unwrap_err().to_string();
    let err = refused(&[("URL", "redis://127.0.0.1:1"), ("USERNAME", "app")]);
    assert!(
        err.contains("redis.username") && err.contains("redis.password"),
        "{err}"
    );
    let err = refused(&[
        ("SENTINELS", "127.0.0.1:1"),
        ("SENTINEL_USERNAME", "watcher"),
    ]);
    assert!(err.contains("redis.sentinel_password"), "{err}");
    let err = refused(&[
        ("URL", "redis://app:url-secret@127.0.0.1:1"),
        ("PASSWORD", "setting-secret"),
    ]);
    assert!(err.contains("one way") && err.contains("app:***@"), "{err}");
    assert!(
        !err.contains("url-secret") && !err.contains("setting-secret"),
        "{err}"
    );
    let err = refused(&[("URL", "redis://127.0.0.1:1"), ("SENTINEL_PASSWORD", "x")]);
    assert!(err.contains("no redis.sentinels"), "{err}");
    let err = refused(&[("URL", "redis://127.0.0.1:1"), ("TLS_CA_FILE", "/x.pem")]);
    assert!(err.contains("TLS is off"), "{err}");
    let err = refused(&[
        ("URL", "rediss://127.0.0.1:1"),
        ("TLS_CA_FILE", "/nonexistent/ca.pem"),
    ]);
    assert!(err.contains("cannot read"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let err = refused(&[
        ("TLS", "true"),
        ("URL", "redis://127.0.0.1:1"),
        ("TLS_CA_FILE", junk.to_str().unwrap()),
    ]);
    assert!(err.contains("no certificate"), "{err}");
}

#[test]
fn redis_credentials_in_the_url_alone_keep_working_and_empty_values_are_unset() {
    let loaded = redis_with(&[
        ("URL", "redis://app:url-secret@127.0.0.1:1"),
        ("PASSWORD", ""),
        ("USERNAME", ""),
    ])
    .unwrap();
    assert!(loaded.redis_access.servers.credentials().is_none());
    // The local journal ignores the redis section.
    let local = Settings::load_from(
        None,
        env(&[("ROOMSTATE__REDIS__TLS_CA_FILE", "/nonexistent/ca.pem")]),
    );
    assert!(local.is_ok());
}

#[test]
fn redis_passwords_never_show_in_the_settings_debug_output() {
    let loaded = redis_with(&[
        ("URL", "rediss://app:url-secret@127.0.0.1:1"),
        ("SENTINEL_PASSWORD", ""),
    ])
    .unwrap();
    let shown = format!("{loaded:?}");
    assert!(!shown.contains("url-secret"), "{shown}");
    assert!(shown.contains("app:***@127.0.0.1:1"), "{shown}");
    let loaded = redis_with(&[
        ("SENTINELS", "127.0.0.1:1"),
        ("PASSWORD", "server-secret"),
        ("SENTINEL_PASSWORD", "sentinel-secret"),
    ])
    .unwrap();
    let shown = format!("{loaded:?}");
    assert!(
        !shown.contains("server-secret") && !shown.contains("sentinel-secret"),
        "{shown}"
    );
}

#[test]
fn the_internal_listener_is_off_by_default_and_an_address_of_its_own() {
    let loaded = Settings::load_from(None, env(&[])).unwrap();
    assert_eq!(loaded.settings.http.internal_bind, None);
    let loaded = Settings::load_from(
        None,
        env(&[("ROOMSTATE__HTTP__INTERNAL_BIND", "127.0.0.1:9090")]),
    )
    .unwrap();
    assert_eq!(
        loaded.settings.http.internal_bind.as_deref(),
        Some("127.0.0.1:9090")
    );
    // An empty value unsets it, as for the other keys.
    let loaded = Settings::load_from(None, env(&[("ROOMSTATE__HTTP__INTERNAL_BIND", "")])).unwrap();
    assert_eq!(loaded.settings.http.internal_bind, None);
    let err = refusal(&[("ROOMSTATE__HTTP__INTERNAL_BIND", "metrics-host")]);
    assert!(err.contains("http.internal_bind"), "{err}");
    let err = refusal(&[
        ("ROOMSTATE__HTTP__BIND", "127.0.0.1:8080"),
        ("ROOMSTATE__HTTP__INTERNAL_BIND", "127.0.0.1:8080"),
    ]);
    assert!(err.contains("http.internal_bind"), "{err}");
    // Both on port 0 is fine: each gets a port of its own.
    Settings::load_from(
        None,
        env(&[
            ("ROOMSTATE__HTTP__BIND", "127.0.0.1:0"),
            ("ROOMSTATE__HTTP__INTERNAL_BIND", "127.0.0.1:0"),
        ]),
    )
    .unwrap();
}

/// Loads with the Redis journal and the cluster on, and `pairs` (keys after
/// `ROOMSTATE__CLUSTER__`, plus whole `ROOMSTATE__...` keys).
fn cluster_with(pairs: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let mut all = env(&[
        ("ROOMSTATE__JOURNAL__KIND", "redis"),
        ("ROOMSTATE__REDIS__SENTINELS", "127.0.0.1:26379"),
        ("ROOMSTATE__CLUSTER__ENABLED", "true"),
    ]);
    all.extend(pairs.iter().map(|(k, v)| {
        let key = if k.starts_with("ROOMSTATE__") {
            k.to_string()
        } else {
            format!("ROOMSTATE__CLUSTER__{k}")
        };
        (key, v.to_string())
    }));
    Settings::load_from(None, all)
}

#[test]
fn the_cluster_is_off_by_default_and_a_node_id_is_still_recorded() {
    let loaded = Settings::load_from(None, env(&[])).unwrap();
    assert!(loaded.cluster.is_none());
    assert!(
        loaded.node_id.ends_with(":8080"),
        "host name and bind port: {}",
        loaded.node_id
    );
}

#[test]
fn the_default_node_id_stays_valid_for_a_long_host_name() {
    assert_eq!(default_node_id("web-1", 8080), "web-1:8080");
    // Two pods of one deployment: 61-character names that differ only in their last letter.
    let pod = |last: char| format!("{}-7d9c4b5f6-x2kq{last}", "web".repeat(15));
    let (a, b) = (
        default_node_id(&pod('a'), 8080),
        default_node_id(&pod('b'), 8080),
    );
    assert_ne!(a, b, "each keeps an id of its own");
    for id in [&a, &b] {
        assert_eq!(id.len(), 64, "{id}");
        assert!(id.starts_with("webwebweb") && id.ends_with(":8080"), "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)),
            "{id}"
        );
    }
    assert_eq!(
        a,
        default_node_id(&pod('a'), 8080),
        "the same on every start"
    );
}

#[test]
fn an_enabled_cluster_takes_its_settings_and_defaults_its_url_from_the_bind_address() {
    let plan = cluster_with(&[("SECRET", SECRET), ("NODE_ID", "node-a")])
        .unwrap()
        .cluster
        .expect("enabled");
    assert_eq!(plan.node_id, "node-a");
    assert_eq!(plan.advertise_url, "http://127.0.0.1:8080");
    assert_eq!(plan.lease, std::time::Duration::from_millis(3000));
    assert!(
        !format!("{plan:?}").contains(SECRET),
        "the secret is redacted"
    );

    let plan = cluster_with(&[
        ("SECRET", SECRET),
        ("ADVERTISE_URL", "http://node-a.internal:8443/"),
        ("LEASE_MS", "200"),
        ("ROOMSTATE__HTTP__BIND", "0.0.0.0:8443"),
    ])
    .unwrap()
    .cluster
    .expect("enabled");
    assert_eq!(plan.advertise_url, "http://node-a.internal:8443");
    assert_eq!(plan.lease, std::time::Duration::from_millis(200));
}

#[test]
fn cluster_settings_that_cannot_work_are_refused_saying_why() {
    let refused = |pairs: &[(&str, &str)], why: &str| {
        let err = match cluster_with(pairs) {
            Ok(_) => panic!("{pairs:?} was taken"),
            Err(err) => err.to_string(),
        };
        assert!(err.contains(why), "{pairs:?}: {err}");
    };
    let local = Settings::load_from(
        None,
        env(&[
            ("ROOMSTATE__CLUSTER__ENABLED", "true"),
            ("ROOMSTATE__CLUSTER__SECRET", SECRET),
        ]),
    )
    .unwrap_err();
    assert!(local.to_string().contains("journal.kind"), "{local}");
    refused(&[], "cluster.secret");
    refused(&[("SECRET", "short")], "at least 16 bytes");
    refused(
        &[("SECRET", SECRET), ("LEASE_MS", "199")],
        "cluster.lease_ms",
    );
    refused(
        &[("SECRET", SECRET), ("LEASE_MS", "600001")],
        "cluster.lease_ms",
    );
    refused(&[("SECRET", SECRET), ("LEASE_MS", "soon")], "lease_ms");
    refused(
        &[("SECRET", SECRET), ("ADVERTISE_URL", "node-a:8080")],
        "cluster.advertise_url",
    );
    refused(
        &[("SECRET", SECRET), ("ADVERTISE_URL", "http://")],
        "cluster.advertise_url",
    );
    // The node-to-node client speaks no TLS: an https:// URL would make every call fail.
    refused(
        &[("SECRET", SECRET), ("ADVERTISE_URL", "https://node-a:8443")],
        "plain HTTP",
    );
    // A secret that cannot travel in a header whole.
    for secret in [
        " 0123456789abcdef ",
        "0123456789abcdef\t",
        "0123456789abcdéf-x",
    ] {
        refused(&[("SECRET", secret)], "printable ASCII");
    }
    refused(
        &[
            ("SECRET", SECRET),
            ("ROOMSTATE__HTTP__BIND", "0.0.0.0:8080"),
        ],
        "every address",
    );
    refused(
        &[("SECRET", SECRET), ("ROOMSTATE__HTTP__BIND", "127.0.0.1:0")],
        "any free port",
    );
    refused(
        &[("SECRET", SECRET), ("NODE_ID", "node a")],
        "cluster.node_id",
    );
    refused(
        &[("SECRET", SECRET), ("NODE_ID", &"n".repeat(65))],
        "cluster.node_id",
    );
    refused(&[("SECRET", SECRET), ("LEADER", "yes")], "leader");
}

#[test]
fn thread_counts_above_the_servers_bound_are_refused() {
    for (key, value) in [
        ("ROOMSTATE__HTTP__WORKERS", "513"),
        ("ROOMSTATE__ROOMS__THREADS", "100000"),
    ] {
        let err = refusal(&[(key, value)]);
        assert!(
            err.contains("http.workers and rooms.threads are at most 512"),
            "{key}={value}: {err}"
        );
    }
    let loaded = Settings::load_from(
        None,
        env(&[
            ("ROOMSTATE__HTTP__WORKERS", "512"),
            ("ROOMSTATE__ROOMS__THREADS", "0"),
        ]),
    )
    .unwrap();
    assert_eq!(loaded.settings.http.workers, 512);
    assert!((1..=512).contains(&crate::config::threads_or_per_core(0)));
}

#[test]
fn a_store_url_this_build_cannot_open_is_refused_at_the_check_and_an_empty_one_is_unset() {
    for url in ["postgres://db/roomstate", "sqlite://", "sqlite://:memory:"] {
        let err = refusal(&[("ROOMSTATE__STORE__URL", url)]);
        assert!(err.contains("store.url"), "{url}: {err}");
    }
    let loaded = Settings::load_from(None, env(&[("ROOMSTATE__STORE__URL", "")])).unwrap();
    assert!(
        loaded.store_url.starts_with("sqlite://") && loaded.store_url.ends_with("roomstate.db"),
        "an empty store.url is the default store: {}",
        loaded.store_url
    );
    let err = refusal(&[
        ("ROOMSTATE__JOURNAL__KIND", "redis"),
        ("ROOMSTATE__REDIS__URL", ""),
    ]);
    assert!(
        err.contains("needs redis.sentinels or redis.url"),
        "an empty redis.url is unset: {err}"
    );
}

#[test]
fn check_config_hides_secrets_of_any_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roomstate.toml");
    std::fs::write(
        &path,
        "[auth]\nmode = \"open\"\n[admin]\ntoken = 8675309123\n[cluster]\nsecret = 1234567890123456\n",
    )
    .unwrap();
    let described = Settings::describe(Some(path), env(&[])).unwrap();
    assert!(!described.contains("8675309123"), "{described}");
    assert!(!described.contains("1234567890123456"), "{described}");
    assert!(described.contains("\"***\""), "{described}");
}
