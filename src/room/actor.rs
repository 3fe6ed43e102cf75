//! `RoomActor`: one per open room, the only writer of its room's state.
//!
//! It owns the room's `RoomState`, the events applied in memory but not yet durable (`pending`),
//! and the sockets subscribed to the room. A mutation is applied at once (so the next one is
//! checked against it), handed to the journal, and only acknowledged and broadcast once the
//! journal says it is durable. At most one append per room is in flight, so the room's events
//! become durable in seq order; a failed append is retried from the first event not yet durable.
//! It must never ack, broadcast or list anything that is not durable.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use bytestring::ByteString;
use parking_lot::RwLock;
use tokio::sync::oneshot;

use super::{
    event::{Event, EventKind},
    id::{RoomId, UserName},
    messages::{
        Close, Connect, Disconnect, GetMessages, GetView, Mutate, Outbound, Reply, RoomFailure,
        SessionId, Shutdown,
    },
    presence::Via,
    state::{Command, RoomState},
    view::{Counters, Message as ChatMessage, RoomStatus, RoomView},
};
use crate::{
    journal::{Journal, JournalError},
    metrics::Metrics,
    store::{FinalRecord, Store},
    time,
    ws::frames,
};

/// Most events sent to the journal in one append.
const MAX_APPEND: usize = 1024;
/// First pause before re-sending after a failed append; doubles up to `MAX_RETRY_DELAY`.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(20);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long a close waits for pending events to become durable before answering 503.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long appends may keep failing before new mutations are refused with 503 (pending ones
/// keep waiting). Longer than a sentinel failover, so a failover shows as latency, not errors.
const FAILING_GRACE: Duration = Duration::from_secs(5);
/// Least time between two state broadcasts of a room (API.md: the latest state within 100 ms).
const STATE_INTERVAL: Duration = Duration::from_millis(25);
/// WebSocket close code for a room that was closed (normal closure).
const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code at engine shutdown (going away).
const CLOSE_GOING_AWAY: u16 = 1001;

/// Room tunables from the settings.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// Pending events past which new mutations are refused with 503.
    pub max_pending: usize,
    /// Idle time after which an HTTP join lapses.
    pub http_ttl: Duration,
    /// Durable events between snapshots (recovery replays at most about this many per room).
    pub snapshot_every: u64,
}

/// What every room shares.
pub struct RoomDeps {
    pub journal: Arc<dyn Journal>,
    pub store: Store,
    pub metrics: Metrics,
    pub settings: RoomSettings,
}

/// Open rooms by id: the registry's map, which a room leaves by itself when it stops.
pub type RoomIndex = RwLock<HashMap<RoomId, Addr<RoomActor>>>;

/// Someone waiting for a pending event to become durable.
enum Waiter {
    /// A request: answered with the view as of that event.
    Reply(oneshot::Sender<Reply<RoomView>>),
    /// A new socket: answered with its first `state` frame, and gets every broadcast after.
    Attach(SessionId, oneshot::Sender<Reply<ByteString>>),
}

struct Pending {
    event: Event,
    /// The counters right after `event`.
    counters: Counters,
    waiters: Vec<Waiter>,
}

struct Session {
    user: UserName,
    addr: Recipient<Outbound>,
    /// Receives broadcasts (its first state frame has been sent).
    active: bool,
}

#[derive(Default)]
struct Closing {
    waiters: Vec<oneshot::Sender<Reply<RoomView>>>,
    writing: bool,
}

pub struct RoomActor {
    state: RoomState,
    /// Counters as of the last durable event: all that clients may see.
    committed: Counters,
    pending: VecDeque<Pending>,
    /// Events at the front of `pending` currently handed to the journal.
    in_flight: usize,
    retry_delay: Duration,
    retry_scheduled: bool,
    /// When appends started failing (`None` while they succeed).
    failing_since: Option<Instant>,
    sessions: HashMap<SessionId, Session>,
    /// Last HTTP request per user, for the idle lapse.
    http_seen: HashMap<UserName, Instant>,
    closing: Option<Closing>,
    final_view: Option<RoomView>,
    /// When the last state broadcast went out, its seq, and whether one is scheduled.
    last_state_sent: Instant,
    last_state_seq: u64,
    state_flush_scheduled: bool,
    /// Seq of the last snapshot made durable (or of the state the actor started from).
    snapshot_seq: u64,
    snapshotting: bool,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    deps: Arc<RoomDeps>,
    index: Arc<RoomIndex>,
}

