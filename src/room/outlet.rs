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

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::outbound::{Outbound, SessionId};

static NEXT_QUEUE: AtomicU64 = AtomicU64::new(1);

/// Which sockets of a worker a delivery is for.
pub(crate) enum To {
    One(SessionId),
    /// Shared between the room (which keeps the list) and the deliveries in flight.
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
