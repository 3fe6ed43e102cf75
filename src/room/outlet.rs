//! Where a room's frames for its sockets go: each socket lives on one HTTP worker thread, and
//! each worker has one queue of deliveries ([`WorkerQueue`]) that its sockets share. A room
//! sends one [`Delivery`] per worker for a broadcast, naming that worker's sockets, instead of
//! one message per socket: the worker wakes once and hands the shared value to each of them
//! (`ws::hub`).
//!
//! A room holds an [`Outlet`] per socket: the socket's id and its worker's queue.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use foldhash::{HashMap, HashMapExt as _};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::{
    failure::{Reply, RoomFailure},
    outbound::{Outbound, SessionId},
};

static NEXT_QUEUE: AtomicU64 = AtomicU64::new(1);

/// Which sockets of a worker a delivery is for.
pub(crate) enum To {
    One(SessionId),
    /// A room's list of them, shared with the deliveries in flight.
    Many(Arc<Vec<SessionId>>),
}

/// One value for some of a worker's sockets, in the order the room sent it.
pub(crate) struct Delivery {
    pub(crate) to: To,
    pub(crate) what: Outbound,
}

/// A worker's queue of deliveries (the sending side, which rooms hold).
#[derive(Clone)]
pub(crate) struct WorkerQueue {
    id: u64,
    tx: UnboundedSender<Delivery>,
}

impl WorkerQueue {
    /// A new queue, and its receiving side for the worker.
    pub(crate) fn new() -> (Self, UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = NEXT_QUEUE.fetch_add(1, Ordering::Relaxed);
        (Self { id, tx }, rx)
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Whether the worker stopped taking deliveries (its runtime ended).
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Queues `what` for the sockets `to`. A worker that stopped has no sockets left to tell.
    pub(crate) fn send(&self, to: To, what: Outbound) {
        let _ = self.tx.send(Delivery { to, what });
    }
}

/// Where a room's frames for one socket go.
#[derive(Clone)]
pub(crate) struct Outlet {
    pub(crate) queue: WorkerQueue,
    pub(crate) session: SessionId,
}

impl Outlet {
    /// Sends `what` to this socket alone.
    pub(crate) fn send(&self, what: Outbound) {
        self.queue.send(To::One(self.session), what);
    }
}

/// Where the answer to one socket request goes, answered once. Dropped unanswered (its room
/// stopped before it took the request, say), it answers that the room stopped
/// (`RoomFailure::Stopped`: `room_closed` to a socket that heard the room close, else
/// `unavailable`).
pub(crate) struct AnswerTo {
    outlet: Option<Outlet>,
    tag: u64,
}

impl AnswerTo {
    pub(crate) fn new(outlet: Outlet, tag: u64) -> Self {
        Self {
            outlet: Some(outlet),
            tag,
        }
    }

    pub(crate) fn answer(mut self, outcome: Reply<u64>) {
        if let Some(outlet) = self.outlet.take() {
            outlet.send(Outbound::Answer {
                tag: self.tag,
                outcome,
            });
        }
    }
}

impl Drop for AnswerTo {
    fn drop(&mut self) {
        if let Some(outlet) = self.outlet.take() {
            outlet.send(Outbound::Answer {
                tag: self.tag,
                outcome: Err(RoomFailure::Stopped),
            });
        }
    }
}

/// The sessions of `outlets`, grouped by their worker's queue.
pub(crate) fn by_worker<'a>(
    outlets: impl IntoIterator<Item = &'a Outlet>,
) -> Vec<(WorkerQueue, Arc<Vec<SessionId>>)> {
    let mut groups: HashMap<u64, (WorkerQueue, Vec<SessionId>)> = HashMap::new();
    for outlet in outlets {
        groups
            .entry(outlet.queue.id())
            .or_insert_with(|| (outlet.queue.clone(), Vec::new()))
            .1
            .push(outlet.session);
    }
    groups
        .into_values()
        .map(|(queue, sessions)| (queue, Arc::new(sessions)))
        .collect()
}

/// Sends `what` to each of `outlets`: one delivery per worker among them.
pub(crate) fn send_to_each<'a>(outlets: impl IntoIterator<Item = &'a Outlet>, what: &Outbound) {
    for (queue, sessions) in by_worker(outlets) {
        queue.send(To::Many(sessions), what.clone());
    }
}

#[cfg(test)]
mod tests {
    use roomstate_core::protocol::CloseReason;
    use tokio::sync::mpsc::UnboundedReceiver;

    use super::*;

    #[test]
    fn sending_to_each_is_one_delivery_per_worker() {
        let (a, mut rx_a) = WorkerQueue::new();
        let (b, mut rx_b) = WorkerQueue::new();
        let outlets: Vec<Outlet> = [(1, &a), (2, &b), (3, &a)]
            .into_iter()
            .map(|(session, queue)| Outlet {
                queue: queue.clone(),
                session,
            })
            .collect();
        send_to_each(&outlets, &Outbound::End(CloseReason::RoomClosed));
        let to = |rx: &mut UnboundedReceiver<Delivery>| match rx.try_recv() {
            Ok(Delivery {
                to: To::Many(ids), ..
            }) => ids.to_vec(),
            _ => Vec::new(),
        };
        assert_eq!(to(&mut rx_a), vec![1, 3]);
        assert!(rx_a.try_recv().is_err(), "one delivery for a");
        assert_eq!(to(&mut rx_b), vec![2]);
        send_to_each(&[], &Outbound::End(CloseReason::RoomClosed));
        assert!(
            rx_a.try_recv().is_err() && rx_b.try_recv().is_err(),
            "none for no socket"
        );
    }

    #[test]
    fn a_request_is_answered_once_and_one_never_answered_says_so() {
        let (queue, mut rx) = WorkerQueue::new();
        let outlet = Outlet { queue, session: 7 };
        let answer = |rx: &mut UnboundedReceiver<Delivery>| match rx.try_recv() {
            Ok(Delivery {
                to: To::One(7),
                what: Outbound::Answer { tag, outcome },
            }) => Some((tag, outcome)),
            _ => None,
        };
        AnswerTo::new(outlet.clone(), 1).answer(Ok(41));
        assert_eq!(answer(&mut rx), Some((1, Ok(41))));
        assert_eq!(answer(&mut rx), None, "once");
        drop(AnswerTo::new(outlet, 2));
        assert_eq!(answer(&mut rx), Some((2, Err(RoomFailure::Stopped))));
    }
}
