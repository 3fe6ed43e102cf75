//! The sockets subscribed to a room: who they belong to, where to send, and whether they take
//! broadcasts yet (a socket does once its first `state` went out).

use std::collections::HashMap;

use actix::Recipient;
use roomstate_core::{protocol::CloseReason, room::UserName};

use super::outbound::{Outbound, SessionId};

struct Session {
    user: UserName,
    addr: Recipient<Outbound>,
    /// Receives broadcasts (its first state frame has been sent).
    active: bool,
}

/// A room's sockets.
#[derive(Default)]
pub(crate) struct Sessions {
    sessions: HashMap<SessionId, Session>,
}

impl Sessions {
    /// A socket that takes no broadcasts until [`Sessions::activate`].
    pub(crate) fn add(&mut self, id: SessionId, user: UserName, addr: Recipient<Outbound>) {
        self.sessions.insert(
            id,
            Session {
                user,
                addr,
                active: false,
            },
        );
    }

    /// Forgets a socket; its user, if it was here.
    pub(crate) fn remove(&mut self, id: SessionId) -> Option<UserName> {
        self.sessions.remove(&id).map(|s| s.user)
    }

    /// The socket got its first state: broadcasts go to it from now on. False if it is gone.
    pub(crate) fn activate(&mut self, id: SessionId) -> bool {
        match self.sessions.get_mut(&id) {
            Some(session) => {
                session.active = true;
                true
            }
            None => false,
        }
    }

    /// Sends `what` to every active socket.
    pub(crate) fn broadcast(&self, what: Outbound) {
        for session in self.sessions.values().filter(|s| s.active) {
            session.addr.do_send(what.clone());
        }
    }

    /// Sends `last` (if any) and then ends every socket, active or not, and forgets them all.
    pub(crate) fn end_all(&mut self, last: Option<Outbound>, reason: CloseReason) {
        for session in self.sessions.values() {
            if let Some(last) = &last {
                session.addr.do_send(last.clone());
            }
            session.addr.do_send(Outbound::End(reason));
        }
        self.sessions.clear();
    }
}
