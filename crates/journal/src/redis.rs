//! The production journal: Redis, standalone (`redis.url`) or found through sentinels
//! (`redis.sentinels` + `redis.master_name`), made durable on replicas with `WAIT`.
//!
//! One writer thread owns the one write connection (`WAIT` blocks a connection and covers every
//! earlier write on it). It group-commits whatever rooms have queued: one pipeline with an `XADD`
//! per event, then one `WAIT min_replica_acks`. A batch is acknowledged only if the pipeline
//! succeeded AND enough replicas hold it; on any error, timeout, `READONLY`, `NOREPLICAS` or a
//! short `WAIT`, the batch fails (nothing is acknowledged), the connection is dropped, and the
//! next batch asks the sentinels for the primary again — redis-rs does not follow a failover by
//! itself. Rooms re-send failed events; appends are idempotent by seq, so a re-send after an
//! unclear failure never duplicates.
//!
//! Keys, all of one room under one hash tag (so they share a slot under Redis Cluster):
//! `roomstate:{<room>}:log` (stream, entry id `<seq>-0`, field `e` = event JSON) and
//! `roomstate:{<room>}:snap` (snapshot JSON); and the set `roomstate:rooms` of open rooms.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use redis::{aio::MultiplexedConnection, streams::StreamRangeReply, AsyncConnectionConfig, Value};
use roomstate_core::{
    redact,
    room::{Event, RoomId, Snapshot},
    time::{self, Timestamp},
};
use tokio::sync::{mpsc, oneshot};

use super::{
    sentinel,
    writer::{self, WriterThread},
    Journal, JournalError, JournalFuture, JournalMetrics, JournalStatus, RoomLog,
};

/// A batch stops taking queued requests at this many events, so one pipeline stays short.
const MAX_BATCH_EVENTS: usize = 8192;
/// Rooms read per pipeline at recovery.
const RECOVER_CHUNK: usize = 256;
const WRITER_THREAD: &str = "roomstate-redis-journal";

/// Where the primary is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// A plain Redis, e.g. `redis://127.0.0.1:6379`.
    Url(String),
    /// Ask these sentinels (`host:port`) for the primary named `master_name`.
    Sentinels {
        addrs: Vec<String>,
        master_name: String,
    },
}

/// How to reach Redis and what durable means.
#[derive(Debug, Clone)]
pub struct RedisJournalConfig {
    pub target: RedisTarget,
    /// Replicas that must hold a batch (`WAIT`) before it is acknowledged; 0 skips `WAIT`.
    pub min_replica_acks: u32,
    /// How long `WAIT` waits for the replicas.
    pub wait_timeout: Duration,
    /// How long any reply may take (above `wait_timeout`, so `WAIT` itself never times out).
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
    /// Prefix of every key.
    pub key_prefix: String,
}

impl RedisJournalConfig {
    /// The defaults for a target: a 1 s `WAIT`, 2 s replies, 500 ms connects.
    pub fn new(target: RedisTarget, min_replica_acks: u32) -> Self {
        Self {
            target,
            min_replica_acks,
            wait_timeout: Duration::from_millis(1000),
            response_timeout: Duration::from_millis(2000),
            connect_timeout: Duration::from_millis(500),
            key_prefix: "roomstate".into(),
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
    /// Starts the writer thread. Connecting happens on first use, so the engine can report a
    /// Redis outage (503, /readyz) instead of refusing to start.
    pub fn open(config: RedisJournalConfig, metrics: JournalMetrics) -> Result<Self, JournalError> {
        let status = Arc::new(Mutex::new(Status::default()));
        let describe = match &config.target {
            RedisTarget::Url(url) => redact::url(url),
            RedisTarget::Sentinels { addrs, master_name } => {
                format!("sentinels {} ({master_name})", addrs.join(","))
            }
        };
        let (requests, queue) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| JournalError::Unavailable(format!("cannot start a runtime: {e}")))?;
        let writer = Writer {
            config,
            metrics,
            status: status.clone(),
            conn: None,
            healthy: true,
        };
        let handle = std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || runtime.block_on(writer.run(queue)))
            .map_err(|e| JournalError::Unavailable(format!("cannot start journal thread: {e}")))?;
        tracing::info!(redis.target = %describe, "redis journal started");
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
        writer::answer(sent.is_ok(), answer, WRITER_THREAD)
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
        writer::answer(sent.is_ok(), answer, WRITER_THREAD)
    }

