//! The writer thread's loop: it owns the one write connection, group-commits what the rooms
//! queued (one pipeline: the batch's `FCALL roomstate_batch_runs`, encoded by `batch`, the room
//! index updates, then one `WAIT`), and answers each request. Under load a batch may first wait
//! for more rooms' writes to join it (`commit_delay`, when configured).
//!
//! A batch is acknowledged only when every write succeeded, `WAIT` counted enough replicas, and
//! the fence (`fence`) does not name the primary it was written to: a sentinel announcing a
//! failover of that primary fails the batch even if `WAIT` succeeded, since a replica counted
//! there may be re-pointed and full-resynced a moment later. Any failure drops the connection;
//! the next request resolves the primary again through the sentinels, skipping fenced ones, and
//! checks `ROLE`. Every new connection starts with a repair (`repair`): what was acknowledged in
//! the last seconds (`recent`) and the primary lacks is re-appended before anything new.

use std::{sync::Arc, time::Instant};

use parking_lot::Mutex;
use redis::{aio::MultiplexedConnection, streams::StreamRangeReply, Value};
use roomstate_core::{
    redact,
    room::{ChatMessage, RoomId},
    time,
};
use tokio::sync::{mpsc, oneshot};

use super::{
    batch::{batch_call, room_of, FunctionOp},
    cluster,
    commit_delay::{CommitDelay, Rooms},
    fence::Fences,
    primary,
    recent::Recent,
    recover, repair, unavailable,
    watch::{self, Settings},
    Adopted, Claim, Granted, Keys, Op, RedisJournalConfig, RedisTarget, Request, Status,
    BATCH_FUNCTION, FUNCTIONS, MAX_BATCH_EVENTS, ROOMS_PER_PIPELINE,
};
use crate::{writer, Epoch, JournalError, JournalMetrics, RoomLog};

/// An event a batch appended: kept until the batch is acknowledged, then recorded.
struct Appended {
    room: RoomId,
    seq: u64,
    epoch: Epoch,
    json: String,
}

pub(super) struct Writer {
    config: RedisJournalConfig,
    metrics: JournalMetrics,
    status: Arc<Mutex<Status>>,
    /// The write connection to the current primary; `None` after any failure.
    conn: Option<MultiplexedConnection>,
    /// The address `conn` goes to (a sentinel's `host:port`, or the URL).
    primary: Option<String>,
    /// False during an outage, so it is logged once, not per batch.
    healthy: bool,
    /// With sentinels: the primaries they are replacing.
    fences: Option<Arc<Fences>>,
    /// What was acknowledged in the last seconds.
    recent: Recent,
    /// The current connection has not been repaired yet.
    repair_due: bool,
}

impl Writer {
    pub(super) fn new(
        config: RedisJournalConfig,
        metrics: JournalMetrics,
        status: Arc<Mutex<Status>>,
    ) -> Self {
        let fences = match &config.target {
            RedisTarget::Sentinels { addrs, .. } => Some(Arc::new(Fences::new(addrs.len()))),
            RedisTarget::Url(_) => None,
        };
        Self {
            recent: Recent::new(config.recent),
            config,
            metrics,
            status,
            conn: None,
            primary: None,
            healthy: true,
            fences,
            repair_due: false,
        }
    }

