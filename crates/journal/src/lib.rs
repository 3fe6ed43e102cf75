//! The durability log: make a room's events durable, in order, and read them back at start.
//!
//! A `Journal` never decides anything about rooms. It takes batches of events, answers only once
//! they are durable (or that they are not), and hands every open room's log back at recovery.
//! Implementations group-commit: appends from many rooms that arrive together share one write.
//!
//! # Layout
//! - this file: the `Journal` trait, its errors and what it reports;
//! - `local`: the embedded journal, one SQLite file (the default: no services needed);
//! - `redis`: the production journal on Redis, plain or through sentinels, with `WAIT`; it
//!   fences a primary the sentinels are replacing and repairs a new primary that lacks recently
//!   acknowledged events (`redis/mod.rs` lists its parts);
//! - `sentinel`: asking Redis sentinels who the primary is (also used by the tools and tests);
//! - `writer`: what both durable journals share about their one writer thread;
//! - `metrics`: what they count on `/metrics`;
//! - `memory` (feature `testing`): an in-memory journal tests can switch off, never shipped.

pub mod access;
pub mod local;
#[cfg(feature = "testing")]
pub mod memory;
mod metrics;
pub mod redis;
pub mod sentinel;
mod writer;

use futures_util::future::BoxFuture;
use roomstate_core::{
    room::{ChatMessage, Event, EventKind, RoomId, Snapshot},
    time::Timestamp,
};
use serde::Serialize;

pub use self::metrics::JournalMetrics;

/// The most messages one `Journal::messages` read returns, whatever its `limit`: a reply of
/// bounded size (one Redis reply, one SQLite query). A caller that wants more reads on after
/// the last seq it got.
pub const MESSAGES_PER_READ: usize = 10_000;

/// Why the journal could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// The log cannot take writes right now (disk, primary down, failover). Nothing asked for in
    /// the failed call may be reported as durable; retrying the same events later is safe.
    #[error("durability log unavailable: {0}")]
    Unavailable(String),
    /// The log holds something that cannot be replayed (a gap, an undecodable event), or that
    /// differs from what was sent again under the same seq.
    #[error("durability log corrupt: {0}")]
    Corrupt(String),
    /// The room has another owner now (a newer lease epoch): this writer may never write it
    /// again. Nothing of the refused call was written.
    #[error("the room is owned elsewhere now: {0}")]
    Fenced(String),
}

/// The chat message an event posted, if it is a `Said` (for the journals' message archives).
pub fn message_of(event: &Event) -> Option<ChatMessage> {
    match &event.kind {
        EventKind::Said { user, text, .. } => Some(ChatMessage {
            seq: event.seq,
            user: user.clone(),
            text: text.clone(),
            sent_at: event.at,
        }),
        _ => None,
    }
}

/// The future every journal call returns.
pub type JournalFuture<T> = BoxFuture<'static, Result<T, JournalError>>;

/// A room's fencing epoch: the lease under which a writer may write the room. A journal refuses
/// (`JournalError::Fenced`) a write whose epoch is not the room's current one, so a writer that
/// lost the room (to another engine) can never make anything durable for it again.
/// `Epoch::NONE` (0) is a room nobody ever claimed: what a single engine on the local journal
/// always writes with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Epoch(pub u64);

impl Epoch {
    pub const NONE: Epoch = Epoch(0);

    /// The epoch a claim of a room at `self` gives its new owner.
    pub fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One open room's log: its latest snapshot, if any, and the events after it, oldest first; and
/// the epoch its reader must write it with from now on (a recovery claims each room it reads).
#[derive(Debug, Clone, PartialEq)]
pub struct RoomLog {
    pub room: RoomId,
    pub snapshot: Option<Snapshot>,
    pub events: Vec<Event>,
    pub epoch: Epoch,
}

/// What `/admin/stats` and `/readyz` show of the journal.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JournalStatus {
    /// `local`, `redis` or `memory`.
    pub kind: &'static str,
    /// Where it writes: a file path or the current primary's address.
    pub target: String,
    /// Times the journal switched to a new primary.
    pub failovers: u64,
    #[serde(with = "roomstate_core::time::rfc3339_opt")]
    pub last_failover: Option<Timestamp>,
}

/// A durability log.
///
/// Callers (room actors) send one room's events in seq order and wait for an append to resolve
/// before sending that room's next one, so the journal never sees a room's events out of order.
/// Appending an event that is already durable (same room and seq, same content) must succeed
/// without duplicating it: that is what makes a retry after an unclear failure safe.
///
/// Every write names the writer's `Epoch` for the room; a write under any other epoch than the
/// room's current one is refused whole with `JournalError::Fenced`.
pub trait Journal: Send + Sync + 'static {
    /// Makes `events` (of one room) durable. `Ok` means every one of them survives a crash of
    /// the engine.
    fn append(&self, epoch: Epoch, events: Vec<Event>) -> JournalFuture<()>;

    /// Makes `snapshot` durable and drops the room's events up to its seq. The caller sends it
    /// only when every event up to that seq is durable.
    fn snapshot(&self, epoch: Epoch, snapshot: Snapshot) -> JournalFuture<()>;

    /// Every room in the log, each with its snapshot and the events after it in seq order, and
    /// the epoch to write it with: a journal several engines can share claims each room for the
    /// caller (a new epoch), fencing off whoever wrote it before.
    fn recover(&self) -> JournalFuture<Vec<RoomLog>>;

    /// Durable chat messages of a room with `seq > after`, oldest first, at most `limit` and at
    /// most `MESSAGES_PER_READ`. The
    /// journal keeps every message of an open room (a room holds only the newest in memory), also
    /// those whose events a snapshot trimmed away, until the room is deleted.
    fn messages(&self, room: RoomId, after: u64, limit: usize) -> JournalFuture<Vec<ChatMessage>>;

    /// Forgets a room (after its final record is in the SQL store).
    fn delete_room(&self, epoch: Epoch, room: RoomId) -> JournalFuture<()>;

    /// Succeeds while `room` is still at `epoch`: `Fenced` once another writer claimed it (or
    /// it was closed, and its log deleted, by one). A close asks this before it writes the
    /// room's final record, so that a writer that lost the room and has not noticed yet (paused
    /// past its lease, say) does not record its older state as the room's end.
    fn hold(&self, epoch: Epoch, room: RoomId) -> JournalFuture<()>;

    /// Succeeds when the journal can take writes now.
    fn check(&self) -> JournalFuture<()>;

    fn status(&self) -> JournalStatus;
}
