//! The messages a `RoomActor` answers, one struct each, and what they reply.

use actix::prelude::*;
use bytestring::ByteString;

use super::{
    state::{Command, RoomError},
    view::{Message as ChatMessage, RoomView},
};
use crate::room::UserName;

/// Identifies one WebSocket session within the process.
pub type SessionId = u64;

/// Why a room could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomFailure {
    /// A rule of the room refused it.
    #[error(transparent)]
    Rule(#[from] RoomError),
    /// The journal or the store cannot take writes now; nothing was applied.
    #[error("{0}")]
    Unavailable(String),
}

pub type Reply<T> = Result<T, RoomFailure>;

/// Apply a client's command; answers with the room view right after it, once it is durable.
#[derive(Message)]
#[rtype(result = "Reply<RoomView>")]
pub struct Mutate {
    pub command: Command,
    /// The command came over HTTP: it refreshes the user's HTTP presence (see the idle lapse).
    pub from_http: bool,
}

/// The room view as of the last durable event.
#[derive(Message)]
#[rtype(result = "RoomView")]
pub struct GetView;

/// Durable chat messages with `seq > after`, oldest first, at most `limit`.
#[derive(Message)]
#[rtype(result = "Vec<ChatMessage>")]
pub struct GetMessages {
    pub after: u64,
    pub limit: usize,
}

/// A socket of `user` opened: joins the user. Answers, once the join is durable, with the
/// session's first `state` frame; every broadcast after that goes to `session`.
#[derive(Message)]
#[rtype(result = "Reply<ByteString>")]
pub struct Connect {
    pub id: SessionId,
    pub user: UserName,
    pub session: Recipient<Outbound>,
}

/// A socket closed (or was dropped): leaves its user if it was their last one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub id: SessionId,
}

/// Close the room for good: waits until every pending event is durable, writes the final record
/// to the store, tells every socket, deletes the journal's log. Answers the final view.
#[derive(Message)]
#[rtype(result = "Reply<RoomView>")]
pub struct Close;

/// Engine shutdown: answer once every pending event is durable, then close every socket with
/// 1001 and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// What a room sends a socket.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub enum Outbound {
    /// A JSON text frame, serialized once for every recipient.
    Text(ByteString),
    /// Close the socket with this code and reason.
    Close { code: u16, reason: &'static str },
}