    pub(super) async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Request>) {
        if let (RedisTarget::Sentinels { addrs, master_name }, Some(fences)) =
            (&self.config.target, &self.fences)
        {
            let settings = Settings {
                master: master_name.clone(),
                access: self.config.access.sentinels.clone(),
                connect_timeout: self.config.connect_timeout,
                response_timeout: self.config.response_timeout,
            };
            watch::spawn(addrs, settings, fences);
        }
        let mut delay = CommitDelay::new(self.config.commit_delay);
        while let Some(first) = queue.recv().await {
            if matches!(first, Request::Write { .. }) {
                if let Some(until) = delay.hold_until(Instant::now()) {
                    tokio::time::sleep_until(until.into()).await;
                }
            }
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
                    Request::Messages {
                        room,
                        after,
                        limit,
                        reply,
                    } => {
                        let read = self.messages(&room, after, limit).await;
                        if let Err(error @ JournalError::Unavailable(_)) = &read {
                            self.check_connection(error).await;
                        }
                        let _ = reply.send(read);
                    }
                    Request::Cluster(call) => {
                        let prefix = self.config.key_prefix.clone();
                        match self.connection().await {
                            Ok(conn) => {
                                let keys = Keys { prefix: &prefix };
                                if let Some(error) = cluster::serve(conn, &keys, call).await {
                                    self.check_connection(&error).await;
                                }
                            }
                            Err(error) => {
                                self.fail(&error);
                                cluster::refuse(call, error);
                            }
                        }
                    }
                    Request::Adopt { rooms, node, reply } => {
                        let _ = reply.send(self.adopt(rooms, node).await);
                    }
                }
            }
            if !writes.is_empty() {
                let rooms = Rooms::of(writes.iter().map(|(op, _)| room_of(op)));
                delay.started(Instant::now(), rooms);
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

    /// After a call other than a write failed with `error`: drops the connection if it does not
    /// answer a `PING` either, so the next call connects again. A write drops it on any failure
    /// (`fail`); without this, a connection that died while no write was under way (a primary
    /// restarted in place, `CLIENT KILL`, a reset) failed every heartbeat and message read until
    /// some room wrote, and a cluster node judged dead meanwhile lost its rooms.
    async fn check_connection(&mut self, error: &JournalError) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let pong = redis::cmd("PING").query_async::<String>(conn).await;
        if let Err(ping) = pong {
            tracing::debug!(%error, %ping, "redis journal connection lost; connecting again at the next call");
            self.fail(error);
        }
    }

    /// Why nothing written to the current primary may be acknowledged now, if so.
    fn fenced(&self) -> Option<String> {
        let (fences, primary) = (self.fences.as_ref()?, self.primary.as_ref()?);
        fences.blocks(primary, Instant::now())
    }

    async fn write(
        &mut self,
        writes: Vec<(Op, oneshot::Sender<Result<Granted, JournalError>>)>,
        events: usize,
    ) {
        let started = Instant::now();
        let (ops, replies): (Vec<Op>, Vec<_>) = writes.into_iter().unzip();
        let outcome = self.execute(&ops).await;
        let answers = match outcome {
            Ok((answers, appended)) => {
                if !self.healthy {
                    tracing::info!(redis.primary = ?self.status.lock().primary, "redis journal writing again");
                    self.healthy = true;
                }
                self.metrics
                    .committed(events, started.elapsed().as_secs_f64());
                self.remember(appended, Instant::now());
                answers
            }
            Err(error) => {
                self.fail(&error);
                self.metrics.failures.inc();
                vec![Err(error); ops.len()]
            }
        };
        // Whatever became of the batch, a room whose log is being deleted has its final record
        // in the store: its events must never be re-appended.
        for op in &ops {
            if let Op::Delete(_, room) = op {
                self.recent.forget(room);
            }
        }
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }

    /// Records an acknowledged batch's events; counts those the record's bounds pushed out early.
    fn remember(&mut self, appended: Vec<Appended>, at: Instant) {
        let (mut by_count, mut by_bytes) = (0, 0);
        for event in appended {
            let evicted = self
                .recent
                .record(&event.room, event.seq, event.epoch, event.json, at);
            by_count += evicted.by_count;
            by_bytes += evicted.by_bytes;
        }
        if by_count > 0 {
            self.metrics
                .recent_evictions
                .with_label_values(&["count"])
                .inc_by(by_count);
        }
        if by_bytes > 0 {
            self.metrics
                .recent_evictions
                .with_label_values(&["bytes"])
                .inc_by(by_bytes);
        }
    }

    /// Runs every op as one `FCALL roomstate_batch_runs` (plus the room index updates) and one
    /// `WAIT`, in one pipeline. `Ok`: one answer per op (the function refuses a room on its own:
    /// another owner, a conflict, a gap) and the events appended, for the record; `Err`: nothing
    /// may be acknowledged.
    async fn execute(
        &mut self,
        ops: &[Op],
    ) -> Result<(Vec<Result<Granted, JournalError>>, Vec<Appended>), JournalError> {
        let min_acks = self.config.min_replica_acks;
        let wait_ms = self.config.wait_timeout.as_millis() as u64;
        let call = batch_call(&self.keys(), ops)?;
        let conn = self.connection().await?;
        if call.checks > 0 {
            check_replicas(conn, min_acks).await?;
        }
        let mut answers: Vec<Result<Granted, JournalError>> = vec![Ok(None); ops.len()];
        if call.function_ops.is_empty() {
            return Ok((answers, Vec::new()));
        }
        let mut pipe = redis::pipe();
        pipe.add_command(call.fcall);
        for index in &call.index {
            pipe.add_command(index.clone()).ignore();
        }
        if min_acks > 0 {
            pipe.cmd("WAIT").arg(min_acks).arg(wait_ms);
        }
        let replies: Vec<Value> = match pipe.query_async(conn).await {
            Ok(replies) => replies,
            Err(e) if e.to_string().contains("Function not found") => {
                // A primary without the library (e.g. restarted empty): load it on the next
                // connection, and retry.
                self.conn = None;
                return Err(unavailable("write", e));
            }
            Err(e) => return Err(unavailable("write", e)),
        };
        let mut replies = replies.into_iter();
        let refusals: Vec<String> = replies
            .next()
            .map(redis::from_redis_value)
            .transpose()
            .map_err(|e| unavailable("batch function reply", e))?
            .unwrap_or_default();
        if refusals.len() != call.function_ops.len() {
            return Err(unavailable(
                BATCH_FUNCTION,
                format!(
                    "{} answers for {} rooms",
                    refusals.len(),
                    call.function_ops.len()
                ),
            ));
        }
        if min_acks > 0 {
            let acked: i64 = replies
                .next()
                .map(redis::from_redis_value)
                .transpose()
                .map_err(|e| unavailable("WAIT reply", e))?
                .unwrap_or(0);
            if acked < i64::from(min_acks) {
                return Err(JournalError::Unavailable(format!(
                    "only {acked} of {min_acks} replicas acknowledged the batch within {wait_ms} ms"
                )));
            }
        }
        // Checked last, right before the answer: a failover announced while the batch was in
        // flight means the replica that WAIT counted may be about to drop it.
        if let Some(reason) = self.fenced() {
            return Err(JournalError::Unavailable(reason));
        }
        let mut appended = Vec::new();
        let mut deleted = Vec::new();
        for (FunctionOp { op, events_json }, answer) in call.function_ops.into_iter().zip(refusals)
        {
            let room = room_of(&ops[op]).unwrap_or_default();
            if let Some(epoch) = answer.strip_prefix("OK ") {
                answers[op] = epoch.parse().map(|e| Some(Epoch(e))).map_err(|_| {
                    JournalError::Corrupt(format!("room {room}: claim answered {answer:?}"))
                });
                continue;
            }
            if answer == "OK" {
                match &ops[op] {
                    Op::Append(epoch, events) => {
                        // Recorded as it was sent.
                        let sent = events.iter().zip(events_json);
                        appended.extend(sent.map(|(e, json)| Appended {
                            room: e.room.clone(),
                            seq: e.seq,
                            epoch: *epoch,
                            json,
                        }));
                    }
                    Op::Delete(_, room) => deleted.push(room.as_str()),
                    _ => {}
                }
                continue;
            }
            answers[op] = Err(refusal(room, &answer));
        }
        self.unindex(&deleted).await;
        Ok((answers, appended))
    }

    /// Drops rooms whose logs the function deleted from the index. Only those: a delete it
    /// refused (the room has another owner) leaves the room listed for that owner's takeovers.
    /// A failure only leaves an entry with no log, which recovery leaves out.
    async fn unindex(&mut self, rooms: &[&str]) {
        if rooms.is_empty() {
            return;
        }
        let mut srem = redis::cmd("SREM");
        srem.arg(self.keys().rooms()).arg(rooms);
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if let Err(error) = srem.query_async::<()>(conn).await {
            tracing::warn!(rooms = ?rooms, %error, "deleted rooms not dropped from the index");
        }
    }

    /// The connection to the primary, (re)connecting through the sentinels when there is none
    /// or the current one is fenced, and repairing a new one before it is used.
    async fn connection(&mut self) -> Result<&mut MultiplexedConnection, JournalError> {
        if self.conn.is_some() && self.fenced().is_some() {
            // Not an error yet: the sentinels may already name the successor.
            self.conn = None;
        }
        if self.conn.is_none() {
            let (addr, mut conn) = self.connect_primary().await?;
            load_functions(&mut conn, &addr).await?;
            self.note_primary(&addr);
            if let Some(fences) = &self.fences {
                fences.connected(&addr);
            }
            self.primary = Some(addr);
            self.conn = Some(conn);
            self.repair_due = !self.recent.is_empty();
        }
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| JournalError::Unavailable("no redis connection".into()))?;
        if self.repair_due {
            let target = repair::Target {
                conn: &mut *conn,
                primary: self.primary.as_deref().unwrap_or_default(),
                keys: Keys {
                    prefix: &self.config.key_prefix,
                },
                min_acks: self.config.min_replica_acks,
                wait_ms: self.config.wait_timeout.as_millis() as u64,
            };
            repair::run(target, &mut self.recent, &self.metrics).await?;
            self.repair_due = false;
        }
        Ok(conn)
    }

    async fn connect_primary(&self) -> Result<(String, MultiplexedConnection), JournalError> {
        let timeouts = primary::Timeouts {
            connect: self.config.connect_timeout,
            response: self.config.response_timeout,
        };
        primary::connect(&self.config, timeouts, self.fences.as_deref()).await
    }

    /// Logs and counts a switch to a new primary.
    fn note_primary(&self, addr: &str) {
        let shown = redact::url(addr);
        let mut status = self.status.lock();
        match &status.primary {
            Some(old) if *old == shown => {}
            Some(old) => {
                tracing::warn!(redis.primary = %shown, redis.previous = %old, "switched to a new redis primary");
                self.metrics.failovers.inc();
                status.failovers += 1;
                status.last_failover = Some(time::now());
                status.primary = Some(shown);
            }
            None => {
                tracing::info!(redis.primary = %shown, "connected to the redis primary");
                status.primary = Some(shown);
            }
        }
    }

    /// Up to `limit` archived messages of `room` with `seq > after`, oldest first.
    async fn messages(
        &mut self,
        room: &RoomId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, JournalError> {
        let key = self.keys().msgs(room.as_str());
        let conn = self.connection().await?;
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg(format!("{}-0", after.saturating_add(1)))
            .arg("+")
            .arg("COUNT")
            .arg(limit.min(crate::MESSAGES_PER_READ))
            .query_async(conn)
            .await
            .map_err(|e| unavailable("reading messages", e))?;
        reply
            .ids
            .into_iter()
            .map(|entry| {
                let json: String = entry
                    .map
                    .get("m")
                    .cloned()
                    .map(redis::from_redis_value)
                    .transpose()
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        JournalError::Corrupt(format!(
                            "room {room}: message {} unreadable",
                            entry.id
                        ))
                    })?;
                serde_json::from_str(&json).map_err(|e| {
                    JournalError::Corrupt(format!(
                        "room {room}: message {} undecodable: {e}",
                        entry.id
                    ))
                })
            })
            .collect()
    }

    async fn recover(&mut self) -> Result<Vec<RoomLog>, JournalError> {
        let started = Instant::now();
        let prefix = self.config.key_prefix.clone();
        let min_acks = self.config.min_replica_acks;
        let wait_ms = self.config.wait_timeout.as_millis() as u64;
        let result = self.claim_and_read(&prefix, min_acks, wait_ms).await;
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
}

