//! The embedded on-disk journal: one SQLite file (WAL, `synchronous = FULL`), the engine's default
//! when no Redis is configured, so a bare machine can run it.
//!
//! It owns the file and the one thread that writes to it. Appends from every room are queued to
//! that thread, which group-commits whatever is waiting in ONE transaction (one fsync per batch)
//! and only then answers the requesters. It must never acknowledge an event before its transaction
//! has committed, never split a batch over transactions (a crash keeps all of a batch or none), and
//! never run SQLite work on the caller's (actix) thread.
//!
//! On disk (schema version 3, in `PRAGMA user_version`):
//! `events(room_id TEXT, seq INTEGER, at_ms INTEGER, kind TEXT /* EventKind JSON */,
//! PRIMARY KEY(room_id, seq)) WITHOUT ROWID`,
//! `snapshots(room_id TEXT PRIMARY KEY, seq INTEGER, body TEXT /* Snapshot JSON */) WITHOUT ROWID`
//! and `messages(room_id TEXT, seq INTEGER, body TEXT /* ChatMessage JSON */,
//! PRIMARY KEY(room_id, seq)) WITHOUT ROWID` — every chat message of an open room, written with
//! its event and kept when a snapshot deletes the events before it (a room keeps only the newest
//! messages in memory). A file of version 2 gets the table, filled from its snapshots and events.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{
        mpsc::{self, Receiver, Sender},
        Arc,
    },
    time::Instant,
};

use chrono::DateTime;
use diesel::{
    connection::{DefaultLoadingMode, SimpleConnection},
    prelude::*,
    sql_types::{Integer, Text},
    sqlite::SqliteConnection,
};
use futures_util::FutureExt;
use roomstate_core::room::{ChatMessage, Event, EventKind, RoomId, Snapshot};
use tokio::sync::oneshot;

use super::{
    writer::{self, WriterThread},
    Epoch, Journal, JournalError, JournalFuture, JournalMetrics, JournalStatus, RoomLog,
};

/// The schema this code writes and reads.
const SCHEMA_VERSION: i32 = 3;

/// A batch stops taking queued requests once it holds this many events (a single larger append
/// still goes through, alone), so one commit stays short.
const MAX_BATCH_EVENTS: usize = 8192;

/// At most 15 bytes: what Linux keeps of a thread's name (`top -H`, `perf`).
const WRITER_THREAD: &str = "roomstate-local";
const RECOVER_THREAD: &str = "roomstate-journal-recover";

mod schema {
    diesel::table! {
        events (room_id, seq) {
            room_id -> Text,
            seq -> BigInt,
            at_ms -> BigInt,
            kind -> Text,
        }
    }

    diesel::table! {
        snapshots (room_id) {
            room_id -> Text,
            seq -> BigInt,
            body -> Text,
        }
    }

    diesel::table! {
        messages (room_id, seq) {
            room_id -> Text,
            seq -> BigInt,
            body -> Text,
        }
    }
}

use schema::{events, messages, snapshots};

/// What the writer thread is asked to do.
enum Op {
    Append(Vec<Event>),
    Snapshot(Snapshot),
    Delete(RoomId),
    Check,
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<(), JournalError>>,
}

impl Request {
    fn events(&self) -> usize {
        match &self.op {
            Op::Append(events) => events.len(),
            Op::Snapshot(_) | Op::Delete(_) | Op::Check => 0,
        }
    }
}

struct Inner {
    path: PathBuf,
    // Declared before `_writer`: fields drop in order, so the channel closes before the join.
    requests: Sender<Request>,
    _writer: WriterThread,
    /// Holds the exclusive lock on `<journal>.lock` for as long as the journal is open (the lock
    /// goes with the file handle).
    _lock: std::fs::File,
}

/// The SQLite-backed journal. Clones share one file and one writer thread.
#[derive(Clone)]
pub struct LocalJournal {
    inner: Arc<Inner>,
}

