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

/// Group commit's gathering step: `first` plus whatever `next` yields without waiting, until the
/// batch holds `max_events` events (a single larger request still goes alone). Returns the batch
/// and its event count.
pub fn gather<R>(
    first: R,
    mut next: impl FnMut() -> Option<R>,
    events_of: impl Fn(&R) -> usize,
    max_events: usize,
) -> (Vec<R>, usize) {
    let mut events = events_of(&first);
    let mut batch = vec![first];
    while events < max_events {
        match next() {
            Some(request) => {
                events += events_of(&request);
                batch.push(request);
            }
            None => break,
        }
    }
    (batch, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_what_is_queued_up_to_the_bound() {
        let mut queue = vec![3, 4, 5, 6].into_iter();
        let (batch, events) = gather(2, || queue.next(), |n| *n, 9);
        assert_eq!((batch, events), (vec![2, 3, 4], 9));
        let (batch, _) = gather(20, || queue.next(), |n| *n, 9);
        assert_eq!(batch, vec![20], "a large first request goes alone");
        let (batch, events) = gather(1, || None::<usize>, |n| *n, 9);
        assert_eq!((batch, events), (vec![1], 1));
    }
}
