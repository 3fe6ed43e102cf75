//! `Registry`: room id -> room actor, and everything the HTTP and socket edges ask of rooms.
//! Creates, finds, mutates and closes rooms, falls back to the store for closed ones, recovers
//! every open room from the journal at start, and drains them all at shutdown.
//!
//! Rooms run on a small set of arbiters of their own (one per core), apart from the HTTP
//! workers, so a room's life does not depend on the worker that created it.
//!
//! A process holds at most `limits.max_open_rooms` open rooms: past it a new room is refused
//! with 503 (the engine sized for that many; a script creating rooms in a loop must not take its
//! memory). Rooms recovered at start are never refused: they hold acknowledged state.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use actix::prelude::*;
use futures_util::{future::join_all, FutureExt};
use parking_lot::{Mutex, RwLock};
use roomstate_core::{
    room::{
        ChatMessage, Command, ReplayError, RoomError, RoomId, RoomState, RoomView, UserName, Via,
    },
    time,
};
use roomstate_journal::{Epoch, JournalError, JournalStatus, RoomLog};
use roomstate_store::StoreError;
use tokio::sync::oneshot;

use super::{
    actor::{RoomActor, RoomIndex},
    departed::Departed,
    deps::RoomDeps,
    failure::{RegistryFailure, RoomFailure},
    messages::{
        Abandon, Applied, AttachRemote, Close, DetachRemote, Fence, ForgetNode, GetEpoch,
        GetMessages, GetView, Mutate, RemoteMutate, Shutdown, SyncRemote,
    },
    outbound::{first_session_of_run, SessionId},
};
use crate::thread_name;

/// How long a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long rooms past the drain deadline get to answer what they hold and end their sockets.
const ABANDON_DEADLINE: Duration = Duration::from_secs(2);
/// How long a room id whose creation may have half-landed is retried for deletion.
const ORPHAN_CLEANUP: Duration = Duration::from_secs(600);
/// What became of a room taken over.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Adoption {
    /// Replayed and open here.
    Opened,
    /// Closed already (its record in the store): only its log was deleted.
    Closed,
}

/// How a room answered the engine's shutdown.
enum Drained {
    /// Nothing pending: its lease may be handed over, under this epoch.
    Handed(RoomId, Epoch),
    /// It had stopped already.
    Gone,
    /// Not drained by the deadline.
    Late,
}

/// Why recovery at start failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecoveryError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

/// What a lookup found.
enum Found {
    Open(Addr<RoomActor>),
    Closed(RoomView),
}

/// Whether the journal and the store take writes now: `None` for up, else why not.
pub(crate) struct Readiness {
    pub(crate) journal: Option<String>,
    pub(crate) store: Option<String>,
}

pub(crate) struct Registry {
    rooms: Arc<RoomIndex>,
    /// Rooms whose actor stopped here lately without closing (taken over elsewhere).
    departed: Arc<Departed>,
    stopping: AtomicBool,
    arbiters: Vec<Arbiter>,
    next_arbiter: AtomicUsize,
    deps: Arc<RoomDeps>,
    /// Open rooms past which `create` refuses.
    max_open_rooms: usize,
    /// Creations under way: counted against the cap until their room is in `rooms`, so that
    /// concurrent creations cannot pass it together.
    creating: AtomicUsize,
    /// Rooms whose creation was refused and whose log is being deleted: no scan may take one
    /// for a room of this node's to take back meanwhile.
    forgetting: Arc<Mutex<HashSet<RoomId>>>,
}

/// The guard of one creation's place under the cap.
struct Creating<'a>(&'a AtomicUsize);

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn shutting_down() -> RoomFailure {
    RoomFailure::Unavailable("the server is shutting down".into())
}

/// A thread for rooms, named for them.
fn rooms_thread() -> Arbiter {
    let arbiter = Arbiter::new();
    arbiter.spawn_fn(|| thread_name::set("roomstate-rooms"));
    arbiter
}

impl Registry {
    /// A registry whose rooms run on `threads` threads (0: one per core).
    pub(crate) fn new(deps: RoomDeps, threads: usize) -> Self {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        Self {
            rooms: Arc::new(RwLock::new(HashMap::new())),
            departed: Arc::default(),
            forgetting: Arc::default(),
            stopping: AtomicBool::new(false),
            arbiters: (0..threads).map(|_| rooms_thread()).collect(),
            next_arbiter: AtomicUsize::new(0),
            deps: Arc::new(deps),
            max_open_rooms: usize::MAX,
            creating: AtomicUsize::new(0),
        }
    }

