//! `RoomActor`: one per open room, the only writer of its room's state.
//!
//! It is glue: the room's rules are `RoomState` (core), the commit pipeline is `CommitQueue`, the
//! broadcast pace is `StateThrottle`, snapshots follow `SnapshotSchedule`, HTTP presence lapses by
//! `HttpIdle`, and the sockets are `Sessions`. The actor runs them on its mailbox: a mutation is
//! applied at once (so the next one is checked against it), queued, handed to the journal, and
//! only acknowledged and broadcast once the journal says it is durable. It must never ack,
//! broadcast or list anything that is not durable.

use std::{collections::HashMap, sync::Arc, time::Instant};

use actix::prelude::*;
use parking_lot::RwLock;
use roomstate_core::{
    protocol::CloseReason,
    room::{
        Change, ChatMessage, Command, Counters, EventKind, RoomId, RoomState, RoomStatus, RoomView,
        UserName, Via,
    },
    time,
};
use roomstate_journal::{Epoch, JournalError};
use roomstate_store::FinalRecord;
use tokio::sync::oneshot;

use super::{
    closing::{older_messages, Closing, RecordFailure},
    commit_queue::{CommitQueue, MAX_RETRY_DELAY},
    departed::Departed,
    deps::RoomDeps,
    failure::{Reply, RoomFailure},
    http_idle::HttpIdle,
    messages::{
        Abandon, Applied, AttachRemote, Close, Connect, DetachRemote, Disconnect, Fence,
        ForgetNode, GetEpoch, GetMessages, GetView, Mutate, RemoteMutate, Shutdown, SocketMutate,
        SyncRemote,
    },
    outbound::{Outbound, SessionId, Shared},
    outlet::AnswerTo,
    remote_sessions::RemoteSessions,
    reply_to::ReplyTo,
    sessions::Sessions,
    snapshots::SnapshotSchedule,
    throttle::{Publish, StateThrottle},
};

/// Open rooms by id: the registry's map, which a room leaves by itself when it stops.
pub(crate) type RoomIndex = RwLock<HashMap<RoomId, Addr<RoomActor>>>;

/// Someone waiting for a pending event to become durable.
enum Waiter {
    /// A request: answered with the view as of that event, and `seq` (the answer's own seq when
    /// it is not that of the event, e.g. the first message of a repeated idempotency key).
    Reply { tx: ReplyTo, seq: Option<u64> },
    /// A socket's request: answered through the socket's worker with `seq`, as `Reply`.
    Socket { answer: AnswerTo, seq: Option<u64> },
    /// A new socket: answered with its first state, and gets every broadcast after.
    Attach(SessionId, oneshot::Sender<Reply<Arc<Shared<RoomView>>>>),
}

pub(crate) struct RoomActor {
    state: RoomState,
    commits: CommitQueue<Waiter>,
    sessions: Sessions,
    /// Sockets other nodes of a cluster hold (they mirror the room; their users are present).
    remote: RemoteSessions,
    throttle: StateThrottle,
    snapshots: SnapshotSchedule,
    http_idle: HttpIdle,
    closing: Option<Closing>,
    /// Set once the final record is stored: the room answers with it until it stops.
    final_view: Option<RoomView>,
    /// Presence that changed while a close was under way, when the room takes no mutations (a
    /// socket came or went, here or on another node; an HTTP join lapsed): the joins and leaves,
    /// in order, are applied if the close fails and the room opens again, so nobody stays
    /// present with no link to the room, nor absent with one.
    presence_while_closing: Vec<Command>,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    /// The room's lease epoch: every journal write names it, and is refused once another engine
    /// has claimed the room.
    epoch: Epoch,
    deps: Arc<RoomDeps>,
    index: Arc<RoomIndex>,
    /// Where the room is noted as moved away if its actor stops without closing.
    departed: Arc<Departed>,
}

