//! The embedded on-disk journal: one SQLite file (WAL, `synchronous = FULL`), the engine's default
//! when no Redis is configured, so a bare machine can run it.
//!
//! It owns the file and the one thread that writes to it. Appends from every room are queued to
//! that thread, which group-commits whatever is waiting in ONE transaction (one fsync per batch)
//! and only then answers the requesters. It must never acknowledge an event before its transaction
//! has committed, never split a batch over transactions (a crash keeps all of a batch or none), and
//! never run SQLite work on the caller's (actix) thread.
//!
//! On disk (schema version 2, in `PRAGMA user_version`):
//! `events(room_id TEXT, seq INTEGER, at_ms INTEGER, kind TEXT /* EventKind JSON */,
//! PRIMARY KEY(room_id, seq)) WITHOUT ROWID` and
//! `snapshots(room_id TEXT PRIMARY KEY, seq INTEGER, body TEXT /* Snapshot JSON */) WITHOUT ROWID`;
//! a room's events at or below its snapshot's seq are deleted with the snapshot's write.

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
use tokio::sync::oneshot;

use super::{
    writer::{self, WriterThread},
    Journal, JournalError, JournalFuture, JournalStatus, RoomLog,
};
use crate::{
    metrics::Metrics,
    room::{Event, EventKind, RoomId, Snapshot},
};

/// The schema this code writes and reads.
const SCHEMA_VERSION: i32 = 2;

/// A batch stops taking queued requests once it holds this many events (a single larger append
/// still goes through, alone), so one commit stays short.
const MAX_BATCH_EVENTS: usize = 8192;

/// How long a connection waits for a lock held by another connection before failing.
const BUSY_TIMEOUT_MS: u32 = 5_000;

const WRITER_THREAD: &str = "roomstate-journal";
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
}

use schema::{events, snapshots};

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
}

/// The SQLite-backed journal. Clones share one file and one writer thread.
#[derive(Clone)]
pub struct LocalJournal {
    inner: Arc<Inner>,
}

impl LocalJournal {
    /// Opens (creating the file and parent dirs) `path`, e.g. `<data_dir>/journal.db`.
    pub fn open(path: &Path, metrics: Metrics) -> Result<Self, JournalError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| {
                JournalError::Unavailable(format!(
                    "cannot create journal directory {}: {error}",
                    parent.display()
                ))
            })?;
        }
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

impl Journal for LocalJournal {
    fn append(&self, events: Vec<Event>) -> JournalFuture<()> {
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

    fn snapshot(&self, snapshot: Snapshot) -> JournalFuture<()> {
        self.submit(Op::Snapshot(snapshot))
    }

    fn delete_room(&self, room: RoomId) -> JournalFuture<()> {
        self.submit(Op::Delete(room))
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

/// Opens a connection with the pragmas every connection needs (they are per connection, except
/// `journal_mode`, which the file keeps).
fn connect(path: &Path) -> Result<SqliteConnection, JournalError> {
    let text = path
        .to_str()
        .ok_or_else(|| unavailable(path, "open", "path is not valid UTF-8"))?;
    // diesel opens with SQLITE_OPEN_URI: keep a relative path that looks like a URI a path.
    let url = if text.starts_with("file:") || text.starts_with("sqlite:") {
        format!("./{text}")
    } else {
        text.to_owned()
    };
    let mut conn = SqliteConnection::establish(&url).map_err(|e| unavailable(path, "open", e))?;
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA synchronous = FULL;"
    ))
    .map_err(|e| unavailable(path, "configure", e))?;
    Ok(conn)
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
        conn.batch_execute(&format!(
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
            PRAGMA user_version = {SCHEMA_VERSION};"
        ))?;
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
    metrics: Metrics,
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
                if events > 0 {
                    self.metrics.journal_batches.inc();
                    self.metrics.journal_batch_events.observe(events as f64);
                    self.metrics.journal_commit_seconds.observe(seconds);
                }
                tracing::trace!(journal.path = %self.path.display(), batch.events = events,
                    batch.requests = batch.len(), commit.seconds = seconds, "batch committed");
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    // A requester that stopped waiting is no error of ours.
                    let _ = request.reply.send(outcome);
                }
            }
            Err(error) => {
                self.conn = None;
                self.metrics.journal_failures.inc();
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
            mine.insert(room, expected);
            continue; // already durable: a retry
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
        mine.insert(room, event.seq + 1);
        rows.push((room, seq, event.at.timestamp_millis(), kind));
    }
    for (room, seq, at_ms, kind) in rows {
        diesel::insert_or_ignore_into(events::table)
            .values((
                events::room_id.eq(room),
                events::seq.eq(seq),
                events::at_ms.eq(at_ms),
                events::kind.eq(kind),
            ))
            .execute(conn)?;
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
        });
        tracing::trace!(room.id = %room, "room recovered from its snapshot alone");
    }
    logs.sort_by(|a, b| a.room.as_str().cmp(b.room.as_str()));
    Ok(logs)
}

