//! Whether the store takes writes (`/readyz`), asked without queueing behind the store's own
//! writes: a probe that waited for the write lock would report the store down during every long
//! close, and hold a pooled connection for as long as it waited.
//!
//! Each backend makes a write of nothing — an `UPDATE` of no row, on the table final records go
//! to — in a transaction rolled back:
//! - SQLite opens it with `BEGIN IMMEDIATE` and no busy wait. A writer holding the lock (a final
//!   record being written, another program's transaction) means the file takes writes, in turn;
//!   anything else that refuses (a read-only file, a missing table, an I/O error) means it does
//!   not. The connection's `busy_timeout` is put back afterwards.
//! - MySQL needs no row lock another transaction could hold for an `UPDATE` that matches no row
//!   (the only lock it takes is a gap lock, which nothing else conflicts with), so a read-only
//!   server, a user without the right or a missing table refuses it at once. A table or global
//!   lock (`LOCK TABLES`, `FLUSH TABLES WITH READ LOCK`, an `ALTER` under way) is waited for at
//!   most a second, not the connection's `lock_wait_s`, which is put back afterwards.

#[cfg(feature = "mysql")]
use diesel::mysql::MysqlConnection;
use diesel::{
    connection::SimpleConnection as _,
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
    sqlite::SqliteConnection,
};

#[cfg(feature = "mysql")]
use super::connection;
use super::{connection::DbConnection, records::query_failed, schema::rooms, StoreError};

/// `Ok` when the store takes writes (see the module's notes). `lock_wait_s`: a MySQL
/// connection's own lock waits, put back after the probe's.
#[cfg_attr(not(feature = "mysql"), allow(unused_variables))]
pub(crate) fn takes_writes(conn: &mut DbConnection, lock_wait_s: u64) -> Result<(), StoreError> {
    match conn {
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => mysql(c, lock_wait_s),
        DbConnection::Sqlite(c) => sqlite(c),
    }
}

/// The write of nothing, on the table final records go to, in a transaction `$begin` opens
/// (`transaction`, `immediate_transaction`) and rolled back: `Ok` when the store took it.
macro_rules! write_nothing {
    ($c:expr, $begin:ident) => {
        match $c.$begin::<(), DieselError, _>(|c| {
            diesel::update(rooms::table.filter(rooms::id.eq("")))
                .set(rooms::title.eq(rooms::title))
                .execute(c)?;
            Err(DieselError::RollbackTransaction)
        }) {
            Ok(()) | Err(DieselError::RollbackTransaction) => Ok(()),
            Err(error) => Err(error),
        }
    };
}

fn sqlite(c: &mut SqliteConnection) -> Result<(), StoreError> {
    c.batch_execute("PRAGMA busy_timeout = 0")
        .map_err(query_failed)?;
    let probed = match write_nothing!(c, immediate_transaction) {
        Err(error) if !is_busy(&error) => Err(query_failed(error)),
        _ => Ok(()),
    };
    // The connection's own settings back, whatever the probe found.
    let restored = roomstate_sqlite::setup(c).map_err(query_failed);
    probed.and(restored)
}

/// SQLite's "database is locked": another connection holds the write lock.
fn is_busy(error: &DieselError) -> bool {
    matches!(error, DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
        if info.message().contains("database is locked"))
}

#[cfg(feature = "mysql")]
fn mysql(c: &mut MysqlConnection, lock_wait_s: u64) -> Result<(), StoreError> {
    c.batch_execute("SET SESSION lock_wait_timeout = 1, innodb_lock_wait_timeout = 1")
        .map_err(query_failed)?;
    let probed = write_nothing!(c, transaction).map_err(query_failed);
    let restored = c
        .batch_execute(&connection::mysql_setup(lock_wait_s))
        .map_err(query_failed);
    probed.and(restored)
}