impl Writer {
    /// Claims `rooms` for `node` from the epochs given, then reads those won.
    async fn adopt(
        &mut self,
        rooms: Vec<(RoomId, Epoch)>,
        node: String,
    ) -> Result<Vec<Adopted>, JournalError> {
        let mut adopted = Vec::with_capacity(rooms.len());
        let mut won = Vec::new();
        for chunk in rooms.chunks(ROOMS_PER_PIPELINE) {
            let claims: Vec<Op> = chunk
                .iter()
                .map(|(room, seen)| {
                    Op::Claim(Claim {
                        room: room.clone(),
                        seen: Some(*seen),
                        node: node.clone(),
                        new: false,
                    })
                })
                .collect();
            let (answers, _) = match self.execute(&claims).await {
                Ok(answers) => answers,
                Err(error) => {
                    self.fail(&error);
                    return Err(error);
                }
            };
            for ((room, _), answer) in chunk.iter().zip(answers) {
                match answer {
                    Ok(Some(epoch)) => won.push((room.as_str().to_owned(), epoch)),
                    Ok(None) => adopted.push(Adopted::Lost {
                        room: room.clone(),
                        why: "the claim answered no epoch".into(),
                    }),
                    Err(JournalError::Unavailable(e)) => return Err(JournalError::Unavailable(e)),
                    Err(error) => adopted.push(Adopted::Lost {
                        room: room.clone(),
                        why: error.to_string(),
                    }),
                }
            }
        }
        let prefix = self.config.key_prefix.clone();
        let conn = self.connection().await?;
        let logs = recover::read_rooms(conn, &Keys { prefix: &prefix }, &won).await;
        let logs = match logs {
            Ok(logs) => logs,
            Err(error) => {
                self.fail(&error);
                return Err(error);
            }
        };
        adopted.extend(logs.into_iter().map(Adopted::Won));
        Ok(adopted)
    }