impl LocalJournal {
    /// Opens (creating the file and parent dirs) `path`, e.g. `<data_dir>/journal.db`.
    pub fn open(path: &Path, metrics: JournalMetrics) -> Result<Self, JournalError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| {
                JournalError::Unavailable(format!(
                    "cannot create journal directory {}: {error}",
                    parent.display()
                ))
            })?;
        }
        let lock = lock_exclusively(path)?;
        let mut conn = connect(path)?;
        prepare_schema(&mut conn, path)?;

        let (requests, queue) = mpsc::channel();
        let writer = Writer {
            path: path.to_path_buf(),
            conn: Some(conn),
            metrics,
        };
        let handle = std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || writer.run(queue))
            .map_err(|error| {
                JournalError::Unavailable(format!("cannot start journal writer thread: {error}"))
            })?;
        tracing::info!(journal.path = %path.display(), "local journal open");
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                requests,
                _writer: WriterThread::new(handle, WRITER_THREAD),
                _lock: lock,
            }),
        })
    }

    /// Queues `op` now (so calls keep their order) and resolves with the writer's answer.
    fn submit(&self, op: Op) -> JournalFuture<()> {
        let (reply, answer) = oneshot::channel();
        let sent = self.inner.requests.send(Request { op, reply });
        writer::answer(sent.is_ok(), answer, WRITER_THREAD)
    }
}

/// The local journal has one writer (its file lock sees to that), so no leases: every room is at
/// `Epoch::NONE`, and a write under any other epoch comes from a caller that mixed journals up.
fn check_epoch(epoch: Epoch) -> Result<(), JournalError> {
    if epoch == Epoch::NONE {
        return Ok(());
    }
    Err(JournalError::Fenced(format!(
        "the local journal has no leases; epoch {epoch} was never given out"
    )))
}

impl Journal for LocalJournal {
    fn append(&self, epoch: Epoch, events: Vec<Event>) -> JournalFuture<()> {
        if let Err(error) = check_epoch(epoch) {
            return futures_util::future::ready(Err(error)).boxed();
        }
        self.submit(Op::Append(events))
    }

    fn recover(&self) -> JournalFuture<Vec<RoomLog>> {
        // A read connection of its own: under WAL it sees every committed batch and does not
        // hold up the writer.
        let (reply, answer) = oneshot::channel();
        let path = self.inner.path.clone();
        let spawned = std::thread::Builder::new()
            .name(RECOVER_THREAD.into())
            .spawn(move || {
                let _ = reply.send(read_all(&path));
            });
        async move {
            spawned.map_err(|error| {
                JournalError::Unavailable(format!("cannot start journal recovery thread: {error}"))
            })?;
            answer
                .await
                .map_err(|_| JournalError::Unavailable("journal recovery thread stopped".into()))?
        }
        .boxed()
    }

    fn snapshot(&self, epoch: Epoch, snapshot: Snapshot) -> JournalFuture<()> {
        if let Err(error) = check_epoch(epoch) {
            return futures_util::future::ready(Err(error)).boxed();
        }
        self.submit(Op::Snapshot(snapshot))
    }

    fn messages(&self, room: RoomId, after: u64, limit: usize) -> JournalFuture<Vec<ChatMessage>> {
        // A read connection of its own, on the blocking pool: under WAL it sees every committed
        // batch and does not hold up the writer.
        let path = self.inner.path.clone();
        async move {
            tokio::task::spawn_blocking(move || read_messages(&path, &room, after, limit))
                .await
                .map_err(|e| JournalError::Unavailable(format!("journal read: {e}")))?
        }
        .boxed()
    }

    fn delete_room(&self, epoch: Epoch, room: RoomId) -> JournalFuture<()> {
        if let Err(error) = check_epoch(epoch) {
            return futures_util::future::ready(Err(error)).boxed();
        }
        self.submit(Op::Delete(room))
    }

    fn hold(&self, epoch: Epoch, _room: RoomId) -> JournalFuture<()> {
        // One engine writes a local journal: only an epoch it never gave out can be stale.
        futures_util::future::ready(check_epoch(epoch)).boxed()
    }

    fn check(&self) -> JournalFuture<()> {
        self.submit(Op::Check)
    }

    fn status(&self) -> JournalStatus {
        JournalStatus {
            kind: "local",
            target: self.inner.path.display().to_string(),
            failovers: 0,
            last_failover: None,
        }
    }
}

fn unavailable(path: &Path, what: &str, error: impl std::fmt::Display) -> JournalError {
    JournalError::Unavailable(format!("journal {}: {what}: {error}", path.display()))
}

