//! The room as pure data: the state machine and everything it reads and writes.
//!
//! `RoomState::apply(command)` checks a command against the rules and returns the event to make
//! durable (or none, for a no-op) and the counters right after it; `replay`/`restore` rebuild a
//! room from its durable events, and a `Follower` keeps a copy of a room owned elsewhere from its
//! log. Nothing here knows about actors, sockets, Redis or SQL.

pub mod event;
pub mod follower;
pub mod id;
pub mod idempotency;
mod json;
pub mod presence;
pub mod snapshot;
pub mod state;
pub mod view;

pub use event::{Event, EventKind, Side};
pub use follower::Follower;
pub use id::{IdempotencyKey, NameError, RoomId, UserName};
pub use presence::Via;
pub use snapshot::{RememberedKey, Snapshot};
pub use state::{validate_title, Change, Command, ReplayError, RoomError, RoomState};
pub use view::{ChatMessage, Counters, RoomStatus, RoomView};