    /// Recovery: confirms the primary, claims every open room for this engine (so whoever wrote
    /// them before is fenced off from now on), then reads them. A room whose log is gone by the
    /// time of the claim (closed meanwhile) is left out.
    async fn claim_and_read(
        &mut self,
        prefix: &str,
        min_acks: u32,
        wait_ms: u64,
    ) -> Result<Vec<RoomLog>, JournalError> {
        let started = Instant::now();
        let keys = Keys { prefix };
        let conn = self.connection().await?;
        confirm_primary(conn, &keys, min_acks, wait_ms).await?;
        let rooms = recover::list_rooms(conn, &keys).await?;
        let mut claimed = Vec::with_capacity(rooms.len());
        for chunk in rooms.chunks(ROOMS_PER_PIPELINE) {
            let claims: Vec<Op> = chunk
                .iter()
                .filter_map(|room| RoomId::parse(room).ok())
                .map(|room| {
                    Op::Claim(Claim {
                        room,
                        seen: None,
                        node: self.config.node.clone(),
                        new: false,
                    })
                })
                .collect();
            let (answers, _) = self.execute(&claims).await?;
            for (op, answer) in claims.iter().zip(answers) {
                let Op::Claim(claim) = op else { continue };
                match answer {
                    Ok(Some(epoch)) => claimed.push((claim.room.as_str().to_owned(), epoch)),
                    Ok(None) => {}
                    Err(JournalError::Unavailable(e)) => return Err(JournalError::Unavailable(e)),
                    Err(error) => {
                        tracing::info!(room.id = %claim.room, %error, "room not claimed at recovery");
                    }
                }
            }
        }
        tracing::info!(
            recover.rooms = claimed.len(),
            recover.seconds = started.elapsed().as_secs_f64(),
            "redis journal rooms claimed"
        );
        let conn = self.connection().await?;
        recover::read_rooms(conn, &Keys { prefix }, &claimed).await
    }
}

