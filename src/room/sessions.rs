//! The sockets subscribed to a room: who they belong to, where to send, and whether they take
//! broadcasts yet (a socket does once its first `state` went out).
//!
//! Broadcasts go once per worker thread (`outlet.rs`): the sockets that take them are kept
//! grouped by their worker, so a broadcast is one delivery per worker, whatever the room's size.

use std::sync::Arc;

use foldhash::HashMap;

use roomstate_core::{protocol::CloseReason, room::UserName};

use super::{
    outbound::{Outbound, SessionId},
    outlet::{by_worker, send_to_each, Outlet, To, WorkerQueue},
};

struct Session {
    user: UserName,
    outlet: Outlet,
    /// Receives broadcasts (its first state frame has been sent).
    active: bool,
}

/// The active sockets on one worker.
struct Worker {
    queue: WorkerQueue,
    active: Arc<Vec<SessionId>>,
}

/// A room's sockets.
#[derive(Default)]
pub(crate) struct Sessions {
    sessions: HashMap<SessionId, Session>,
    /// The active sockets by worker, as of the last broadcast; remade at the next one after a
    /// socket came or went (so a crowd arriving or leaving costs one pass, not one per socket).
    workers: Vec<Worker>,
    changed: bool,
}

impl Sessions {
    /// A socket that takes no broadcasts until [`Sessions::activate`].
    pub(crate) fn add(&mut self, id: SessionId, user: UserName, outlet: Outlet) {
        self.sessions.insert(
            id,
            Session {
                user,
                outlet,
                active: false,
            },
        );
    }

    /// Forgets a socket; its user, if it was here.
    pub(crate) fn remove(&mut self, id: SessionId) -> Option<UserName> {
        let session = self.sessions.remove(&id)?;
        self.changed |= session.active;
        Some(session.user)
    }

    /// The socket got its first state: broadcasts go to it from now on. False if it is gone.
    pub(crate) fn activate(&mut self, id: SessionId) -> bool {
        let Some(session) = self.sessions.get_mut(&id) else {
            return false;
        };
        self.changed |= !session.active;
        session.active = true;
        true
    }

    /// Sends `what` to every active socket: one delivery per worker.
    pub(crate) fn broadcast(&mut self, what: Outbound) {
        if self.changed {
            self.regroup();
        }
        for worker in &self.workers {
            worker
                .queue
                .send(To::Many(worker.active.clone()), what.clone());
        }
    }

    /// Groups the active sockets by worker again.
    fn regroup(&mut self) {
        let active = self.sessions.values().filter(|s| s.active);
        self.workers = by_worker(active.map(|s| &s.outlet))
            .into_iter()
            .map(|(queue, active)| Worker { queue, active })
            .collect();
        self.changed = false;
    }

    /// Sends `last` (if any) and then ends every socket, active or not, and forgets them all.
    pub(crate) fn end_all(&mut self, last: Option<Outbound>, reason: CloseReason) {
        let outlets = || self.sessions.values().map(|s| &s.outlet);
        if let Some(last) = &last {
            send_to_each(outlets(), last);
        }
        send_to_each(outlets(), &Outbound::End(reason));
        self.sessions.clear();
        self.workers.clear();
        self.changed = false;
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc::UnboundedReceiver;

    use super::*;
    use crate::room::outlet::Delivery;

    fn user(name: &str) -> UserName {
        UserName::parse(name).expect("a valid user name")
    }

    /// Who each delivery on `rx` is for, in order.
    fn received(rx: &mut UnboundedReceiver<Delivery>) -> Vec<Vec<SessionId>> {
        let mut got = Vec::new();
        while let Ok(delivery) = rx.try_recv() {
            let mut ids = match delivery.to {
                To::One(id) => vec![id],
                To::Many(ids) => ids.to_vec(),
            };
            ids.sort_unstable();
            got.push(ids);
        }
        got
    }

    #[test]
    fn a_broadcast_is_one_delivery_per_worker_for_its_active_sockets() {
        let (a, mut rx_a) = WorkerQueue::new();
        let (b, mut rx_b) = WorkerQueue::new();
        let mut sessions = Sessions::default();
        for (id, queue) in [(1, &a), (2, &a), (3, &b), (4, &a)] {
            let outlet = Outlet {
                queue: queue.clone(),
                session: id,
            };
            sessions.add(id, user("ann"), outlet);
        }
        for id in [1, 2, 3] {
            assert!(sessions.activate(id));
        }
        assert!(!sessions.activate(9), "an unknown socket is not activated");
        sessions.broadcast(Outbound::End(CloseReason::RoomClosed));
        assert_eq!(received(&mut rx_a), vec![vec![1, 2]], "4 is not active yet");
        assert_eq!(received(&mut rx_b), vec![vec![3]]);

        assert!(sessions.remove(3).is_some());
        assert!(sessions.remove(1).is_some());
        assert!(sessions.remove(1).is_none(), "gone already");
        sessions.broadcast(Outbound::End(CloseReason::RoomClosed));
        assert_eq!(received(&mut rx_a), vec![vec![2]]);
        assert_eq!(
            received(&mut rx_b),
            Vec::<Vec<SessionId>>::new(),
            "no socket left on b"
        );

        sessions.end_all(None, CloseReason::ServerShutdown);
        assert_eq!(received(&mut rx_a), vec![vec![2, 4]], "active or not");
        sessions.broadcast(Outbound::End(CloseReason::RoomClosed));
        assert!(received(&mut rx_a).is_empty(), "all forgotten");
    }
}