#[cfg(test)]
mod tests {
    use futures_util::future::join_all;

    use super::*;
    use crate::{
        room::{Side, UserName},
        time,
    };

    fn event(room: &RoomId, seq: u64) -> Event {
        let user = UserName::parse("alice").unwrap();
        let kind = match seq % 4 {
            1 => EventKind::Created {
                title: format!("room \"{room}\" ✓"),
            },
            2 => EventKind::Joined {
                user,
                participants: 3,
            },
            3 => EventKind::Voted {
                user,
                side: Side::Con,
            },
            _ => EventKind::Said {
                user,
                text: format!("message {seq}\nline two"),
            },
        };
        Event {
            room: room.clone(),
            seq,
            at: time::now(),
            kind,
        }
    }

    fn events(room: &RoomId, seqs: std::ops::RangeInclusive<u64>) -> Vec<Event> {
        seqs.map(|seq| event(room, seq)).collect()
    }

    fn room(name: &str) -> RoomId {
        RoomId::parse(name).unwrap()
    }

    fn open(path: &Path) -> (LocalJournal, Metrics) {
        let metrics = Metrics::new().unwrap();
        (LocalJournal::open(path, metrics.clone()).unwrap(), metrics)
    }

    /// A connection of the test's own, waiting on locks like the journal's connections do.
    fn raw(path: &Path) -> SqliteConnection {
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        conn.batch_execute("PRAGMA busy_timeout = 5000").unwrap();
        conn
    }

