//! Following rooms' durable events, for the WebSocket mirrors of a cluster node that does not own a
//! room (docs/architecture.md "A cluster of engines": edges tail the journal). A `RedisTail`
//! follows a changing set of rooms from the primary and hands out, per room and in order, only what
//! is durable: the room's events after a follower's cursor (`Events`), the whole room when the
//! events after the cursor are gone (`Reload`), who owns it (`Owner`), and that it was closed
//! (`Gone`).
//!
//! It owns: its thread (a current-thread tokio runtime, like the writer's), its one connection
//! to the primary (found like the writer's, through `primary`, and, with sentinels, its own
//! watch of their failover events, `watch`/`fence`), and each followed room's cursor. It only
//! reads rooms; its one write is a counter of its own (`<prefix>:tail-probe:<node>`).
//!
//! It must never:
//! - hand out anything it has not seen durable. Events are written to the primary before the
//!   writer's `WAIT`, so what an `XREAD` returns may still be lost (the writer then fails the
//!   batch and the owner re-sends or gives up). After each read that has something to hand out,
//!   the tail writes its probe counter and `WAIT`s for `min_replica_acks` replicas on its own
//!   connection: the probe follows everything it read in the primary's replication stream, so a
//!   replica holding the probe holds what was read. It also hands nothing out while the sentinels
//!   are failing over that primary (the writer's fence, for the same reason). Short `WAIT`, fence
//!   or error: nothing of that round is handed out, cursors stay, the round is read again;
//! - skip or repeat an event: per room, `Events` start right after the cursor and are gap-free;
//!   anything else (a gap, an undecodable entry, a snapshot that trimmed past the cursor, a log
//!   whose top went below the cursor) is answered with a `Reload` of the room as it is;
//! - write a room's keys, decide anything about a room, or panic on what Redis answers.
//!
//! # A round
//! 1. Follow/unfollow requests queued since the last round are applied (so they wait at most
//!    one `poll`).
//! 2. Rooms due a reload (cursor 0, or a break found earlier) are read whole, one
//!    `MULTI`/`EXEC` per room (all its keys share a hash tag), 256 rooms per round trip:
//!    snapshot, log, owner hash, whether its keys exist, archived messages after the cursor.
//!    A room that exists but has no snapshot and no event yet is tried again a `poll` later.
//! 3. The other rooms are read with `XREAD COUNT 1024 BLOCK <poll> STREAMS <logs> <cursors>`.
//!    An `XREAD` names at most 1024 rooms: with more, the rooms are cut into chunks of 1024, every
//!    chunk is read at once without blocking in one pipeline, and only when that sweep finds
//!    nothing does the tail block, on one chunk in turn, for `poll / chunks` (at least 10 ms). A
//!    room in another chunk is then seen at most that much later: the price of keeping each
//!    command bounded without one connection per chunk.
//! 4. At most every `poll` (and at once for a room whose new events carry an epoch not yet
//!    reported), each room's owner hash (`HMGET epoch node snap_seq`), `EXISTS log snap owner`
//!    and the log's top entry are read, after the `XREAD`, so an owner change is never seen
//!    before the events written under the epoch it replaced.
//! 5. Probe + `WAIT` (and the fence), then the updates go out. Per room: `Reload` first for a
//!    room that needs one; then the events written under the older epoch, `Owner`, the events
//!    under the new epoch; `Gone` last.
//!
//! Any error drops the connection; the next round reconnects through `primary::connect` (the
//! next primary after a failover) after a backoff (50 ms doubling to 1 s), from the same
//! cursors. An outage is logged once, when it starts, and once when it ends.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use redis::{
    aio::MultiplexedConnection,
    streams::{StreamId, StreamRangeReply, StreamReadReply},
    Value,
};
use roomstate_core::{
    redact,
    room::{ChatMessage, Event, RoomId},
};
use tokio::sync::{mpsc, oneshot};

use super::{
    entry::{self, Run},
    fence::Fences,
    primary, recover, unavailable,
    watch::{self, Settings},
    Keys, RedisJournalConfig, RedisTarget, ROOMS_PER_PIPELINE,
};
use crate::{writer::WriterThread, Epoch, JournalError, RoomLog};

/// At most 15 bytes: what Linux keeps of a thread's name (`top -H`, `perf`).
const TAIL_THREAD: &str = "roomstate-tail";
/// Rooms named by one `XREAD` (see "A round", 3).
const ROOMS_PER_READ: usize = 1024;
/// Entries read per room and `XREAD`: a room far behind catches up over several rounds.
const ENTRIES_PER_READ: usize = 1024;
/// The shortest block of one chunk when there are several.
const MIN_BLOCK: Duration = Duration::from_millis(10);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Where a follower of one room stands: the last seq it applied (0: nothing yet, send a Reload
/// first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub room: RoomId,
    pub seq: u64,
}

/// What a follower of a room learns, in the order it happened for that room.
#[derive(Debug, Clone, PartialEq)]
pub enum TailUpdate {
    /// The room as of now: snapshot (if any) + the events after it (a `RoomLog`, its `epoch` =
    /// the owner hash's epoch), and the archived messages with seq > the cursor's seq up to the
    /// log's last seq (from the msgs stream), oldest first, so a follower that reloads skips no
    /// message; for a cursor at 0, only the newest `MESSAGES_PER_READ` of them (a new follower's
    /// sockets want what is newer than their first state, not a weeks-old room's archive). Sent
    /// first for a cursor at 0, and whenever the events right after the cursor are no longer in
    /// the log (a snapshot trimmed them) or the log went backwards.
    Reload {
        log: RoomLog,
        messages: Vec<ChatMessage>,
    },
    /// Durable events after the cursor, in seq order, gap-free, each with the epoch of its entry
    /// (`None` if the entry has no `o` field).
    Events {
        room: RoomId,
        events: Vec<(Event, Option<Epoch>)>,
    },
    /// The room's owner hash now names `epoch`/`node` (sent when it differs from the last one
    /// reported for that room; `node` may be "" after a release).
    Owner {
        room: RoomId,
        epoch: Epoch,
        node: String,
    },
    /// The room's log and owner hash are gone: it was closed (deleted). The room is no longer
    /// followed.
    Gone { room: RoomId },
}

