//! The durable record of a room: one `Event` per accepted mutation, numbered by `seq`.
//!
//! Events are facts, not requests: replaying them never re-checks a rule, it only rebuilds what
//! was acknowledged. Presence is recorded (a join or leave is a mutation with a seq, and the peak is
//! durable) but a replayed room starts with nobody present.

use serde::{Deserialize, Serialize};

use super::id::{IdempotencyKey, RoomId, UserName};
use crate::time::{self, Timestamp};

/// A side of the debate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Pro,
    Con,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Pro => "pro",
            Side::Con => "con",
        }
    }

    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "pro" => Some(Side::Pro),
            "con" => Some(Side::Con),
            _ => None,
        }
    }
}

/// One accepted mutation of one room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub room: RoomId,
    pub seq: u64,
    #[serde(with = "time::rfc3339")]
    pub at: Timestamp,
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The room was opened (always seq 1).
    Created { title: String },
    /// `user` became present; `participants` is the count right after, so replay can rebuild the
    /// peak without replaying presence.
    Joined { user: UserName, participants: u32 },
    /// `user` is no longer present (explicit leave, last socket closed, or HTTP presence lapsed).
    Left { user: UserName },
    /// `user`'s vote is now `side` (a first vote or a switch).
    Voted { user: UserName, side: Side },
    /// `user` took their vote back.
    Retracted { user: UserName },
    /// `user` posted `text`; the message's seq is the event's seq. `key` is the client's
    /// idempotency key, if it gave one: a repeat of it is answered with this seq (it is durable
    /// with the message, so a repeat is recognised after a restart or a failover too).
    Said {
        user: UserName,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<IdempotencyKey>,
    },
}

impl EventKind {
    /// A short name for logs and metrics; also the `type` of the event's JSON, which
    /// `room::json` writes from it (serde's `snake_case` names are the same; the tests hold
    /// the two encodings equal).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created { .. } => "created",
            EventKind::Joined { .. } => "joined",
            EventKind::Left { .. } => "left",
            EventKind::Voted { .. } => "voted",
            EventKind::Retracted { .. } => "retracted",
            EventKind::Said { .. } => "said",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_json() {
        let event = Event {
            room: RoomId::parse("r_1").unwrap(),
            seq: 7,
            at: time::now(),
            kind: EventKind::Voted {
                user: UserName::parse("alice").unwrap(),
                side: Side::Con,
            },
        };
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains(r#""type":"voted""#), "{json}");
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
    }
}