    /// Refuses new rooms past `cap` open ones (`limits.max_open_rooms`).
    pub(crate) fn with_max_open_rooms(mut self, cap: usize) -> Self {
        self.max_open_rooms = cap;
        self
    }

    /// Takes a place under the cap for one creation, or refuses it.
    fn reserve(&self) -> Result<Creating<'_>, RoomFailure> {
        // Under the index's lock: a creation lets go of its place under the same lock as its
        // room enters the index (`start`), so every room counts exactly once here.
        let rooms = self.rooms.read();
        let before = self.creating.fetch_add(1, Ordering::SeqCst);
        let place = Creating(&self.creating);
        if rooms.len().saturating_add(before) >= self.max_open_rooms {
            return Err(RoomFailure::Unavailable(format!(
                "this engine holds its maximum of {} open rooms (limits.max_open_rooms); retry \
                 once rooms have closed",
                self.max_open_rooms
            )));
        }
        Ok(place)
    }

    /// Starts a room's actor and indexes it; a new room lets go of its `place` under the cap
    /// as it enters the index.
    fn start(
        &self,
        mut state: RoomState,
        snapshot_seq: u64,
        epoch: Epoch,
        place: Option<Creating<'_>>,
    ) -> Addr<RoomActor> {
        state.bound_messages(self.deps.settings.max_messages);
        let id = state.id().clone();
        let deps = self.deps.clone();
        let (index, departed) = (self.rooms.clone(), self.departed.clone());
        let n = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let addr = RoomActor::start_in_arbiter(&self.arbiters[n].handle(), move |_| {
            RoomActor::new(state, snapshot_seq, epoch, deps, index, departed)
        });
        let mut rooms = self.rooms.write();
        rooms.insert(id, addr.clone());
        drop(place);
        addr
    }

    /// Opens a room; answers once its creation is durable.
    pub(crate) async fn create(&self, title: String) -> Result<RoomView, RoomFailure> {
        self.create_claimed(RoomId::generate(), title, Epoch::NONE)
            .await
    }

    /// Opens room `id`, which the caller claimed under `epoch` (a cluster claims a room before
    /// anything of it is written); answers once its creation is durable.
    pub(crate) async fn create_claimed(
        &self,
        id: RoomId,
        title: String,
        epoch: Epoch,
    ) -> Result<RoomView, RoomFailure> {
        if self.is_stopping() {
            return Err(shutting_down());
        }
        let place = self.reserve()?;
        let (state, event) = RoomState::create(id, title, time::now())?;
        if let Err(error) = self.deps.journal.append(epoch, vec![event]).await {
            // The client is told nothing was applied, so nothing may stay: an append that
            // failed unclearly (e.g. written on the primary, short of replicas) could leave the
            // room in the log, to come back at the next start. Its id is new and never handed
            // out, so deleting it once the journal answers again is always safe.
            self.forget_half_created(state.id().clone(), epoch);
            return Err(RoomFailure::Unavailable(error.to_string()));
        }
        self.deps
            .metrics
            .mutations
            .with_label_values(&["created"])
            .inc();
        let view = state.view(state.counters());
        tracing::info!(room.id = %view.id, %epoch, "room created");
        self.start(state, 0, epoch, Some(place));
        Ok(view)
    }

    /// Deletes the log of a room whose creation was refused, retrying in the background until
    /// the journal takes it (for `ORPHAN_CLEANUP` at most).
    fn forget_half_created(&self, id: RoomId, epoch: Epoch) {
        let journal = self.deps.journal.clone();
        let forgetting = self.forgetting.clone();
        forgetting.lock().insert(id.clone());
        actix_rt::spawn(async move {
            let started = std::time::Instant::now();
            let mut delay = Duration::from_millis(100);
            let mut deleted = false;
            while !deleted && started.elapsed() < ORPHAN_CLEANUP {
                match journal.delete_room(epoch, id.clone()).await {
                    Ok(()) => deleted = true,
                    Err(_) => {
                        actix_rt::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            forgetting.lock().remove(&id);
            if !deleted {
                tracing::warn!(room.id = %id, "a refused room's log could not be deleted; it may come back at the next start");
            }
        });
    }

    /// Whether room `id`'s creation was refused here and its log is being deleted.
    pub(crate) fn is_forgetting(&self, id: &RoomId) -> bool {
        self.forgetting.lock().contains(id)
    }

    /// The open room's actor, if it is open here.
    pub(crate) fn get(&self, id: &RoomId) -> Option<Addr<RoomActor>> {
        self.rooms.read().get(id).cloned()
    }

    /// Open here or closed in the store; `Unavailable` while the engine stops.
    async fn find(&self, id: &RoomId) -> Result<Found, RegistryFailure> {
        if self.is_stopping() {
            return Err(shutting_down().into());
        }
        if let Some(addr) = self.get(id).filter(Addr::connected) {
            return Ok(Found::Open(addr));
        }
        // Boxed: the store's future is large and rarely needed, and every lookup's caller
        // would otherwise carry its size.
        Box::pin(self.stored(id)).await.map(Found::Closed)
    }

    /// A closed room's final view from the store. A room the store does not have is unknown,
    /// unless it moved away from here lately: then it is open elsewhere, and `Stopped` tells the
    /// client to retry (a cluster node routes the retry to the new owner).
    async fn stored(&self, id: &RoomId) -> Result<RoomView, RegistryFailure> {
        match self.deps.store.room(id).await? {
            Some(view) => Ok(view),
            None if self.departed.lately(id) => Err(RoomFailure::Stopped.into()),
            None => Err(RegistryFailure::UnknownRoom),
        }
    }

    /// Whether room `id` was closed here lately (see `Departed`): its lease may still name this
    /// node, with no actor here, while its log is deleted; it is closed, not moving.
    pub(crate) fn closed_lately(&self, id: &RoomId) -> bool {
        self.departed.closed_lately(id)
    }

    /// Applies a client's command to an open room; answers once it is durable.
    pub(crate) async fn mutate(
        &self,
        id: &RoomId,
        command: Command,
        via: Via,
    ) -> Result<Applied, RegistryFailure> {
        match self.find(id).await? {
            Found::Open(room) => {
                let (reply, answer) = oneshot::channel();
                room.do_send(Mutate {
                    command,
                    via,
                    reply,
                });
                match answer.await {
                    Ok(reply) => Ok(reply?),
                    // The room stopped before it took the command.
                    Err(_) => Err(self.gone(id).await),
                }
            }
            Found::Closed(_) => Err(RoomError::Closed.into()),
        }
    }

    /// Why a room's actor went away before it answered: the engine stops; the room closed (its
    /// final record is in the store before the actor stops); or, in a cluster, the room moved
    /// to another node — nothing was applied, and the client may retry (`unavailable`), not
    /// hear that a room that is open elsewhere is closed.
    async fn gone(&self, id: &RoomId) -> RegistryFailure {
        if self.is_stopping() {
            return shutting_down().into();
        }
        match self.closed_or_moved(id).await {
            Ok(_) => RoomError::Closed.into(),
            Err(failure) => failure,
        }
    }

    /// The final view of a room whose actor stopped since it was looked up: from the store if
    /// it closed; `Stopped` (`unavailable`) if the store does not have it, for then it moved to
    /// another node (see `gone`).
    async fn closed_or_moved(&self, id: &RoomId) -> Result<RoomView, RegistryFailure> {
        match Box::pin(self.stored(id)).await {
            Err(RegistryFailure::UnknownRoom) => Err(RoomFailure::Stopped.into()),
            stored => stored,
        }
    }

    /// The open room a new socket joins: a closed room refuses it.
    pub(crate) async fn room_for_socket(
        &self,
        id: &RoomId,
    ) -> Result<Addr<RoomActor>, RegistryFailure> {
        match self.find(id).await? {
            Found::Open(room) => Ok(room),
            Found::Closed(_) => Err(RoomError::Closed.into()),
        }
    }

    /// The room's view: open (as of its last durable event) or closed (from the store).
    pub(crate) async fn view(&self, id: &RoomId) -> Result<RoomView, RegistryFailure> {
        match self.find(id).await? {
            Found::Open(room) => match room.send(GetView).await {
                Ok(view) => Ok(view),
                // The room stopped since the lookup: it closed or moved meanwhile.
                Err(_) => self.closed_or_moved(id).await,
            },
            Found::Closed(view) => Ok(view),
        }
    }

    /// Durable messages with `seq > after`, oldest first, at most `limit`: from the room while it
    /// is open, from the store once it is closed.
    pub(crate) async fn messages(
        &self,
        id: &RoomId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, RegistryFailure> {
        let store = &self.deps.store;
        match self.find(id).await? {
            Found::Open(room) => match room.send(GetMessages { after, limit }).await {
                Ok(messages) => Ok(messages?),
                // Stopped since the lookup: closed (the store has its messages) or moved.
                Err(_) => {
                    self.closed_or_moved(id).await?;
                    Ok(store.messages(id, after, limit).await?)
                }
            },
            Found::Closed(_) => Ok(store.messages(id, after, limit).await?),
        }
    }

    /// Views of every open room, newest first.
    pub(crate) async fn views(&self) -> Vec<RoomView> {
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
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub(crate) fn open_rooms(&self) -> usize {
        self.rooms.read().len()
    }

    /// Closes a room (see `Close`); closing a closed room answers its final view again.
    pub(crate) async fn close(&self, id: &RoomId) -> Result<RoomView, RegistryFailure> {
        let Some(addr) = self.get(id) else {
            return self.stored(id).await;
        };
        match addr.send(Close).await {
            Ok(Ok(view)) => {
                self.forget_actor(id, &addr);
                Ok(view)
            }
            Ok(Err(failure)) => Err(failure.into()),
            // The engine stopped the room before it could answer: not closed.
            Err(_) if self.is_stopping() => Err(shutting_down().into()),
            // The actor stopped between the lookup and the send: it closed or moved meanwhile.
            Err(MailboxError::Closed | MailboxError::Timeout) => {
                self.forget_actor(id, &addr);
                self.closed_or_moved(id).await
            }
        }
    }

    /// Drops `addr` from the index if it still stands for `id`: a room adopted here again since
    /// has an actor of its own, which stays.
    fn forget_actor(&self, id: &RoomId, addr: &Addr<RoomActor>) {
        let mut rooms = self.rooms.write();
        if rooms.get(id) == Some(addr) {
            rooms.remove(id);
        }
    }

    /// What the journal reports of itself (`/admin/stats`).
    pub(crate) fn journal_status(&self) -> JournalStatus {
        self.deps.journal.status()
    }

    /// `"sqlite"` or `"mysql"`.
    pub(crate) fn store_backend(&self) -> &'static str {
        self.deps.store.backend()
    }

    /// Asks the journal and the store, at once, whether they take writes (`/readyz`).
    pub(crate) async fn readiness(&self) -> Readiness {
        let no_answer = || format!("no answer within {} s", PROBE_TIMEOUT.as_secs());
        let journal = tokio::time::timeout(PROBE_TIMEOUT, self.deps.journal.check());
        let store = tokio::time::timeout(PROBE_TIMEOUT, self.deps.store.check());
        let (journal, store) = futures_util::future::join(journal, store).await;
        Readiness {
            journal: match journal {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(no_answer()),
            },
            store: match store {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(no_answer()),
            },
        }
    }

    /// Rebuilds every open room from the journal. A room whose final record is already in the
    /// store (a crash after the write-back, before the log was deleted) only has its log deleted.
    pub(crate) async fn recover(&self) -> Result<usize, RecoveryError> {
        let logs = self.deps.journal.recover().await?;
        let closed: HashSet<RoomId> = self
            .deps
            .store
            .stored_among(logs.iter().map(|l| l.room.clone()).collect())
            .await?
            .into_iter()
            .collect();
        let mut recovered = 0;
        for log in logs {
            if closed.contains(&log.room) && self.record_covers(&log).await? {
                tracing::info!(room.id = %log.room, "room already closed in the store; deleting its log");
                // A leftover log is harmless (the store's record wins, and the next start tries
                // again); it must not keep every other room from coming back.
                let delete = self.deps.journal.delete_room(log.epoch, log.room.clone());
                if let Err(error) = delete.await {
                    tracing::warn!(room.id = %log.room, %error, "log of a closed room not deleted");
                }
                continue;
            }
            let state = match &log.snapshot {
                Some(snapshot) => RoomState::restore(snapshot, &log.events)?,
                None => RoomState::replay(&log.room, &log.events)?,
            };
            tracing::debug!(room.id = %log.room, seq = state.seq(), "room recovered");
            let snapshot_seq = log.snapshot.as_ref().map_or(0, |s| s.seq);
            self.start(state, snapshot_seq, log.epoch, None);
            recovered += 1;
        }
        self.deps.metrics.rooms_recovered.inc_by(recovered as u64);
        if recovered > self.max_open_rooms {
            tracing::warn!(
                rooms = recovered,
                limit = self.max_open_rooms,
                "the journal holds more open rooms than limits.max_open_rooms; all recovered, \
                 new rooms are refused until enough have closed"
            );
        }
        Ok(recovered)
    }

    /// Makes every pending event durable (waiting at most `deadline`), ends every socket, and
    /// stops the rooms and their arbiters. Answers the rooms that stopped with nothing pending,
    /// each with the epoch it was held under (a cluster node hands them over): every room that
    /// drained in time, whichever others did not.
    pub(crate) async fn shutdown(&self, deadline: Duration) -> Vec<(RoomId, Epoch)> {
        self.stopping.store(true, Ordering::SeqCst);
        // The rooms leave the map themselves as they stop.
        let rooms: Vec<(RoomId, Addr<RoomActor>)> = self
            .rooms
            .read()
            .iter()
            .map(|(id, addr)| (id.clone(), addr.clone()))
            .collect();
        let until = tokio::time::Instant::now() + deadline;
        let drained = join_all(rooms.iter().map(|(id, addr)| {
            let id = id.clone();
            tokio::time::timeout_at(until, addr.send(Shutdown)).map(move |answer| match answer {
                Ok(Ok(epoch)) => Drained::Handed(id, epoch),
                // Stopped meanwhile (closed, or lost to another owner): nothing to hand over.
                Ok(Err(_)) => Drained::Gone,
                Err(_) => Drained::Late,
            })
        }))
        .await;
        let late = drained.iter().any(|d| matches!(d, Drained::Late));
        let handed = drained
            .into_iter()
            .filter_map(|d| match d {
                Drained::Handed(id, epoch) => Some((id, epoch)),
                Drained::Gone | Drained::Late => None,
            })
            .collect();
        if late {
            tracing::warn!("shutdown deadline passed with events not yet durable");
            // The rooms still waiting for the journal refuse what they hold (503: not durable)
            // and end their sockets, instead of being dropped with their requests unanswered.
            let left: Vec<_> = self.rooms.read().values().cloned().collect();
            let abandoned = join_all(left.iter().map(|a| a.send(Abandon)));
            if tokio::time::timeout(ABANDON_DEADLINE, abandoned)
                .await
                .is_err()
            {
                tracing::warn!("rooms did not stop within {ABANDON_DEADLINE:?}; stopping them");
            }
        }
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        handed
    }

    /// Whether the stored record of `log`'s room holds everything its log does. It does not when
    /// a close's answer was lost after the record was committed: the close was reported failed,
    /// the room opened again and took more mutations. Such a room comes back open (its next
    /// close replaces the record), instead of losing what its log holds past the record.
    async fn record_covers(&self, log: &RoomLog) -> Result<bool, RecoveryError> {
        let Some(stored) = self.deps.store.room(&log.room).await? else {
            return Ok(false);
        };
        let last = (log.events.last().map(|e| e.seq))
            .or(log.snapshot.as_ref().map(|s| s.seq))
            .unwrap_or(0);
        if last > stored.counters.seq {
            tracing::warn!(room.id = %log.room, seq.log = last, seq.stored = stored.counters.seq,
                "the room's log goes past its stored record; it is open again until its next close");
            // The room is open: no lookup may take that record for its end.
            self.deps.store.forget_stale(&log.room, last).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Starts a room taken over from another node (or from a run of this node that ended),
    /// replayed from `log` under the epoch the claim won. A room whose final record is already
    /// in the store only has its log deleted.
    pub(crate) async fn adopt(&self, log: RoomLog) -> Result<Adoption, RecoveryError> {
        let closed = self.deps.store.stored_among(vec![log.room.clone()]).await?;
        if !closed.is_empty() && self.record_covers(&log).await? {
            tracing::info!(room.id = %log.room, "room taken over is closed in the store; deleting its log");
            if let Err(error) = self
                .deps
                .journal
                .delete_room(log.epoch, log.room.clone())
                .await
            {
                tracing::warn!(room.id = %log.room, %error, "log of a closed room not deleted");
            }
            return Ok(Adoption::Closed);
        }
        let state = match &log.snapshot {
            Some(snapshot) => RoomState::restore(snapshot, &log.events)?,
            None => RoomState::replay(&log.room, &log.events)?,
        };
        tracing::debug!(room.id = %log.room, seq = state.seq(), epoch = %log.epoch, "room adopted");
        let snapshot_seq = log.snapshot.as_ref().map_or(0, |s| s.seq);
        self.start(state, snapshot_seq, log.epoch, None);
        self.deps.metrics.rooms_recovered.inc();
        Ok(Adoption::Opened)
    }

    /// The journal says `room` is at `epoch` now: if its actor here holds another, the room was
    /// taken over meanwhile (this node was paused or cut off), and the actor stops.
    pub(crate) fn fence(&self, room: &RoomId, epoch: Epoch) {
        if let Some(addr) = self.get(room) {
            addr.do_send(Fence { epoch });
        }
    }

    /// The epoch the room is held under here, if it is open here.
    pub(crate) async fn epoch_of(&self, id: &RoomId) -> Option<Epoch> {
        self.get(id)?.send(GetEpoch).await.ok()
    }

    /// Every open room here, with its actor (a cluster node checks its leases).
    pub(crate) fn open_room_ids(&self) -> Vec<RoomId> {
        self.rooms.read().keys().cloned().collect()
    }

    /// `node` left the cluster or died: every room here forgets its sockets.
    /// How long a close may wait for its room (`RoomSettings::close_timeout`).
    pub(crate) fn close_timeout(&self) -> Duration {
        self.deps.settings.close_timeout
    }

    pub(crate) fn forget_node(&self, node: &str) {
        self.forget_sockets_of(node, None);
    }

    /// `node` restarted (a new run under its id, started at `started_ms`): the rooms here forget
    /// the sockets of its earlier runs, which ended with them, and keep those of the new one.
    pub(crate) fn forget_earlier_runs(&self, node: &str, started_ms: u64) {
        self.forget_sockets_of(node, Some(first_session_of_run(started_ms)));
    }

    fn forget_sockets_of(&self, node: &str, before: Option<SessionId>) {
        for addr in self.rooms.read().values() {
            addr.do_send(ForgetNode {
                node: node.to_owned(),
                before,
            });
        }
    }

    /// The open room's actor here; `Stopped` for a room that left this node lately, else
    /// `UnknownRoom` (a call for a room another node owns).
    fn here(&self, id: &RoomId) -> Result<Addr<RoomActor>, RegistryFailure> {
        if self.is_stopping() {
            return Err(shutting_down().into());
        }
        match self.get(id).filter(Addr::connected) {
            Some(room) => Ok(room),
            None if self.departed.lately(id) => Err(RoomFailure::Stopped.into()),
            None => Err(RegistryFailure::UnknownRoom),
        }
    }

    /// A socket on another node opened (see `AttachRemote`).
    pub(crate) async fn attach_remote(
        &self,
        id: &RoomId,
        node: String,
        session: SessionId,
        user: UserName,
    ) -> Result<Applied, RegistryFailure> {
        let room = self.here(id)?;
        match room
            .send(AttachRemote {
                node,
                session,
                user,
            })
            .await
        {
            Ok(reply) => Ok(reply?),
            Err(_) => Err(self.gone(id).await),
        }
    }

    /// A socket on another node closed.
    pub(crate) fn detach_remote(&self, id: &RoomId, node: String, session: SessionId) {
        if let Ok(room) = self.here(id) {
            room.do_send(DetachRemote { node, session });
        }
    }

    /// Every socket `node` holds of the room (see `SyncRemote`).
    pub(crate) fn sync_remote(
        &self,
        id: &RoomId,
        node: String,
        sessions: Vec<(SessionId, UserName)>,
    ) -> Result<(), RegistryFailure> {
        self.here(id)?.do_send(SyncRemote { node, sessions });
        Ok(())
    }

    /// A command from a socket on another node (see `RemoteMutate`).
    pub(crate) async fn remote_mutate(
        &self,
        id: &RoomId,
        node: String,
        session: SessionId,
        command: Command,
    ) -> Result<Applied, RegistryFailure> {
        let room = self.here(id)?;
        let request = RemoteMutate {
            node,
            session,
            command,
        };
        match room.send(request).await {
            Ok(reply) => Ok(reply?),
            Err(_) => Err(self.gone(id).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use roomstate_journal::memory::MemoryJournal;
    use roomstate_store::Store;

    use super::*;
    use crate::{metrics::Metrics, room::deps::RoomSettings};

    fn registry(dir: &std::path::Path, cap: usize) -> Registry {
        registry_on(dir, cap, Arc::new(MemoryJournal::new()))
    }

    fn registry_on(dir: &std::path::Path, cap: usize, journal: Arc<MemoryJournal>) -> Registry {
        let url = format!("sqlite://{}", dir.join("s.db").display());
        let deps = RoomDeps {
            journal,
            store: Store::open(&url).unwrap(),
            metrics: Metrics::new().unwrap(),
            settings: RoomSettings {
                max_pending: 100,
                http_ttl: Duration::from_secs(300),
                snapshot_every: 1_000_000,
                close_timeout: Duration::from_secs(60),
                max_messages: 1000,
            },
        };
        Registry::new(deps, 1).with_max_open_rooms(cap)
    }

    #[actix_rt::test]
    async fn the_open_room_cap_holds_under_concurrent_creations_and_frees_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path(), 3);
        let attempts = join_all((0..10).map(|i| registry.create(format!("room {i}")))).await;
        let (created, refused): (Vec<_>, Vec<_>) = attempts.into_iter().partition(Result::is_ok);
        assert_eq!((created.len(), refused.len()), (3, 7));
        assert!(refused.iter().all(|r| matches!(
            r,
            Err(RoomFailure::Unavailable(m)) if m.contains("limits.max_open_rooms")
        )));
        assert_eq!(registry.open_rooms(), 3);
        let first = created[0].as_ref().unwrap().id.clone();
        registry.close(&first).await.unwrap();
        assert_eq!(registry.open_rooms(), 2);
        registry.create("after a close".into()).await.unwrap();
        assert!(registry.create("one too many".into()).await.is_err());
        registry.shutdown(Duration::from_secs(5)).await;
    }

    /// At shutdown, a room that does not drain by the deadline (here: its close is writing to a
    /// store someone else has locked) holds up no other: the rooms that drained are answered,
    /// to be handed over, and the late one is abandoned.
    #[actix_rt::test]
    async fn a_room_late_at_shutdown_keeps_no_other_from_being_handed_over() {
        use diesel::{connection::SimpleConnection as _, Connection as _};

        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(MemoryJournal::new());
        let registry = Arc::new(registry_on(dir.path(), 10, journal));
        let idle = registry.create("idle".into()).await.unwrap().id;
        let closing = registry.create("closing".into()).await.unwrap().id;
        let path = dir.path().join("s.db");
        let mut lock = diesel::SqliteConnection::establish(&path.display().to_string()).unwrap();
        lock.batch_execute("BEGIN EXCLUSIVE").unwrap();
        let close = actix_rt::spawn({
            let (registry, closing) = (registry.clone(), closing.clone());
            async move { registry.close(&closing).await }
        });
        let started = std::time::Instant::now();
        // Once the close began, the room takes no more mutations.
        let join = || Command::Join {
            user: UserName::parse("ann").unwrap(),
            via: Via::Http,
        };
        while !matches!(
            registry.mutate(&closing, join(), Via::Http).await,
            Err(RegistryFailure::Room(RoomFailure::Rule(RoomError::Closed)))
        ) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the close never began"
            );
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        let handed = registry.shutdown(Duration::from_secs(1)).await;
        let handed: Vec<RoomId> = handed.into_iter().map(|(id, _)| id).collect();
        assert_eq!(
            handed,
            [idle],
            "the drained room is handed over, the late one is not"
        );
        lock.batch_execute("ROLLBACK").unwrap();
        let close = close.await.unwrap();
        assert!(
            matches!(
                close,
                Err(RegistryFailure::Room(RoomFailure::Unavailable(_)))
            ),
            "{close:?}"
        );
    }

    /// A room taken over whose record is in the store already (its owner died between the
    /// record and the log's deletion) is not opened: only its log goes, and it is not counted as
    /// a room recovered (the cluster counts takeovers by what this answers).
    #[actix_rt::test]
    async fn a_room_taken_over_that_closed_already_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(MemoryJournal::new());
        let registry = registry_on(dir.path(), 10, journal.clone());
        let room = registry
            .create("closed, its log left".into())
            .await
            .unwrap()
            .id;
        let log = RoomLog {
            room: room.clone(),
            snapshot: None,
            events: journal.events(&room),
            epoch: Epoch::NONE,
        };
        registry.close(&room).await.unwrap();
        let recovered = registry.deps.metrics.rooms_recovered.get();
        assert_eq!(registry.adopt(log).await.unwrap(), Adoption::Closed);
        assert!(
            registry.get(&room).is_none(),
            "a closed room was opened again"
        );
        assert_eq!(registry.deps.metrics.rooms_recovered.get(), recovered);
        let open = registry.create("open".into()).await.unwrap().id;
        let log = RoomLog {
            room: open.clone(),
            snapshot: None,
            events: journal.events(&open),
            epoch: Epoch::NONE,
        };
        registry.shutdown(Duration::from_secs(5)).await;
        let dir = tempfile::tempdir().unwrap();
        let other = registry_on(dir.path(), 10, Arc::new(MemoryJournal::new()));
        assert_eq!(other.adopt(log).await.unwrap(), Adoption::Opened);
        assert!(other.get(&open).is_some());
        other.shutdown(Duration::from_secs(5)).await;
    }

    /// A close on a node that lost the room and has not noticed yet (nothing pending, so no
    /// fenced append told it): the record is not written, the close answers `unavailable`
    /// (retry: the owner closes it), and the room stops here.
    #[actix_rt::test]
    async fn a_close_of_a_room_lost_to_another_owner_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(MemoryJournal::new());
        let registry = registry_on(dir.path(), 10, journal.clone());
        let lost = registry
            .create("lost, then closed".into())
            .await
            .unwrap()
            .id;
        let actor = registry.get(&lost).expect("open here");
        journal.claim(&lost);
        let close = registry.close(&lost).await;
        assert!(
            matches!(
                close,
                Err(RegistryFailure::Room(RoomFailure::Unavailable(ref m))) if m.contains("retry the close")
            ),
            "{close:?}"
        );
        assert!(
            registry.deps.store.room(&lost).await.unwrap().is_none(),
            "the node that lost the room recorded it"
        );
        let stopping = std::time::Instant::now();
        while actor.connected() {
            assert!(
                stopping.elapsed() < Duration::from_secs(10),
                "the lost room's actor still runs after 10 s"
            );
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(journal.has_room(&lost), "its log is the new owner's");
        registry.shutdown(Duration::from_secs(5)).await;
    }

    /// A room whose actor stopped because another node took it over is not closed: a request
    /// that raced the stop, or that comes after it, hears `unavailable` (retry), not
    /// `room_closed` or `not_found`; a room that closed still reads as closed.
    #[actix_rt::test]
    async fn a_room_lost_to_another_owner_is_gone_but_not_closed() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(MemoryJournal::new());
        let registry = registry_on(dir.path(), 10, journal.clone());
        let moved = registry.create("moves away".into()).await.unwrap().id;
        let actor = registry.get(&moved).expect("open here");
        // Another node's lease: the room's next write is fenced, and it stops.
        journal.claim(&moved);
        let join = Command::Join {
            user: UserName::parse("ann").unwrap(),
            via: Via::Http,
        };
        let refused = registry.mutate(&moved, join, Via::Http).await;
        assert!(
            matches!(
                refused,
                Err(RegistryFailure::Room(RoomFailure::Unavailable(ref m))) if m.contains("moved")
            ),
            "{refused:?}"
        );
        let stopping = std::time::Instant::now();
        while actor.connected() {
            assert!(
                stopping.elapsed() < Duration::from_secs(10),
                "the fenced room's actor still runs after 10 s"
            );
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        let gone = registry.gone(&moved).await;
        assert!(
            matches!(gone, RegistryFailure::Room(RoomFailure::Stopped)),
            "{gone:?}"
        );
        // A request that looks the moved room up afresh (a route cached from before the move)
        // hears the same, not `not_found`: the room is open elsewhere.
        let view = registry.view(&moved).await;
        assert!(
            matches!(view, Err(RegistryFailure::Room(RoomFailure::Stopped))),
            "{view:?}"
        );
        let close = registry.close(&moved).await;
        assert!(
            matches!(close, Err(RegistryFailure::Room(RoomFailure::Stopped))),
            "{close:?}"
        );
        // So does a call another node makes for it (it reads the owner again).
        let sync = registry.sync_remote(&moved, "node-b".into(), Vec::new());
        assert!(
            matches!(sync, Err(RegistryFailure::Room(RoomFailure::Stopped))),
            "{sync:?}"
        );
        let unknown = registry.view(&RoomId::generate()).await;
        assert!(
            matches!(unknown, Err(RegistryFailure::UnknownRoom)),
            "a room never here is unknown: {unknown:?}"
        );

        let closed = registry.create("closes".into()).await.unwrap().id;
        registry.close(&closed).await.unwrap();
        let gone = registry.gone(&closed).await;
        assert!(
            matches!(
                gone,
                RegistryFailure::Room(RoomFailure::Rule(RoomError::Closed))
            ),
            "{gone:?}"
        );
        registry.shutdown(Duration::from_secs(5)).await;
    }
}