impl RoomActor {
    /// A room whose state is entirely durable (just created, or replayed from the journal, whose
    /// last snapshot is at `snapshot_seq`, 0 if none), held under `epoch`.
    pub(crate) fn new(
        state: RoomState,
        snapshot_seq: u64,
        epoch: Epoch,
        deps: Arc<RoomDeps>,
        index: Arc<RoomIndex>,
        departed: Arc<Departed>,
    ) -> Self {
        let settings = &deps.settings;
        Self {
            commits: CommitQueue::new(state.counters(), settings.max_pending),
            sessions: Sessions::default(),
            remote: RemoteSessions::default(),
            throttle: StateThrottle::new(state.seq(), Instant::now()),
            snapshots: SnapshotSchedule::new(
                settings.snapshot_every,
                settings.max_messages,
                snapshot_seq,
            ),
            http_idle: HttpIdle::new(settings.http_ttl),
            closing: None,
            final_view: None,
            presence_while_closing: Vec::new(),
            shutdown_waiters: Vec::new(),
            epoch,
            state,
            deps,
            index,
            departed,
        }
    }

    /// What clients see at `counters`: open until the final record is in the store (a close
    /// that has not landed yet can still be taken back by a crash).
    fn view_at(&self, counters: Counters) -> RoomView {
        let mut view = self.state.view(counters);
        view.status = RoomStatus::Open;
        view.closed_at = None;
        view
    }

    fn view(&self) -> RoomView {
        self.view_at(self.commits.committed())
    }

    /// Refuses client mutations once the engine is stopping, or while the commit queue says the
    /// journal cannot keep up.
    fn check_backlog(&self) -> Result<(), RoomFailure> {
        let refusal = if self.shutdown_waiters.is_empty() {
            self.commits.refusal(Instant::now())
        } else {
            Some("the server is shutting down".to_owned())
        };
        // Counted where the refusal reaches the client (the HTTP edge or the socket), once.
        match refusal {
            Some(message) => Err(RoomFailure::Unavailable(message)),
            None => Ok(()),
        }
    }

    /// Applies a command and queues its event. `waiter` is answered once the outcome is durable
    /// (at once when nothing is pending and nothing changed).
    fn submit(
        &mut self,
        command: Command,
        waiter: Option<Waiter>,
        ctx: &mut Context<Self>,
    ) -> Result<(), RoomFailure> {
        let change = self.state.apply(command, time::now())?;
        self.queue(change, waiter, ctx);
        Ok(())
    }

    /// Queues what a command changed; `waiter` is answered once it is durable.
    fn queue(&mut self, change: Change, waiter: Option<Waiter>, ctx: &mut Context<Self>) {
        match (change.event, waiter) {
            (Some(event), waiter) => {
                self.deps.metrics.journal_pending.inc();
                self.commits.push(event, change.counters, waiter);
                self.flush(ctx);
            }
            (None, Some(mut waiter)) => {
                if let (Some(first), Waiter::Reply { seq, .. } | Waiter::Socket { seq, .. }) =
                    (change.repeat_of, &mut waiter)
                {
                    *seq = Some(first);
                }
                if let Err(waiter) = self.commits.wait_for_pending(waiter) {
                    self.release(waiter, self.commits.committed());
                }
            }
            (None, None) => {}
        }
    }

