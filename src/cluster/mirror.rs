//! `RoomMirror`: one per room that another node owns and this node has sockets for. It keeps a
//! `Follower` of the room from the journal's durable events (`mirrors` feeds it the tail) and
//! turns them into `state` and `message` frames for its sockets; it sends their joins, requests
//! and departures to the owner (`Router`). It never decides anything about the room.
//!
//! Per socket it remembers the last seq of a state and of a message it sent, so a socket never
//! gets an older state after a newer one, and gets every message after its first state, in seq
//! order, none twice — also across a reload of the room and an owner change (after which it
//! tells the new owner about every socket here: the new owner started with nobody present).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use roomstate_core::{
    protocol::CloseReason,
    room::{ChatMessage, Event, Follower, RoomError, RoomId, RoomView, UserName},
    time,
};
use roomstate_journal::{redis::TailUpdate, Epoch, RoomLog};

use super::{metrics::ClusterMetrics, router::Router};
use crate::room::{
    failure::{RegistryFailure, Reply, RoomFailure},
    messages::{Applied, Connect, Disconnect, SocketMutate},
    outbound::{Outbound, SessionId, Shared},
    outlet::{send_to_each, Outlet},
    throttle::{Publish, StateThrottle},
};

/// A mirror with no socket left stops after this long (a reconnecting client finds it warm).
const IDLE_GRACE: Duration = Duration::from_secs(5);
/// Tells the owner every socket here this often, so a lost arrival or departure heals.
const RESYNC_EVERY: Duration = Duration::from_secs(10);
// The owner lets a node's sockets go after a silence of several resyncs, never after one.
const _: () = assert!(
    RESYNC_EVERY.as_secs() * 3 < crate::room::remote_sessions::SILENCE.as_secs(),
    "the owner would drop the sockets of a node that resyncs on time"
);
/// Retrying to tell a new owner about the sockets here, at most this far apart.
const RESYNC_RETRY_MAX: Duration = Duration::from_secs(2);

/// A journal update for one mirror (from `mirrors`).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Update(pub(crate) TailUpdate);

struct Socket {
    user: UserName,
    outlet: Outlet,
    /// Its first state went out: it gets frames from now on.
    active: bool,
    /// The seqs of the last state and of the last message it got.
    state_seq: u64,
    message_seq: u64,
}

/// Told when a mirror stops (so the room is no longer followed for it).
pub(crate) type OnStop = Box<dyn FnOnce(&RoomId, &Addr<RoomMirror>)>;

pub(crate) struct RoomMirror {
    id: RoomId,
    router: Router,
    on_stop: Option<OnStop>,
    metrics: ClusterMetrics,
    max_messages: usize,
    follower: Option<Follower>,
    /// Owner answers (seq, participants) that came before the follower was loaded.
    anchors: Vec<(u64, u32)>,
    sockets: HashMap<SessionId, Socket>,
    throttle: StateThrottle,
    /// The owner's epoch as last told by the journal.
    epoch: Epoch,
    /// Telling a new owner about the sockets here is due (and how long to wait if it fails).
    resync_backoff: Option<Duration>,
    /// How often the owner is told every socket here (`RESYNC_EVERY`; a test's own).
    resync_every: Duration,
    gone: bool,
}

impl RoomMirror {
    pub(crate) fn new(
        id: RoomId,
        router: Router,
        on_stop: OnStop,
        metrics: ClusterMetrics,
        max_messages: usize,
    ) -> Self {
        Self {
            id,
            router,
            on_stop: Some(on_stop),
            metrics,
            max_messages,
            follower: None,
            anchors: Vec::new(),
            sockets: HashMap::new(),
            throttle: StateThrottle::new(0, Instant::now()),
            epoch: Epoch::NONE,
            resync_backoff: None,
            resync_every: RESYNC_EVERY,
            gone: false,
        }
    }

