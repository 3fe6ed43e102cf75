//! The sockets open on this engine, counted until their connections end, so that shutdown can
//! wait for their last bytes (the close frames the rooms sent) before the workers stop: once
//! open, a socket runs as a task of its own, which the HTTP server does not count. The count
//! also bounds them: at most `limits.max_sockets` in all and `limits.max_sockets_per_client` per
//! client (an address, or an IPv6 /64), refused before the upgrade, since every socket holds a
//! file descriptor and memory for as long as its client keeps it.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use parking_lot::Mutex;
use tokio::{sync::Notify, time::Instant};

use crate::ratelimit::client_of;

struct Count {
    open: AtomicUsize,
    none_left: Notify,
    limits: SocketLimits,
    /// Open sockets by client; a client with none has no entry.
    by_client: Mutex<HashMap<IpAddr, usize>>,
}

/// How many sockets may be open at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketLimits {
    pub(crate) total: usize,
    pub(crate) per_client: usize,
}

impl Default for SocketLimits {
    fn default() -> Self {
        Self {
            total: usize::MAX,
            per_client: usize::MAX,
        }
    }
}

/// Why a socket may not open now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The engine holds `limits.max_sockets`.
    Engine(usize),
    /// The client holds `limits.max_sockets_per_client`.
    Client(usize),
}

/// Every open socket's connection, counted.
#[derive(Clone)]
pub(crate) struct OpenSockets(Arc<Count>);

impl Default for OpenSockets {
    fn default() -> Self {
        Self::new(SocketLimits::default())
    }
}

/// One socket's place in the count, given back when dropped.
pub(crate) struct SocketGuard {
    sockets: OpenSockets,
    client: IpAddr,
}

impl OpenSockets {
    pub(crate) fn new(limits: SocketLimits) -> Self {
        Self(Arc::new(Count {
            open: AtomicUsize::new(0),
            none_left: Notify::new(),
            limits,
            by_client: Mutex::new(HashMap::new()),
        }))
    }

    /// A place for one more socket of `client`, unless the engine or the client holds its
    /// maximum.
    pub(crate) fn open_for(&self, client: IpAddr) -> Result<SocketGuard, Full> {
        let limits = self.0.limits;
        let client = client_of(client);
        let mut by_client = self.0.by_client.lock();
        let held = by_client.get(&client).copied().unwrap_or(0);
        if held >= limits.per_client {
            return Err(Full::Client(limits.per_client));
        }
        if self.count() >= limits.total {
            return Err(Full::Engine(limits.total));
        }
        by_client.insert(client, held + 1);
        self.0.open.fetch_add(1, Ordering::Relaxed);
        Ok(SocketGuard {
            sockets: self.clone(),
            client,
        })
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
        let count = &self.sockets.0;
        {
            let mut by_client = count.by_client.lock();
            if let Some(held) = by_client.get_mut(&self.client) {
                *held -= 1;
                if *held == 0 {
                    by_client.remove(&self.client);
                }
            }
        }
        if count.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            count.none_left.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_bounded_per_client_and_in_all_and_given_back() {
        let sockets = OpenSockets::new(SocketLimits {
            total: 3,
            per_client: 2,
        });
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let a1 = sockets.open_for(ip("10.0.0.1")).unwrap();
        let a2 = sockets.open_for(ip("10.0.0.1")).unwrap();
        assert_eq!(
            sockets.open_for(ip("10.0.0.1")).err(),
            Some(Full::Client(2))
        );
        // Another address of the same IPv6 /64 is the same client.
        let v6 = sockets.open_for(ip("2001:db8::1")).unwrap();
        assert_eq!(
            sockets.open_for(ip("2001:db8::2")).err(),
            Some(Full::Engine(3)),
            "the engine's bound comes after the client's"
        );
        drop(a1);
        assert!(sockets.open_for(ip("10.0.0.2")).is_ok(), "a place freed");
        drop((a2, v6));
        assert_eq!(sockets.count(), 0);
        assert!(
            sockets.0.by_client.lock().is_empty(),
            "no client left behind"
        );
    }

    #[actix_rt::test]
    async fn shutdown_waits_for_the_last_socket_and_no_longer_than_it_may() {
        let sockets = OpenSockets::default();
        assert!(sockets.all_ended(Duration::ZERO).await);
        let (a, b) = (
            sockets.open_for(IpAddr::from([127, 0, 0, 1])).unwrap(),
            sockets.open_for(IpAddr::from([127, 0, 0, 1])).unwrap(),
        );
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