    /// Hands the next batch to the journal, if one may go now.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(batch) = self.commits.next_batch() else {
            return;
        };
        let append = self.deps.journal.append(self.epoch, batch);
        ctx.spawn(
            append
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(()) => act.batch_committed(ctx),
                    Err(error) => act.batch_failed(error, ctx),
                }),
        );
    }

    fn batch_failed(&mut self, error: JournalError, ctx: &mut Context<Self>) {
        if let JournalError::Fenced(why) = &error {
            // Another node owns the room now (a newer lease): nothing this actor holds can
            // become durable any more. It stops at once; the owner serves the room.
            tracing::warn!(room.id = %self.state.id(), %why, "room lost to another owner; dropping it");
            return self.give_up(
                "the room moved to another node before this request became durable; retry it",
                CloseReason::TryAgainLater,
                ctx,
            );
        }
        let retry = self.commits.batch_failed(Instant::now());
        if retry.outage_began {
            match &error {
                // Cannot heal by retrying; it needs an operator. Keep the events and retry
                // slowly, so nothing acknowledged or pending is dropped meanwhile.
                JournalError::Corrupt(_) => tracing::error!(room.id = %self.state.id(), %error,
                    seq = self.state.seq(), "journal refused the room's events as corrupt"),
                JournalError::Unavailable(_) | JournalError::Fenced(_) => tracing::debug!(
                    room.id = %self.state.id(), %error, pending = self.commits.len(),
                    "journal append failed; retrying"),
            }
        }
        // A corrupt log needs an operator, not a quick retry: try again at the slowest pace.
        let after = match error {
            JournalError::Corrupt(_) => retry.after.max(MAX_RETRY_DELAY),
            JournalError::Unavailable(_) | JournalError::Fenced(_) => retry.after,
        };
        ctx.run_later(after, |act, ctx| {
            act.commits.retry_due();
            act.flush(ctx);
        });
    }

    /// The batch in flight is durable: publish it.
    fn batch_committed(&mut self, ctx: &mut Context<Self>) {
        let committed = self.commits.batch_committed(Instant::now());
        if let Some(stalled) = committed.outage {
            tracing::debug!(room.id = %self.state.id(), seq = self.state.seq(),
                stalled_ms = stalled.as_millis() as u64, "journal writes resumed");
        }
        let deps = self.deps.clone();
        deps.metrics
            .journal_pending
            .sub(committed.entries.len() as i64);
        for pending in committed.entries {
            deps.metrics
                .mutations
                .with_label_values(&[pending.event.kind.name()])
                .inc();
            if let EventKind::Said { user, text, .. } = pending.event.kind {
                let message = ChatMessage {
                    seq: pending.event.seq,
                    user,
                    text,
                    sent_at: pending.event.at,
                };
                self.sessions
                    .broadcast(Outbound::Message(Shared::new(message)));
            }
            for waiter in pending.waiters {
                self.release(waiter, pending.counters);
            }
        }
        self.publish_state(ctx);
        if self.commits.is_empty() {
            self.maybe_snapshot(ctx);
            self.on_drained(ctx);
        }
        self.flush(ctx);
    }

    /// Snapshots the room when the schedule says so. Only with nothing pending, so the working
    /// state is exactly the durable state.
    fn maybe_snapshot(&mut self, ctx: &mut Context<Self>) {
        let committed = self.commits.committed();
        if self.closing.is_some() || !self.snapshots.due(committed) {
            return;
        }
        self.snapshots.started();
        let seq = committed.seq;
        let write = self
            .deps
            .journal
            .snapshot(self.epoch, self.state.snapshot());
        ctx.spawn(write.into_actor(self).map(move |result, act, _| match result {
            Ok(()) => {
                tracing::debug!(room.id = %act.state.id(), seq, "snapshot written");
                act.snapshots.written(seq);
            }
            Err(error) => {
                tracing::warn!(room.id = %act.state.id(), seq, %error, "snapshot not written");
                act.snapshots.failed();
            }
        }));
    }

    /// The committed state changed: broadcast it now or soon (see `StateThrottle`).
    fn publish_state(&mut self, ctx: &mut Context<Self>) {
        match self.throttle.changed(Instant::now()) {
            Publish::Now => self.send_state(),
            Publish::After(delay) => {
                ctx.run_later(delay, |act, _| {
                    act.throttle.timer_fired();
                    act.send_state();
                });
            }
            Publish::AlreadyScheduled => {}
        }
    }

    fn send_state(&mut self) {
        let committed = self.commits.committed();
        if self.throttle.take(committed.seq, Instant::now()) {
            let view = self.view_at(committed);
            self.sessions.broadcast(Outbound::State(Shared::new(view)));
        }
    }

    /// Answers a waiter with the state as of `counters`.
    fn release(&mut self, waiter: Waiter, counters: Counters) {
        match waiter {
            Waiter::Reply { tx, seq } => tx.send(Ok(Applied {
                seq: seq.unwrap_or(counters.seq),
                view: self.view_at(counters),
            })),
            Waiter::Socket { answer, seq } => answer.answer(Ok(seq.unwrap_or(counters.seq))),
            Waiter::Attach(id, tx) => {
                if self.sessions.activate(id) {
                    let _ = tx.send(Ok(Shared::new(self.view_at(counters))));
                }
            }
        }
    }

    /// Nothing is pending any more: a close or a shutdown waiting for that may go on.
    fn on_drained(&mut self, ctx: &mut Context<Self>) {
        // Not again once the record is stored (a shutdown while the log is being deleted).
        if self.closing.is_some() && self.final_view.is_none() {
            self.write_final_record(ctx);
        }
        self.finish_shutdown(ctx);
    }

    /// Stops the room for an engine shutdown once nothing is pending and no close is being
    /// written (stopping drops spawned futures, which would abandon the write).
    fn finish_shutdown(&mut self, ctx: &mut Context<Self>) {
        let writing = self.closing.as_ref().is_some_and(Closing::writing);
        if self.shutdown_waiters.is_empty() || writing || !self.commits.is_empty() {
            return;
        }
        self.sessions.end_all(None, CloseReason::ServerShutdown);
        for tx in self.shutdown_waiters.drain(..) {
            let _ = tx.send(());
        }
        ctx.stop();
    }

    fn write_final_record(&mut self, ctx: &mut Context<Self>) {
        if !self.commits.is_empty() {
            return;
        }
        let Some(closing) = self.closing.as_mut() else {
            return;
        };
        if !closing.start_writing() {
            return;
        }
        let committed = self.commits.committed();
        let mut record = FinalRecord {
            room: self.state.view(committed),
            votes: self.state.votes(),
            messages: self.state.recent_transcript(committed.seq),
        };
        // The messages that left memory come back from the journal for the record.
        let older_upto = self.state.older_upto();
        let journal = self.deps.journal.clone();
        let id = self.state.id().clone();
        let store = self.deps.store.clone();
        let epoch = self.epoch;
        ctx.spawn(
            async move {
                // Only the room's owner records its end: a node that lost the room and has not
                // noticed yet would record an older state than the owner's.
                journal
                    .hold(epoch, id.clone())
                    .await
                    .map_err(RecordFailure::from_hold)?;
                if older_upto > 0 {
                    let mut all =
                        older_messages(&*journal, &id, older_upto)
                            .await
                            .map_err(|e| {
                                RecordFailure::Failed(format!("reading the transcript: {e}"))
                            })?;
                    all.append(&mut record.messages);
                    record.messages = all;
                }
                store
                    .write_final(record)
                    .await
                    .map_err(|e| RecordFailure::Failed(e.to_string()))
            }
            .into_actor(self)
            .map(|result, act, ctx| act.final_record_written(result, ctx)),
        );
    }

    fn final_record_written(
        &mut self,
        result: Result<RoomView, RecordFailure>,
        ctx: &mut Context<Self>,
    ) {
        let Some(closing) = self.closing.as_mut() else {
            return;
        };
        let view = match result {
            Ok(view) => view,
            Err(RecordFailure::Lost(why)) => {
                tracing::warn!(room.id = %self.state.id(), %why, "room lost to another owner before its close was recorded; dropping it");
                return self.give_up(
                    "the room moved to another node before its close was recorded; retry the close",
                    CloseReason::TryAgainLater,
                    ctx,
                );
            }
            Err(RecordFailure::Failed(error)) => {
                // Nothing of the close was applied (the record is one transaction): the room
                // takes mutations again, and the admin retries the close.
                tracing::warn!(room.id = %self.state.id(), %error, "final record not written; the room stays open");
                closing.failed(RoomFailure::Unavailable(format!(
                    "{error}; the room stays open, retry the close"
                )));
                self.closing = None;
                self.state.reopen();
                for change in std::mem::take(&mut self.presence_while_closing) {
                    self.presence(change, ctx);
                }
                self.finish_shutdown(ctx);
                return;
            }
        };
        tracing::info!(room.id = %view.id, seq = view.counters.seq, "room closed; final record stored");
        self.deps.metrics.rooms_closed.inc();
        self.departed.record_closed(self.state.id());
        let last = Outbound::Closed(Shared::new(view.clone()));
        self.sessions.end_all(Some(last), CloseReason::RoomClosed);
        closing.written(&view);
        self.final_view = Some(view);
        // Only now, with the record in SQL, may the log go. If this fails, recovery at the next
        // start finds the record in SQL and deletes the log then.
        let room = self.state.id().clone();
        let delete = self.deps.journal.delete_room(self.epoch, room.clone());
        // Answered below, once the log is gone; a shutdown meanwhile just waits for that.
        let shutdown_waiters = std::mem::take(&mut self.shutdown_waiters);
        ctx.spawn(
            async move {
                if let Err(error) = delete.await {
                    tracing::warn!(room.id = %room, %error, "journal log of a closed room not deleted");
                }
            }
            .into_actor(self)
            .map(move |(), _, ctx| {
                for tx in shutdown_waiters {
                    let _ = tx.send(());
                }
                ctx.stop();
            }),
        );
    }

    /// Stops the room now, refusing with `refusal` (503) every request still waiting for the
    /// journal — none of it became durable here — and a close in progress, and ending every
    /// socket for `reason`.
    fn give_up(&mut self, refusal: &str, reason: CloseReason, ctx: &mut Context<Self>) {
        let (dropped, waiters) = self.commits.abandon();
        if dropped > 0 {
            tracing::warn!(room.id = %self.state.id(), events = dropped,
                "room stopping with events not yet durable; their requests are refused");
        }
        self.deps.metrics.journal_pending.sub(dropped as i64);
        let failure = || RoomFailure::Unavailable(refusal.to_owned());
        for waiter in waiters {
            match waiter {
                Waiter::Reply { tx, .. } => tx.send(Err(failure())),
                Waiter::Socket { answer, .. } => answer.answer(Err(failure())),
                Waiter::Attach(_, tx) => {
                    let _ = tx.send(Err(failure()));
                }
            }
        }
        if let Some(closing) = self.closing.as_mut() {
            closing.failed(RoomFailure::Unavailable(
                "the room stopped here before its record was written; retry the close".into(),
            ));
        }
        self.sessions.end_all(None, reason);
        for tx in self.shutdown_waiters.drain(..) {
            let _ = tx.send(());
        }
        ctx.stop();
    }

    /// Lapses HTTP joins idle for longer than the configured time, and the sockets of nodes
    /// silent for `remote_sessions::SILENCE`.
    fn sweep_idle(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        for user in self.http_idle.lapsed(now) {
            if self.state.has_http_presence(&user) {
                tracing::debug!(room.id = %self.state.id(), user = %user, "HTTP presence lapsed");
                self.leaves(user, Via::Http, ctx);
            }
        }
        // A node's sockets nobody has heard of for a while (see `RemoteSessions`).
        for node in self.remote.silent(now) {
            let users = self.remote.remove_node(&node);
            tracing::info!(room.id = %self.state.id(), node.id = %node, sockets = users.len(),
                "no word of a node's sockets in the room for a while; they leave");
            for user in users {
                self.socket_leaves(user, ctx);
            }
        }
    }
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.deps.metrics.rooms_open.inc();
        ctx.run_interval(self.http_idle.sweep_every(), |act, ctx| act.sweep_idle(ctx));
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.deps.metrics.rooms_open.dec();
        self.deps
            .metrics
            .journal_pending
            .sub(self.commits.len() as i64);
        let me = ctx.address();
        let mut index = self.index.write();
        if index.get(self.state.id()) == Some(&me) {
            index.remove(self.state.id());
            if self.final_view.is_none() {
                // Stopped without closing: taken over elsewhere (or the engine stops).
                self.departed.record(self.state.id());
            }
        }
    }
}

