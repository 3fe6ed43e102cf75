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
//! Every batch is ONE call of a Redis function (`roomstate.lua`, `FCALL roomstate_batch_runs`) plus
//! the room index updates and the `WAIT`: per room, the function checks the writer's lease epoch
//! against the room's owner hash and that the first event follows the log (an event sent again
//! must be byte-identical to the stored one: a conflict is reported, never taken for "already
//! stored"), then appends, snapshots-and-trims or deletes — all or nothing per room.
//!
//! Keys, all of one room under one hash tag (so they share a slot under Redis Cluster):
//! `roomstate:{<room>}:log` (stream, one entry per room per batch, id `<last seq>-0`: `entry`),
//! `roomstate:{<room>}:snap` (snapshot JSON), `roomstate:{<room>}:owner` (hash: lease `epoch`
//! and `node`, `snap_seq`) and `roomstate:{<room>}:msgs` (stream: every chat message of the room,
//! field `m`, kept until the room is deleted); and, apart, the set `roomstate:rooms` of open rooms.
//!
//! # Layout
//! - this file: the configuration, the `Journal` handle and the requests it queues;
//! - `writer`: the writer thread's loop: group commit, connecting, acknowledging;
//! - `commit_delay`: when the writer holds a batch back for more writes to join it;
//! - `recover`: reading open rooms back (all at start; some when a cluster node takes them);
//! - `watch`: listening to the sentinels' failover events;
//! - `fence`: which primaries the writer must not write to, from what the watcher heard;
//! - `recent`: the bounded record of events acknowledged in the last seconds;
//! - `repair`: re-appending recently acknowledged events a primary lacks;
//! - `primary`: finding and connecting to the current primary;
//! - `cluster`: what a cluster of engines keeps beside the logs: node heartbeats, room owners;
//! - `tail`: following rooms' durable events on a connection of its own (a cluster node's
//!   mirrors of rooms other nodes own).
//!
//! Leases: each room's owner hash holds the `epoch` its owner writes under; the function refuses
//! any write under another, and `RedisJournal::claim` / `adopt` take a room under the next epoch
//! (compare-and-set on the one seen), so of two claimers only one wins and the loser, or any
//! writer before it, can never make anything durable for the room again. A single engine claims
//! every room it recovers; a cluster node claims the rooms it creates or takes over.

mod batch;
mod cluster;
mod commit_delay;
mod entry;
mod fence;
mod primary;
mod recent;
mod recover;
mod repair;
mod tail;
mod watch;
mod writer;

use std::{sync::Arc, time::Duration};

use futures_util::{FutureExt, TryFutureExt};
use parking_lot::Mutex;
use roomstate_core::{
    redact,
    room::{ChatMessage, Event, RoomId, Snapshot},
    time::Timestamp,
};
use tokio::sync::{mpsc, oneshot};

pub use self::tail::{Cursor, RedisTail, TailUpdate};
use self::writer::Writer;
pub use self::{
    cluster::{NodeRecord, Owner},
    recent::RecentBounds,
};
use super::{
    writer::{self as thread, WriterThread},
    Epoch, Journal, JournalError, JournalFuture, JournalMetrics, JournalStatus, RoomLog,
};
use crate::access::Access;
pub use crate::access::RedisAccess;

/// A batch stops taking queued requests at this many events, so one pipeline stays short.
const MAX_BATCH_EVENTS: usize = 8192;
/// Rooms read per pipeline at recovery, and rooms checked per pipeline by a repair.
const ROOMS_PER_PIPELINE: usize = 256;
/// At most 15 bytes: what Linux keeps of a thread's name (`top -H`, `perf`).
const WRITER_THREAD: &str = "roomstate-redis";

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
    /// While batches for several rooms follow each other, a batch starts at most once per this
    /// (`commit_delay`); zero: each starts as soon as the last is done.
    pub commit_delay: Duration,
    /// How long any reply may take (above `wait_timeout`, so `WAIT` itself never times out).
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
    /// Prefix of every key.
    pub key_prefix: String,
    /// The name this engine's claims record as the rooms' owner (`cluster.node_id`).
    pub node: String,
    /// How much of what it acknowledged the journal remembers, to put it back on a primary that
    /// lacks it.
    pub recent: RecentBounds,
}

