//! Who is present in a room, and through what: an HTTP join and/or some number of sockets.
//!
//! Pure bookkeeping; it never decides what is journaled. `RoomState` asks it whether a user has
//! just become present or absent and turns that into `Joined` / `Left` events.

use std::collections::HashMap;

use super::id::UserName;

/// How a user is (or stops being) present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `POST /rooms/{id}/join` and friends; lapses after the idle time.
    Http,
    /// One WebSocket; a user may have several.
    Socket,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Links {
    http: bool,
    sockets: u32,
}

impl Links {
    fn present(self) -> bool {
        self.http || self.sockets > 0
    }
}

/// Whether a presence change moved the user in or out of the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Arrived,
    Departed,
    Unchanged,
}

/// The users present now.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    links: HashMap<UserName, Links>,
}

impl Presence {
    /// Distinct users present.
    pub fn count(&self) -> u32 {
        u32::try_from(self.links.len()).unwrap_or(u32::MAX)
    }

    pub fn is_present(&self, user: &UserName) -> bool {
        self.links.contains_key(user)
    }

    /// Whether `user` holds an HTTP join (sockets aside).
    pub fn has_http(&self, user: &UserName) -> bool {
        self.links.get(user).is_some_and(|l| l.http)
    }

    pub fn add(&mut self, user: &UserName, via: Via) -> Transition {
        let links = self.links.entry(user.clone()).or_default();
        let was = links.present();
        match via {
            Via::Http => links.http = true,
            Via::Socket => links.sockets += 1,
        }
        if was {
            Transition::Unchanged
        } else {
            Transition::Arrived
        }
    }

    pub fn remove(&mut self, user: &UserName, via: Via) -> Transition {
        let Some(links) = self.links.get_mut(user) else {
            return Transition::Unchanged;
        };
        match via {
            Via::Http => links.http = false,
            Via::Socket => links.sockets = links.sockets.saturating_sub(1),
        }
        if links.present() {
            Transition::Unchanged
        } else {
            self.links.remove(user);
            Transition::Departed
        }
    }

    /// Forgets everyone (after a restart nobody is present until they come back).
    pub fn clear(&mut self) {
        self.links.clear();
    }
}