/// Awaits a waiter's answer; a room that stopped first answers `unavailable`.
async fn answer<T>(
    submitted: Result<(), RoomFailure>,
    rx: oneshot::Receiver<Reply<T>>,
) -> Reply<T> {
    submitted?;
    rx.await
        .unwrap_or_else(|_| Err(RoomFailure::Unavailable("the room stopped".into())))
}

impl Handler<Mutate> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Mutate, ctx: &mut Self::Context) {
        let Mutate {
            command,
            via,
            reply,
        } = msg;
        if reply.is_closed() {
            // The caller gave up before the room took the command (its client hung up, a
            // forward timed out): nothing is applied for nobody, as actix's own `send` would.
            return;
        }
        let reply = ReplyTo::new(reply);
        let applied = self.check_backlog().and_then(|()| {
            let http = (via == Via::Http).then(|| {
                let leaves = matches!(command, Command::Leave { .. });
                (command.user().clone(), leaves)
            });
            let change = self.state.apply(command, time::now())?;
            // Only a command the room took moves the user's HTTP presence (a leave refused
            // while a close waits must not end its lapse timer).
            match http {
                Some((user, true)) => self.http_idle.forget(&user),
                Some((user, false)) => self.http_idle.touch(&user, Instant::now()),
                None => {}
            }
            Ok(change)
        });
        match applied {
            Ok(change) => self.queue(
                change,
                Some(Waiter::Reply {
                    tx: reply,
                    seq: None,
                }),
                ctx,
            ),
            Err(failure) => reply.send(Err(failure)),
        }
    }
}