impl RedisJournalConfig {
    /// The defaults for a target: no credentials and no TLS (but what a URL says), a 1 s
    /// `WAIT`, no commit delay, 2 s replies, 500 ms connects, the default record of recent
    /// acknowledgements.
    pub fn new(target: RedisTarget, min_replica_acks: u32) -> Self {
        Self {
            target,
            access: RedisAccess::default(),
            min_replica_acks,
            wait_timeout: Duration::from_millis(1000),
            commit_delay: Duration::ZERO,
            response_timeout: Duration::from_millis(2000),
            connect_timeout: Duration::from_millis(500),
            key_prefix: "roomstate".into(),
            node: "roomstate".into(),
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
    Append(Epoch, Vec<Event>),
    Snapshot(Epoch, Snapshot),
    Delete(Epoch, RoomId),
    Claim(Claim),
    Release(Epoch, RoomId),
    Check,
}

/// A claim of one room for a node (see `RedisJournal::claim`).
struct Claim {
    room: RoomId,
    /// The epoch the claimer saw; `None`: whatever it is now.
    seen: Option<Epoch>,
    node: String,
    /// A room that has no log yet (a creation) rather than one that has.
    new: bool,
}

/// What a write answers: for a claim, the epoch it won.
type Granted = Option<Epoch>;

/// What became of one room an adoption tried to claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Adopted {
    /// Claimed: its log, with the epoch to write it with.
    Won(RoomLog),
    /// Someone claimed it first, or it was closed: why.
    Lost { room: RoomId, why: String },
}

enum Request {
    Write {
        op: Op,
        reply: oneshot::Sender<Result<Granted, JournalError>>,
    },
    Recover {
        reply: oneshot::Sender<Result<Vec<RoomLog>, JournalError>>,
    },
    /// Something a cluster of engines keeps beside the logs (`cluster`).
    Cluster(cluster::Call),
    /// Claim rooms from the epochs the caller saw, and read the ones won.
    Adopt {
        rooms: Vec<(RoomId, Epoch)>,
        node: String,
        reply: oneshot::Sender<Result<Vec<Adopted>, JournalError>>,
    },
    /// Read a room's archived messages (on the writer's connection; a batch's reads run before
    /// its writes, so a page may lack what was queued just before it: callers keep to what they
    /// know is durable).
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
                op: Op::Append(_, events),
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
        let commit_delay_ms = u64::try_from(config.commit_delay.as_millis()).unwrap_or(u64::MAX);
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
            redis.commit_delay_ms = commit_delay_ms,
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

    fn submit(&self, op: Op) -> JournalFuture<Granted> {
        let (reply, answer) = oneshot::channel();
        let sent = self.inner.requests.send(Request::Write { op, reply });
        thread::answer(sent.is_ok(), answer, WRITER_THREAD)
    }

    fn write(&self, op: Op) -> JournalFuture<()> {
        self.submit(op).map_ok(drop).boxed()
    }

    /// Claims `room` for `node`, fencing off its owner until now: `seen` is the epoch the caller
    /// saw (the claim fails with `Fenced` if the room moved on since: someone else claimed it
    /// first); `new` claims a room that has no log yet (a creation: the claim comes first, so
    /// the room's owner is known before anything is written). Answers the epoch to write the
    /// room with. `Corrupt` when the room has no log ("take") or already has one ("new").
    pub fn claim(
        &self,
        room: RoomId,
        seen: Option<Epoch>,
        node: &str,
        new: bool,
    ) -> JournalFuture<Epoch> {
        let claim = Claim {
            room,
            seen,
            node: node.to_owned(),
            new,
        };
        self.submit(Op::Claim(claim))
            .and_then(|granted| async move {
                granted.ok_or_else(|| JournalError::Corrupt("a claim answered no epoch".into()))
            })
            .boxed()
    }

    /// Gives `room` up (a hand-off): nobody owns it until the next claim of `epoch`. The caller
    /// writes nothing more under `epoch`.
    pub fn release(&self, epoch: Epoch, room: RoomId) -> JournalFuture<()> {
        self.write(Op::Release(epoch, room))
    }

    /// Claims each room from the epoch the caller saw it at, for `node`, and reads the logs of
    /// those it won (as at recovery), each with its new epoch. A room someone else claimed
    /// first, or that was closed meanwhile, is `Adopted::Lost` — not an error.
    pub fn adopt(&self, rooms: Vec<(RoomId, Epoch)>, node: &str) -> JournalFuture<Vec<Adopted>> {
        let (reply, answer) = oneshot::channel();
        let request = Request::Adopt {
            rooms,
            node: node.to_owned(),
            reply,
        };
        let sent = self.inner.requests.send(request);
        thread::answer(sent.is_ok(), answer, WRITER_THREAD)
    }

    /// Writes this node's heartbeat record; answers every node's record, by id.
    pub fn heartbeat(&self, me: NodeRecord) -> JournalFuture<Vec<NodeRecord>> {
        self.call(|reply| cluster::Call::Heartbeat { me, reply })
    }

    /// Removes a node's record.
    pub fn forget_node(&self, node: String) -> JournalFuture<()> {
        self.call(|reply| cluster::Call::Forget { node, reply })
    }

    /// The owners of `rooms`, in order (`None`: the room has never been claimed, or is closed).
    pub fn owners(&self, rooms: Vec<RoomId>) -> JournalFuture<Vec<Option<Owner>>> {
        self.call(|reply| cluster::Call::Owners { rooms, reply })
    }

