//! `Registry`: room id -> room actor. Creates, finds and closes rooms, recovers every open room
//! from the journal at start, and drains them all at shutdown.
//!
//! Rooms run on a small set of arbiters of their own (one per core), apart from the HTTP
//! workers, so a room's life does not depend on the worker that created it.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use actix::prelude::*;
use futures_util::future::join_all;
use parking_lot::RwLock;

use super::{
    actor::{RoomActor, RoomDeps, RoomIndex},
    id::RoomId,
    messages::{Close, GetView, RoomFailure, Shutdown},
    state::RoomState,
    view::RoomView,
};
use crate::{journal::JournalError, store::StoreError, time};

/// Why recovery at start failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Replay(#[from] super::state::ReplayError),
}

/// What a lookup found.
pub enum Found {
    Open(Addr<RoomActor>),
    Closed(RoomView),
    Unknown,
}

pub struct Registry {
    rooms: Arc<RoomIndex>,
    stopping: AtomicBool,
    arbiters: Vec<Arbiter>,
    next_arbiter: AtomicUsize,
    deps: Arc<RoomDeps>,
}

impl Registry {
    /// A registry with one room thread per core.
    pub fn new(deps: RoomDeps) -> Self {
        Self::with_threads(deps, 0)
    }

    /// A registry whose rooms run on `threads` threads (0: one per core).
    pub fn with_threads(deps: RoomDeps, threads: usize) -> Self {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        Self {
            rooms: Arc::new(RwLock::new(HashMap::new())),
            stopping: AtomicBool::new(false),
            arbiters: (0..threads).map(|_| Arbiter::new()).collect(),
            next_arbiter: AtomicUsize::new(0),
            deps: Arc::new(deps),
        }
    }

    pub fn deps(&self) -> &RoomDeps {
        &self.deps
    }

    fn start(&self, state: RoomState) -> Addr<RoomActor> {
        let id = state.id().clone();
        let deps = self.deps.clone();
        let index = self.rooms.clone();
        let n = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let addr = RoomActor::start_in_arbiter(&self.arbiters[n].handle(), move |_| {
            RoomActor::new(state, deps, index)
        });
        self.rooms.write().insert(id, addr.clone());
        addr
    }

    /// Opens a room; answers once its creation is durable.
    pub async fn create(&self, title: String) -> Result<RoomView, RoomFailure> {
        if self.is_stopping() {
            return Err(RoomFailure::Unavailable(
                "the server is shutting down".into(),
            ));
        }
        let (state, event) = RoomState::create(RoomId::generate(), title, time::now())?;
        self.deps
            .journal
            .append(vec![event])
            .await
            .map_err(|e| RoomFailure::Unavailable(e.to_string()))?;
        self.deps
            .metrics
            .mutations
            .with_label_values(&["created"])
            .inc();
        let view = state.view(state.counters());
        tracing::info!(room.id = %view.id, "room created");
        self.start(state);
        Ok(view)
    }

    /// The open room's actor, if it is open here.
    pub fn get(&self, id: &RoomId) -> Option<Addr<RoomActor>> {
        self.rooms.read().get(id).cloned()
    }

    /// Open here, closed in the store, or unknown; `Unavailable` while the engine stops.
    pub async fn find(&self, id: &RoomId) -> Result<Found, ApiFailure> {
        if self.is_stopping() {
            return Err(RoomFailure::Unavailable("the server is shutting down".into()).into());
        }
        if let Some(addr) = self.get(id) {
            if addr.connected() {
                return Ok(Found::Open(addr));
            }
        }
        Ok(match self.deps.store.room(id).await? {
            Some(view) => Found::Closed(view),
            None => Found::Unknown,
        })
    }

    /// Views of every open room, newest first.
    pub async fn views(&self) -> Vec<RoomView> {
        let addrs: Vec<_> = self.rooms.read().values().cloned().collect();
        let mut views: Vec<RoomView> = join_all(addrs.iter().map(|a| a.send(GetView)))
            .await
            .into_iter()
            .filter_map(Result::ok)
            .filter(|v| v.closed_at.is_none())
            .collect();
        views.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        views
    }

    /// True once shutdown began: new mutations are refused with 503.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn open_rooms(&self) -> usize {
        self.rooms.read().len()
    }

    /// Closes a room (see `Close`); closing a closed room answers its final view again.
    pub async fn close(&self, id: &RoomId) -> Result<Option<RoomView>, ApiFailure> {
        if let Some(addr) = self.get(id) {
            match addr.send(Close).await {
                Ok(Ok(view)) => {
                    self.rooms.write().remove(id);
                    return Ok(Some(view));
                }
                Ok(Err(failure)) => return Err(failure.into()),
                // The actor stopped between the lookup and the send: it closed meanwhile.
                Err(MailboxError::Closed | MailboxError::Timeout) => {
                    self.rooms.write().remove(id);
                }
            }
        }
        Ok(self.deps.store.room(id).await?)
    }

    /// Rebuilds every open room from the journal. A room whose final record is already in the
    /// store (a crash after the write-back, before the log was deleted) only has its log deleted.
    pub async fn recover(&self) -> Result<usize, RecoveryError> {
        let logs = self.deps.journal.recover().await?;
        let closed: std::collections::HashSet<RoomId> = self
            .deps
            .store
            .stored_among(logs.iter().map(|l| l.room.clone()).collect())
            .await?
            .into_iter()
            .collect();
        let mut recovered = 0;
        for log in logs {
            if closed.contains(&log.room) {
                tracing::info!(room.id = %log.room, "room already closed in the store; deleting its log");
                self.deps.journal.delete_room(log.room.clone()).await?;
                continue;
            }
            let state = match &log.snapshot {
                Some(snapshot) => RoomState::restore(snapshot, &log.events)?,
                None => RoomState::replay(&log.room, &log.events)?,
            };
            tracing::debug!(room.id = %log.room, seq = state.seq(), "room recovered");
            self.start(state);
            recovered += 1;
        }
        self.deps.metrics.rooms_recovered.inc_by(recovered as u64);
        Ok(recovered)
    }

    /// Makes every pending event durable (waiting at most `deadline`), closes every socket with
    /// 1001, and stops the rooms and their arbiters.
    pub async fn shutdown(&self, deadline: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        // The rooms leave the map themselves as they stop.
        let addrs: Vec<_> = self.rooms.read().values().cloned().collect();
        let drained = join_all(addrs.iter().map(|a| a.send(Shutdown)));
        if tokio::time::timeout(deadline, drained).await.is_err() {
            tracing::warn!("shutdown deadline passed with events not yet durable");
        }
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// A failure of a registry call that involves both a room and the store.
#[derive(Debug, thiserror::Error)]
pub enum ApiFailure {
    #[error(transparent)]
    Room(#[from] RoomFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
}