/// What the function's refusal of one room means.
fn refusal(room: &str, answer: &str) -> JournalError {
    match answer.split_once(' ') {
        Some(("STALE", owner)) => {
            JournalError::Fenced(format!("room {room}: the lease is now {owner}"))
        }
        Some(("CONFLICT", seq)) => JournalError::Corrupt(format!(
            "room {room}: seq {seq} is stored with other content than was sent"
        )),
        Some(("GAP", next)) => {
            JournalError::Corrupt(format!("room {room}: the log expects seq {next} next"))
        }
        None if answer == "GONE" => {
            JournalError::Corrupt(format!("room {room}: has no log (it was closed)"))
        }
        None if answer == "EXISTS" => JournalError::Corrupt(format!("room {room}: exists already")),
        _ => JournalError::Corrupt(format!("room {room}: unexpected answer {answer:?}")),
    }
}

/// Loads (or replaces) the journal's function library on a new connection: a new primary after
/// a failover may have none, or an older version.
async fn load_functions(conn: &mut MultiplexedConnection, addr: &str) -> Result<(), JournalError> {
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(FUNCTIONS)
        .query_async::<String>(conn)
        .await
        .map(drop)
        .map_err(|e| {
            unavailable(
                &format!(
                    "FUNCTION LOAD on {} (Redis 7 or newer is needed)",
                    redact::url(addr)
                ),
                e,
            )
        })
}

/// Before recovery trusts what it reads: the same replicated write and `WAIT` a batch makes. A
/// deposed primary that still answers reads (or one cut off from its replicas) fails here
/// instead of handing back a log that is no longer the truth.
async fn confirm_primary(
    conn: &mut MultiplexedConnection,
    keys: &Keys<'_>,
    min_acks: u32,
    wait_ms: u64,
) -> Result<(), JournalError> {
    // A write that leaves nothing behind: set and delete a probe key.
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg(keys.recovery_probe()).arg(1).ignore();
    pipe.cmd("DEL").arg(keys.recovery_probe()).ignore();
    if min_acks > 0 {
        pipe.cmd("WAIT").arg(min_acks).arg(wait_ms);
    }
    let replies: Vec<i64> = pipe
        .query_async(conn)
        .await
        .map_err(|e| unavailable("recovery's confirming write", e))?;
    let acked = replies.first().copied().unwrap_or(0);
    if min_acks > 0 && acked < i64::from(min_acks) {
        return Err(JournalError::Unavailable(format!(
            "only {acked} of {min_acks} replicas took recovery's confirming write within {wait_ms} ms"
        )));
    }
    Ok(())
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
