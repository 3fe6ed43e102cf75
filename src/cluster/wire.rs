//! The bodies of the node-to-node calls (`/internal/cluster/...`, see `http/internal.rs`): what
//! one node asks of a room's owner, and what it answers. Every name in them is validated on the
//! way in, exactly as at the public edge; unknown fields are refused.

use roomstate_core::room::{
    ChatMessage, Command, IdempotencyKey, RoomId, RoomView, Side, UserName, Via,
};
use serde::{Deserialize, Serialize};

/// The header that carries `cluster.secret` on every node-to-node call.
pub(crate) const SECRET_HEADER: &str = "x-roomstate-cluster-secret";

/// A room command, as it travels between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum WireCommand {
    Join {
        user: UserName,
        via: WireVia,
    },
    Leave {
        user: UserName,
        via: WireVia,
    },
    Vote {
        user: UserName,
        side: Side,
    },
    Retract {
        user: UserName,
    },
    Say {
        user: UserName,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<IdempotencyKey>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireVia {
    Http,
    Socket,
}

impl From<Via> for WireVia {
    fn from(via: Via) -> Self {
        match via {
            Via::Http => WireVia::Http,
            Via::Socket => WireVia::Socket,
        }
    }
}

impl From<WireVia> for Via {
    fn from(via: WireVia) -> Self {
        match via {
            WireVia::Http => Via::Http,
            WireVia::Socket => Via::Socket,
        }
    }
}

impl From<Command> for WireCommand {
    fn from(command: Command) -> Self {
        match command {
            Command::Join { user, via } => WireCommand::Join {
                user,
                via: via.into(),
            },
            Command::Leave { user, via } => WireCommand::Leave {
                user,
                via: via.into(),
            },
            Command::Vote { user, side } => WireCommand::Vote { user, side },
            Command::Retract { user } => WireCommand::Retract { user },
            Command::Say { user, text, key } => WireCommand::Say { user, text, key },
        }
    }
}

impl From<WireCommand> for Command {
    fn from(command: WireCommand) -> Self {
        match command {
            WireCommand::Join { user, via } => Command::Join {
                user,
                via: via.into(),
            },
            WireCommand::Leave { user, via } => Command::Leave {
                user,
                via: via.into(),
            },
            WireCommand::Vote { user, side } => Command::Vote { user, side },
            WireCommand::Retract { user } => Command::Retract { user },
            WireCommand::Say { user, text, key } => Command::Say { user, text, key },
        }
    }
}

/// A socket on the calling node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireSocket {
    pub(crate) node: String,
    pub(crate) session: u64,
}

/// `POST /internal/cluster/rooms/{id}/commands`: apply a command; `socket` when it came from a
/// socket on the calling node (the owner records the socket if it does not know it yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandCall {
    pub(crate) command: WireCommand,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) socket: Option<WireSocket>,
}

/// What a command (or a socket's arrival) answers: the seq that answers it and the view then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AppliedAnswer {
    pub(crate) seq: u64,
    pub(crate) view: RoomView,
}

/// `POST /internal/cluster/rooms`: open a room on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCall {
    pub(crate) title: String,
    /// The room's id, chosen by the node that placed the room there: if the call's answer is
    /// lost, that node opens the room under the same id, which the journal refuses if it was
    /// made after all, so a room is never opened twice. Absent: this node picks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<RoomId>,
}

/// `POST /internal/cluster/rooms/{id}/sockets`: a socket of `user` opened on `node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttachCall {
    pub(crate) node: String,
    pub(crate) session: u64,
    pub(crate) user: UserName,
}

/// `PUT /internal/cluster/rooms/{id}/sockets/{node}`: every socket `node` holds of the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncCall {
    pub(crate) sockets: Vec<SyncedSocket>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncedSocket {
    pub(crate) session: u64,
    pub(crate) user: UserName,
}

/// `POST /internal/cluster/adopt`: rooms handed over to this node, each at the epoch it was
/// released under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdoptCall {
    pub(crate) rooms: Vec<HandedRoom>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HandedRoom {
    pub(crate) room: RoomId,
    pub(crate) epoch: u64,
}

/// `GET /internal/cluster/rooms`: the open rooms this node owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RoomsAnswer {
    pub(crate) rooms: Vec<RoomView>,
}

/// `GET /internal/cluster/rooms/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MessagesAnswer {
    pub(crate) messages: Vec<ChatMessage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_bad_names_are_refused() {
        let say = Command::Say {
            user: UserName::parse("ann").unwrap(),
            text: "hi".into(),
            key: Some(IdempotencyKey::parse("k-1").unwrap()),
        };
        let call = CommandCall {
            command: say.clone().into(),
            socket: Some(WireSocket {
                node: "n1".into(),
                session: 7,
            }),
        };
        let json = serde_json::to_string(&call).unwrap();
        let back: CommandCall = serde_json::from_str(&json).unwrap();
        assert_eq!(Command::from(back.command), say);
        for bad in [
            r#"{"command": {"type": "vote", "user": "bad name", "side": "pro"}}"#,
            r#"{"command": {"type": "vote", "user": "ann", "side": "maybe"}}"#,
            r#"{"command": {"type": "explode", "user": "ann"}}"#,
            r#"{"command": {"type": "retract", "user": "ann"}, "extra": 1}"#,
            r#"{"command": "vote"}"#,
            r#"[]"#,
        ] {
            assert!(serde_json::from_str::<CommandCall>(bad).is_err(), "{bad}");
        }
    }
}
