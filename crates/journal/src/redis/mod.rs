//! The production journal: Redis, standalone (`redis.url`) or found through sentinels
//! (`redis.sentinels` + `redis.master_name`), made durable on replicas with `WAIT`.
//!
//! One writer thread owns the one write connection (`WAIT` blocks a connection and covers every
//! earlier write on it). It group-commits whatever rooms have queued: one pipeline with an `XADD`
//! per event, then one `WAIT min_replica_acks`. A batch is acknowledged only if the pipeline
//! succeeded AND enough replicas hold it AND no sentinel has said that this primary is being
//! replaced; on any error, timeout, `READONLY`, `NOREPLICAS`, a short `WAIT` or a failover under
//! way, the batch fails (nothing is acknowledged), the connection is dropped, and the next batch
//! asks the sentinels for the primary again — redis-rs does not follow a failover by itself.
//! Rooms re-send failed events; appends are idempotent by seq, so a re-send after an unclear
//! failure never duplicates.
//!
//! `WAIT n` with n below the number of replicas can be satisfied by a replica that a failover
//! then moves to the new primary and full-resyncs, dropping what it acknowledged. Two things
//! cover that: the sentinels' failover events stop the writer from acknowledging anything on the
//! primary being replaced (`watch`, `fence`), and the writer remembers what it acknowledged in
//! the last seconds (`recent`) and, on every new connection, re-appends whatever of it the
//! primary lacks before it writes anything new (`repair`).
//!
//! Every batch is ONE call of a Redis function (`roomstate.lua`, `FCALL roomstate_batch`) plus
//! the room index updates and the `WAIT`: per room, the function checks the writer's lease epoch
//! against the room's owner hash and that the first event follows the log (an event sent again
//! must be byte-identical to the stored one: a conflict is reported, never taken for "already
//! stored"), then appends, snapshots-and-trims or deletes — all or nothing per room.
//!
//! Keys, all of one room under one hash tag (so they share a slot under Redis Cluster):
//! `roomstate:{<room>}:log` (stream, entry id `<seq>-0`, field `e` = event JSON),
//! `roomstate:{<room>}:snap` (snapshot JSON), `roomstate:{<room>}:owner` (hash: lease `epoch`
//! and `node`, `snap_seq`) and `roomstate:{<room>}:msgs` (stream: every chat message of the room,
//! field `m`, kept until the room is deleted); and, apart, the set `roomstate:rooms` of open rooms.
//!
//! # Layout
//! - this file: the configuration, the `Journal` handle and the requests it queues;
//! - `writer`: the writer thread's loop: group commit, connecting, acknowledging;
//! - `recover`: reading every open room back at start;
//! - `watch`: listening to the sentinels' failover events;
//! - `fence`: which primaries the writer must not write to, from what the watcher heard;
//! - `recent`: the bounded record of events acknowledged in the last seconds;
//! - `repair`: re-appending recently acknowledged events a primary lacks.

mod fence;
mod recent;
mod recover;
mod repair;
mod watch;
mod writer;

use std::{sync::Arc, time::Duration};

use parking_lot::Mutex;
use roomstate_core::{
    redact,
    room::{ChatMessage, Event, RoomId, Snapshot},
    time::Timestamp,
};
use tokio::sync::{mpsc, oneshot};

pub use self::recent::RecentBounds;
use self::writer::Writer;
use super::{
    writer::{self as thread, WriterThread},
    Journal, JournalError, JournalFuture, JournalMetrics, JournalStatus, RoomLog,
};
use crate::access::Access;
pub use crate::access::RedisAccess;

/// A batch stops taking queued requests at this many events, so one pipeline stays short.
const MAX_BATCH_EVENTS: usize = 8192;
/// Rooms read per pipeline at recovery, and rooms checked per pipeline by a repair.
const ROOMS_PER_PIPELINE: usize = 256;
const WRITER_THREAD: &str = "roomstate-redis-journal";