/// Takes the journal's exclusive lock (`<path>.lock`, an advisory `flock`), so a second engine on
/// the same data dir fails at start instead of writing the same rooms beside the first one —
/// each would take the other's events for its own. The lock is released when the process ends,
/// however it ends.
fn lock_exclusively(path: &Path) -> Result<std::fs::File, JournalError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| unavailable(&lock_path, "open", e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::Unavailable(format!(
            "the journal {} is in use by another roomstate engine (its lock {} is held); run one \
             engine per data_dir",
            path.display(),
            lock_path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(unavailable(&lock_path, "lock", e)),
    }
}

/// Opens a connection with the pragmas every roomstate SQLite connection has.
fn connect(path: &Path) -> Result<SqliteConnection, JournalError> {
    roomstate_sqlite::connect(path).map_err(|e| JournalError::Unavailable(format!("journal {e}")))
}

#[derive(QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = Text)]
    journal_mode: String,
}

#[derive(QueryableByName)]
struct UserVersion {
    #[diesel(sql_type = Integer)]
    user_version: i32,
}

/// Switches the file to WAL and creates or checks the schema.
fn prepare_schema(conn: &mut SqliteConnection, path: &Path) -> Result<(), JournalError> {
    let mode = diesel::sql_query("PRAGMA journal_mode = WAL")
        .get_result::<JournalMode>(conn)
        .map_err(|e| unavailable(path, "set WAL mode", e))?;
    if !mode.journal_mode.eq_ignore_ascii_case("wal") {
        // Still durable (synchronous = FULL), only slower and blocking readers.
        tracing::warn!(journal.path = %path.display(), journal.mode = %mode.journal_mode,
            "journal file refused WAL mode");
    }
    conn.immediate_transaction(|conn| {
        let found = diesel::sql_query("PRAGMA user_version")
            .get_result::<UserVersion>(conn)?
            .user_version;
        if found > SCHEMA_VERSION {
            return Ok(Some(found));
        }
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS events (
                room_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                at_ms INTEGER NOT NULL,
                kind TEXT NOT NULL,
                PRIMARY KEY (room_id, seq)
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS snapshots (
                room_id TEXT NOT NULL PRIMARY KEY,
                seq INTEGER NOT NULL,
                body TEXT NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS messages (
                room_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (room_id, seq)
            ) WITHOUT ROWID;",
        )?;
        if found < 3 {
            backfill_messages(conn)?;
        }
        conn.batch_execute(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
        Ok::<_, diesel::result::Error>(None)
    })
    .map_err(|e| unavailable(path, "create schema", e))?
    .map_or(Ok(()), |found| {
        Err(unavailable(
            path,
            "open",
            format!("schema version {found} is newer than this engine's {SCHEMA_VERSION}"),
        ))
    })
}

/// The writer thread's state: the only connection that writes.
struct Writer {
    path: PathBuf,
    /// `None` after a failed batch: the next batch opens a fresh connection, so a connection left
    /// in a bad state by an error never wedges the journal.
    conn: Option<SqliteConnection>,
    metrics: JournalMetrics,
}

impl Writer {
    fn run(mut self, queue: Receiver<Request>) {
        // `recv` fails only once every sender is gone and the queue is empty.
        while let Ok(first) = queue.recv() {
            let (batch, events) = writer::gather(
                first,
                || queue.try_recv().ok(),
                Request::events,
                MAX_BATCH_EVENTS,
            );
            self.commit(batch, events);
        }
        tracing::debug!(journal.path = %self.path.display(), "journal writer stopped");
    }

    fn commit(&mut self, batch: Vec<Request>, events: usize) {
        let started = Instant::now();
        let result = self.write(&batch);
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(outcomes) => {
                self.metrics.committed(events, seconds);
                tracing::trace!(journal.path = %self.path.display(), batch.events = events,
                    batch.requests = batch.len(), commit.seconds = seconds, "batch committed");
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    // A requester that stopped waiting is no error of ours.
                    let _ = request.reply.send(outcome);
                }
            }
            Err(error) => {
                self.conn = None;
                self.metrics.failures.inc();
                tracing::warn!(journal.path = %self.path.display(), batch.events = events,
                    batch.requests = batch.len(), %error, "batch not written");
                for request in batch {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Runs the whole batch in one transaction. `Err` means nothing of it was written; `Ok` holds
    /// one answer per request (a request refused for a seq gap wrote nothing, the rest committed).
    fn write(&mut self, batch: &[Request]) -> Result<Vec<Result<(), JournalError>>, JournalError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            slot => slot.insert(connect(&self.path)?),
        };
        conn.immediate_transaction(|conn| {
            let mut next = HashMap::new();
            batch
                .iter()
                .map(|request| match &request.op {
                    Op::Append(events) => append(conn, &mut next, events),
                    Op::Snapshot(snapshot) => write_snapshot(conn, snapshot),
                    Op::Delete(room) => {
                        next.remove(room.as_str());
                        diesel::delete(events::table.filter(events::room_id.eq(room.as_str())))
                            .execute(conn)?;
                        diesel::delete(
                            snapshots::table.filter(snapshots::room_id.eq(room.as_str())),
                        )
                        .execute(conn)?;
                        diesel::delete(messages::table.filter(messages::room_id.eq(room.as_str())))
                            .execute(conn)?;
                        Ok(Ok(()))
                    }
                    Op::Check => diesel::sql_query("SELECT 1").execute(conn).map(|_| Ok(())),
                })
                .collect::<Result<Vec<_>, diesel::result::Error>>()
        })
        .map_err(|e| unavailable(&self.path, "write", e))
    }
}

/// Writes one append request inside the batch's transaction. `next` holds, per room touched by
/// this batch, the seq the next new event must have. The outer `Err` is a SQLite failure (fails
/// the batch); the inner one refuses only this request: it would leave a gap.
fn append(
    conn: &mut SqliteConnection,
    next: &mut HashMap<String, u64>,
    events: &[Event],
) -> Result<Result<(), JournalError>, diesel::result::Error> {
    // Check the whole request before writing any of it, so a refused one leaves nothing behind.
    let mut mine: HashMap<&str, u64> = HashMap::new();
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        let room = event.room.as_str();
        let expected = match mine.get(room).or_else(|| next.get(room)) {
            Some(&seq) => seq,
            None => stored_next(conn, room)?,
        };
        if event.seq < expected {
            // Already durable: a retry, which must be the event stored (the journal's contract).
            if let Some(why) = differs_from_stored(conn, event)? {
                return Ok(Err(JournalError::Corrupt(format!(
                    "room {room}: seq {} sent again {why} than is stored",
                    event.seq
                ))));
            }
            mine.insert(room, expected);
            continue;
        }
        if event.seq > expected {
            return Ok(Err(JournalError::Corrupt(format!(
                "room {room}: append of seq {} when {expected} is next",
                event.seq
            ))));
        }
        let (Ok(seq), Ok(kind)) = (i64::try_from(event.seq), serde_json::to_string(&event.kind))
        else {
            return Ok(Err(JournalError::Corrupt(format!(
                "room {room}: event seq {} cannot be stored",
                event.seq
            ))));
        };
        let message = match crate::message_of(event).map(|m| serde_json::to_string(&m)) {
            Some(Ok(body)) => Some(body),
            Some(Err(_)) => {
                return Ok(Err(JournalError::Corrupt(format!(
                    "room {room}: message seq {} cannot be stored",
                    event.seq
                ))))
            }
            None => None,
        };
        mine.insert(room, event.seq + 1);
        rows.push((room, seq, event.at.timestamp_millis(), kind, message));
    }
    for (room, seq, at_ms, kind, message) in rows {
        diesel::insert_or_ignore_into(events::table)
            .values((
                events::room_id.eq(room),
                events::seq.eq(seq),
                events::at_ms.eq(at_ms),
                events::kind.eq(kind),
            ))
            .execute(conn)?;
        if let Some(body) = message {
            diesel::insert_or_ignore_into(messages::table)
                .values((
                    messages::room_id.eq(room),
                    messages::seq.eq(seq),
                    messages::body.eq(body),
                ))
                .execute(conn)?;
        }
    }
    for (room, seq) in mine {
        next.insert(room.to_owned(), seq);
    }
    Ok(Ok(()))
}

/// Stores a snapshot (replacing an older one) and deletes the events it covers. The next
/// expected seq of the room is unchanged by this, so `next` needs no update.
fn write_snapshot(
    conn: &mut SqliteConnection,
    snapshot: &Snapshot,
) -> Result<Result<(), JournalError>, diesel::result::Error> {
    let room = snapshot.room.as_str();
    let (Ok(seq), Ok(body)) = (i64::try_from(snapshot.seq), serde_json::to_string(snapshot)) else {
        return Ok(Err(JournalError::Corrupt(format!(
            "room {room}: snapshot at seq {} cannot be stored",
            snapshot.seq
        ))));
    };
    diesel::replace_into(snapshots::table)
        .values((
            snapshots::room_id.eq(room),
            snapshots::seq.eq(seq),
            snapshots::body.eq(body),
        ))
        .execute(conn)?;
    diesel::delete(
        events::table
            .filter(events::room_id.eq(room))
            .filter(events::seq.le(seq)),
    )
    .execute(conn)?;
    Ok(Ok(()))
}

/// How `event`, sent again, differs from the stored event of its seq, if it does. One a snapshot
/// trimmed away cannot be compared: the room's owner made it durable before the snapshot.
fn differs_from_stored(
    conn: &mut SqliteConnection,
    event: &Event,
) -> Result<Option<&'static str>, diesel::result::Error> {
    let Ok(seq) = i64::try_from(event.seq) else {
        return Ok(Some("with a seq out of range"));
    };
    let stored = events::table
        .filter(events::room_id.eq(event.room.as_str()))
        .filter(events::seq.eq(seq))
        .select((events::kind, events::at_ms))
        .first::<(String, i64)>(conn)
        .optional()?;
    let Some((kind, at_ms)) = stored else {
        return Ok(None);
    };
    let sent = serde_json::to_string(&event.kind).unwrap_or_default();
    Ok(if kind != sent {
        Some("with other content")
    } else if at_ms != event.at.timestamp_millis() {
        Some("with another time")
    } else {
        None
    })
}

