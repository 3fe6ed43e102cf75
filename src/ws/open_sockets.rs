//! The sockets open on this engine, counted until their connections end, so that shutdown can
//! wait for their last bytes (the close frames the rooms sent) before the workers stop: once
//! open, a socket runs as a task of its own, which the HTTP server does not count.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

#[derive(Default)]
struct Count {
    open: AtomicUsize,
    none_left: Notify,
}

/// Every open socket's connection, counted.
#[derive(Clone, Default)]
pub(crate) struct OpenSockets(Arc<Count>);

/// One socket's place in the count, given back when dropped.
pub(crate) struct SocketGuard(OpenSockets);

impl OpenSockets {
    pub(crate) fn open(&self) -> SocketGuard {
        self.0.open.fetch_add(1, Ordering::Relaxed);
        SocketGuard(self.clone())
    }

    pub(crate) fn count(&self) -> usize {
        self.0.open.load(Ordering::Acquire)
    }

    /// Waits until no socket's connection is left, for at most `within`; whether none is.
    pub(crate) async fn all_ended(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            // Made before the count is read, so a last end between the two still wakes it.
            let ended = self.0.none_left.notified();
            if self.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return self.count() == 0;
            }
        }
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if self.0 .0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0 .0.none_left.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn shutdown_waits_for_the_last_socket_and_no_longer_than_it_may() {
        let sockets = OpenSockets::default();
        assert!(sockets.all_ended(Duration::ZERO).await);
        let (a, b) = (sockets.open(), sockets.open());
        assert!(!sockets.all_ended(Duration::from_millis(20)).await);
        let waiting = actix_rt::spawn({
            let sockets = sockets.clone();
            async move { sockets.all_ended(Duration::from_secs(30)).await }
        });
        drop(a);
        actix_rt::task::yield_now().await;
        assert_eq!(sockets.count(), 1);
        drop(b);
        assert!(waiting.await.unwrap(), "the last end wakes the wait");
    }
}
