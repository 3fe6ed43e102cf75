//! What both durable journals share about their one writer thread: joining it when the last
//! handle goes, and turning a queued request's reply channel into a `JournalFuture`.

use std::thread::JoinHandle;

use futures_util::FutureExt;
use tokio::sync::oneshot;

use super::{JournalError, JournalFuture};

/// Joins the writer thread on drop. Declare it after the request sender in the owning struct:
/// fields drop in order, so the queue closes, the thread drains it and exits, then this joins.
pub struct WriterThread {
    handle: Option<JoinHandle<()>>,
    name: &'static str,
}

impl WriterThread {
    pub fn new(handle: JoinHandle<()>, name: &'static str) -> Self {
        Self {
            handle: Some(handle),
            name,
        }
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                tracing::error!(thread = self.name, "journal writer thread panicked");
            }
        }
    }
}

/// The answer to a request that was (`queued`) or could not be queued to the writer thread
/// `name`.
pub fn answer<T: Send + 'static>(
    queued: bool,
    reply: oneshot::Receiver<Result<T, JournalError>>,
    name: &'static str,
) -> JournalFuture<T> {
    let gone =
        move || JournalError::Unavailable(format!("journal writer thread {name} has stopped"));
    async move {
        if !queued {
            return Err(gone());
        }
        reply.await.map_err(|_| gone())?
    }
    .boxed()
}