    /// Every open room of the journal, with its owner.
    pub fn open_rooms(&self) -> JournalFuture<Vec<(RoomId, Option<Owner>)>> {
        self.call(|reply| cluster::Call::OpenRooms { reply })
    }

    fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(oneshot::Sender<Result<T, JournalError>>) -> cluster::Call,
    ) -> JournalFuture<T> {
        let (reply, answer) = oneshot::channel();
        let sent = self.inner.requests.send(Request::Cluster(call(reply)));
        thread::answer(sent.is_ok(), answer, WRITER_THREAD)
    }
}

impl Journal for RedisJournal {
    fn append(&self, epoch: Epoch, events: Vec<Event>) -> JournalFuture<()> {
        self.write(Op::Append(epoch, events))
    }

    fn snapshot(&self, epoch: Epoch, snapshot: Snapshot) -> JournalFuture<()> {
        self.write(Op::Snapshot(epoch, snapshot))
    }

    fn recover(&self) -> JournalFuture<Vec<RoomLog>> {
        let (reply, answer) = oneshot::channel();
        let sent = self.inner.requests.send(Request::Recover { reply });
        thread::answer(sent.is_ok(), answer, WRITER_THREAD)
    }

    fn delete_room(&self, epoch: Epoch, room: RoomId) -> JournalFuture<()> {
        self.write(Op::Delete(epoch, room))
    }

    fn hold(&self, epoch: Epoch, room: RoomId) -> JournalFuture<()> {
        // Read on the writer's connection to the primary, after every write sent before it.
        let owners = self.owners(vec![room.clone()]);
        async move {
            let owner = owners.await?.into_iter().next().flatten();
            let held = owner.as_ref().map_or(Epoch::NONE, |owner| owner.epoch);
            if held == epoch {
                return Ok(());
            }
            Err(JournalError::Fenced(match owner {
                Some(owner) => format!(
                    "room {room}: held at epoch {epoch}, the room is at {held} (node {})",
                    owner.node
                ),
                None => format!("room {room}: held at epoch {epoch}, the room has no lease"),
            }))
        }
        .boxed()
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
        self.write(Op::Check)
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
    /// The cluster's nodes (hash: node id -> `NodeRecord` JSON).
    fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    /// A key of one room: `<prefix>:{<room>}:<part>` (the braces keep a room's keys in one
    /// hash slot).
    fn room_key<'k>(&'k self, room: &'k str, part: &'k str) -> RoomKey<'k> {
        RoomKey {
            prefix: self.prefix,
            room,
            part,
        }
    }
    fn log(&self, room: &str) -> String {
        self.room_key(room, "log").to_string()
    }
    fn snap(&self, room: &str) -> String {
        self.room_key(room, "snap").to_string()
    }
    /// Set and deleted by every recovery, so its `WAIT` has a write to wait for.
    fn recovery_probe(&self) -> String {
        format!("{}:recovery-probe", self.prefix)
    }
    /// The room's archive of chat messages (stream, entry id `<seq>-0`, field `m`).
    fn msgs(&self, room: &str) -> String {
        self.room_key(room, "msgs").to_string()
    }
    /// The room's owner hash: lease `epoch` and `node`, the last snapshot's `snap_seq`.
    fn owner(&self, room: &str) -> String {
        self.room_key(room, "owner").to_string()
    }
}

/// A key of one room, written where it is needed (`Keys::room_key`).
struct RoomKey<'k> {
    prefix: &'k str,
    room: &'k str,
    part: &'k str,
}

impl RoomKey<'_> {
    /// The key's five pieces, in order.
    fn pieces(&self) -> [&str; 5] {
        [self.prefix, ":{", self.room, "}:", self.part]
    }

    /// Writes the key's bytes as they are: a batch names four keys per room, and formatting
    /// them through `Display` was ~2 % of the engine's instructions per ack.
    fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        self.pieces()
            .iter()
            .try_for_each(|piece| w.write_all(piece.as_bytes()))
    }
}

impl std::fmt::Display for RoomKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.pieces()
            .iter()
            .try_for_each(|piece| f.write_str(piece))
    }
}

/// The journal's Redis function library (`roomstate.lua`): loaded on every new connection.
const FUNCTIONS: &str = include_str!("roomstate.lua");
/// Its one function: a batch. Its name carries the log's format (runs of events per entry,
/// `entry`), so engines of another format, sharing a Redis set, call functions of their own.
const BATCH_FUNCTION: &str = "roomstate_batch_runs";

fn unavailable(what: &str, error: impl std::fmt::Display) -> JournalError {
    JournalError::Unavailable(format!("redis {what}: {error}"))
}

/// A re-sent event whose entry is already in the stream.
fn already_stored(error: &redis::RedisError) -> bool {
    error
        .to_string()
        .contains("equal or smaller than the target stream top item")
}