    fn delete_room(&self, room: RoomId) -> JournalFuture<()> {
        self.submit(Op::Delete(room))
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
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> JournalError {
    JournalError::Unavailable(format!("redis {what}: {error}"))
}

struct Writer {
    config: RedisJournalConfig,
    metrics: JournalMetrics,
    status: Arc<Mutex<Status>>,
    /// The write connection to the current primary; `None` after any failure.
    conn: Option<MultiplexedConnection>,
    /// False during an outage, so it is logged once, not per batch.
    healthy: bool,
}

impl Writer {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Request>) {
        while let Some(first) = queue.recv().await {
            let (batch, events) = writer::gather(
                first,
                || queue.try_recv().ok(),
                Request::events,
                MAX_BATCH_EVENTS,
            );
            let mut writes = Vec::new();
            for request in batch {
                match request {
                    Request::Write { op, reply } => writes.push((op, reply)),
                    Request::Recover { reply } => {
                        let _ = reply.send(self.recover().await);
                    }
                }
            }
            if !writes.is_empty() {
                self.write(writes, events).await;
            }
        }
        tracing::debug!("redis journal writer stopped");
    }

    fn keys(&self) -> Keys<'_> {
        Keys {
            prefix: &self.config.key_prefix,
        }
    }

    fn fail(&mut self, error: &JournalError) {
        self.conn = None;
        if self.healthy {
            tracing::warn!(redis.primary = ?self.status.lock().primary, %error,
                "redis journal cannot write; re-resolving the primary on the next batch");
            self.healthy = false;
        }
    }

    async fn write(
        &mut self,
        writes: Vec<(Op, oneshot::Sender<Result<(), JournalError>>)>,
        events: usize,
    ) {
        let started = Instant::now();
        let (ops, replies): (Vec<Op>, Vec<_>) = writes.into_iter().unzip();
        let outcome = self.execute(&ops).await;
        let answers = match outcome {
            Ok(answers) => {
                if !self.healthy {
                    tracing::info!(redis.primary = ?self.status.lock().primary, "redis journal writing again");
                    self.healthy = true;
                }
                self.metrics
                    .committed(events, started.elapsed().as_secs_f64());
                answers
            }
            Err(error) => {
                self.fail(&error);
                self.metrics.failures.inc();
                vec![Err(error); ops.len()]
            }
        };
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }

    /// Runs every op in one pipeline plus one `WAIT`. `Err`: nothing may be acknowledged.
    async fn execute(&mut self, ops: &[Op]) -> Result<Vec<Result<(), JournalError>>, JournalError> {
        let min_acks = self.config.min_replica_acks;
        let wait_ms = self.config.wait_timeout.as_millis() as u64;
        // Every reply is checked, so errors come back per command instead of failing the read.
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut appends = Vec::new();
        let mut checks = Vec::new();
        {
            let keys = self.keys();
            for (request, op) in ops.iter().enumerate() {
                match op {
                    Op::Append(events) => {
                        for event in events {
                            let room = event.room.as_str();
                            let json = serde_json::to_string(event).map_err(|e| {
                                JournalError::Corrupt(format!(
                                    "room {room}: event not encodable: {e}"
                                ))
                            })?;
                            // The entry id is the seq: re-sending a stored event fails harmlessly
                            // ("equal or smaller than the target stream top item"), also after
                            // the entry was trimmed (a stream keeps its last id).
                            pipe.cmd("XADD")
                                .arg(keys.log(room))
                                .arg(format!("{}-0", event.seq))
                                .arg("e")
                                .arg(json);
                            appends.push(Some(request));
                            if event.seq == 1 {
                                pipe.cmd("SADD").arg(keys.rooms()).arg(room);
                                appends.push(None);
                            }
                        }
                    }
                    Op::Snapshot(snapshot) => {
                        let room = snapshot.room.as_str();
                        let json = serde_json::to_string(snapshot).map_err(|e| {
                            JournalError::Corrupt(format!(
                                "room {room}: snapshot not encodable: {e}"
                            ))
                        })?;
                        pipe.cmd("SET").arg(keys.snap(room)).arg(json);
                        pipe.cmd("XTRIM")
                            .arg(keys.log(room))
                            .arg("MINID")
                            .arg(format!("{}-0", snapshot.seq + 1));
                        appends.extend([None, None]);
                    }
                    Op::Delete(room) => {
                        let room = room.as_str();
                        pipe.cmd("DEL").arg(keys.log(room)).arg(keys.snap(room));
                        pipe.cmd("SREM").arg(keys.rooms()).arg(room);
                        appends.extend([None, None]);
                    }
                    Op::Check => checks.push(request),
                }
            }
        }
        let answers = vec![Ok(()); ops.len()];
        let writes = ops.len() > checks.len();
        if writes && min_acks > 0 {
            pipe.cmd("WAIT").arg(min_acks).arg(wait_ms);
        }
        let conn = self.connection().await?;
        if !checks.is_empty() {
            check_replicas(conn, min_acks).await?;
        }
        if !writes {
            return Ok(answers);
        }
        let mut replies: Vec<redis::RedisResult<Value>> = pipe
            .query_async(conn)
            .await
            .map_err(|e| unavailable("write", e))?;
        if min_acks > 0 {
            let acked = match replies.pop() {
                Some(Ok(reply)) => redis::from_redis_value::<i64>(reply)
                    .map_err(|e| unavailable("WAIT reply", e))?,
                Some(Err(e)) => return Err(unavailable("WAIT", e)),
                None => 0,
            };
            if acked < i64::from(min_acks) {
                return Err(JournalError::Unavailable(format!(
                    "only {acked} of {min_acks} replicas acknowledged the batch within {wait_ms} ms"
                )));
            }
        }
        // Any failed write (READONLY, NOREPLICAS, OOM, ...) fails the batch; a re-sent event that
        // is already stored is the one harmless error.
        for (append, reply) in appends.into_iter().zip(replies) {
            match reply {
                Ok(_) => {}
                Err(e) if append.is_some() && already_stored(&e) => {}
                Err(e) => return Err(unavailable("write", e)),
            }
        }
        Ok(answers)
    }