impl Handler<SocketMutate> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: SocketMutate, ctx: &mut Self::Context) {
        let SocketMutate {
            command, answer, ..
        } = msg;
        let applied = self
            .check_backlog()
            .and_then(|()| Ok(self.state.apply(command, time::now())?));
        match applied {
            Ok(change) => self.queue(change, Some(Waiter::Socket { answer, seq: None }), ctx),
            Err(failure) => answer.answer(Err(failure)),
        }
    }
}

impl Handler<GetView> for RoomActor {
    type Result = MessageResult<GetView>;

    fn handle(&mut self, _: GetView, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.final_view.clone().unwrap_or_else(|| self.view()))
    }
}

impl Handler<GetMessages> for RoomActor {
    type Result = ResponseFuture<Reply<Vec<ChatMessage>>>;

    fn handle(&mut self, msg: GetMessages, _: &mut Self::Context) -> Self::Result {
        let upto = self.commits.committed().seq;
        if let Some(messages) = self.state.messages(msg.after, upto, msg.limit) {
            return Box::pin(async move { Ok(messages) });
        }
        // Some of them left memory: the journal keeps every message of an open room.
        let read = self
            .deps
            .journal
            .messages(self.state.id().clone(), msg.after, msg.limit);
        Box::pin(async move {
            let messages = read
                .await
                .map_err(|e| RoomFailure::Unavailable(e.to_string()))?;
            Ok(messages.into_iter().filter(|m| m.seq <= upto).collect())
        })
    }
}

