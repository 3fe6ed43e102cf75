//! A worker thread's sockets, as rooms reach them: one queue per HTTP worker
//! (`room::outlet::WorkerQueue`), read by one task that hands each delivery to the sockets it
//! names. A room's broadcast wakes a worker once, not once per socket: the task runs through
//! the sockets in one pass, and each socket encodes into its own outgoing buffer (its writer
//! then sends the lot in one `send`).
//!
//! The hub is made on a worker the first time a socket opens there, and lives as long as the
//! worker's runtime.

use std::{
    cell::RefCell,
    panic::{catch_unwind, AssertUnwindSafe},
    rc::Rc,
};

use foldhash::HashMap;
use roomstate_core::protocol::CloseReason;

use tokio::sync::mpsc::UnboundedReceiver;

use crate::room::{
    outbound::{Outbound, SessionId},
    outlet::{Delivery, Outlet, To, WorkerQueue},
};

/// What a socket does with what its room sends it.
pub(crate) trait Deliver {
    fn deliver(&self, what: &Outbound);
}

type Local = Rc<RefCell<HashMap<SessionId, Rc<dyn Deliver>>>>;

/// This worker's hub: its queue, and the sockets on it.
#[derive(Clone)]
struct Hub {
    queue: WorkerQueue,
    local: Local,
}

thread_local! {
    static HUB: RefCell<Option<Hub>> = const { RefCell::new(None) };
}

/// This worker's hub, made (and its task started) if there is none yet or its runtime ended.
fn current() -> Hub {
    HUB.with(|hub| {
        let mut hub = hub.borrow_mut();
        if let Some(live) = hub.as_ref().filter(|h| !h.queue.is_closed()) {
            return live.clone();
        }
        let (queue, rx) = WorkerQueue::new();
        let local = Local::default();
        actix_rt::spawn(run(rx, local.clone()));
        let made = Hub { queue, local };
        *hub = Some(made.clone());
        made
    })
}

/// A socket's place on its worker's hub: rooms reach it through `outlet()` until it is dropped.
pub(crate) struct Registration {
    outlet: Outlet,
    local: Local,
}

impl Registration {
    /// A place for `session` on this worker: rooms reach it once it is `attach`ed.
    pub(crate) fn new(session: SessionId) -> Self {
        let hub = current();
        Self {
            outlet: Outlet {
                queue: hub.queue,
                session,
            },
            local: hub.local,
        }
    }

    /// What the room sends the session goes to `socket` from now on.
    pub(crate) fn attach(&self, socket: Rc<dyn Deliver>) {
        self.local.borrow_mut().insert(self.outlet.session, socket);
    }

    pub(crate) fn outlet(&self) -> Outlet {
        self.outlet.clone()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.local.borrow_mut().remove(&self.outlet.session);
    }
}

async fn run(mut rx: UnboundedReceiver<Delivery>, local: Local) {
    while let Some(Delivery { to, what }) = rx.recv().await {
        match to {
            To::One(session) => deliver(&local, session, &what),
            To::Many(sessions) => {
                for session in sessions.iter() {
                    deliver(&local, *session, &what);
                }
            }
        }
    }
}

fn deliver(local: &Local, session: SessionId, what: &Outbound) {
    // Not borrowed while the socket runs: it may end and unregister.
    let Some(socket) = local.borrow().get(&session).cloned() else {
        return;
    };
    // A bug in one socket must not end the hub, and every other socket's frames with it: that
    // socket ends instead (its client reconnects).
    if catch_unwind(AssertUnwindSafe(|| socket.deliver(what))).is_err() {
        tracing::error!(
            session,
            "a socket failed to take what its room sent; ending it"
        );
        let end = Outbound::End(CloseReason::TryAgainLater);
        let _ = catch_unwind(AssertUnwindSafe(|| socket.deliver(&end)));
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, sync::Arc, time::Duration};

    use super::*;

    #[derive(Default)]
    struct Seen(RefCell<Vec<String>>);

    impl Deliver for Seen {
        fn deliver(&self, what: &Outbound) {
            let text = match what {
                Outbound::End(reason) => reason.describe().to_owned(),
                _ => "frame".to_owned(),
            };
            self.0.borrow_mut().push(text);
        }
    }

    fn registered(session: SessionId, socket: Rc<dyn Deliver>) -> Registration {
        let registration = Registration::new(session);
        registration.attach(socket);
        registration
    }

    /// Waits (at most 10 s) until `seen` holds `n` deliveries.
    async fn until(seen: &Seen, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.0.borrow().len() < n && tokio::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
    }

    #[actix_rt::test]
    async fn deliveries_reach_the_registered_sockets_of_this_worker_in_order() {
        let (a, b) = (Rc::new(Seen::default()), Rc::new(Seen::default()));
        let reg_a = registered(1, a.clone());
        let reg_b = registered(2, b.clone());
        let outlet = reg_a.outlet();
        assert_eq!(
            outlet.queue.id(),
            reg_b.outlet().queue.id(),
            "one hub per worker"
        );
        let many = |ids: Vec<SessionId>| To::Many(Arc::new(ids));
        // 3 is no socket here: skipped.
        outlet
            .queue
            .send(many(vec![1, 2, 3]), Outbound::End(CloseReason::RoomClosed));
        outlet
            .queue
            .send(many(vec![1]), Outbound::End(CloseReason::ServerShutdown));
        until(&b, 1).await;
        drop(reg_b);
        outlet
            .queue
            .send(many(vec![1, 2]), Outbound::End(CloseReason::Flooding));
        until(&a, 3).await;
        let said = |reasons: &[CloseReason]| -> Vec<String> {
            reasons.iter().map(|r| r.describe().to_owned()).collect()
        };
        assert_eq!(
            *a.0.borrow(),
            said(&[
                CloseReason::RoomClosed,
                CloseReason::ServerShutdown,
                CloseReason::Flooding
            ])
        );
        assert_eq!(
            *b.0.borrow(),
            said(&[CloseReason::RoomClosed]),
            "nothing after it unregistered"
        );
    }

    /// Panics at the room's close; takes any other end.
    #[derive(Default)]
    struct Faulty(RefCell<Vec<String>>);

    impl Deliver for Faulty {
        fn deliver(&self, what: &Outbound) {
            match what {
                Outbound::End(CloseReason::RoomClosed) => panic!("a bug in one socket"),
                Outbound::End(reason) => self.0.borrow_mut().push(reason.describe().to_owned()),
                _ => {}
            }
        }
    }

    #[actix_rt::test]
    async fn a_socket_that_fails_is_ended_and_the_others_still_get_their_frames() {
        let (faulty, fine) = (Rc::new(Faulty::default()), Rc::new(Seen::default()));
        let _faulty_reg = registered(1, faulty.clone());
        let reg = registered(2, fine.clone());
        reg.outlet().queue.send(
            To::Many(Arc::new(vec![1, 2])),
            Outbound::End(CloseReason::RoomClosed),
        );
        until(&fine, 1).await;
        assert_eq!(
            *fine.0.borrow(),
            vec![CloseReason::RoomClosed.describe().to_owned()]
        );
        assert_eq!(
            *faulty.0.borrow(),
            vec![CloseReason::TryAgainLater.describe().to_owned()]
        );
    }
}
