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
//! - MySQL needs no lock another transaction could hold for an `UPDATE` that matches no row (the
//!   only lock it takes is a gap lock, which nothing else conflicts with), so it is refused at
//!   once by a read-only server, a user without the right, or a missing table.

#[cfg(feature = "mysql")]
use diesel::mysql::MysqlConnection;
use diesel::{
    connection::SimpleConnection as _,
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
    sqlite::SqliteConnection,
};

use super::{connection::DbConnection, records::query_failed, schema::rooms, StoreError};

/// `Ok` when the store takes writes (see the module's notes).
pub(crate) fn takes_writes(conn: &mut DbConnection) -> Result<(), StoreError> {
    match conn {
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => mysql(c),
        DbConnection::Sqlite(c) => sqlite(c),
    }
}

/// The write of nothing, on the table final records go to.
macro_rules! write_nothing {
    ($c:expr) => {
        diesel::update(rooms::table.filter(rooms::id.eq("")))
            .set(rooms::title.eq(rooms::title))
            .execute($c)
    };
}

fn sqlite(c: &mut SqliteConnection) -> Result<(), StoreError> {
    c.batch_execute("PRAGMA busy_timeout = 0")
        .map_err(query_failed)?;
    let probed = match c.batch_execute("BEGIN IMMEDIATE") {
        Ok(()) => {
            let written = write_nothing!(&mut *c);
            let rolled_back = c.batch_execute("ROLLBACK");
            written.map(drop).and(rolled_back).map_err(query_failed)
        }
        Err(error) if is_busy(&error) => Ok(()),
        Err(error) => Err(query_failed(error)),
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
fn mysql(c: &mut MysqlConnection) -> Result<(), StoreError> {
    let probed = c.transaction::<(), DieselError, _>(|c| {
        write_nothing!(c)?;
        Err(DieselError::RollbackTransaction)
    });
    match probed {
        Ok(()) | Err(DieselError::RollbackTransaction) => Ok(()),
        Err(error) => Err(query_failed(error)),
    }
}
