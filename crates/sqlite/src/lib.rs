//! roomstate-sqlite: how roomstate opens every SQLite file it has — the local journal
//! (`<data_dir>/journal.db`) and the embedded SQL store (`<data_dir>/roomstate.db`).
//!
//! One home for two facts both need: the per-connection pragmas, and how a file path becomes
//! the string SQLite opens. It bundles SQLite itself (`libsqlite3-sys/bundled`), so a machine with
//! only Rust can build the engine.

use std::path::{Path, PathBuf};

use diesel::{connection::SimpleConnection, sqlite::SqliteConnection, Connection};

/// Run on every connection. `busy_timeout` (5 s) comes first so the others wait for a lock instead
/// of failing; WAL lets readers run beside the writer and persists in the file (repeating it is a
/// no-op); `synchronous = FULL` because an acknowledged event, and a final record whose commit
/// lets the journal delete a room's log, must survive a power cut, which WAL's `NORMAL` does not
/// promise; foreign keys are on so the store's references hold.
pub const PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                           PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

/// Why a file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{}: the path is not valid UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("{}: {error}", path.display())]
    Path {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {error}", path.display())]
    Connect {
        path: PathBuf,
        error: diesel::ConnectionError,
    },
    #[error("{}: setting up the connection: {error}", path.display())]
    Setup {
        path: PathBuf,
        error: diesel::result::Error,
    },
}

/// The string SQLite is given for `path`: the absolute path, so connections opened from different
/// working directories agree, and a name like `file:x` is never read as a URI (diesel opens with
/// `SQLITE_OPEN_URI`; an absolute path cannot start with `file:`).
pub fn address(path: &Path) -> Result<String, OpenError> {
    let absolute = std::path::absolute(path).map_err(|error| OpenError::Path {
        path: path.into(),
        error,
    })?;
    match absolute.to_str() {
        Some(text) => Ok(text.to_owned()),
        None => Err(OpenError::NotUtf8 { path: absolute }),
    }
}

/// Opens `path` (creating the file, not its directory) with [`PRAGMAS`] applied.
pub fn connect(path: &Path) -> Result<SqliteConnection, OpenError> {
    let address = address(path)?;
    let mut conn = SqliteConnection::establish(&address).map_err(|error| OpenError::Connect {
        path: path.into(),
        error,
    })?;
    setup(&mut conn).map_err(|error| OpenError::Setup {
        path: path.into(),
        error,
    })?;
    Ok(conn)
}

/// Applies [`PRAGMAS`] to a connection opened elsewhere (e.g. by a connection pool).
pub fn setup(conn: &mut SqliteConnection) -> Result<(), diesel::result::Error> {
    conn.batch_execute(PRAGMAS)
}

#[cfg(test)]
mod tests {
    use diesel::{sql_query, sql_types::Text, QueryableByName, RunQueryDsl};

    use super::*;

    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = Text)]
        journal_mode: String,
    }

    #[test]
    fn a_name_that_looks_like_a_uri_is_a_file_in_the_working_directory() {
        let address = address(Path::new("file:x.db")).unwrap();
        assert!(address.starts_with('/'), "{address}");
        assert!(address.ends_with("/file:x.db"), "{address}");
    }

    #[test]
    fn connections_come_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = connect(&dir.path().join("t.db")).unwrap();
        let mode = sql_query("PRAGMA journal_mode")
            .get_result::<Mode>(&mut conn)
            .unwrap();
        assert_eq!(mode.journal_mode, "wal");
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let Err(err) = connect(Path::new("/nonexistent-dir-roomstate/x.db")) else {
            panic!("a file in a missing directory opened");
        };
        assert!(
            err.to_string().contains("/nonexistent-dir-roomstate/x.db"),
            "{err}"
        );
    }
}
