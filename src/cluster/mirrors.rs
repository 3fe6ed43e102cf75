//! `Mirrors`: this node's mirrors of rooms other nodes own, by room, and the one journal tail
//! that feeds them all (`RedisTail`: durable events only, in order, on a connection of its own).
//! A mirror starts with the first socket here for its room and stops a while after its last.

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix::prelude::*;
use parking_lot::Mutex;
use roomstate_core::room::RoomId;
use roomstate_journal::redis::{Cursor, RedisTail, TailUpdate};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{
    metrics::ClusterMetrics,
    mirror::{EndAll, RoomMirror, Update},
    router::Router,
};

type Rooms = Arc<Mutex<HashMap<RoomId, Addr<RoomMirror>>>>;

struct Inner {
    tail: RedisTail,
    rooms: Rooms,
    arbiter: ArbiterHandle,
    metrics: ClusterMetrics,
    /// Chat messages a mirror keeps in memory (as a room does).
    max_messages: usize,
}

/// This node's mirrors. Clones share them.
#[derive(Clone)]
pub(crate) struct Mirrors {
    inner: Arc<Inner>,
}

impl Mirrors {
    /// Mirrors running on `arbiter`, fed by `tail` (whose updates arrive on `updates`).
    pub(crate) fn start(
        arbiter: ArbiterHandle,
        tail: RedisTail,
        mut updates: UnboundedReceiver<TailUpdate>,
        metrics: ClusterMetrics,
        max_messages: usize,
    ) -> Self {
        let rooms: Rooms = Arc::new(Mutex::new(HashMap::new()));
        let dispatch = rooms.clone();
        arbiter.spawn(async move {
            while let Some(update) = updates.recv().await {
                let room = match &update {
                    TailUpdate::Reload { log, .. } => &log.room,
                    TailUpdate::Events { room, .. }
                    | TailUpdate::Owner { room, .. }
                    | TailUpdate::Gone { room } => room,
                };
                let mirror = dispatch.lock().get(room).cloned();
                // A room no mirror follows any more: its updates have no one to go to.
                if let Some(mirror) = mirror {
                    mirror.do_send(Update(update));
                }
            }
        });
        Self {
            inner: Arc::new(Inner {
                tail,
                rooms,
                arbiter,
                metrics,
                max_messages,
            }),
        }
    }

    /// The mirror of `id`, started (and the room followed) if there is none.
    pub(crate) fn mirror(&self, id: &RoomId, router: Router) -> Addr<RoomMirror> {
        let mut rooms = self.inner.rooms.lock();
        if let Some(mirror) = rooms.get(id).filter(|m| m.connected()) {
            return mirror.clone();
        }
        let (room, mirrors) = (id.clone(), self.clone());
        let (metrics, max_messages) = (self.inner.metrics.clone(), self.inner.max_messages);
        let mirror = RoomMirror::start_in_arbiter(&self.inner.arbiter, move |_| {
            let on_stop = Box::new(move |id: &RoomId, addr: &Addr<RoomMirror>| {
                mirrors.stopped(id, addr);
            });
            RoomMirror::new(room, router, on_stop, metrics, max_messages)
        });
        if rooms.insert(id.clone(), mirror.clone()).is_none() {
            self.inner.metrics.mirrors.inc();
        }
        self.inner.tail.follow(Cursor {
            room: id.clone(),
            seq: 0,
        });
        tracing::debug!(room.id = %id, "mirroring a room owned elsewhere");
        mirror
    }

    /// The node is stopping: every mirror ends its sockets and stops. Waits (at most
    /// `within`) until each has told its sockets, so the caller may stop the mirrors' arbiter.
    pub(crate) async fn end_all(&self, within: Duration) {
        let mirrors: Vec<Addr<RoomMirror>> = self.inner.rooms.lock().values().cloned().collect();
        let told = futures_util::future::join_all(mirrors.iter().map(|m| m.send(EndAll)));
        if tokio::time::timeout(within, told).await.is_err() {
            tracing::warn!("mirrors still ending their sockets at the deadline");
        }
    }

    /// A mirror stopped: the room is no longer followed (unless a new mirror took its place).
    pub(crate) fn stopped(&self, id: &RoomId, mirror: &Addr<RoomMirror>) {
        let mut rooms = self.inner.rooms.lock();
        if rooms.get(id) == Some(mirror) {
            rooms.remove(id);
            self.inner.metrics.mirrors.dec();
            self.inner.tail.unfollow(id);
        }
    }
}