    #[actix_rt::test]
    async fn events_survive_close_and_reopen_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/data/journal.db");
        let (a, b) = (room("r_a"), room("r_b"));
        let sent_a = events(&a, 1..=5);
        let sent_b = events(&b, 1..=2);
        {
            let (journal, _) = open(&path);
            assert_eq!(journal.status().kind, "local");
            assert_eq!(journal.status().target, path.display().to_string());
            journal.check().await.unwrap();
            journal.append(sent_a[..3].to_vec()).await.unwrap();
            journal.append(sent_b.clone()).await.unwrap();
            journal.append(sent_a[3..].to_vec()).await.unwrap();
        }
        let (journal, _) = open(&path);
        let expected = vec![
            RoomLog {
                room: a,
                snapshot: None,
                events: sent_a,
            },
            RoomLog {
                room: b,
                snapshot: None,
                events: sent_b,
            },
        ];
        assert_eq!(journal.recover().await.unwrap(), expected);
    }

    #[actix_rt::test]
    async fn re_appending_stored_events_does_not_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = open(&dir.path().join("journal.db"));
        let r = room("r_retry");
        let first = events(&r, 1..=3);
        journal.append(first.clone()).await.unwrap();
        journal.append(first.clone()).await.unwrap();
        let mut retry = first[1..].to_vec();
        retry.push(event(&r, 4));
        journal.append(retry).await.unwrap();
        let logs = journal.recover().await.unwrap();
        assert_eq!(logs.len(), 1);
        let seqs: Vec<u64> = logs[0].events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        assert_eq!(logs[0].events[..3], first[..]);
    }

    #[actix_rt::test]
    async fn an_append_that_leaves_a_gap_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = open(&dir.path().join("journal.db"));
        let r = room("r_gap");
        journal.append(events(&r, 1..=2)).await.unwrap();
        let refused = journal.append(vec![event(&r, 3), event(&r, 5)]).await;
        assert!(
            matches!(refused, Err(JournalError::Corrupt(_))),
            "{refused:?}"
        );
        journal.append(events(&r, 3..=3)).await.unwrap();
        let logs = journal.recover().await.unwrap();
        assert_eq!(logs[0].events.len(), 3);
    }

    #[actix_rt::test]
    async fn delete_room_removes_only_that_room() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = open(&dir.path().join("journal.db"));
        let (gone, kept) = (room("r_gone"), room("r_kept"));
        journal.append(events(&gone, 1..=4)).await.unwrap();
        journal.append(events(&kept, 1..=2)).await.unwrap();
        journal.delete_room(gone.clone()).await.unwrap();
        let logs = journal.recover().await.unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].room, kept);
        assert_eq!(logs[0].events.len(), 2);
        // A deleted room's id starts again from seq 1.
        journal.append(events(&gone, 1..=1)).await.unwrap();
        assert_eq!(journal.recover().await.unwrap().len(), 2);
    }

    #[actix_rt::test]
    async fn concurrent_appends_are_durable_and_group_committed() {
        const TASKS: u64 = 50;
        const APPENDS: u64 = 20;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let (journal, metrics) = open(&path);
        let journal: Arc<dyn Journal> = Arc::new(journal);
        let tasks = (0..TASKS).map(|t| {
            let journal = journal.clone();
            actix_rt::spawn(async move {
                let r = room(&format!("r_{t}"));
                for seq in 1..=APPENDS {
                    journal.append(vec![event(&r, seq)]).await.unwrap();
                }
            })
        });
        for done in join_all(tasks).await {
            done.unwrap();
        }
        let batches = metrics.journal_batches.get();
        assert!(batches > 0);
        assert!(
            batches < TASKS * APPENDS,
            "{batches} batches for {} appends: no group commit",
            TASKS * APPENDS
        );
        assert_eq!(metrics.journal_failures.get(), 0);
        drop(journal);
        let (journal, _) = open(&path);
        let logs = journal.recover().await.unwrap();
        assert_eq!(logs.len() as u64, TASKS);
        assert!(logs.iter().all(|log| log.events.len() as u64 == APPENDS));
    }

    #[actix_rt::test]
    async fn dropping_the_last_handle_finishes_queued_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let (journal, _) = open(&path);
        let pending: Vec<_> = (0..10)
            .map(|i| journal.append(events(&room(&format!("r_q{i}")), 1..=3)))
            .collect();
        drop(journal); // joins the writer thread
        for result in join_all(pending).await {
            result.unwrap();
        }
        let (journal, _) = open(&path);
        assert_eq!(journal.recover().await.unwrap().len(), 10);
    }

    #[actix_rt::test]
    async fn a_failed_batch_writes_nothing_and_the_next_one_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let (journal, metrics) = open(&path);
        let (good, bad) = (room("r_good"), room("r_bad"));
        let mut conn = raw(&path);
        conn.batch_execute(
            "CREATE TRIGGER fail BEFORE INSERT ON events WHEN NEW.room_id = 'r_bad'
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
        let mut both = events(&good, 1..=2);
        both.extend(events(&bad, 1..=1));
        let failed = journal.append(both).await;
        assert!(
            matches!(failed, Err(JournalError::Unavailable(_))),
            "{failed:?}"
        );
        assert_eq!(metrics.journal_failures.get(), 1);
        assert_eq!(journal.recover().await.unwrap(), vec![]);

        conn.batch_execute("DROP TRIGGER fail").unwrap();
        journal.append(events(&good, 1..=2)).await.unwrap();
        journal.check().await.unwrap();
        assert_eq!(journal.recover().await.unwrap()[0].events.len(), 2);
    }

    #[actix_rt::test]
    async fn an_undecodable_row_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let (journal, _) = open(&path);
        let r = room("r_bent");
        journal.append(events(&r, 1..=2)).await.unwrap();
        raw(&path)
            .batch_execute("INSERT INTO events VALUES ('r_bent', 3, 0, '{not json')")
            .unwrap();
        match journal.recover().await {
            Err(JournalError::Corrupt(message)) => {
                assert!(
                    message.contains("r_bent") && message.contains("seq 3"),
                    "{message}"
                )
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[actix_rt::test]
    async fn a_gap_in_a_stored_log_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let (journal, _) = open(&path);
        let r = room("r_holey");
        journal.append(events(&r, 1..=2)).await.unwrap();
        raw(&path)
            .batch_execute("DELETE FROM events WHERE room_id = 'r_holey' AND seq = 1")
            .unwrap();
        let result = journal.recover().await;
        assert!(
            matches!(result, Err(JournalError::Corrupt(_))),
            "{result:?}"
        );
    }

    #[test]
    fn an_unwritable_location_fails_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"not a directory").unwrap();
        let result = LocalJournal::open(&file.join("journal.db"), Metrics::new().unwrap());
        assert!(matches!(result, Err(JournalError::Unavailable(_))));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        raw(&path)
            .batch_execute("PRAGMA user_version = 99")
            .unwrap();
        let result = LocalJournal::open(&path, Metrics::new().unwrap());
        assert!(matches!(result, Err(JournalError::Unavailable(m)) if m.contains("99")));
    }

    fn snapshot_of(room: &RoomId, seq: u64) -> Snapshot {
        Snapshot {
            room: room.clone(),
            seq,
            title: "t".into(),
            created_at: time::now(),
            participants_peak: 2,
            votes: vec![(UserName::parse("alice").unwrap(), Side::Pro)],
            messages: Vec::new(),
        }
    }

    #[actix_rt::test]
    async fn snapshots_trim_the_log_and_come_back_with_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let (a, b) = (room("r_snap_a"), room("r_snap_b"));
        {
            let (journal, _) = open(&path);
            journal.append(events(&a, 1..=6)).await.unwrap();
            journal.snapshot(snapshot_of(&a, 4)).await.unwrap();
            journal.append(events(&b, 1..=3)).await.unwrap();
            journal.snapshot(snapshot_of(&b, 3)).await.unwrap();
            // Every event of b is covered: the next append must still follow seq 3.
            assert!(matches!(
                journal.append(events(&b, 5..=5)).await,
                Err(JournalError::Corrupt(_))
            ));
            journal.append(events(&b, 3..=4)).await.unwrap();
        }
        let (journal, _) = open(&path);
        let logs = journal.recover().await.unwrap();
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0].snapshot.as_ref().map(|s| s.seq), Some(4));
        let tail: Vec<u64> = logs[0].events.iter().map(|e| e.seq).collect();
        assert_eq!(tail, [5, 6]);
        assert_eq!(
            logs[1].snapshot,
            Some(snapshot_of(&b, 3)).map(|mut s| {
                s.created_at = logs[1].snapshot.as_ref().unwrap().created_at;
                s
            })
        );
        assert_eq!(
            logs[1].events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [4]
        );

        journal.delete_room(a.clone()).await.unwrap();
        let logs = journal.recover().await.unwrap();
        assert_eq!(logs.len(), 1, "deleting a room deletes its snapshot too");
    }

    #[actix_rt::test]
    async fn a_room_covered_entirely_by_its_snapshot_is_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = open(&dir.path().join("journal.db"));
        let r = room("r_only_snap");
        journal.append(events(&r, 1..=3)).await.unwrap();
        journal.snapshot(snapshot_of(&r, 3)).await.unwrap();
        let logs = journal.recover().await.unwrap();
        assert_eq!(logs.len(), 1);
        assert!(logs[0].events.is_empty());
        assert_eq!(logs[0].snapshot.as_ref().map(|s| s.seq), Some(3));
    }
}
