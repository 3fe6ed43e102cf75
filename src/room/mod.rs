//! Rooms: the pure state machine, its events and views, and the actors that serve them.

pub mod event;
pub mod id;
pub mod presence;
pub mod snapshot;
pub mod state;
pub mod view;

pub use event::{Event, EventKind, Side};
pub use id::{NameError, RoomId, UserName};
pub use presence::Via;
pub use snapshot::Snapshot;
pub use state::{Change, Command, ReplayError, RoomError, RoomState};
pub use view::{Counters, Message, RoomStatus, RoomView};

pub mod actor;
pub mod messages;
pub mod registry;
