//! `Closing`: a room's close in progress — who waits for the final view, and whether the final
//! record is being written. The room stops taking mutations when the close begins, writes the
//! record once nothing is pending, and answers every waiter with the same outcome. How long a
//! caller waits for that outcome is `RoomSettings::close_timeout`.

use roomstate_core::room::RoomView;
use tokio::sync::oneshot;

use super::failure::{Reply, RoomFailure};

#[derive(Default)]
pub(crate) struct Closing {
    waiters: Vec<oneshot::Sender<Reply<RoomView>>>,
    writing: bool,
}

impl Closing {
    /// One more caller waits for the outcome.
    pub(crate) fn wait(&mut self, waiter: oneshot::Sender<Reply<RoomView>>) {
        // Callers whose close timed out have gone; a client retrying a close through a long
        // outage must not pile up their channels.
        self.waiters.retain(|tx| !tx.is_closed());
        self.waiters.push(waiter);
    }

    /// Whether the final record is being written now.
    pub(crate) fn writing(&self) -> bool {
        self.writing
    }

    /// Marks the write as begun; false if it already is.
    pub(crate) fn start_writing(&mut self) -> bool {
        !std::mem::replace(&mut self.writing, true)
    }

    /// The write failed: every waiter gets `failure`; a later close tries again.
    pub(crate) fn failed(&mut self, failure: RoomFailure) {
        self.writing = false;
        for tx in self.waiters.drain(..) {
            let _ = tx.send(Err(failure.clone()));
        }
    }

    /// The record is stored: every waiter gets the final view.
    pub(crate) fn written(&mut self, view: &RoomView) {
        self.writing = false;
        for tx in self.waiters.drain(..) {
            let _ = tx.send(Ok(view.clone()));
        }
    }
}
