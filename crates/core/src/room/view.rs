//! What clients see of a room: the room view and chat messages, shaped exactly as docs/api.md says.

use serde::{Deserialize, Serialize};

use super::id::{RoomId, UserName};
use crate::time::{self, Timestamp};

/// Open or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RoomStatus {
    Open,
    Closed,
}

/// The counters of a room at one seq. Cheap to copy, so every pending event can carry the counters
/// it produced and a commit can publish exactly the state as of its last durable event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Counters {
    pub participants: u32,
    pub participants_peak: u32,
    pub pro: u32,
    pub con: u32,
    pub messages: u32,
    pub seq: u64,
}

/// The room view of docs/api.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct RoomView {
    pub id: RoomId,
    pub title: String,
    pub status: RoomStatus,
    #[serde(flatten)]
    pub counters: Counters,
    #[serde(with = "time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[cfg_attr(
        feature = "json-schema",
        schemars(with = "String", extend("format" = "date-time"))
    )]
    pub created_at: Timestamp,
    #[serde(with = "time::rfc3339_opt")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, format = DateTime, required = true)
    )]
    #[cfg_attr(
        feature = "json-schema",
        schemars(with = "Option<String>", required, extend("format" = "date-time"))
    )]
    pub closed_at: Option<Timestamp>,
}

/// A chat message of docs/api.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct ChatMessage {
    pub seq: u64,
    pub user: UserName,
    pub text: String,
    #[serde(with = "time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[cfg_attr(
        feature = "json-schema",
        schemars(with = "String", extend("format" = "date-time"))
    )]
    pub sent_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_view_has_the_contract_fields() {
        let view = RoomView {
            id: RoomId::parse("r_1").unwrap(),
            title: "t".into(),
            status: RoomStatus::Open,
            counters: Counters {
                participants: 3,
                participants_peak: 5,
                pro: 2,
                con: 1,
                messages: 12,
                seq: 31,
            },
            created_at: time::now(),
            closed_at: None,
        };
        let json: serde_json::Value = serde_json::to_value(&view).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "closed_at",
                "con",
                "created_at",
                "id",
                "messages",
                "participants",
                "participants_peak",
                "pro",
                "seq",
                "status",
                "title"
            ]
        );
        assert_eq!(json["status"], "open");
        assert!(json["closed_at"].is_null());
    }
}