impl RoomActor {
    /// A room whose state is entirely durable (just created, or replayed from the journal).
    pub fn new(state: RoomState, deps: Arc<RoomDeps>, index: Arc<RoomIndex>) -> Self {
        Self {
            snapshot_seq: state.seq(),
            snapshotting: false,
            last_state_sent: Instant::now()
                .checked_sub(STATE_INTERVAL)
                .unwrap_or_else(Instant::now),
            last_state_seq: state.seq(),
            state_flush_scheduled: false,
            committed: state.counters(),
            state,
            pending: VecDeque::new(),
            in_flight: 0,
            retry_delay: FIRST_RETRY_DELAY,
            retry_scheduled: false,
            failing_since: None,
            sessions: HashMap::new(),
            http_seen: HashMap::new(),
            closing: None,
            final_view: None,
            shutdown_waiters: Vec::new(),
            deps,
            index,
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
        self.view_at(self.committed)
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
        match change.event {
            Some(event) => {
                self.deps.metrics.journal_pending.inc();
                self.pending.push_back(Pending {
                    event,
                    counters: change.counters,
                    waiters: waiter.into_iter().collect(),
                });
                self.flush(ctx);
            }
            None => match (self.pending.back_mut(), waiter) {
                // The answer reflects pending events: it waits for them.
                (Some(last), Some(waiter)) => last.waiters.push(waiter),
                (None, Some(waiter)) => self.release(waiter, self.committed),
                (_, None) => {}
            },
        }
        Ok(())
    }

    /// Refuses client mutations while too much is waiting for the journal, while the journal
    /// has been failing for longer than a failover takes, or once the engine is stopping.
    fn check_backlog(&self) -> Result<(), RoomFailure> {
        let refusal = if !self.shutdown_waiters.is_empty() {
            Some("the server is shutting down".to_owned())
        } else if self.pending.len() >= self.deps.settings.max_pending {
            Some(format!(
                "{} events are waiting for the durability log; retry later",
                self.pending.len()
            ))
        } else if self
            .failing_since
            .is_some_and(|since| since.elapsed() >= FAILING_GRACE)
        {
            Some("the durability log cannot take writes; retry later".to_owned())
        } else {
            None
        };
        match refusal {
            Some(message) => {
                self.deps
                    .metrics
                    .refusals
                    .with_label_values(&["unavailable"])
                    .inc();
                Err(RoomFailure::Unavailable(message))
            }
            None => Ok(()),
        }
    }

    /// Hands the events not yet sent to the journal, unless an append is already in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight > 0 || self.retry_scheduled || self.pending.is_empty() {
            return;
        }
        let events: Vec<Event> = self
            .pending
            .iter()
            .take(MAX_APPEND)
            .map(|p| p.event.clone())
            .collect();
        self.in_flight = events.len();
        let append = self.deps.journal.append(events);
        ctx.spawn(append.into_actor(self).map(|result, act, ctx| {
            let sent = std::mem::take(&mut act.in_flight);
            match result {
                Ok(()) => act.committed_events(sent, ctx),
                Err(error) => act.append_failed(error, ctx),
            }
        }));
    }

    fn append_failed(&mut self, error: JournalError, ctx: &mut Context<Self>) {
        if self.failing_since.is_none() {
            match &error {
                // Cannot heal by retrying; it needs an operator. Keep the events and retry
                // slowly, so nothing acknowledged or pending is dropped meanwhile.
                JournalError::Corrupt(_) => tracing::error!(room.id = %self.state.id(), %error,
                    seq = self.state.seq(), "journal refused the room's events as corrupt"),
                JournalError::Unavailable(_) => tracing::debug!(room.id = %self.state.id(),
                    %error, pending = self.pending.len(), "journal append failed; retrying"),
            }
            self.failing_since = Some(Instant::now());
        }
        self.retry_scheduled = true;
        let delay = self.retry_delay;
        self.retry_delay = (self.retry_delay * 2).min(MAX_RETRY_DELAY);
        ctx.run_later(delay, |act, ctx| {
            act.retry_scheduled = false;
            act.flush(ctx);
        });
    }

    /// The first `count` pending events are durable: publish them.
    fn committed_events(&mut self, count: usize, ctx: &mut Context<Self>) {
        if let Some(since) = self.failing_since.take() {
            tracing::debug!(room.id = %self.state.id(), seq = self.state.seq(),
                stalled_ms = since.elapsed().as_millis() as u64, "journal writes resumed");
        }
        self.retry_delay = FIRST_RETRY_DELAY;
        let count = count.min(self.pending.len());
        self.deps.metrics.journal_pending.sub(count as i64);
        for pending in self.pending.drain(..count).collect::<Vec<_>>() {
            self.deps
                .metrics
                .mutations
                .with_label_values(&[pending.event.kind.name()])
                .inc();
            self.committed = pending.counters;
            if let EventKind::Said { user, text } = &pending.event.kind {
                let message = ChatMessage {
                    seq: pending.event.seq,
                    user: user.clone(),
                    text: text.clone(),
                    sent_at: pending.event.at,
                };
                self.broadcast(frames::message(&message));
            }
            for waiter in pending.waiters {
                self.release(waiter, pending.counters);
            }
        }
        self.publish_state(ctx);
        if self.pending.is_empty() {
            self.maybe_snapshot(ctx);
            self.on_drained(ctx);
        }
        self.flush(ctx);
    }

    /// Snapshots the room when enough has happened since the last one. Only with nothing
    /// pending, so the working state is exactly the durable state.
    ///
    /// A snapshot carries the whole transcript, so the interval grows with it: at least as many
    /// events as the transcript has messages pass between two snapshots, which keeps the bytes
    /// written for snapshots within a constant factor of the bytes of the log itself.
    fn maybe_snapshot(&mut self, ctx: &mut Context<Self>) {
        let seq = self.committed.seq;
        let every = self
            .deps
            .settings
            .snapshot_every
            .max(u64::from(self.committed.messages));
        if self.snapshotting || self.closing.is_some() || seq < self.snapshot_seq + every {
            return;
        }
        self.snapshotting = true;
        let write = self.deps.journal.snapshot(self.state.snapshot());
        ctx.spawn(write.into_actor(self).map(move |result, act, _| {
            act.snapshotting = false;
            match result {
                Ok(()) => {
                    tracing::debug!(room.id = %act.state.id(), seq, "snapshot written");
                    act.snapshot_seq = seq;
                }
                // Harmless: the log stays complete; the next commit tries again.
                Err(error) => {
                    tracing::warn!(room.id = %act.state.id(), seq, %error, "snapshot not written")
                }
            }
        }));
    }

    /// Sends the committed state to every socket, at most once per `STATE_INTERVAL`: under load
    /// the intermediate states are skipped (API.md allows it) and the latest one follows within
    /// the interval; when the room is quiet, a change goes out at once.
    fn publish_state(&mut self, ctx: &mut Context<Self>) {
        if self.state_flush_scheduled {
            return;
        }
        let since = self.last_state_sent.elapsed();
        if since >= STATE_INTERVAL {
            self.send_state();
            return;
        }
        self.state_flush_scheduled = true;
        ctx.run_later(STATE_INTERVAL - since, |act, _| {
            act.state_flush_scheduled = false;
            act.send_state();
        });
    }

    fn send_state(&mut self) {
        if self.committed.seq > self.last_state_seq {
            self.last_state_seq = self.committed.seq;
            self.last_state_sent = Instant::now();
            self.broadcast(frames::state(&self.view()));
        }
    }

    /// Answers a waiter with the state as of `counters`.
    fn release(&mut self, waiter: Waiter, counters: Counters) {
        match waiter {
            Waiter::Reply(tx) => {
                let _ = tx.send(Ok(self.view_at(counters)));
            }
            Waiter::Attach(id, tx) => {
                let frame = frames::state(&self.view_at(counters));
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.active = true;
                    let _ = tx.send(Ok(frame));
                }
            }
        }
    }

    fn broadcast(&self, frame: ByteString) {
        for session in self.sessions.values().filter(|s| s.active) {
            session.addr.do_send(Outbound::Text(frame.clone()));
        }
    }

    /// Nothing is pending any more: a close or a shutdown waiting for that may go on.
    fn on_drained(&mut self, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            self.write_final_record(ctx);
        }
        self.finish_shutdown(ctx);
    }

    /// Stops the room for an engine shutdown once nothing is pending and no close is being
    /// written (stopping drops spawned futures, which would abandon the write).
    fn finish_shutdown(&mut self, ctx: &mut Context<Self>) {
        let writing = self.closing.as_ref().is_some_and(|c| c.writing);
        if self.shutdown_waiters.is_empty() || writing || !self.pending.is_empty() {
            return;
        }
        for session in self.sessions.values() {
            session.addr.do_send(Outbound::Close {
                code: CLOSE_GOING_AWAY,
                reason: "server shutting down",
            });
        }
        for tx in self.shutdown_waiters.drain(..) {
            let _ = tx.send(());
        }
        ctx.stop();
    }

    fn write_final_record(&mut self, ctx: &mut Context<Self>) {
        let Some(closing) = self.closing.as_mut() else {
            return;
        };
        if closing.writing || !self.pending.is_empty() {
            return;
        }
        closing.writing = true;
        let record = FinalRecord {
            room: self.state.view(self.committed),
            votes: self.state.votes(),
            messages: self.state.transcript(self.committed.seq),
        };
        let store = self.deps.store.clone();
        ctx.spawn(
            async move { store.write_final(record).await }
                .into_actor(self)
                .map(|result, act, ctx| act.final_record_written(result, ctx)),
        );
    }

    fn final_record_written(
        &mut self,
        result: Result<RoomView, crate::store::StoreError>,
        ctx: &mut Context<Self>,
    ) {
        let Some(closing) = self.closing.as_mut() else {
            return;
        };
        closing.writing = false;
        let view = match result {
            Ok(view) => view,
            Err(error) => {
                let failure = RoomFailure::Unavailable(error.to_string());
                for tx in closing.waiters.drain(..) {
                    let _ = tx.send(Err(failure.clone()));
                }
                self.finish_shutdown(ctx);
                return;
            }
        };
        tracing::info!(room.id = %view.id, seq = view.counters.seq, "room closed; final record stored");
        self.deps.metrics.rooms_closed.inc();
        let frame = frames::closed(&view);
        for session in self.sessions.values() {
            session.addr.do_send(Outbound::Text(frame.clone()));
            session.addr.do_send(Outbound::Close {
                code: CLOSE_NORMAL,
                reason: "room closed",
            });
        }
        self.sessions.clear();
        for tx in closing.waiters.drain(..) {
            let _ = tx.send(Ok(view.clone()));
        }
        self.final_view = Some(view);
        // Only now, with the record in SQL, may the log go. If this fails, recovery at the next
        // start finds the record in SQL and deletes the log then.
        let room = self.state.id().clone();
        let delete = self.deps.journal.delete_room(room.clone());
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

    /// Lapses HTTP joins idle for longer than the configured time.
    fn sweep_idle(&mut self, ctx: &mut Context<Self>) {
        let ttl = self.deps.settings.http_ttl;
        let lapsed: Vec<UserName> = self
            .http_seen
            .iter()
            .filter(|(_, seen)| seen.elapsed() >= ttl)
            .map(|(user, _)| user.clone())
            .collect();
        for user in lapsed {
            self.http_seen.remove(&user);
            if self.state.has_http_presence(&user) && !self.state.is_closed() {
                tracing::debug!(room.id = %self.state.id(), user = %user, "HTTP presence lapsed");
                let leave = Command::Leave {
                    user,
                    via: Via::Http,
                };
                if let Err(error) = self.submit(leave, None, ctx) {
                    tracing::debug!(room.id = %self.state.id(), %error, "lapse refused");
                }
            }
        }
    }
}