/// Where the primary is. Its `Debug` shows a URL redacted.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// A plain Redis, e.g. `redis://127.0.0.1:6379`, `rediss://user:pass@host:6380`.
    Url(String),
    /// Ask these sentinels (`host:port`) for the primary named `master_name`, and connect to
    /// the `host:port` they name with the servers' access.
    Sentinels {
        addrs: Vec<String>,
        master_name: String,
    },
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Url(url) => f.debug_tuple("Url").field(&redact::url(url)).finish(),
            RedisTarget::Sentinels { addrs, master_name } => f
                .debug_struct("Sentinels")
                .field("addrs", addrs)
                .field("master_name", master_name)
                .finish(),
        }
    }
}

/// How to reach Redis and what durable means.
#[derive(Debug, Clone)]
pub struct RedisJournalConfig {
    pub target: RedisTarget,
    /// Credentials and TLS for the servers (the URL's primary, or the primaries the sentinels
    /// name) and for the sentinels.
    pub access: RedisAccess,
    /// Replicas that must hold a batch (`WAIT`) before it is acknowledged; 0 skips `WAIT`.
    pub min_replica_acks: u32,
    /// How long `WAIT` waits for the replicas.
    pub wait_timeout: Duration,
    /// How long any reply may take (above `wait_timeout`, so `WAIT` itself never times out).
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
    /// Prefix of every key.
    pub key_prefix: String,
    /// How much of what it acknowledged the journal remembers, to put it back on a primary that
    /// lacks it.
    pub recent: RecentBounds,
}

impl RedisJournalConfig {
    /// The defaults for a target: no credentials and no TLS (but what a URL says), a 1 s
    /// `WAIT`, 2 s replies, 500 ms connects, the default record of recent acknowledgements.
    pub fn new(target: RedisTarget, min_replica_acks: u32) -> Self {
        Self {
            target,
            access: RedisAccess::default(),
            min_replica_acks,
            wait_timeout: Duration::from_millis(1000),
            response_timeout: Duration::from_millis(2000),
            connect_timeout: Duration::from_millis(500),
            key_prefix: "roomstate".into(),
            recent: RecentBounds::default(),
        }
    }
}

#[derive(Default)]
struct Status {
    primary: Option<String>,
    failovers: u64,
    last_failover: Option<Timestamp>,
}

enum Op {
    Append(Vec<Event>),
    Snapshot(Snapshot),
    Delete(RoomId),
    Check,
}

enum Request {
    Write {
        op: Op,
        reply: oneshot::Sender<Result<(), JournalError>>,
    },
    Recover {
        reply: oneshot::Sender<Result<Vec<RoomLog>, JournalError>>,
    },
    /// Read a room's archived messages (on the writer's connection, behind the writes queued
    /// before it).
    Messages {
        room: RoomId,
        after: u64,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<ChatMessage>, JournalError>>,
    },
}

impl Request {
    fn events(&self) -> usize {
        match self {
            Request::Write {
                op: Op::Append(events),
                ..
            } => events.len(),
            _ => 0,
        }
    }
}

struct Inner {
    // Declared before `_writer`: the channel closes before the thread is joined.
    requests: mpsc::UnboundedSender<Request>,
    status: Arc<Mutex<Status>>,
    describe: String,
    _writer: WriterThread,
}

/// The Redis journal. Clones share one writer thread and connection.
#[derive(Clone)]
pub struct RedisJournal {
    inner: Arc<Inner>,
}