/// The seq a room's next new event must have, from what is stored.
fn stored_next(conn: &mut SqliteConnection, room: &str) -> Result<u64, diesel::result::Error> {
    let last = events::table
        .filter(events::room_id.eq(room))
        .select(diesel::dsl::max(events::seq))
        .first::<Option<i64>>(conn)?;
    let snapshot = snapshots::table
        .filter(snapshots::room_id.eq(room))
        .select(snapshots::seq)
        .first::<i64>(conn)
        .optional()?;
    // A negative stored seq is corrupt; recovery reports it, appends just start after it.
    let last = last.max(snapshot).unwrap_or(0);
    Ok(u64::try_from(last).map_or(1, |seq| seq + 1))
}

/// Every stored snapshot, by room id.
fn read_snapshots(
    conn: &mut SqliteConnection,
    path: &Path,
) -> Result<BTreeMap<String, Snapshot>, JournalError> {
    let rows = snapshots::table
        .select((snapshots::room_id, snapshots::seq, snapshots::body))
        .load::<(String, i64, String)>(conn)
        .map_err(|e| unavailable(path, "recover", e))?;
    rows.into_iter()
        .map(|(room, seq, body)| {
            let snapshot = serde_json::from_str::<Snapshot>(&body)
                .ok()
                .filter(|s| s.room.as_str() == room && i64::try_from(s.seq) == Ok(seq))
                .ok_or_else(|| {
                    JournalError::Corrupt(format!("room {room}: undecodable snapshot at seq {seq}"))
                })?;
            Ok((room, snapshot))
        })
        .collect()
}