/// How often to look for lapsed HTTP joins: a lapse is late by at most this.
fn sweep_interval(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.deps.metrics.rooms_open.inc();
        ctx.run_interval(sweep_interval(self.deps.settings.http_ttl), |act, ctx| {
            act.sweep_idle(ctx)
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.deps.metrics.rooms_open.dec();
        self.deps
            .metrics
            .journal_pending
            .sub(self.pending.len() as i64);
        let me = ctx.address();
        let mut index = self.index.write();
        if index.get(self.state.id()) == Some(&me) {
            index.remove(self.state.id());
        }
    }
}

fn user_of(command: &Command) -> &UserName {
    match command {
        Command::Join { user, .. }
        | Command::Leave { user, .. }
        | Command::Vote { user, .. }
        | Command::Retract { user }
        | Command::Say { user, .. } => user,
    }
}

impl Handler<Mutate> for RoomActor {
    type Result = ResponseFuture<Reply<RoomView>>;

    fn handle(&mut self, msg: Mutate, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let submitted = self.check_backlog().and_then(|()| {
            if msg.from_http {
                let user = user_of(&msg.command).clone();
                match msg.command {
                    Command::Leave { .. } => self.http_seen.remove(&user),
                    _ => self.http_seen.insert(user, Instant::now()),
                };
            }
            self.submit(msg.command, Some(Waiter::Reply(tx)), ctx)
        });
        Box::pin(async move {
            submitted?;
            rx.await
                .unwrap_or_else(|_| Err(RoomFailure::Unavailable("the room stopped".into())))
        })
    }
}

impl Handler<GetView> for RoomActor {
    type Result = MessageResult<GetView>;

    fn handle(&mut self, _: GetView, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.final_view.clone().unwrap_or_else(|| self.view()))
    }
}