impl Handler<Connect> for RoomActor {
    type Result = ResponseFuture<Reply<Arc<Shared<RoomView>>>>;

    fn handle(&mut self, msg: Connect, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let submitted = self.check_backlog().and_then(|()| {
            let join = Command::Join {
                user: msg.user.clone(),
                via: Via::Socket,
            };
            self.sessions.add(msg.id, msg.user, msg.session);
            let submitted = self.submit(join, Some(Waiter::Attach(msg.id, tx)), ctx);
            if submitted.is_err() {
                self.sessions.remove(msg.id);
            }
            submitted
        });
        Box::pin(answer(submitted, rx))
    }
}

impl Handler<Disconnect> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Self::Context) {
        let Some(user) = self.sessions.remove(msg.id) else {
            return;
        };
        self.leaves(user, Via::Socket, ctx);
    }
}

impl Handler<Close> for RoomActor {
    type Result = ResponseFuture<Reply<RoomView>>;

    fn handle(&mut self, _: Close, ctx: &mut Self::Context) -> Self::Result {
        if let Some(view) = self.final_view.clone() {
            return Box::pin(async move { Ok(view) });
        }
        let (tx, rx) = oneshot::channel();
        self.state.close(time::now());
        self.closing.get_or_insert_with(Closing::default).wait(tx);
        self.write_final_record(ctx);
        let timeout = self.deps.settings.close_timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(_)) => Err(RoomFailure::Unavailable("the room stopped".into())),
                Err(_) => Err(RoomFailure::Unavailable(format!(
                    "the close did not finish within {} s (the room's last events not yet \
                     durable, or a long transcript still being written); it goes on: retry the \
                     close for its answer",
                    timeout.as_secs()
                ))),
            }
        })
    }
}

impl Handler<Abandon> for RoomActor {
    type Result = ();

    fn handle(&mut self, _: Abandon, ctx: &mut Self::Context) {
        self.give_up(
            "the server stopped before this request became durable; retry it",
            CloseReason::ServerShutdown,
            ctx,
        );
    }
}

impl Handler<Shutdown> for RoomActor {
    type Result = ResponseFuture<Epoch>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.shutdown_waiters.push(tx);
        if self.commits.is_empty() {
            self.on_drained(ctx);
        }
        let epoch = self.epoch;
        Box::pin(async move {
            let _ = rx.await;
            epoch
        })
    }
}

impl RoomActor {
    /// The user of a socket that arrived (here or on another node) joins.
    fn socket_joins(&mut self, user: UserName, ctx: &mut Context<Self>) {
        let via = Via::Socket;
        self.presence(Command::Join { user, via }, ctx);
    }

