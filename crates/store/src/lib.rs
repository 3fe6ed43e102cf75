//! The SQL store: where a closed room's final record is written once (write-back) and read from
//! afterwards. SQLite by default, MySQL/MariaDB with the cargo feature `mysql`, one binary for both.
//!
//! It owns the connection pool, the schema and its migrations (the top-level `migrations/`
//! folder, one sub-folder per backend, embedded at build time and run at start). Every blocking
//! diesel call runs on tokio's blocking thread pool (`spawn_blocking`), never on the caller's event
//! loop. It stores only closed rooms; open rooms live in the engine's actors and the journal.
//!
//! # Layout
//! - this file: `Store`, the async face the engine uses, and `StoreError`;
//! - `url`: which backend a store URL names; `connection`: the backend-neutral connection,
//!   per-backend setup and migrations;
//! - `schema` (from `diesel print-schema`), `models` (rows), `records` (the queries).

mod connection;
mod models;
pub mod records;
pub mod schema;
mod url;
mod write_probe;

use std::{sync::mpsc, thread, time::Duration};

use diesel::r2d2::{ConnectionManager, NopErrorHandler, Pool, PooledConnection};
use roomstate_core::{
    redact,
    room::{ChatMessage, RoomId, RoomView, Side, UserName},
};

pub use self::connection::DbConnection;
use self::{connection::Backend, url::Target};

/// The store's connection pool.
pub type DbPool = Pool<ConnectionManager<DbConnection>>;

/// How long opening a connection, or waiting for a pooled one, may take before the store reports
/// itself unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections per pool. Write-back happens once per closed room and reads of closed rooms are
/// rare, so a few suffice; SQLite has one writer anyway.
const POOL_SIZE: u32 = 4;
/// How long one store operation may take when the caller names no limit (`Store::open`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// A final record gets the store's timeout once more for every this many messages it holds.
const MESSAGES_PER_TIMEOUT: usize = 50_000;

/// Why the store could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Cannot connect, no pooled connection in time, or a query failed.
    #[error("SQL store unavailable: {0}")]
    Unavailable(String),
    /// A bad URL, `mysql://` in a build without the feature `mysql`, or a failed migration.
    #[error("SQL store configuration: {0}")]
    Config(String),
    /// A stored row that does not decode (bad id, user or side).
    #[error("SQL store holds bad data: {0}")]
    Corrupt(String),
}

/// What closing a room writes: the final view (status closed, closed_at set), every user's final
/// vote, the whole transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalRecord {
    pub room: RoomView,
    pub votes: Vec<(UserName, Side)>,
    pub messages: Vec<ChatMessage>,
}

/// A handle on the SQL store; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    pool: DbPool,
    backend: &'static str,
    /// How long one operation may take before it is reported as failed (`run`).
    timeout: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("pool", &self.pool.state())
            .finish()
    }
}

impl Store {
    /// Checks that `url` names a store this build can open (its spelling, its backend), without
    /// opening it: for the configuration's check at start-up.
    pub fn check_url(url: &str) -> Result<(), StoreError> {
        Target::parse(url).map(drop)
    }

