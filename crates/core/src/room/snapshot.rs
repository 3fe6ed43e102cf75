//! `Snapshot`: a room's durable state at one seq, so recovery replays only the events after it
//! and the journal can trim what came before.

use serde::{Deserialize, Serialize};

use super::{
    event::Side,
    id::{IdempotencyKey, RoomId, UserName},
    view::ChatMessage,
};
use crate::time::{self, Timestamp};

/// Everything durable about a room as of `seq` (presence is not durable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub room: RoomId,
    pub seq: u64,
    pub title: String,
    #[serde(with = "time::rfc3339")]
    pub created_at: Timestamp,
    pub participants_peak: u32,
    pub votes: Vec<(UserName, Side)>,
    /// The newest messages (a room keeps a bounded number in memory; the journal has them all).
    pub messages: Vec<ChatMessage>,
    /// Messages posted in all (absent in snapshots that held the whole transcript).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_count: Option<u32>,
    /// Seq of the newest message not in `messages` (0: `messages` is the whole transcript).
    #[serde(default)]
    pub older_upto: u64,
    /// Idempotency keys still remembered, oldest first (absent in snapshots written before
    /// keys existed).
    #[serde(default)]
    pub keys: Vec<RememberedKey>,
}

/// One remembered idempotency key: `user` posted the message `seq` with `key` at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedKey {
    pub user: UserName,
    pub key: IdempotencyKey,
    pub seq: u64,
    #[serde(with = "time::rfc3339")]
    pub at: Timestamp,
}