/// Reads every room's log with one ordered scan of the primary key.
fn read_all(path: &Path) -> Result<Vec<RoomLog>, JournalError> {
    let started = Instant::now();
    let mut conn = connect(path)?;
    let mut snapshots = read_snapshots(&mut conn, path)?;
    let rows = events::table
        .select((events::room_id, events::seq, events::at_ms, events::kind))
        .order((events::room_id.asc(), events::seq.asc()))
        .load_iter::<(String, i64, i64, String), DefaultLoadingMode>(&mut conn)
        .map_err(|e| unavailable(path, "recover", e))?;

    let mut logs: Vec<RoomLog> = Vec::new();
    let mut count = 0usize;
    for row in rows {
        let (room, seq, at_ms, kind) = row.map_err(|e| match e {
            diesel::result::Error::DeserializationError(e) => {
                let after = logs
                    .last()
                    .map(|log| format!("{} seq {}", log.room, log.events.len()))
                    .unwrap_or_else(|| "the start".into());
                JournalError::Corrupt(format!("undecodable row after {after}: {e}"))
            }
            e => unavailable(path, "recover", e),
        })?;
        let corrupt = |what: &str| JournalError::Corrupt(format!("room {room} seq {seq}: {what}"));
        if logs.last().is_none_or(|log| log.room.as_str() != room) {
            let id = RoomId::parse(&room).map_err(|e| corrupt(&format!("bad room id: {e}")))?;
            logs.push(RoomLog {
                room: id,
                snapshot: snapshots.remove(&room),
                events: Vec::new(),
                epoch: Epoch::NONE,
            });
        }
        let Some(log) = logs.last_mut() else {
            continue; // pushed just above
        };
        let expected = match (log.events.last(), &log.snapshot) {
            (Some(last), _) => last.seq + 1,
            (None, Some(snapshot)) => snapshot.seq + 1,
            (None, None) => 1,
        };
        let seq = u64::try_from(seq)
            .ok()
            .filter(|&seq| seq == expected)
            .ok_or_else(|| corrupt(&format!("gap: seq {expected} expected")))?;
        let at = DateTime::from_timestamp_millis(at_ms)
            .ok_or_else(|| corrupt(&format!("bad time {at_ms}")))?;
        let kind = serde_json::from_str::<EventKind>(&kind)
            .map_err(|e| corrupt(&format!("undecodable event: {e}")))?;
        log.events.push(Event {
            room: log.room.clone(),
            seq,
            at,
            kind,
        });
        count += 1;
    }
    tracing::info!(journal.path = %path.display(), recover.rooms = logs.len(),
        recover.events = count, recover.seconds = started.elapsed().as_secs_f64(),
        "journal read");
    // Rooms whose every event is covered by their snapshot.
    for (room, snapshot) in snapshots {
        logs.push(RoomLog {
            room: snapshot.room.clone(),
            snapshot: Some(snapshot),
            events: Vec::new(),
            epoch: Epoch::NONE,
        });
        tracing::trace!(room.id = %room, "room recovered from its snapshot alone");
    }
    logs.sort_by(|a, b| a.room.as_str().cmp(b.room.as_str()));
    Ok(logs)
}