    /// Opens `sqlite://path` (relative or absolute; parent directories are created) or
    /// `mysql://user:pass@host:port/db`, builds the pool and runs the embedded migrations, with
    /// the [`DEFAULT_TIMEOUT`] per operation. Blocking: call it once at start-up, not on the event
    /// loop.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with_timeout(url, DEFAULT_TIMEOUT)
    }

    /// [`Store::open`], with `timeout` (at least a second) as the longest one operation may take:
    /// past it the operation answers [`StoreError::Unavailable`] and is left to finish or fail on
    /// its own. A server that stops answering (a hung MySQL, a network that drops packets) must
    /// not hold a closing room for good. MySQL's lock waits end a second before it, as an error
    /// of the server's (`lock_wait_timeout`, `innodb_lock_wait_timeout`), so a table locked by
    /// someone else frees the connection too.
    pub fn open_with_timeout(url: &str, timeout: Duration) -> Result<Store, StoreError> {
        if timeout < Duration::from_secs(1) {
            return Err(StoreError::Config(format!(
                "a store timeout of {timeout:?}: at least a second"
            )));
        }
        let (backend, address) = match Target::parse(url)? {
            Target::Sqlite(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Config(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                let address = path.to_str().map(str::to_owned).ok_or_else(|| {
                    StoreError::Config(format!("{} is not valid UTF-8", path.display()))
                })?;
                (Backend::Sqlite, address)
            }
            #[cfg(feature = "mysql")]
            Target::Mysql(url) => (Backend::Mysql, url),
        };
        probe(backend, &address)?;

        let pool = Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            // The derived `establish` reports every failure as "Invalid connection url"; the
            // caller of `get` says what failed, once.
            .error_handler(Box::new(NopErrorHandler))
            .connection_customizer(Box::new(connection::Setup {
                backend,
                lock_wait_s: lock_wait_s(timeout),
            }))
            .build_unchecked(ConnectionManager::new(address));
        let mut conn = checkout(&pool)?;
        connection::run_migrations(&mut conn)?;
        drop(conn);

        tracing::info!(store.backend = backend.name(), "SQL store open");
        Ok(Store {
            pool,
            backend: backend.name(),
            timeout,
        })
    }

    /// `"sqlite"` or `"mysql"`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Writes the final record in one transaction: room row, final votes, transcript. Idempotent
    /// by room id: if the room is already stored, writes nothing and returns the stored view, so
    /// closing twice returns the same record.
    pub async fn write_final(&self, record: FinalRecord) -> Result<RoomView, StoreError> {
        let within = record_deadline(self.timeout, record.messages.len());
        self.run_within(within, move |conn| records::write_final(conn, &record))
            .await
    }

    /// Deletes room `id`'s record if it is of a seq below `seq` (a close whose answer was lost,
    /// after which the room went on: it is open, and its next close records it); whether it did.
    pub async fn forget_stale(&self, id: &RoomId, seq: u64) -> Result<bool, StoreError> {
        let id = id.clone();
        self.run(move |conn| records::forget_stale(conn, &id, seq))
            .await
    }

    /// A closed room's final view, or `None` if it is not stored.
    pub async fn room(&self, id: &RoomId) -> Result<Option<RoomView>, StoreError> {
        let id = id.clone();
        self.run(move |conn| records::room(conn, &id)).await
    }

    /// Up to `limit` messages of a stored room with seq > `after`, oldest first.
    pub async fn messages(
        &self,
        id: &RoomId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let id = id.clone();
        self.run(move |conn| records::messages(conn, &id, after, limit))
            .await
    }

    /// Which of `ids` are stored (closed), in one round trip per thousand ids: recovery asks
    /// this for every open room of the journal at once.
    pub async fn stored_among(&self, ids: Vec<RoomId>) -> Result<Vec<RoomId>, StoreError> {
        // Each round trip with a deadline of its own: recovery asks this of every open room.
        let mut stored = Vec::new();
        for chunk in ids.chunks(records::IDS_PER_QUERY) {
            let chunk = chunk.to_vec();
            stored.extend(
                self.run(move |conn| records::stored_among(conn, &chunk))
                    .await?,
            );
        }
        Ok(stored)
    }

    /// A stored room's final votes, sorted by user.
    pub async fn votes(&self, id: &RoomId) -> Result<Vec<(UserName, Side)>, StoreError> {
        let id = id.clone();
        self.run(move |conn| records::votes(conn, &id)).await
    }

    /// Whether the store takes writes (a write of nothing that waits for no lock), for
    /// `/readyz`.
    pub async fn check(&self) -> Result<(), StoreError> {
        let lock_wait_s = lock_wait_s(self.timeout);
        self.run(move |conn| write_probe::takes_writes(conn, lock_wait_s))
            .await
    }

    /// Runs `query` with a pooled connection on the blocking thread pool.
    async fn run<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.run_within(self.timeout, query).await
    }

    /// `run`, given up on after `within`.
    async fn run_within<T, F>(&self, within: Duration, query: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let call = tokio::task::spawn_blocking(move || query(&mut *checkout(&pool)?));
        match tokio::time::timeout(within, call).await {
            Ok(done) => {
                done.map_err(|e| StoreError::Unavailable(format!("blocking thread pool: {e}")))?
            }
            // The blocking call goes on without us: it ends when the server answers or the
            // connection fails (MySQL's lock waits end before this deadline, above).
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms; whether it was applied is unknown",
                within.as_millis()
            ))),
        }
    }
}

/// How long writing a final record of `messages` messages may take: a long debate's transcript
/// takes its time, so the store's timeout once more for every `MESSAGES_PER_TIMEOUT` of them (only
/// a store that does not answer is given up on).
fn record_deadline(timeout: Duration, messages: usize) -> Duration {
    let steps = 1 + messages / MESSAGES_PER_TIMEOUT;
    timeout.saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX))
}

/// The seconds MySQL may wait for a lock within one operation of `timeout`: a second less, at
/// least one (so with a timeout of one second, as long as it).
fn lock_wait_s(timeout: Duration) -> u64 {
    timeout.as_secs().saturating_sub(1).max(1)
}

fn checkout(
    pool: &DbPool,
) -> Result<PooledConnection<ConnectionManager<DbConnection>>, StoreError> {
    pool.get().map_err(|_| {
        StoreError::Unavailable(format!(
            "no database connection within {}s",
            CONNECT_TIMEOUT.as_secs()
        ))
    })
}

/// Connects once, with a deadline, to turn "cannot connect" into a precise error before the pool
/// exists. The client library has no connect timeout of its own here (diesel sets none), so the
/// attempt runs on its own thread and is abandoned, not waited for, when the deadline passes.
fn probe(backend: Backend, address: &str) -> Result<(), StoreError> {
    let (tx, rx) = mpsc::channel();
    let target = address.to_owned();
    thread::Builder::new()
        .name("store-probe".into())
        .spawn(move || {
            // The receiver is gone only if the deadline passed; nobody needs the answer then.
            let _ = tx.send(connection::probe(backend, &target));
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start a thread: {e}")))?;
    let shown = redact::url(address);
    match rx.recv_timeout(CONNECT_TIMEOUT) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(diesel::ConnectionError::InvalidConnectionUrl(e))) => {
            Err(StoreError::Config(format!("bad store URL {shown}: {e}")))
        }
        Ok(Err(e)) => Err(StoreError::Unavailable(format!(
            "cannot connect to {shown}: {e}"
        ))),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer from {shown} within {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_deadline_grows_with_its_transcript() {
        let ten = Duration::from_secs(10);
        assert_eq!(record_deadline(ten, 0), ten);
        assert_eq!(record_deadline(ten, MESSAGES_PER_TIMEOUT - 1), ten);
        assert_eq!(record_deadline(ten, MESSAGES_PER_TIMEOUT), 2 * ten);
        assert_eq!(record_deadline(ten, 1_000_000), 21 * ten);
        assert_eq!(record_deadline(ten, usize::MAX), ten * u32::MAX, "bounded");
    }

    #[test]
    fn mysql_waits_for_locks_a_second_less_than_an_operation_and_at_least_one() {
        assert_eq!(lock_wait_s(Duration::from_secs(10)), 9);
        assert_eq!(lock_wait_s(Duration::from_secs(1)), 1);
    }
}