    /// The user of a socket that went (here or on another node) leaves if it was their last.
    fn socket_leaves(&mut self, user: UserName, ctx: &mut Context<Self>) {
        self.leaves(user, Via::Socket, ctx);
    }

    /// `user` leaves by `via` (a socket went, an HTTP join lapsed).
    fn leaves(&mut self, user: UserName, via: Via, ctx: &mut Context<Self>) {
        self.presence(Command::Leave { user, via }, ctx);
    }

    /// A join or leave of the room's own making. While a close is under way it waits: it is
    /// applied if the close fails (`presence_while_closing`).
    fn presence(&mut self, change: Command, ctx: &mut Context<Self>) {
        if self.state.is_closed() {
            if self.final_view.is_none() {
                self.presence_while_closing.push(change);
            }
            return;
        }
        if let Err(error) = self.submit(change, None, ctx) {
            tracing::debug!(room.id = %self.state.id(), %error, "join or leave refused");
        }
    }
}

impl Handler<AttachRemote> for RoomActor {
    type Result = ResponseFuture<Reply<Applied>>;

    fn handle(&mut self, msg: AttachRemote, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter::Reply {
            tx: ReplyTo::new(tx),
            seq: None,
        };
        let submitted = self.check_backlog().and_then(|()| {
            if !self.remote.add(&msg.node, msg.session, msg.user.clone()) {
                // Attached already (a retry): answered as of everything pending now.
                if let Err(waiter) = self.commits.wait_for_pending(waiter) {
                    self.release(waiter, self.commits.committed());
                }
                return Ok(());
            }
            let join = Command::Join {
                user: msg.user,
                via: Via::Socket,
            };
            let submitted = self.submit(join, Some(waiter), ctx);
            if submitted.is_err() {
                self.remote.remove(&msg.node, msg.session);
            }
            submitted
        });
        Box::pin(answer(submitted, rx))
    }
}

impl Handler<DetachRemote> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: DetachRemote, ctx: &mut Self::Context) {
        if let Some(user) = self.remote.detach(&msg.node, msg.session) {
            self.socket_leaves(user, ctx);
        }
    }
}

impl Handler<SyncRemote> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: SyncRemote, ctx: &mut Self::Context) {
        let (added, removed) = self.remote.sync(&msg.node, msg.sessions);
        for user in added {
            self.socket_joins(user, ctx);
        }
        for user in removed {
            self.socket_leaves(user, ctx);
        }
    }
}

impl Handler<GetEpoch> for RoomActor {
    type Result = MessageResult<GetEpoch>;

    fn handle(&mut self, _: GetEpoch, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.epoch)
    }
}

impl Handler<Fence> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Fence, ctx: &mut Self::Context) {
        if msg.epoch == self.epoch || self.final_view.is_some() {
            return;
        }
        tracing::warn!(room.id = %self.state.id(), epoch = %self.epoch, now = %msg.epoch,
            "room taken over by another node while this one was away; dropping it");
        self.give_up(
            "the room moved to another node; retry",
            CloseReason::TryAgainLater,
            ctx,
        );
    }
}

impl Handler<ForgetNode> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: ForgetNode, ctx: &mut Self::Context) {
        let users = match msg.before {
            None => self.remote.remove_node(&msg.node),
            Some(before) => self.remote.remove_node_before(&msg.node, before),
        };
        if !users.is_empty() {
            tracing::info!(room.id = %self.state.id(), node.id = %msg.node, sockets = users.len(),
                "a node's sockets are gone with it");
        }
        for user in users {
            self.socket_leaves(user, ctx);
        }
    }
}

impl Handler<RemoteMutate> for RoomActor {
    type Result = ResponseFuture<Reply<Applied>>;

    fn handle(&mut self, msg: RemoteMutate, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let submitted = self.check_backlog().and_then(|()| {
            let user = msg.command.user().clone();
            if self.remote.add(&msg.node, msg.session, user.clone()) {
                self.socket_joins(user, ctx);
            }
            let waiter = Waiter::Reply {
                tx: ReplyTo::new(tx),
                seq: None,
            };
            self.submit(msg.command, Some(waiter), ctx)
        });
        Box::pin(answer(submitted, rx))
    }
}