impl Handler<GetMessages> for RoomActor {
    type Result = MessageResult<GetMessages>;

    fn handle(&mut self, msg: GetMessages, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.state
                .messages(msg.after, self.committed.seq, msg.limit),
        )
    }
}

impl Handler<Connect> for RoomActor {
    type Result = ResponseFuture<Reply<ByteString>>;

    fn handle(&mut self, msg: Connect, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let submitted = self.check_backlog().and_then(|()| {
            let join = Command::Join {
                user: msg.user.clone(),
                via: Via::Socket,
            };
            self.sessions.insert(
                msg.id,
                Session {
                    user: msg.user,
                    addr: msg.session,
                    active: false,
                },
            );
            let submitted = self.submit(join, Some(Waiter::Attach(msg.id, tx)), ctx);
            if submitted.is_err() {
                self.sessions.remove(&msg.id);
            }
            submitted
        });
        Box::pin(async move {
            submitted?;
            rx.await
                .unwrap_or_else(|_| Err(RoomFailure::Unavailable("the room stopped".into())))
        })
    }
}

impl Handler<Disconnect> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Self::Context) {
        let Some(session) = self.sessions.remove(&msg.id) else {
            return;
        };
        if self.state.is_closed() {
            return;
        }
        let leave = Command::Leave {
            user: session.user,
            via: Via::Socket,
        };
        if let Err(error) = self.submit(leave, None, ctx) {
            tracing::debug!(room.id = %self.state.id(), %error, "socket leave refused");
        }
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
        self.closing
            .get_or_insert_with(Closing::default)
            .waiters
            .push(tx);
        self.write_final_record(ctx);
        Box::pin(async move {
            match tokio::time::timeout(CLOSE_TIMEOUT, rx).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(_)) => Err(RoomFailure::Unavailable("the room stopped".into())),
                Err(_) => Err(RoomFailure::Unavailable(
                    "the room's last events are not yet durable; retry the close".into(),
                )),
            }
        })
    }
}

impl Handler<Shutdown> for RoomActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.shutdown_waiters.push(tx);
        if self.pending.is_empty() {
            self.on_drained(ctx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
