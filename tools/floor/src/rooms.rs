//! Every room of the floor: one map of tallies behind one lock, shared by the HTTP workers. A
//! request holds the lock for the few map and counter operations it makes, nothing longer.

use std::collections::HashMap;

use parking_lot::Mutex;
use roomstate_core::{
    protocol::ErrorCode,
    room::{RoomId, RoomView},
};

use crate::tally::{Refusal, Tally};

#[derive(Default)]
pub struct Rooms(Mutex<HashMap<RoomId, Tally>>);

impl Rooms {
    /// Opens a room; returns its view.
    pub fn create(&self, title: String) -> RoomView {
        let id = RoomId::generate();
        let tally = Tally::new(id.clone(), title);
        let view = tally.view();
        self.0.lock().insert(id, tally);
        view
    }

    /// Runs `f` on the room `id`; `not_found` when there is none.
    pub fn with<T>(
        &self,
        id: &RoomId,
        f: impl FnOnce(&mut Tally) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        match self.0.lock().get_mut(id) {
            Some(tally) => f(tally),
            None => Err(Refusal::new(ErrorCode::NotFound, format!("no room {id}"))),
        }
    }
}