    /// Sends every socket the messages it has not had, from `messages` (in seq order).
    fn send_messages(&mut self, messages: &[ChatMessage]) {
        for message in messages {
            let behind = self
                .sockets
                .values_mut()
                .filter(|s| s.active && message.seq > s.message_seq)
                .map(|socket| {
                    socket.message_seq = message.seq;
                    &socket.outlet
                });
            send_to_each(behind, &Outbound::Message(Shared::new(message.clone())));
        }
    }

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
        let Some(follower) = &self.follower else {
            return;
        };
        if !self.throttle.take(follower.seq(), Instant::now()) {
            return;
        }
        let view = follower.view();
        let seq = view.counters.seq;
        let behind = self
            .sockets
            .values_mut()
            .filter(|s| s.active && seq > s.state_seq)
            .map(|socket| {
                socket.state_seq = seq;
                &socket.outlet
            });
        send_to_each(behind, &Outbound::State(Shared::new(view)));
    }

    /// A socket whose first state (the owner's answer to its arrival) is older than the
    /// follower's gets the follower's now: the throttle may have sent that state to the others
    /// while this socket was on its way, and sends each seq once. The session sends its first
    /// state before anything queued for it, so this one comes after it.
    fn catch_up_state(&mut self, session: SessionId) {
        let (Some(follower), Some(socket)) = (&self.follower, self.sockets.get_mut(&session))
        else {
            return;
        };
        if !socket.active || follower.seq() <= socket.state_seq {
            return;
        }
        let view = follower.view();
        socket.state_seq = view.counters.seq;
        send_to_each(
            std::iter::once(&socket.outlet),
            &Outbound::State(Shared::new(view)),
        );
    }

    /// The room as the journal holds it now (first load, or after the log was trimmed past
    /// this mirror): `messages` are the archived ones after where the mirror was.
    fn reload(&mut self, log: RoomLog, messages: Vec<ChatMessage>, ctx: &mut Context<Self>) {
        let loaded = Follower::load(&log.room, log.snapshot.as_ref(), &log.events, log.epoch.0);
        let mut follower = match loaded {
            Ok(follower) => follower,
            Err(error) => {
                tracing::error!(room.id = %self.id, %error, "the room's log cannot be followed");
                return;
            }
        };
        follower.bound_messages(self.max_messages);
        let reloaded = self.follower.is_some();
        if let Some(old) = &self.follower {
            // Presence does not survive a reload: carry the count over as an anchor.
            let view = old.view();
            follower.anchor(view.counters.seq, view.counters.participants);
        }
        for (seq, participants) in self.anchors.drain(..) {
            follower.anchor(seq, participants);
        }
        let upto = follower.seq();
        self.follower = Some(follower);
        let first_load = !reloaded && !self.sockets.is_empty();
        if first_load || (reloaded && log.epoch > self.epoch) {
            // Another owner since the log this mirror last read: it knows none of the sockets
            // here yet. At the first load, the owner the sockets here arrived at may already
            // have been replaced (and the tail reports the log's owner as nothing new).
            self.owner_changed(log.epoch, ctx);
        }
        self.epoch = self.epoch.max(log.epoch);
        let mut messages: Vec<ChatMessage> =
            messages.into_iter().filter(|m| m.seq <= upto).collect();
        messages.sort_by_key(|m| m.seq);
        self.send_messages(&messages);
        self.publish_state(ctx);
    }

    fn apply(&mut self, events: Vec<(Event, Option<Epoch>)>, ctx: &mut Context<Self>) {
        if self.follower.is_none() {
            return;
        }
        let now = time::now();
        let mut said = Vec::new();
        for (event, epoch) in events {
            let Some(follower) = self.follower.as_mut() else {
                return;
            };
            match follower.apply(&event, epoch.map(|e| e.0)) {
                Ok(Some(message)) => said.push(message),
                Ok(None) => {}
                Err(error) => {
                    // The tail sends a reload after a gap; until then nothing after it.
                    tracing::warn!(room.id = %self.id, %error, "mirror out of step with the log");
                    break;
                }
            }
            if let Some(epoch) = epoch {
                if epoch > self.epoch {
                    self.owner_changed(epoch, ctx);
                }
            }
            let lag = (now - event.at).num_milliseconds().max(0) as f64 / 1000.0;
            self.metrics.mirror_lag.observe(lag);
        }
        self.send_messages(&said);
        self.publish_state(ctx);
    }

    /// A new owner holds the room: it knows none of the sockets here yet.
    fn owner_changed(&mut self, epoch: Epoch, ctx: &mut Context<Self>) {
        self.epoch = epoch;
        if let Some(follower) = self.follower.as_mut() {
            follower.owner_changed(epoch.0);
        }
        if self.resync_backoff.is_none() {
            self.resync_backoff = Some(Duration::from_millis(50));
            self.resync(ctx);
        }
    }

    /// Tells the owner every socket here; retried until it takes it. Those still on their way
    /// too: the owner may have taken a socket's arrival already, and a list without it would
    /// make its user leave there (until the next resync). One whose arrival fails is detached.
    fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.gone {
            return;
        }
        let sockets: Vec<(SessionId, UserName)> = self
            .sockets
            .iter()
            .map(|(id, s)| (*id, s.user.clone()))
            .collect();
        let (router, id) = (self.router.clone(), self.id.clone());
        ctx.spawn(
            async move { router.sync_sockets(&id, sockets).await }
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(()) => act.resync_backoff = None,
                    Err(error) => {
                        let delay = act.resync_backoff.unwrap_or(Duration::from_millis(50));
                        tracing::debug!(room.id = %act.id, %error, "owner not told of the sockets here yet; retrying");
                        act.resync_backoff = Some((delay * 2).min(RESYNC_RETRY_MAX));
                        ctx.run_later(delay, |act, ctx| act.resync(ctx));
                    }
                }),
        );
    }

    /// The room was closed (its log is gone): its final view from the store, then the end.
    fn closed(&mut self, ctx: &mut Context<Self>) {
        self.gone = true;
        let (router, id) = (self.router.clone(), self.id.clone());
        ctx.spawn(
            async move { router.registry().view(&id).await }
                .into_actor(self)
                .map(|view, act, ctx| {
                    let last = match view {
                        Ok(view) => Some(Outbound::Closed(Shared::new(view))),
                        Err(error) => {
                            tracing::warn!(room.id = %act.id, %error, "closed room's record not read; ending its sockets without it");
                            None
                        }
                    };
                    let outlets = || act.sockets.values().map(|s| &s.outlet);
                    if let Some(last) = &last {
                        send_to_each(outlets(), last);
                    }
                    send_to_each(outlets(), &Outbound::End(CloseReason::RoomClosed));
                    act.sockets.clear();
                    ctx.stop();
                }),
        );
    }

    fn stop_if_idle(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(IDLE_GRACE, |act, ctx| {
            if act.sockets.is_empty() {
                ctx.stop();
            }
        });
    }
}