/// Up to `limit` stored messages of `room` with `seq > after`, oldest first.
fn read_messages(
    path: &Path,
    room: &RoomId,
    after: u64,
    limit: usize,
) -> Result<Vec<ChatMessage>, JournalError> {
    let mut conn = connect(path)?;
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit.min(crate::MESSAGES_PER_READ)).unwrap_or(i64::MAX);
    let rows: Vec<(i64, String)> = messages::table
        .filter(messages::room_id.eq(room.as_str()))
        .filter(messages::seq.gt(after))
        .order(messages::seq.asc())
        .limit(limit)
        .select((messages::seq, messages::body))
        .load(&mut conn)
        .map_err(|e| unavailable(path, "read messages", e))?;
    rows.into_iter()
        .map(|(seq, body)| {
            serde_json::from_str(&body).map_err(|e| {
                JournalError::Corrupt(format!("room {room}: message {seq} undecodable: {e}"))
            })
        })
        .collect()
}

/// Fills the `messages` table of a file written before it existed: the messages of every
/// snapshot (which then held whole transcripts) and of every `Said` event.
fn backfill_messages(conn: &mut SqliteConnection) -> Result<(), diesel::result::Error> {
    let snaps: Vec<(String, String)> = snapshots::table
        .select((snapshots::room_id, snapshots::body))
        .load(conn)?;
    let mut rows: Vec<(String, i64, String)> = Vec::new();
    for (room, body) in snaps {
        if let Ok(snapshot) = serde_json::from_str::<Snapshot>(&body) {
            for m in snapshot.messages {
                if let (Ok(seq), Ok(body)) = (i64::try_from(m.seq), serde_json::to_string(&m)) {
                    rows.push((room.clone(), seq, body));
                }
            }
        }
    }
    let said: Vec<(String, i64, i64, String)> = events::table
        .filter(events::kind.like("%\"type\":\"said\"%"))
        .select((events::room_id, events::seq, events::at_ms, events::kind))
        .load(conn)?;
    for (room, seq, at_ms, kind) in said {
        let (Ok(room_id), Ok(kind), Some(at)) = (
            RoomId::parse(&room),
            serde_json::from_str::<EventKind>(&kind),
            DateTime::from_timestamp_millis(at_ms),
        ) else {
            continue;
        };
        let event = Event {
            room: room_id,
            seq: u64::try_from(seq).unwrap_or(0),
            at,
            kind,
        };
        if let Some(Ok(body)) = crate::message_of(&event).map(|m| serde_json::to_string(&m)) {
            rows.push((room, seq, body));
        }
    }
    for (room, seq, body) in rows {
        diesel::insert_or_ignore_into(messages::table)
            .values((
                messages::room_id.eq(room),
                messages::seq.eq(seq),
                messages::body.eq(body),
            ))
            .execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
