//! Why a room or the registry could not do what was asked. The one mapping of these onto API
//! error codes is `crate::error`.

use roomstate_core::{protocol::ErrorCode, room::RoomError};
use roomstate_store::StoreError;

/// Why a room refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RoomFailure {
    /// A rule of the room refused it.
    #[error(transparent)]
    Rule(#[from] RoomError),
    /// The journal or the store cannot take writes now, or the engine is stopping; nothing was
    /// applied.
    #[error("{0}")]
    Unavailable(String),
    /// The room stopped before it answered (it closed, moved to another node, or the engine is
    /// stopping); nothing was applied. `unavailable` to a client, unless the client has already
    /// seen the room close (a socket then answers `room_closed`).
    #[error("the room stopped")]
    Stopped,
    /// The room's owner (another node of a cluster) refused it with this API error: passed on
    /// as it came.
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
}

/// What a room answers.
pub(crate) type Reply<T> = Result<T, RoomFailure>;

/// Why a registry call (which may involve a room and the store) failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegistryFailure {
    #[error(transparent)]
    Room(#[from] RoomFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such room, open or closed.
    #[error("no such room")]
    UnknownRoom,
}

impl From<RoomError> for RegistryFailure {
    fn from(error: RoomError) -> Self {
        RegistryFailure::Room(RoomFailure::Rule(error))
    }
}