enum Control {
    Follow(Cursor),
    Unfollow(RoomId),
}

/// Follows rooms' durable events on its own thread. Dropping it stops the thread.
pub struct RedisTail {
    // Fields drop in order: the requests close, the thread is told to stop, then it is joined.
    controls: mpsc::UnboundedSender<Control>,
    _stop: oneshot::Sender<()>,
    _thread: WriterThread,
}

impl RedisTail {
    /// Starts the tail's own thread (a current-thread tokio runtime) and connection. Connects
    /// lazily; follows failovers (reconnects through `primary::connect` on any error, with a
    /// short capped backoff, cursors kept). `poll` is the `XREAD BLOCK` time and the period of
    /// the owner checks (e.g. 250 ms). Updates come out of the receiver; dropping the receiver
    /// stops the thread too.
    pub fn open(
        config: RedisJournalConfig,
        poll: Duration,
    ) -> Result<(Self, mpsc::UnboundedReceiver<TailUpdate>), JournalError> {
        if config.access.servers.tls().is_some() || config.access.sentinels.tls().is_some() {
            crate::access::install_crypto_provider();
        }
        // `BLOCK 0` would block for ever.
        let poll = poll.max(Duration::from_millis(1));
        let (controls, requests) = mpsc::unbounded_channel();
        let (updates, received) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| JournalError::Unavailable(format!("cannot start a runtime: {e}")))?;
        let tail = Tail::new(config, poll, updates);
        let handle = std::thread::Builder::new()
            .name(TAIL_THREAD.into())
            .spawn(move || {
                runtime.block_on(async move {
                    // The stop cuts a round short (an `XREAD` may block for `poll`): nothing a
                    // half-done round read has been handed out, and nobody listens any more.
                    tokio::select! {
                        _ = stopped => {}
                        () = tail.run(requests) => {}
                    }
                });
            })
            .map_err(|e| JournalError::Unavailable(format!("cannot start the tail thread: {e}")))?;
        Ok((
            Self {
                controls,
                _stop: stop,
                _thread: WriterThread::new(handle, TAIL_THREAD),
            },
            received,
        ))
    }

    /// Starts following a room from `cursor` (or re-positions it: what was reported for it
    /// before is forgotten, so its owner is reported again). Taken up at the tail's next round
    /// (at most `poll` later); updates handed out before that stay in the receiver, so a
    /// follower that re-positions drops `Events` that do not start right after its own cursor.
    /// A room with no log, snapshot or owner hash is reported `Gone` at once.
    pub fn follow(&self, cursor: Cursor) {
        // Fails only once the thread has stopped (its receiver is gone): nothing to follow then.
        let _ = self.controls.send(Control::Follow(cursor));
    }

    /// Stops following a room. Updates of it already handed out stay in the receiver.
    pub fn unfollow(&self, room: &RoomId) {
        let _ = self.controls.send(Control::Unfollow(room.clone()));
    }
}

/// One followed room.
struct Followed {
    /// The last seq handed out (or the follower's own, until then).
    cursor: u64,
    /// The room must be read whole before anything else of it is handed out.
    reload: bool,
    /// Not before this (a room with nothing to reload yet, or a log that did not parse).
    reload_at: Instant,
    /// The owner last reported.
    owner: Option<(Epoch, String)>,
    /// A broken log was logged already (once per room until it reads again).
    broken: bool,
}

impl Followed {
    fn new(cursor: u64, now: Instant) -> Self {
        Self {
            cursor,
            reload: cursor == 0,
            reload_at: now,
            owner: None,
            broken: false,
        }
    }
}

/// What a room's owner check read.
#[derive(Debug)]
struct Observed {
    /// `None` when the hash has no `epoch` (a room never claimed).
    owner: Option<(Epoch, String)>,
    snap_seq: u64,
    /// Any of the log, the snapshot or the owner hash exists.
    exists: bool,
    /// The seq of the room's last event: the log's top entry, or the snapshot's seq if higher.
    last_seq: u64,
}

/// What happens to a room after a round.
enum After {
    Follow,
    Reload { at: Instant },
    Gone,
}

/// What a round decided for one room: applied, and its updates handed out, only once the
/// round's reads are confirmed durable.
struct Outcome {
    room: RoomId,
    updates: Vec<TailUpdate>,
    cursor: u64,
    owner: Option<(Epoch, String)>,
    after: After,
    broken: bool,
}

struct Tail {
    config: RedisJournalConfig,
    poll: Duration,
    updates: mpsc::UnboundedSender<TailUpdate>,
    rooms: BTreeMap<RoomId, Followed>,
    conn: Option<MultiplexedConnection>,
    /// The address `conn` goes to (redacted when shown).
    primary: Option<String>,
    /// With sentinels: the primaries they are replacing.
    fences: Option<Arc<Fences>>,
    /// False during an outage, so it is logged once.
    healthy: bool,
    backoff: Duration,
    /// When the owners are checked next.
    next_check: Instant,
    /// Which chunk blocks next, with several.
    turn: usize,
}

