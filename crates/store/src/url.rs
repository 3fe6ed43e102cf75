//! The store URL: which backend it names and where, checked once at start-up.
//!
//! It owns the accepted spellings (`sqlite://path`, `mysql://user:pass@host:port/db`) and the
//! redacted form used in messages; it must never put a password into an error or a log line.

use std::path::{Path, PathBuf};

use roomstate_core::redact;

use super::StoreError;

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An SQLite file, as an absolute path (so the pool's connections cannot disagree about the
    /// working directory, and SQLite never reads it as a `file:` URI).
    Sqlite(PathBuf),
    /// A MySQL/MariaDB URL, passed to the client library as given.
    #[cfg(feature = "mysql")]
    Mysql(String),
}

const SQLITE: &str = "sqlite://";
const MYSQL: &str = "mysql://";

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
        if let Some(path) = url.strip_prefix(SQLITE) {
            return sqlite(path);
        }
        if url.starts_with(MYSQL) {
            return mysql(url);
        }
        Err(StoreError::Config(format!(
            "unsupported store URL '{}': expected sqlite://path or mysql://user:pass@host:port/db",
            redact::url(url)
        )))
    }
}

fn sqlite(path: &str) -> Result<Target, StoreError> {
    if path.is_empty() {
        return Err(StoreError::Config("sqlite:// needs a file path".into()));
    }
    if path == ":memory:" || path.starts_with("file:") {
        // Every pooled connection would get its own empty in-memory database.
        return Err(StoreError::Config(format!(
            "sqlite://{path} is not supported: give a file path"
        )));
    }
    let absolute = std::path::absolute(Path::new(path))
        .map_err(|e| StoreError::Config(format!("sqlite path '{path}': {e}")))?;
    if absolute.to_str().is_none() {
        return Err(StoreError::Config(format!(
            "sqlite path '{}' is not valid UTF-8",
            absolute.display()
        )));
    }
    Ok(Target::Sqlite(absolute))
}

#[cfg(feature = "mysql")]
fn mysql(url: &str) -> Result<Target, StoreError> {
    Ok(Target::Mysql(url.to_owned()))
}

#[cfg(not(feature = "mysql"))]
fn mysql(url: &str) -> Result<Target, StoreError> {
    Err(StoreError::Config(format!(
        "'{}' needs a build with the cargo feature `mysql` (cargo build --features mysql)",
        redact::url(url)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_become_absolute() {
        let expected = std::path::absolute("data/x.db").unwrap();
        assert!(expected.is_absolute());
        assert_eq!(
            Target::parse("sqlite://data/x.db").unwrap(),
            Target::Sqlite(expected)
        );
        assert_eq!(
            Target::parse("sqlite:///tmp/y.db").unwrap(),
            Target::Sqlite(PathBuf::from("/tmp/y.db"))
        );
    }

    #[test]
    fn unusable_urls_are_config_errors() {
        for bad in [
            "",
            "postgres://x",
            "sqlite://",
            "sqlite://:memory:",
            "data.db",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(StoreError::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[cfg(not(feature = "mysql"))]
    #[test]
    fn mysql_without_the_feature_says_how_to_build() {
        let Err(StoreError::Config(message)) = Target::parse("mysql://u:secret@h:1/db") else {
            panic!("expected a config error");
        };
        assert!(message.contains("--features mysql"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }
}