    /// The connection to the primary, (re)connecting through the sentinels when there is none.
    async fn connection(&mut self) -> Result<&mut MultiplexedConnection, JournalError> {
        if self.conn.is_none() {
            let (addr, conn) = self.connect_primary().await?;
            self.note_primary(addr);
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| JournalError::Unavailable("no redis connection".into()))
    }

    fn connection_config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout))
            .set_response_timeout(Some(self.config.response_timeout))
    }

    async fn connect_primary(&self) -> Result<(String, MultiplexedConnection), JournalError> {
        let candidates = match &self.config.target {
            RedisTarget::Url(url) => vec![url.clone()],
            RedisTarget::Sentinels { addrs, master_name } => {
                sentinel::primary_candidates(addrs, master_name, &self.connection_config()).await?
            }
        };
        let mut last_error = JournalError::Unavailable("no primary candidate".into());
        for candidate in candidates {
            match self.connect_checked(&candidate).await {
                Ok(conn) => return Ok((candidate, conn)),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// Connects to `target` (a URL or `host:port`) and checks that it is a primary.
    async fn connect_checked(&self, target: &str) -> Result<MultiplexedConnection, JournalError> {
        let url = if target.contains("://") {
            target.to_owned()
        } else {
            format!("redis://{target}")
        };
        let shown = redact::url(&url);
        let client = redis::Client::open(url.as_str()).map_err(|e| unavailable(&shown, e))?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&self.connection_config())
            .await
            .map_err(|e| unavailable(&format!("connect {shown}"), e))?;
        let role: Vec<Value> = redis::cmd("ROLE")
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&format!("ROLE on {shown}"), e))?;
        let role: String = role
            .into_iter()
            .next()
            .map(redis::from_redis_value)
            .transpose()
            .map_err(|e| unavailable("ROLE reply", e))?
            .unwrap_or_default();
        if role != "master" {
            return Err(JournalError::Unavailable(format!(
                "{shown} is a {role}, not the primary (a failover may be under way)"
            )));
        }
        Ok(conn)
    }

    fn note_primary(&self, addr: String) {
        let mut status = self.status.lock();
        match &status.primary {
            Some(old) if *old == addr => {}
            Some(old) => {
                tracing::warn!(redis.primary = %addr, redis.previous = %old, "switched to a new redis primary");
                self.metrics.failovers.inc();
                status.failovers += 1;
                status.last_failover = Some(time::now());
                status.primary = Some(addr);
            }
            None => {
                tracing::info!(redis.primary = %redact::url(&addr), "connected to the redis primary");
                status.primary = Some(redact::url(&addr));
            }
        }
    }

    async fn recover(&mut self) -> Result<Vec<RoomLog>, JournalError> {
        let started = Instant::now();
        let result = self.read_all().await;
        match &result {
            Ok(logs) => tracing::info!(
                recover.rooms = logs.len(),
                recover.seconds = started.elapsed().as_secs_f64(),
                "redis journal read"
            ),
            Err(error) => self.fail(error),
        }
        result
    }

    async fn read_all(&mut self) -> Result<Vec<RoomLog>, JournalError> {
        let rooms_key = self.keys().rooms();
        let mut rooms: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&rooms_key)
            .query_async(self.connection().await?)
            .await
            .map_err(|e| unavailable("recover", e))?;
        rooms.sort();
        let mut logs = Vec::with_capacity(rooms.len());
        for chunk in rooms.chunks(RECOVER_CHUNK) {
            let mut pipe = redis::pipe();
            {
                let keys = self.keys();
                for room in chunk {
                    pipe.cmd("GET").arg(keys.snap(room));
                    pipe.cmd("XRANGE").arg(keys.log(room)).arg("-").arg("+");
                }
            }
            let replies: Vec<Value> = pipe
                .query_async(self.connection().await?)
                .await
                .map_err(|e| unavailable("recover", e))?;
            let mut replies = replies.into_iter();
            for room in chunk {
                let (Some(snap), Some(log)) = (replies.next(), replies.next()) else {
                    return Err(unavailable("recover", "short pipeline reply"));
                };
                if let Some(log) = parse_room(room, snap, log)? {
                    logs.push(log);
                }
            }
        }
        Ok(logs)
    }
}