impl Actor for RoomMirror {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        // A mirror is started for a socket on its way (`Router::socket_link`); if none comes (the
        // request was no upgrade after all, the client went), it must not follow the room for
        // as long as the room is open.
        self.stop_if_idle(ctx);
        ctx.run_interval(self.resync_every, |act, ctx| {
            if !act.sockets.is_empty() && act.resync_backoff.is_none() {
                act.resync(ctx);
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        if let Some(on_stop) = self.on_stop.take() {
            on_stop(&self.id, &ctx.address());
        }
    }
}

impl Handler<Update> for RoomMirror {
    type Result = ();

    fn handle(&mut self, Update(update): Update, ctx: &mut Self::Context) {
        match update {
            TailUpdate::Reload { log, messages } => self.reload(log, messages, ctx),
            TailUpdate::Events { events, .. } => self.apply(events, ctx),
            TailUpdate::Owner { epoch, .. } => {
                if epoch > self.epoch {
                    self.owner_changed(epoch, ctx);
                    self.publish_state(ctx);
                }
            }
            TailUpdate::Gone { .. } => self.closed(ctx),
        }
    }
}

/// The node is stopping: end every socket here.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct EndAll;

impl Handler<EndAll> for RoomMirror {
    type Result = ();

    fn handle(&mut self, _: EndAll, ctx: &mut Self::Context) {
        self.gone = true;
        let outlets = self.sockets.values().map(|s| &s.outlet);
        send_to_each(outlets, &Outbound::End(CloseReason::ServerShutdown));
        self.sockets.clear();
        ctx.stop();
    }
}

#[cfg(test)]
mod tests;

fn room_failure(failure: RegistryFailure) -> RoomFailure {
    match failure {
        RegistryFailure::Room(failure) => failure,
        RegistryFailure::Store(error) => RoomFailure::Unavailable(error.to_string()),
        RegistryFailure::UnknownRoom => RoomFailure::Rule(RoomError::Closed),
    }
}

impl Handler<Connect> for RoomMirror {
    type Result = ResponseActFuture<Self, Reply<Arc<Shared<RoomView>>>>;

    fn handle(&mut self, msg: Connect, _: &mut Self::Context) -> Self::Result {
        if self.gone {
            return Box::pin(fut::ready(Err(RoomFailure::Rule(RoomError::Closed))));
        }
        self.sockets.insert(
            msg.id,
            Socket {
                user: msg.user.clone(),
                outlet: msg.session,
                active: false,
                state_seq: 0,
                message_seq: 0,
            },
        );
        let (router, id, session) = (self.router.clone(), self.id.clone(), msg.id);
        Box::pin(
            async move { router.attach_socket(&id, session, &msg.user).await }
                .into_actor(self)
                .map(move |attached, act, ctx| {
                    let Applied { seq, view } = match attached {
                        Ok(applied) => applied,
                        Err(failure) => {
                            act.sockets.remove(&session);
                            // A resync may have listed it meanwhile: the owner lets it go.
                            let (router, id) = (act.router.clone(), act.id.clone());
                            actix_rt::spawn(
                                async move { router.detach_socket(&id, session).await },
                            );
                            if act.sockets.is_empty() {
                                act.stop_if_idle(ctx);
                            }
                            return Err(room_failure(failure));
                        }
                    };
                    let participants = view.counters.participants;
                    match act.follower.as_mut() {
                        Some(follower) => follower.anchor(view.counters.seq, participants),
                        None => act.anchors.push((view.counters.seq, participants)),
                    }
                    // What the follower already has past the socket's first state.
                    let caught_up = act
                        .follower
                        .as_ref()
                        .and_then(|f| f.messages(seq, f.seq(), usize::MAX))
                        .unwrap_or_default();
                    let Some(socket) = act.sockets.get_mut(&session) else {
                        return Err(RoomFailure::Unavailable("the socket closed".into()));
                    };
                    socket.active = true;
                    socket.state_seq = view.counters.seq;
                    socket.message_seq = seq;
                    act.send_messages(&caught_up);
                    act.publish_state(ctx);
                    act.catch_up_state(session);
                    Ok(Shared::new(view))
                }),
        )
    }
}

impl Handler<SocketMutate> for RoomMirror {
    type Result = ();

    fn handle(&mut self, msg: SocketMutate, _: &mut Self::Context) {
        let (router, id) = (self.router.clone(), self.id.clone());
        actix_rt::spawn(async move {
            let outcome = router
                .socket_mutate(&id, msg.session, msg.command)
                .await
                .map(|applied| applied.seq)
                .map_err(room_failure);
            msg.answer.answer(outcome);
        });
    }
}

impl Handler<Disconnect> for RoomMirror {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Self::Context) {
        if self.sockets.remove(&msg.id).is_none() || self.gone {
            return;
        }
        let (router, id) = (self.router.clone(), self.id.clone());
        actix_rt::spawn(async move { router.detach_socket(&id, msg.id).await });
        if self.sockets.is_empty() {
            self.stop_if_idle(ctx);
        }
    }
}