impl Tail {
    fn new(
        config: RedisJournalConfig,
        poll: Duration,
        updates: mpsc::UnboundedSender<TailUpdate>,
    ) -> Self {
        let fences = match &config.target {
            RedisTarget::Sentinels { addrs, .. } => Some(Arc::new(Fences::new(addrs.len()))),
            RedisTarget::Url(_) => None,
        };
        Self {
            config,
            poll,
            updates,
            rooms: BTreeMap::new(),
            conn: None,
            primary: None,
            fences,
            healthy: true,
            backoff: BACKOFF_MIN,
            next_check: Instant::now(),
            turn: 0,
        }
    }

    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Control>) {
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
        loop {
            if self.updates.is_closed() {
                break;
            }
            loop {
                match requests.try_recv() {
                    Ok(control) => self.apply(control),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
            if self.rooms.is_empty() {
                // Nothing to read: wait for a room to follow.
                match requests.recv().await {
                    Some(control) => {
                        self.apply(control);
                        continue;
                    }
                    None => break,
                }
            }
            match self.round().await {
                Ok(()) => {
                    if !self.healthy {
                        tracing::info!(redis.primary = ?self.shown_primary(), "redis tail reading again");
                        self.healthy = true;
                    }
                    self.backoff = BACKOFF_MIN;
                }
                Err(error) => {
                    self.conn = None;
                    if self.healthy {
                        tracing::warn!(redis.primary = ?self.shown_primary(), %error,
                            "redis tail cannot read durable events; reconnecting to the primary");
                        self.healthy = false;
                    }
                    // Backoff between attempts to reach the primary, not a wait for a condition.
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        tracing::debug!("redis tail stopped");
    }

    fn apply(&mut self, control: Control) {
        match control {
            Control::Follow(cursor) => {
                self.rooms
                    .insert(cursor.room, Followed::new(cursor.seq, Instant::now()));
            }
            Control::Unfollow(room) => {
                self.rooms.remove(&room);
            }
        }
    }

    fn shown_primary(&self) -> Option<String> {
        self.primary.as_deref().map(redact::url)
    }

    /// The connection to the primary, connecting when there is none (or the one there is goes
    /// to a primary the sentinels are replacing).
    async fn connection(&mut self) -> Result<&mut MultiplexedConnection, JournalError> {
        if self.conn.is_some() && self.fenced().is_some() {
            self.conn = None;
        }
        if self.conn.is_none() {
            let timeouts = primary::Timeouts {
                connect: self.config.connect_timeout,
                // An `XREAD` blocks for `poll` before it answers.
                response: self.config.response_timeout + self.poll,
            };
            let (addr, conn) =
                primary::connect(&self.config, timeouts, self.fences.as_deref()).await?;
            if let Some(fences) = &self.fences {
                fences.connected(&addr);
            }
            if self.primary.as_deref() != Some(addr.as_str()) {
                tracing::info!(redis.primary = %redact::url(&addr), "redis tail reading from the primary");
            }
            self.primary = Some(addr);
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| JournalError::Unavailable("no redis connection".into()))
    }

    /// Why nothing read from the current primary may be handed out now, if so.
    fn fenced(&self) -> Option<String> {
        let (fences, primary) = (self.fences.as_ref()?, self.primary.as_ref()?);
        fences.blocks(primary, Instant::now())
    }

    async fn round(&mut self) -> Result<(), JournalError> {
        self.connection().await?;
        let now = Instant::now();
        let due: Vec<(RoomId, u64)> = self
            .rooms
            .iter()
            .filter(|(_, f)| f.reload && f.reload_at <= now)
            .map(|(room, f)| (room.clone(), f.cursor))
            .collect();
        let mut outcomes = if due.is_empty() {
            Vec::new()
        } else {
            self.reload(&due, now).await?
        };
        let readable: Vec<(RoomId, u64)> = self
            .rooms
            .iter()
            .filter(|(_, f)| !f.reload)
            .map(|(room, f)| (room.clone(), f.cursor))
            .collect();
        if readable.is_empty() {
            if outcomes.is_empty() {
                self.idle(now).await;
            }
        } else {
            // With reloads to hand out, a read must not keep them waiting.
            let block = outcomes.is_empty();
            let read = self.read(&readable, block).await?;
            outcomes.extend(self.follow_up(read).await?);
        }
        self.deliver(outcomes).await
    }

    /// Nothing to read (every room waits for a reload later): wait for the earliest one, at
    /// most `poll` (follow requests are picked up after it).
    async fn idle(&self, now: Instant) {
        let next = self
            .rooms
            .values()
            .filter(|f| f.reload)
            .map(|f| f.reload_at)
            .min()
            .unwrap_or(now + self.poll);
        let wait = next.saturating_duration_since(now).min(self.poll);
        // Pacing the retries of rooms that have nothing to reload yet.
        tokio::time::sleep(wait).await;
    }

    /// Reads `rooms` whole (see "A round", 2).
    async fn reload(
        &mut self,
        rooms: &[(RoomId, u64)],
        now: Instant,
    ) -> Result<Vec<Outcome>, JournalError> {
        let prefix = self.config.key_prefix.clone();
        let keys = Keys { prefix: &prefix };
        let retry_at = now + self.poll;
        let mut outcomes = Vec::with_capacity(rooms.len());
        for chunk in rooms.chunks(ROOMS_PER_PIPELINE) {
            let mut pipe = redis::pipe();
            for (room, cursor) in chunk {
                let room = room.as_str();
                // One transaction per room: the snapshot, the log and the archive are seen at
                // one instant (a snapshot in between would otherwise leave a hole).
                pipe.cmd("MULTI").ignore();
                pipe.cmd("GET").arg(keys.snap(room)).ignore();
                pipe.cmd("XRANGE")
                    .arg(keys.log(room))
                    .arg("-")
                    .arg("+")
                    .ignore();
                pipe.cmd("HMGET")
                    .arg(keys.owner(room))
                    .arg("epoch")
                    .arg("node")
                    .ignore();
                pipe.cmd("EXISTS")
                    .arg(keys.log(room))
                    .arg(keys.snap(room))
                    .arg(keys.owner(room))
                    .ignore();
                if *cursor == 0 {
                    // A first load: its sockets came just now and want only what is newer
                    // than their first state, while a room open for weeks archives far more;
                    // the newest of the archive, not one reply of all of it.
                    pipe.cmd("XREVRANGE")
                        .arg(keys.msgs(room))
                        .arg("+")
                        .arg("-")
                        .arg("COUNT")
                        .arg(crate::MESSAGES_PER_READ)
                        .ignore();
                } else {
                    pipe.cmd("XRANGE")
                        .arg(keys.msgs(room))
                        .arg(format!("{}-0", cursor.saturating_add(1)))
                        .arg("+")
                        .ignore();
                }
                pipe.cmd("EXEC");
            }
            let conn = self.connection().await?;
            let replies: Vec<Value> = pipe
                .query_async(conn)
                .await
                .map_err(|e| unavailable("tail: reading rooms", e))?;
            if replies.len() != chunk.len() {
                return Err(unavailable(
                    "tail: reading rooms",
                    format!("{} answers for {} rooms", replies.len(), chunk.len()),
                ));
            }
            for ((room, cursor), reply) in chunk.iter().zip(replies) {
                let Some(followed) = self.rooms.get(room) else {
                    continue;
                };
                outcomes.push(reloaded(room, *cursor, followed, reply, retry_at));
            }
        }
        Ok(outcomes)
    }

    /// New entries of `rooms` (see "A round", 3), by room. `block`: wait up to `poll` for some.
    async fn read(
        &mut self,
        rooms: &[(RoomId, u64)],
        block: bool,
    ) -> Result<BTreeMap<RoomId, Vec<StreamId>>, JournalError> {
        let prefix = self.config.key_prefix.clone();
        let keys = Keys { prefix: &prefix };
        let by_key: HashMap<String, RoomId> = rooms
            .iter()
            .map(|(room, _)| (keys.log(room.as_str()), room.clone()))
            .collect();
        let chunks: Vec<&[(RoomId, u64)]> = rooms.chunks(ROOMS_PER_READ).collect();
        let mut found = BTreeMap::new();
        if chunks.len() > 1 || !block {
            let mut pipe = redis::pipe();
            for chunk in &chunks {
                pipe.add_command(xread(&keys, chunk, None));
            }
            let conn = self.connection().await?;
            let replies: Vec<Value> = pipe
                .query_async(conn)
                .await
                .map_err(|e| unavailable("tail: XREAD", e))?;
            for reply in replies {
                collect(reply, &by_key, &mut found)?;
            }
            if !found.is_empty() || !block {
                return Ok(found);
            }
        }
        let (chunk, wait) = if chunks.len() > 1 {
            self.turn = (self.turn + 1) % chunks.len();
            let share = self.poll / chunks.len() as u32;
            (chunks[self.turn], share.max(MIN_BLOCK))
        } else {
            (rooms, self.poll)
        };
        let command = xread(&keys, chunk, Some(wait));
        let conn = self.connection().await?;
        let reply: Value = command
            .query_async(conn)
            .await
            .map_err(|e| unavailable("tail: XREAD", e))?;
        collect(reply, &by_key, &mut found)?;
        Ok(found)
    }

    /// Decides what the entries `read` mean for their rooms, checking owners first where due
    /// (see "A round", 4).
    async fn follow_up(
        &mut self,
        read: BTreeMap<RoomId, Vec<StreamId>>,
    ) -> Result<Vec<Outcome>, JournalError> {
        let now = Instant::now();
        let check_all = now >= self.next_check;
        let mut parsed: BTreeMap<RoomId, Parsed> = BTreeMap::new();
        for (room, entries) in read {
            let Some(followed) = self.rooms.get(&room) else {
                continue;
            };
            parsed.insert(room.clone(), parse_entries(&room, followed.cursor, entries));
        }
        let to_check: Vec<RoomId> = self
            .rooms
            .iter()
            .filter(|(room, f)| {
                !f.reload
                    && (check_all
                        || parsed
                            .get(*room)
                            .is_some_and(|p| p.new_epoch(f.owner.as_ref())))
            })
            .map(|(room, _)| room.clone())
            .collect();
        let observed = if to_check.is_empty() {
            BTreeMap::new()
        } else {
            self.check(&to_check).await?
        };
        if check_all {
            self.next_check = now + self.poll;
        }
        let mut outcomes = Vec::new();
        let mut rooms: Vec<RoomId> = parsed.keys().cloned().collect();
        rooms.extend(
            observed
                .keys()
                .filter(|r| !parsed.contains_key(*r))
                .cloned(),
        );
        for room in rooms {
            let Some(followed) = self.rooms.get(&room) else {
                continue;
            };
            let mut parsed = parsed.remove(&room).unwrap_or_default();
            let observed = match observed.get(&room) {
                Some(Ok(seen)) => Some(seen),
                Some(Err(why)) => {
                    parsed.events.clear();
                    parsed.broken = Some(Broken::Corrupt(format!("owner check: {why}")));
                    None
                }
                None => None,
            };
            if let Some(outcome) = examine(&room, followed, parsed, observed, now + self.poll) {
                outcomes.push(outcome);
            }
        }
        Ok(outcomes)
    }

    /// Reads the owner hash, whether the room exists, and the log's top of `rooms`. Whether it
    /// exists asks for the owner hash too: a room claimed at its creation has nothing else until
    /// its first append.
    async fn check(
        &mut self,
        rooms: &[RoomId],
    ) -> Result<BTreeMap<RoomId, Result<Observed, String>>, JournalError> {
        let prefix = self.config.key_prefix.clone();
        let keys = Keys { prefix: &prefix };
        let mut observed = BTreeMap::new();
        for chunk in rooms.chunks(ROOMS_PER_PIPELINE) {
            let mut pipe = redis::pipe();
            for room in chunk {
                let room = room.as_str();
                pipe.cmd("HMGET")
                    .arg(keys.owner(room))
                    .arg("epoch")
                    .arg("node")
                    .arg("snap_seq");
                pipe.cmd("EXISTS")
                    .arg(keys.log(room))
                    .arg(keys.snap(room))
                    .arg(keys.owner(room));
                pipe.cmd("XREVRANGE")
                    .arg(keys.log(room))
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1);
            }
            let conn = self.connection().await?;
            let replies: Vec<Value> = pipe
                .query_async(conn)
                .await
                .map_err(|e| unavailable("tail: checking owners", e))?;
            if replies.len() != 3 * chunk.len() {
                return Err(unavailable(
                    "tail: checking owners",
                    format!("{} answers for {} rooms", replies.len(), chunk.len()),
                ));
            }
            let mut replies = replies.into_iter();
            for room in chunk {
                let (Some(owner), Some(exists), Some(top)) =
                    (replies.next(), replies.next(), replies.next())
                else {
                    break;
                };
                // An owner hash that does not read is that room's problem, not the round's.
                observed.insert(room.clone(), observe(owner, exists, top));
            }
        }
        Ok(observed)
    }

    /// Hands out the round's updates once what was read is durable, and applies the outcomes.
    async fn deliver(&mut self, outcomes: Vec<Outcome>) -> Result<(), JournalError> {
        // What hands nothing out (a reload to do, a retry time) holds whatever comes of the
        // confirmation.
        let (silent, loud): (Vec<Outcome>, Vec<Outcome>) =
            outcomes.into_iter().partition(|o| o.updates.is_empty());
        self.apply_outcomes(silent);
        if !loud.is_empty() {
            self.confirm().await?;
            self.apply_outcomes(loud);
        }
        Ok(())
    }

    fn apply_outcomes(&mut self, outcomes: Vec<Outcome>) {
        for outcome in outcomes {
            let Outcome {
                room,
                updates,
                cursor,
                owner,
                after,
                broken,
            } = outcome;
            for update in updates {
                // A closed receiver stops the thread at the next round.
                let _ = self.updates.send(update);
            }
            match after {
                After::Gone => {
                    self.rooms.remove(&room);
                }
                after => {
                    let Some(followed) = self.rooms.get_mut(&room) else {
                        continue;
                    };
                    followed.cursor = cursor;
                    followed.owner = owner;
                    followed.broken = broken;
                    match after {
                        After::Reload { at } => {
                            followed.reload = true;
                            followed.reload_at = at;
                        }
                        _ => followed.reload = false,
                    }
                }
            }
        }
    }

    /// Makes sure what this round read is durable: a write of the tail's own after the reads,
    /// then `WAIT` (skipped when no replica acks are asked for), and no failover of this primary
    /// under way.
    async fn confirm(&mut self) -> Result<(), JournalError> {
        let min_acks = self.config.min_replica_acks;
        if min_acks > 0 {
            let wait_ms = self.config.wait_timeout.as_millis() as u64;
            let probe = format!("{}:tail-probe:{}", self.config.key_prefix, self.config.node);
            let mut pipe = redis::pipe();
            pipe.cmd("INCR").arg(probe).ignore();
            pipe.cmd("WAIT").arg(min_acks).arg(wait_ms);
            let conn = self.connection().await?;
            let replies: Vec<i64> = pipe
                .query_async(conn)
                .await
                .map_err(|e| unavailable("tail: confirming a read", e))?;
            let acked = replies.first().copied().unwrap_or(0);
            if acked < i64::from(min_acks) {
                return Err(JournalError::Unavailable(format!(
                    "only {acked} of {min_acks} replicas confirmed the tail's read within \
                     {wait_ms} ms; nothing of it is handed out"
                )));
            }
        }
        if let Some(reason) = self.fenced() {
            return Err(JournalError::Unavailable(reason));
        }
        Ok(())
    }
}

/// `XREAD COUNT .. [BLOCK ..] STREAMS <logs> <cursor ids>`.
fn xread(keys: &Keys<'_>, rooms: &[(RoomId, u64)], block: Option<Duration>) -> redis::Cmd {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT").arg(ENTRIES_PER_READ);
    if let Some(block) = block {
        cmd.arg("BLOCK").arg((block.as_millis() as u64).max(1));
    }
    cmd.arg("STREAMS");
    for (room, _) in rooms {
        cmd.arg(keys.log(room.as_str()));
    }
    for (_, cursor) in rooms {
        cmd.arg(format!("{cursor}-0"));
    }
    cmd
}

/// Adds an `XREAD` reply's entries to `found`, by room.
fn collect(
    reply: Value,
    by_key: &HashMap<String, RoomId>,
    found: &mut BTreeMap<RoomId, Vec<StreamId>>,
) -> Result<(), JournalError> {
    let reply: Option<StreamReadReply> =
        redis::from_redis_value(reply).map_err(|e| unavailable("tail: XREAD reply", e))?;
    for stream in reply.map(|r| r.keys).unwrap_or_default() {
        let Some(room) = by_key.get(&stream.key) else {
            continue;
        };
        found.entry(room.clone()).or_default().extend(stream.ids);
    }
    Ok(())
}

/// A room's new entries, read.
#[derive(Default)]
struct Parsed {
    /// Gap-free from the cursor + 1.
    events: Vec<(Event, Option<Epoch>)>,
    /// The entries do not follow the cursor, or one does not decode.
    broken: Option<Broken>,
}

enum Broken {
    /// The first entry is past the cursor + 1: a snapshot trimmed what followed the cursor.
    Gap { expected: u64, found: u64 },
    /// An entry (or the owner hash) that does not decode.
    Corrupt(String),
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Gap { expected, found } => write!(f, "seq {expected} expected, found {found}"),
            Broken::Corrupt(why) => f.write_str(why),
        }
    }
}

impl Parsed {
    /// Whether an event carries an epoch other than the owner last reported (its owner must be
    /// checked now, to report the change in its place).
    fn new_epoch(&self, reported: Option<&(Epoch, String)>) -> bool {
        self.events
            .iter()
            .filter_map(|(_, epoch)| *epoch)
            .any(|epoch| reported.is_none_or(|(known, _)| *known != epoch))
    }
}

fn parse_entries(room: &RoomId, cursor: u64, entries: Vec<StreamId>) -> Parsed {
    let mut parsed = Parsed::default();
    for entry in entries {
        if let Err(why) = parse_entry(room, cursor, &entry, &mut parsed) {
            parsed.broken = Some(why);
            break;
        }
    }
    if parsed.broken.is_some() {
        // Nothing of a broken read is handed out: the reload brings the room as it is.
        parsed.events.clear();
    }
    parsed
}

/// One log entry's events after `cursor`, each with the epoch it was written under, added to
/// `parsed` (an entry read from after the cursor may begin at or before it: a run that a
/// snapshot's seq cuts in two).
fn parse_entry(
    room: &RoomId,
    cursor: u64,
    entry: &StreamId,
    parsed: &mut Parsed,
) -> Result<(), Broken> {
    let id = entry.id.as_str();
    let field = |name: &str| -> Result<Option<&[u8]>, String> {
        match entry.map.get(name) {
            None => Ok(None),
            Some(Value::BulkString(bytes)) => Ok(Some(bytes.as_slice())),
            Some(Value::SimpleString(text)) => Ok(Some(text.as_bytes())),
            Some(_) => Err(format!("entry {id}: field {name} is not a string")),
        }
    };
    let run = Run::read(id, field).map_err(Broken::Corrupt)?;
    let epoch = field(entry::EPOCH)
        .map_err(Broken::Corrupt)?
        .map(|o| {
            std::str::from_utf8(o)
                .ok()
                .and_then(|o| o.parse().ok())
                .map(Epoch)
                .ok_or_else(|| Broken::Corrupt(format!("entry {id}: bad epoch")))
        })
        .transpose()?;
    for (seq, json) in run.events().filter(|(seq, _)| *seq > cursor) {
        let next = cursor + parsed.events.len() as u64 + 1;
        if seq != next {
            return Err(Broken::Gap {
                expected: next,
                found: seq,
            });
        }
        let event: Event = serde_json::from_slice(json)
            .map_err(|e| Broken::Corrupt(format!("seq {seq}: undecodable event: {e}")))?;
        if event.seq != seq || event.room != *room {
            return Err(Broken::Corrupt(format!(
                "seq {seq}: entry holds {} seq {}",
                event.room, event.seq
            )));
        }
        parsed.events.push((event, epoch));
    }
    Ok(())
}

/// What a room's owner check answered (`HMGET`, `EXISTS`, `XREVRANGE`).
fn observe(owner: Value, exists: Value, top: Value) -> Result<Observed, String> {
    let owner: Vec<Option<String>> =
        redis::from_redis_value(owner).map_err(|e| format!("owner hash: {e}"))?;
    let number = |text: Option<&String>, what: &str| -> Result<Option<u64>, String> {
        text.map(|t| t.parse::<u64>())
            .transpose()
            .map_err(|e| format!("owner hash {what}: {e}"))
    };
    let epoch = number(owner.first().and_then(Option::as_ref), "epoch")?;
    let node = owner.get(1).cloned().flatten().unwrap_or_default();
    let snap_seq = number(owner.get(2).and_then(Option::as_ref), "snap_seq")?.unwrap_or(0);
    let exists: i64 = redis::from_redis_value(exists).map_err(|e| format!("EXISTS: {e}"))?;
    let top: StreamRangeReply =
        redis::from_redis_value(top).map_err(|e| format!("log top: {e}"))?;
    let top = match top.ids.first() {
        Some(entry) => {
            entry::seq_of(&entry.id).ok_or_else(|| format!("bad entry id {}", entry.id))?
        }
        None => 0,
    };
    Ok(Observed {
        owner: epoch.map(|e| (Epoch(e), node)),
        snap_seq,
        exists: exists > 0,
        last_seq: top.max(snap_seq),
    })
}

/// What a round's read and owner check mean for one followed room (`None`: nothing changes).
fn examine(
    room: &RoomId,
    followed: &Followed,
    parsed: Parsed,
    observed: Option<&Observed>,
    retry_at: Instant,
) -> Option<Outcome> {
    if let Some(why) = &parsed.broken {
        let (at, broken) = match why {
            // A snapshot trimmed what followed the cursor: the room as it is now comes at once.
            Broken::Gap { .. } => {
                tracing::debug!(room.id = %room, seq.cursor = followed.cursor, reason = %why,
                    "the log no longer holds what follows the cursor; reloading the room");
                (Instant::now(), followed.broken)
            }
            Broken::Corrupt(_) => {
                if !followed.broken {
                    tracing::warn!(room.id = %room, seq.cursor = followed.cursor, reason = %why,
                        "the room does not read back from the journal; reloading it");
                }
                (retry_at, true)
            }
        };
        return Some(Outcome {
            room: room.clone(),
            updates: Vec::new(),
            cursor: followed.cursor,
            owner: followed.owner.clone(),
            after: After::Reload { at },
            broken,
        });
    }
    if parsed.events.is_empty() && observed.is_none() {
        return None;
    }
    let mut events = parsed.events;
    let cursor = followed.cursor + events.len() as u64;
    let mut updates = Vec::new();
    let mut owner = followed.owner.clone();
    let mut after = After::Follow;
    let mut changed = None;
    if let Some(seen) = observed {
        if seen.owner.is_some() && seen.owner != owner {
            changed = seen.owner.clone();
        }
        if !seen.exists {
            after = After::Gone;
        } else if seen.snap_seq > cursor || seen.last_seq < cursor {
            tracing::debug!(room.id = %room, seq.cursor = cursor, seq.snapshot = seen.snap_seq,
                seq.last = seen.last_seq, "the log no longer holds what follows the cursor; reloading the room");
            after = After::Reload { at: Instant::now() };
        }
    }
    // The events written before the owner changed go out before the change, the others after.
    let later = match (&changed, &owner) {
        (Some((new, _)), Some((old, _))) if new == old => Vec::new(),
        (Some((new, _)), _) => {
            let split = events
                .iter()
                .position(|(_, epoch)| epoch.is_some_and(|e| e >= *new))
                .unwrap_or(events.len());
            events.split_off(split)
        }
        (None, _) => Vec::new(),
    };
    // A new epoch while the log holds events this read did not reach (a read cut at its COUNT,
    // or written since): they may be the older epoch's, so the change waits for them (it goes out
    // with the first event under the new epoch, or once the cursor reaches the log's top).
    let epoch_changed = match (&changed, &owner) {
        (Some((new, _)), Some((old, _))) => new != old,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let unread = observed.is_some_and(|seen| seen.last_seq > cursor);
    if epoch_changed && later.is_empty() && unread && matches!(after, After::Follow) {
        changed = None;
    }
    if !events.is_empty() {
        updates.push(TailUpdate::Events {
            room: room.clone(),
            events,
        });
    }
    if let Some((epoch, node)) = changed {
        updates.push(TailUpdate::Owner {
            room: room.clone(),
            epoch,
            node: node.clone(),
        });
        owner = Some((epoch, node));
    }
    if !later.is_empty() {
        updates.push(TailUpdate::Events {
            room: room.clone(),
            events: later,
        });
    }
    if matches!(after, After::Gone) {
        updates.push(TailUpdate::Gone { room: room.clone() });
    }
    Some(Outcome {
        room: room.clone(),
        updates,
        cursor,
        owner,
        after,
        broken: false,
    })
}

/// What a room's reload transaction (`EXEC` reply) means.
fn reloaded(
    room: &RoomId,
    cursor: u64,
    followed: &Followed,
    reply: Value,
    retry_at: Instant,
) -> Outcome {
    let retry = |broken: bool| Outcome {
        room: room.clone(),
        updates: Vec::new(),
        cursor,
        owner: followed.owner.clone(),
        after: After::Reload { at: retry_at },
        broken,
    };
    let read = match read_whole(room, cursor, reply) {
        Ok(read) => read,
        Err(why) => {
            if !followed.broken {
                tracing::warn!(room.id = %room, reason = %why,
                    "cannot read the room back from the journal; trying again");
            }
            return retry(true);
        }
    };
    let Some(Whole {
        log,
        messages,
        owner,
    }) = read
    else {
        return Outcome {
            updates: vec![TailUpdate::Gone { room: room.clone() }],
            after: After::Gone,
            ..retry(false)
        };
    };
    let Some(log) = log else {
        // The room is claimed but nothing of it is written yet.
        return retry(followed.broken);
    };
    if followed.broken {
        tracing::info!(room.id = %room, "the room reads back again");
    }
    let last = log
        .events
        .last()
        .map(|e| e.seq)
        .or(log.snapshot.as_ref().map(|s| s.seq))
        .unwrap_or(0);
    let mut updates = vec![TailUpdate::Reload { log, messages }];
    let mut reported = followed.owner.clone();
    if owner.is_some() && owner != reported {
        if let Some((epoch, node)) = owner.clone() {
            updates.push(TailUpdate::Owner {
                room: room.clone(),
                epoch,
                node,
            });
        }
        reported = owner;
    }
    Outcome {
        room: room.clone(),
        updates,
        cursor: last,
        owner: reported,
        after: After::Follow,
        broken: false,
    }
}

/// A room read whole: `log` is `None` for a room with no snapshot and no event yet.
struct Whole {
    log: Option<RoomLog>,
    messages: Vec<ChatMessage>,
    owner: Option<(Epoch, String)>,
}

/// Parses a reload transaction's answer; `Ok(None)`: the room is gone.
fn read_whole(room: &RoomId, cursor: u64, reply: Value) -> Result<Option<Whole>, String> {
    let replies: Vec<Value> = match reply {
        Value::Array(replies) => replies,
        Value::Nil => return Err("the transaction was aborted".into()),
        other => return Err(format!("unexpected transaction answer {other:?}")),
    };
    let [snap, log, owner, exists, messages]: [Value; 5] = replies
        .try_into()
        .map_err(|r: Vec<Value>| format!("{} answers in the transaction, 5 expected", r.len()))?;
    let exists: i64 = redis::from_redis_value(exists).map_err(|e| format!("EXISTS: {e}"))?;
    if exists == 0 {
        return Ok(None);
    }
    let owner: Vec<Option<String>> =
        redis::from_redis_value(owner).map_err(|e| format!("owner hash: {e}"))?;
    let epoch = owner
        .first()
        .cloned()
        .flatten()
        .map(|e| e.parse::<u64>().map(Epoch))
        .transpose()
        .map_err(|e| format!("owner hash epoch: {e}"))?;
    let owner = epoch.map(|epoch| (epoch, owner.get(1).cloned().flatten().unwrap_or_default()));
    let empty_log = matches!(&log, Value::Array(entries) if entries.is_empty());
    if matches!(snap, Value::Nil) && empty_log {
        return Ok(Some(Whole {
            log: None,
            messages: Vec::new(),
            owner,
        }));
    }
    let epoch = owner.as_ref().map_or(Epoch::NONE, |(e, _)| *e);
    let log = recover::parse_room(room.as_str(), snap, log, epoch)
        .map_err(|e| e.to_string())?
        .ok_or("no snapshot and no event")?;
    let last = log
        .events
        .last()
        .map(|e| e.seq)
        .or(log.snapshot.as_ref().map(|s| s.seq))
        .unwrap_or(0);
    let messages: StreamRangeReply =
        redis::from_redis_value(messages).map_err(|e| format!("messages: {e}"))?;
    let mut messages = messages
        .ids
        .into_iter()
        .map(|entry| {
            let json: String = entry
                .map
                .get("m")
                .cloned()
                .map(redis::from_redis_value)
                .transpose()
                .map_err(|e| format!("message {}: {e}", entry.id))?
                .ok_or_else(|| format!("message {}: no message field", entry.id))?;
            serde_json::from_str::<ChatMessage>(&json)
                .map_err(|e| format!("message {}: undecodable: {e}", entry.id))
        })
        .filter(|m| m.as_ref().map_or(true, |m| m.seq > cursor && m.seq <= last))
        .collect::<Result<Vec<_>, String>>()?;
    // A first load reads the archive newest first.
    messages.sort_by_key(|m| m.seq);
    Ok(Some(Whole {
        log: Some(log),
        messages,
        owner,
    }))
}

#[cfg(test)]
mod tests {
    use roomstate_core::{
        room::{EventKind, Side, UserName},
        time,
    };

    use super::*;

    fn json(room: &RoomId, seq: u64) -> String {
        Event {
            room: room.clone(),
            seq,
            at: time::now(),
            kind: EventKind::Voted {
                user: UserName::parse("alice").unwrap(),
                side: Side::Pro,
            },
        }
        .to_json()
    }

    /// An entry as `XREAD` gives it: the run `first..=last` (`e` for one event), and an epoch.
    fn entry(room: &RoomId, first: u64, last: u64, epoch: Option<&str>) -> StreamId {
        let mut map = HashMap::new();
        let body: Vec<String> = (first..=last).map(|seq| json(room, seq)).collect();
        if first == last {
            map.insert("e".to_owned(), Value::BulkString(body.join("").into()));
        } else {
            map.insert("f".to_owned(), Value::BulkString(first.to_string().into()));
            map.insert("b".to_owned(), Value::BulkString(body.join("\n").into()));
        }
        if let Some(epoch) = epoch {
            map.insert("o".to_owned(), Value::BulkString(epoch.into()));
        }
        StreamId {
            id: format!("{last}-0"),
            map,
            ..StreamId::default()
        }
    }

    fn seqs(parsed: &Parsed) -> Vec<(u64, Option<u64>)> {
        parsed
            .events
            .iter()
            .map(|(event, epoch)| (event.seq, epoch.map(|e| e.0)))
            .collect()
    }

    #[test]
    fn runs_and_single_events_are_handed_out_from_right_after_the_cursor() {
        let room = RoomId::parse("r_runs").unwrap();
        // A run the cursor cuts (a follower that loaded a snapshot taken inside it), a lone
        // event under a new epoch, then another run.
        let entries = vec![
            entry(&room, 1, 4, Some("1")),
            entry(&room, 5, 5, Some("2")),
            entry(&room, 6, 8, None),
        ];
        let parsed = parse_entries(&room, 2, entries);
        assert!(parsed.broken.is_none());
        assert_eq!(
            seqs(&parsed),
            [
                (3, Some(1)),
                (4, Some(1)),
                (5, Some(2)),
                (6, None),
                (7, None),
                (8, None)
            ]
        );
    }

    #[test]
    fn a_gap_or_a_damaged_entry_hands_out_nothing() {
        let room = RoomId::parse("r_runs").unwrap();
        let gap = parse_entries(&room, 2, vec![entry(&room, 5, 7, None)]);
        assert!(
            matches!(
                gap.broken,
                Some(Broken::Gap {
                    expected: 3,
                    found: 5
                })
            ),
            "a run trimmed past the cursor"
        );
        assert!(gap.events.is_empty());

        let mut short = entry(&room, 3, 5, None);
        short
            .map
            .insert("f".to_owned(), Value::BulkString(b"4".to_vec()));
        let broken = parse_entries(&room, 2, vec![entry(&room, 3, 3, None), short]);
        assert!(
            matches!(&broken.broken, Some(Broken::Corrupt(why)) if why.contains("3 events for seqs 4 to 5")),
            "{}",
            broken
                .broken
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        assert!(broken.events.is_empty(), "nothing of a broken read");

        let elsewhere = parse_entries(
            &RoomId::parse("r_other").unwrap(),
            0,
            vec![entry(&room, 1, 2, None)],
        );
        assert!(
            matches!(&elsewhere.broken, Some(Broken::Corrupt(why)) if why.contains("entry holds r_runs seq 1"))
        );
        let mut bad_epoch = entry(&room, 1, 2, Some("x"));
        bad_epoch.id = "2-0".into();
        let bad_epoch = parse_entries(&room, 0, vec![bad_epoch]);
        assert!(
            matches!(&bad_epoch.broken, Some(Broken::Corrupt(why)) if why.contains("entry 2-0: bad epoch"))
        );
        let mut not_text = entry(&room, 1, 1, None);
        not_text.map.insert("e".to_owned(), Value::Int(1));
        let not_text = parse_entries(&room, 0, vec![not_text]);
        assert!(
            matches!(&not_text.broken, Some(Broken::Corrupt(why)) if why.contains("field e is not a string"))
        );
    }
}
