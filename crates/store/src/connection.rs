//! `DbConnection`: one connection type over every SQL backend this build supports, the embedded
//! migrations of each, and what every pooled connection is set up with.
//!
//! The backend is chosen at run time from the URL scheme. A `MultiConnection` speaks only the SQL
//! both backends share (no `RETURNING`, no `ON CONFLICT`); anything backend-specific lives here.

#[cfg(feature = "mysql")]
use diesel::mysql::MysqlConnection;
use diesel::{
    connection::SimpleConnection,
    r2d2::{self, CustomizeConnection},
    sqlite::SqliteConnection,
    Connection, ConnectionError,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::StoreError;

/// A connection to whichever backend the store URL named.
///
/// SQLite is listed last on purpose: the derived `establish` tries each variant in order and
/// SQLite opens almost any string as a file name. `Setup` additionally refuses a pooled
/// connection of the wrong variant.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    #[cfg(feature = "mysql")]
    Mysql(MysqlConnection),
    Sqlite(SqliteConnection),
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");

/// Run per MySQL connection: refuse to truncate or coerce instead of warning, whatever the
/// server's default `sql_mode` is, so a stored row is exactly what was written or an error; and
/// wait at most `lock_wait_s` seconds for a lock (a table someone locked, a row another
/// transaction holds), so a statement that cannot go on fails on the server and frees its
/// connection (`Store::open_with_timeout`).
#[cfg(feature = "mysql")]
pub(crate) fn mysql_setup(lock_wait_s: u64) -> String {
    format!(
        "SET SESSION sql_mode = 'TRADITIONAL', lock_wait_timeout = {lock_wait_s}, \
         innodb_lock_wait_timeout = {lock_wait_s}"
    )
}

/// Which backend a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    #[cfg(feature = "mysql")]
    Mysql,
}

impl Backend {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            #[cfg(feature = "mysql")]
            Backend::Mysql => "mysql",
        }
    }
}

/// Applies the per-connection settings when the pool opens a connection.
#[derive(Debug)]
pub(crate) struct Setup {
    pub(crate) backend: Backend,
    /// MySQL's lock waits, in seconds (SQLite waits by its own `busy_timeout`).
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(crate) lock_wait_s: u64,
}

impl CustomizeConnection<DbConnection, r2d2::Error> for Setup {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        match (self.backend, conn) {
            (Backend::Sqlite, DbConnection::Sqlite(c)) => roomstate_sqlite::setup(c),
            #[cfg(feature = "mysql")]
            (Backend::Mysql, DbConnection::Mysql(c)) => {
                c.batch_execute(&mysql_setup(self.lock_wait_s))
            }
            #[cfg(feature = "mysql")]
            _ => {
                return Err(r2d2::Error::ConnectionError(
                    ConnectionError::BadConnection(format!(
                        "expected a {} connection",
                        self.backend.name()
                    )),
                ))
            }
        }
        .map_err(r2d2::Error::QueryError)
    }
}

/// Connects once, outside the pool, to report why a store cannot be reached: the pool's own
/// `establish` (derived by `MultiConnection`) throws every backend's error away.
pub(crate) fn probe(backend: Backend, url: &str) -> Result<(), ConnectionError> {
    match backend {
        Backend::Sqlite => SqliteConnection::establish(url).map(drop),
        #[cfg(feature = "mysql")]
        Backend::Mysql => MysqlConnection::establish(url).map(drop),
    }
}

/// Runs `$body` with `$c` bound to the concrete connection inside a `&mut DbConnection`, for the
/// few statements a `MultiConnection` cannot express. Inside a transaction begun on the
/// `DbConnection` this is still the same transaction: the multi-connection delegates its
/// transaction state to the inner connection.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            #[cfg(feature = "mysql")]
            $crate::DbConnection::Mysql($c) => $body,
            $crate::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// Brings the schema up to date with the migrations embedded for this connection's backend.
pub(crate) fn run_migrations(conn: &mut DbConnection) -> Result<(), StoreError> {
    let applied = match conn {
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => c.run_pending_migrations(MYSQL_MIGRATIONS).map(|v| v.len()),
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    }
    .map_err(|e| StoreError::Config(format!("running the store's migrations failed: {e}")))?;
    if applied > 0 {
        tracing::info!(store.migrations_applied = applied, "store schema migrated");
    }
    Ok(())
}
