//! The writer thread's loop: it owns the one write connection, group-commits what the rooms
//! queued (one pipeline with an `XADD` per event, then one `WAIT`), and answers each request.
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
use redis::{aio::MultiplexedConnection, AsyncConnectionConfig, Value};
use roomstate_core::{
    redact,
    room::{RoomId, Snapshot},
    time,
};
use tokio::sync::{mpsc, oneshot};

use super::{
    already_stored,
    fence::Fences,
    recent::Recent,
    recover, repair, unavailable,
    watch::{self, Settings},
    Keys, Op, RedisJournalConfig, RedisTarget, Request, Status, MAX_BATCH_EVENTS,
};
use crate::{sentinel, writer, JournalError, JournalMetrics, RoomLog};

/// An event a batch appended: kept until the batch is acknowledged, then recorded.
struct Appended {
    room: RoomId,
    seq: u64,
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

    /// Why nothing written to the current primary may be acknowledged now, if so.
    fn fenced(&self) -> Option<String> {
        let (fences, primary) = (self.fences.as_ref()?, self.primary.as_ref()?);
        fences.blocks(primary, Instant::now())
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
            Ok(appended) => {
                if !self.healthy {
                    tracing::info!(redis.primary = ?self.status.lock().primary, "redis journal writing again");
                    self.healthy = true;
                }
                self.metrics
                    .committed(events, started.elapsed().as_secs_f64());
                self.remember(appended, Instant::now());
                vec![Ok(()); ops.len()]
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
            if let Op::Delete(room) = op {
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
            let evicted = self.recent.record(&event.room, event.seq, event.json, at);
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

    /// Runs every op in one pipeline plus one `WAIT`. `Ok`: the events appended, for the record;
    /// `Err`: nothing may be acknowledged.
    async fn execute(&mut self, ops: &[Op]) -> Result<Vec<Appended>, JournalError> {
        let min_acks = self.config.min_replica_acks;
        let wait_ms = self.config.wait_timeout.as_millis() as u64;
        // Every reply is checked, so errors come back per command instead of failing the read.
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        // Per command: is it an event's XADD (whose "already stored" error is harmless)?
        let mut is_append = Vec::new();
        let mut appended = Vec::new();
        let mut checks = 0;
        {
            let keys = self.keys();
            for op in ops {
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
                                .arg(&json);
                            is_append.push(true);
                            if event.seq == 1 {
                                pipe.cmd("SADD").arg(keys.rooms()).arg(room);
                                is_append.push(false);
                            }
                            appended.push(Appended {
                                room: event.room.clone(),
                                seq: event.seq,
                                json,
                            });
                        }
                    }
                    Op::Snapshot(snapshot) => {
                        snapshot_commands(&mut pipe, &keys, snapshot)?;
                        is_append.extend([false, false]);
                    }
                    Op::Delete(room) => {
                        let room = room.as_str();
                        pipe.cmd("DEL").arg(keys.log(room)).arg(keys.snap(room));
                        pipe.cmd("SREM").arg(keys.rooms()).arg(room);
                        is_append.extend([false, false]);
                    }
                    Op::Check => checks += 1,
                }
            }
        }
        let writes = ops.len() > checks;
        if writes && min_acks > 0 {
            pipe.cmd("WAIT").arg(min_acks).arg(wait_ms);
        }
        let conn = self.connection().await?;
        if checks > 0 {
            check_replicas(conn, min_acks).await?;
        }
        if writes {
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
            // Any failed write (READONLY, NOREPLICAS, OOM, ...) fails the batch; a re-sent event
            // that is already stored is the one harmless error.
            for (append, reply) in is_append.into_iter().zip(replies) {
                match reply {
                    Ok(_) => {}
                    Err(e) if append && already_stored(&e) => {}
                    Err(e) => return Err(unavailable("write", e)),
                }
            }
        }
        // Checked last, right before the answer: a failover announced while the batch was in
        // flight means the replica that WAIT counted may be about to drop it.
        if let Some(reason) = self.fenced() {
            return Err(JournalError::Unavailable(reason));
        }
        Ok(appended)
    }

    /// The connection to the primary, (re)connecting through the sentinels when there is none
    /// or the current one is fenced, and repairing a new one before it is used.
    async fn connection(&mut self) -> Result<&mut MultiplexedConnection, JournalError> {
        if self.conn.is_some() && self.fenced().is_some() {
            // Not an error yet: the sentinels may already name the successor.
            self.conn = None;
        }
        if self.conn.is_none() {
            let (addr, conn) = self.connect_primary().await?;
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
            repair::run(target, &self.recent, &self.metrics).await?;
            self.repair_due = false;
        }
        Ok(conn)
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
                sentinel::primary_candidates_via(
                    &self.config.access.sentinels,
                    addrs,
                    master_name,
                    &self.connection_config(),
                )
                .await?
            }
        };
        let mut last_error = JournalError::Unavailable("no primary candidate".into());
        for candidate in candidates {
            let fenced = self
                .fences
                .as_ref()
                .and_then(|f| f.blocks(&candidate, Instant::now()));
            if let Some(reason) = fenced {
                last_error = JournalError::Unavailable(reason);
                continue;
            }
            match self.connect_checked(&candidate).await {
                Ok(conn) => return Ok((candidate, conn)),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// Connects to `target` (a URL or `host:port`) with the servers' credentials and TLS, and
    /// checks that it is a primary.
    async fn connect_checked(&self, target: &str) -> Result<MultiplexedConnection, JournalError> {
        let access = &self.config.access.servers;
        let shown = redact::url(target);
        let mut conn = access
            .connect(target, &self.connection_config())
            .await
            .map_err(|e| unavailable(&format!("connect {shown}"), e))?;
        let role: Vec<Value> = redis::cmd("ROLE")
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&format!("ROLE on {shown}"), access.describe(&e)))?;
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

    async fn recover(&mut self) -> Result<Vec<RoomLog>, JournalError> {
        let started = Instant::now();
        let prefix = self.config.key_prefix.clone();
        let result = match self.connection().await {
            Ok(conn) => recover::read_all(conn, &Keys { prefix: &prefix }).await,
            Err(error) => Err(error),
        };
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

/// A snapshot's `SET` and the `XTRIM` of the events it covers.
fn snapshot_commands(
    pipe: &mut redis::Pipeline,
    keys: &Keys<'_>,
    snapshot: &Snapshot,
) -> Result<(), JournalError> {
    let room = snapshot.room.as_str();
    let json = serde_json::to_string(snapshot)
        .map_err(|e| JournalError::Corrupt(format!("room {room}: snapshot not encodable: {e}")))?;
    pipe.cmd("SET").arg(keys.snap(room)).arg(json);
    pipe.cmd("XTRIM")
        .arg(keys.log(room))
        .arg("MINID")
        .arg(format!("{}-0", snapshot.seq + 1));
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