impl RedisJournal {
    /// Starts the writer thread (and, with sentinels, the watcher of their failover events on
    /// that thread's runtime). Connecting happens on first use, so the engine can report a
    /// Redis outage (503, /readyz) instead of refusing to start.
    pub fn open(config: RedisJournalConfig, metrics: JournalMetrics) -> Result<Self, JournalError> {
        let status = Arc::new(Mutex::new(Status::default()));
        let describe = match &config.target {
            RedisTarget::Url(url) => redact::url(url),
            RedisTarget::Sentinels { addrs, master_name } => {
                format!("sentinels {} ({master_name})", addrs.join(","))
            }
        };
        let (servers, sentinels) = (&config.access.servers, &config.access.sentinels);
        if servers.tls().is_some() || sentinels.tls().is_some() {
            crate::access::install_crypto_provider();
        }
        // Whether there are credentials and TLS, never the credentials.
        let user = |access: &Access| {
            access
                .credentials()
                .map(|c| c.username().unwrap_or("default").to_owned())
        };
        let (server_user, sentinel_user) = (user(servers), user(sentinels));
        let tls = servers.tls().is_some()
            || matches!(&config.target, RedisTarget::Url(url) if url.starts_with("rediss://"));
        let (requests, queue) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| JournalError::Unavailable(format!("cannot start a runtime: {e}")))?;
        let writer = Writer::new(config, metrics, status.clone());
        let handle = std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || runtime.block_on(writer.run(queue)))
            .map_err(|e| JournalError::Unavailable(format!("cannot start journal thread: {e}")))?;
        tracing::info!(
            redis.target = %describe,
            redis.tls = tls,
            redis.user = server_user.as_deref(),
            redis.sentinel_user = sentinel_user.as_deref(),
            "redis journal started"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                requests,
                status,
                describe,
                _writer: WriterThread::new(handle, WRITER_THREAD),
            }),
        })
    }

    fn submit(&self, op: Op) -> JournalFuture<()> {
        let (reply, answer) = oneshot::channel();
        let sent = self.inner.requests.send(Request::Write { op, reply });
        thread::answer(sent.is_ok(), answer, WRITER_THREAD)
    }
}

impl Journal for RedisJournal {
    fn append(&self, events: Vec<Event>) -> JournalFuture<()> {
        self.submit(Op::Append(events))
    }

    fn snapshot(&self, snapshot: Snapshot) -> JournalFuture<()> {
        self.submit(Op::Snapshot(snapshot))
    }

    fn recover(&self) -> JournalFuture<Vec<RoomLog>> {
        let (reply, answer) = oneshot::channel();
        let sent = self.inner.requests.send(Request::Recover { reply });
        thread::answer(sent.is_ok(), answer, WRITER_THREAD)
    }

    fn delete_room(&self, room: RoomId) -> JournalFuture<()> {
        self.submit(Op::Delete(room))
    }

    fn messages(&self, room: RoomId, after: u64, limit: usize) -> JournalFuture<Vec<ChatMessage>> {
        let (reply, answer) = oneshot::channel();
        let request = Request::Messages {
            room,
            after,
            limit,
            reply,
        };
        let sent = self.inner.requests.send(request);
        thread::answer(sent.is_ok(), answer, WRITER_THREAD)
    }

    fn check(&self) -> JournalFuture<()> {
        self.submit(Op::Check)
    }

    fn status(&self) -> JournalStatus {
        let status = self.inner.status.lock();
        JournalStatus {
            kind: "redis",
            target: status
                .primary
                .clone()
                .unwrap_or_else(|| format!("no primary yet; {}", self.inner.describe)),
            failovers: status.failovers,
            last_failover: status.last_failover,
        }
    }
}

/// The names of every key the journal writes.
struct Keys<'a> {
    prefix: &'a str,
}

impl Keys<'_> {
    fn rooms(&self) -> String {
        format!("{}:rooms", self.prefix)
    }
    fn log(&self, room: &str) -> String {
        format!("{}:{{{room}}}:log", self.prefix)
    }
    fn snap(&self, room: &str) -> String {
        format!("{}:{{{room}}}:snap", self.prefix)
    }
    /// Set and deleted by every recovery, so its `WAIT` has a write to wait for.
    fn recovery_probe(&self) -> String {
        format!("{}:recovery-probe", self.prefix)
    }
    /// The room's archive of chat messages (stream, entry id `<seq>-0`, field `m`).
    fn msgs(&self, room: &str) -> String {
        format!("{}:{{{room}}}:msgs", self.prefix)
    }
    /// The room's owner hash: lease `epoch` and `node`, the last snapshot's `snap_seq`.
    fn owner(&self, room: &str) -> String {
        format!("{}:{{{room}}}:owner", self.prefix)
    }
}

/// The journal's Redis function library (`roomstate_batch`): loaded on every new connection.
const FUNCTIONS: &str = include_str!("roomstate.lua");

fn unavailable(what: &str, error: impl std::fmt::Display) -> JournalError {
    JournalError::Unavailable(format!("redis {what}: {error}"))
}

/// A re-sent event whose entry is already in the stream.
fn already_stored(error: &redis::RedisError) -> bool {
    error
        .to_string()
        .contains("equal or smaller than the target stream top item")
}