/// One room's snapshot and stream, checked for gaps. `None` for a room registered in the set
/// with no log at all (its creation never became durable, or its close was cut short).
fn parse_room(room: &str, snap: Value, log: Value) -> Result<Option<RoomLog>, JournalError> {
    let corrupt = |what: String| JournalError::Corrupt(format!("room {room}: {what}"));
    let id = RoomId::parse(room).map_err(|e| corrupt(format!("bad room id: {e}")))?;
    let snapshot: Option<String> =
        redis::from_redis_value(snap).map_err(|e| corrupt(format!("snapshot: {e}")))?;
    let snapshot = snapshot
        .map(|json| serde_json::from_str::<Snapshot>(&json))
        .transpose()
        .map_err(|e| corrupt(format!("undecodable snapshot: {e}")))?;
    let entries: StreamRangeReply =
        redis::from_redis_value(log).map_err(|e| corrupt(format!("log: {e}")))?;
    let mut next = snapshot.as_ref().map_or(1, |s| s.seq + 1);
    let mut events = Vec::with_capacity(entries.ids.len());
    for entry in entries.ids {
        let seq: u64 = entry
            .id
            .split('-')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt(format!("bad entry id {}", entry.id)))?;
        if seq < next {
            continue; // covered by the snapshot, not trimmed yet
        }
        if seq > next {
            return Err(corrupt(format!("gap: seq {next} expected, found {seq}")));
        }
        let json: String = entry
            .map
            .get("e")
            .cloned()
            .map(redis::from_redis_value)
            .transpose()
            .map_err(|e| corrupt(format!("seq {seq}: {e}")))?
            .ok_or_else(|| corrupt(format!("seq {seq}: no event field")))?;
        let event: Event = serde_json::from_str(&json)
            .map_err(|e| corrupt(format!("seq {seq}: undecodable event: {e}")))?;
        if event.seq != seq || event.room != id {
            return Err(corrupt(format!(
                "seq {seq}: entry holds {} seq {}",
                event.room, event.seq
            )));
        }
        events.push(event);
        next += 1;
    }
    if snapshot.is_none() && events.is_empty() {
        tracing::info!(room.id = %room, "room registered without a log; skipping it");
        return Ok(None);
    }
    Ok(Some(RoomLog {
        room: id,
        snapshot,
        events,
    }))
}

/// Checks the primary has the replicas a write needs (for /readyz).
async fn check_replicas(
    conn: &mut MultiplexedConnection,
    min_acks: u32,
) -> Result<(), JournalError> {
    let role: Vec<Value> = redis::cmd("ROLE")
        .query_async(conn)
        .await
        .map_err(|e| unavailable("ROLE", e))?;
    let replicas = match role.get(2) {
        Some(Value::Array(list)) => list.len(),
        _ => 0,
    };
    if replicas < min_acks as usize {
        return Err(JournalError::Unavailable(format!(
            "the primary has {replicas} replicas; {min_acks} must acknowledge each batch"
        )));
    }
    Ok(())
}

/// A re-sent event whose entry is already in the stream.
fn already_stored(error: &redis::RedisError) -> bool {
    error
        .to_string()
        .contains("equal or smaller than the target stream top item")
}
