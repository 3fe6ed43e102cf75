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
    assert_eq!(s.presence.http_ttl_s, 300);
    assert_eq!(loaded.store_url, "sqlite://data/roomstate.db");
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
    let ok = Settings::load_from(Some(path.clone()), env(&[("ROOMSTATE__ADMIN__TOKEN", "t")]));
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
