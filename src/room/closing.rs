//! `Closing`: a room's close in progress — who waits for the final view, and whether the final
//! record is being written. The room stops taking mutations when the close begins, writes the
//! record once nothing is pending, and answers every waiter with the same outcome. How long a
//! caller waits for that outcome is `RoomSettings::close_timeout`.

use roomstate_core::room::{ChatMessage, RoomId, RoomView};
use roomstate_journal::{Journal, JournalError, MESSAGES_PER_READ};
use tokio::sync::oneshot;

use super::failure::{Reply, RoomFailure};

/// The room's messages up to seq `upto` (those that left its memory), for the final record:
/// read from the journal a page at a time, since one read returns at most `MESSAGES_PER_READ`.
pub(crate) async fn older_messages(
    journal: &dyn Journal,
    room: &RoomId,
    upto: u64,
) -> Result<Vec<ChatMessage>, JournalError> {
    let mut all: Vec<ChatMessage> = Vec::new();
    let mut after = 0;
    loop {
        let page = journal
            .messages(room.clone(), after, MESSAGES_PER_READ)
            .await?;
        let (full, from) = (page.len() == MESSAGES_PER_READ, after);
        let mut past_upto = false;
        for message in page {
            if message.seq > upto {
                past_upto = true;
                break;
            }
            after = message.seq;
            all.push(message);
        }
        if !full || past_upto || after >= upto || after == from {
            return Ok(all);
        }
    }
}

/// Why a close's final record was not written.
#[derive(Debug)]
pub(crate) enum RecordFailure {
    /// Another writer holds the room now: the room stops here, and its owner closes it.
    Lost(String),
    /// The journal or the store failed: nothing of the close was applied, the room takes
    /// mutations again, and the close may be retried.
    Failed(String),
}

impl RecordFailure {
    /// The failure of the journal's `hold` before the record.
    pub(crate) fn from_hold(error: JournalError) -> Self {
        match error {
            JournalError::Fenced(why) => Self::Lost(why),
            other => Self::Failed(format!("the room's lease could not be confirmed: {other}")),
        }
    }
}

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
