//! A WebSocket session: one plain task per socket. It parses client frames, forwards requests
//! to its room, and turns what the room tells it into frames. It owns the socket's heartbeat,
//! rate limit and token expiry (one deadline for all three), the bound of its outgoing buffer
//! (`outgoing.rs`: a client that does not take what it is sent is dropped with 1008), the
//! encoding of every server frame and the choice of every close code, and nothing of the room:
//! every decision about state is the room's.
//!
//! The HTTP route decides whether a socket opens (`accept`: every refusal comes before the
//! upgrade); the upgrade service (`upgrade.rs`) then takes the connection out of the HTTP
//! dispatcher and `open` runs the session on it: frames in through `incoming.rs`, frames out
//! through `outgoing.rs`, and what the room sends through the worker's hub (`hub.rs`), which
//! hands it to the session without waking the session's task.

use std::{
    cell::RefCell,
    future::Future,
    net::IpAddr,
    pin::Pin,
    rc::Rc,
    sync::Arc,
    task::{ready, Context, Poll, Waker},
    time::Duration,
};

use actix::prelude::{MailboxError, RecipientRequest};
use actix_http::ws::{self, CloseCode, Frame, OpCode, ProtocolError};
use actix_web::{web::BytesMut, HttpMessage as _, HttpRequest, HttpResponse};
use futures_util::StreamExt as _;
use roomstate_core::{
    protocol::{
        frames::{self, Req},
        ClientFrame, CloseReason, ErrorCode,
    },
    room::{Command, IdempotencyKey, RoomId, RoomView, UserName},
};
use serde_json::Value;
use tokio::time::{Instant, Sleep};

use super::{
    hub::{Deliver, Registration},
    incoming::{Incoming, ReadSide},
    open_sockets::SocketGuard,
    outgoing::Outgoing,
};
use crate::{
    error::ApiError,
    metrics::Metrics,
    ratelimit::TokenBucket,
    room::{
        failure::{Reply, RoomFailure},
        link::RoomLink,
        messages::{Connect, Disconnect, SocketMutate},
        outbound::{self, Outbound, SessionId, Shared},
        outlet::{AnswerTo, Outlet},
    },
};

/// Refused frames in a row after which a flooding client is disconnected.
const FLOOD_STRIKES: u32 = 50;
/// How long the room's last frames (`closed`, the socket's end) wait for the answers to requests
/// this socket still has with the room: a room answers those before it ends its sockets, in the
/// same queue, but a mirror's answers (from the room's owner) travel apart from its frames.
const LAST_ANSWERS_GRACE: Duration = Duration::from_secs(2);

/// Tokens that outlive this are not watched: a timer that far out is pointless (the socket will
/// have been dropped or reconnected long before) and a far-future `exp` must not overflow one.
const LONGEST_WATCHED_TOKEN: Duration = Duration::from_secs(366 * 24 * 3600);

/// Per-socket settings.
#[derive(Debug, Clone)]
pub(crate) struct SessionSettings {
    /// Drop the socket after this long without hearing from it (pong or any frame).
    pub(crate) timeout: Duration,
    pub(crate) max_frame_bytes: usize,
    pub(crate) rate_per_s: u32,
    pub(crate) burst: u32,
    /// Bytes written and not yet taken by the client past which the socket is dropped.
    pub(crate) send_buffer_bytes: usize,
}

/// Who opens a socket to which room, as the HTTP edge established it.
pub(crate) struct Opening {
    pub(crate) user: UserName,
    pub(crate) room_id: RoomId,
    /// The room, or this node's mirror of it.
    pub(crate) room: RoomLink,
    /// How long the user token stays valid (`None`: open mode).
    pub(crate) token_ttl: Option<Duration>,
    /// The client's address (the peer, or what a trusted proxy says), for the logs.
    pub(crate) client: IpAddr,
}

/// The WebSocket close code for each reason the server ends a socket (docs/api.md).
fn close_code(reason: CloseReason) -> CloseCode {
    match reason {
        CloseReason::RoomClosed => CloseCode::Normal,
        CloseReason::ServerShutdown => CloseCode::Away,
        CloseReason::FrameTooLarge => CloseCode::Size,
        CloseReason::Flooding | CloseReason::Refused => CloseCode::Policy,
        CloseReason::ProtocolError => CloseCode::Protocol,
        CloseReason::TryAgainLater => CloseCode::Again,
        // A private-use code (4000-4999): the client's cue to get a fresh token and reconnect.
        CloseReason::TokenExpired => CloseCode::Other(4001),
    }
}

/// What a client hears of a request the room refused. A room that stopped before it answered
/// is `unavailable` (retry: in a cluster it may be moving) unless the socket has already heard it
/// close: then the request came after the close and is `room_closed`, as over HTTP.
fn refusal(failure: &RoomFailure, room_closed: bool) -> ApiError {
    match failure {
        RoomFailure::Stopped if room_closed => ApiError::room_closed(),
        _ => ApiError::from(failure.clone()),
    }
}

/// A request sent to the room and not answered yet: its tag, and the `req` its answer echoes.
struct InFlight {
    tag: u64,
    req: Req,
}

/// Requests one socket may have awaiting their answers; more are refused (`rate_limited`)
/// without reaching the room. Their `req`s together may also hold at most as many bytes as the
/// socket's send buffer, which their answers would need.
const MAX_IN_FLIGHT: usize = 256;

/// What the session knows and decides; shared by its task (frames in, answers, the deadline)
/// and its worker's hub (what the room sends).
struct Session {
    id: SessionId,
    user: UserName,
    room_id: RoomId,
    client: IpAddr,
    room: RoomLink,
    heard: Instant,
    next_ping: Instant,
    bucket: TokenBucket,
    strikes: u32,
    /// Waiting for the room's first state: what the room sends meanwhile waits in `early`.
    connecting: bool,
    early: Vec<Outbound>,
    /// Requests sent to the room and not answered yet, oldest first, and the next one's tag.
    in_flight: Vec<InFlight>,
    /// The bytes of their `req`s.
    in_flight_bytes: usize,
    next_tag: u64,
    /// Where the room answers (and sends frames): this socket on its worker's hub.
    outlet: Outlet,
    /// What the room sent to end the socket while requests were in flight: held until they are
    /// answered (or until `deferred_until`), so no durable request loses its `ack`.
    deferred: Vec<Outbound>,
    deferred_until: Option<Instant>,
    /// When the user token the socket was opened with expires (`None`: open mode, or too far
    /// out to watch).
    token_expires: Option<Instant>,
    /// The token expired: the socket takes no more requests and is closing.
    expired: bool,
    /// The room said it closed (its `closed` frame or its end), even if that frame waits.
    room_closed: bool,
    /// The session is over: its task ends at its next turn.
    ended: bool,
    /// Frames written and not yet taken by the client.
    outgoing: Outgoing,
    settings: SessionSettings,
    metrics: Metrics,
    /// The task's waker, for what the hub hands over that needs the task (an end, a deadline).
    task: Option<Waker>,
}

/// Marks a request that came through the upgrade service (`upgrade.rs`): only such a request
/// can become a socket (one actix-http keeps in its dispatcher, such as one with a chunked body,
/// cannot).
pub(crate) struct ThroughUpgrade;

/// A socket the route accepted: the `101` answer carries it to the upgrade service.
pub(crate) struct Accepted {
    opening: Opening,
    settings: SessionSettings,
    metrics: Metrics,
    /// The socket's place among the open ones, until its connection ends.
    counted: SocketGuard,
}

/// Answers `req` with the handshake's `101`, carrying what `open` needs, or refuses a request
/// that is no WebSocket upgrade.
pub(crate) fn accept(
    req: &HttpRequest,
    opening: Opening,
    settings: SessionSettings,
    metrics: Metrics,
    counted: SocketGuard,
) -> Result<HttpResponse, ApiError> {
    let mut response = match ws::handshake(req.head()) {
        Ok(mut handshake) => HttpResponse::from(handshake.finish().map_into_boxed_body()),
        Err(error) => {
            return Err(ApiError::bad_request(format!(
                "not a WebSocket upgrade: {error}"
            )))
        }
    };
    // actix-http hands only some upgrade requests to the upgrade service (not one with a
    // chunked body, say): a `101` for any other would open no socket.
    if req.extensions().get::<ThroughUpgrade>().is_none() {
        return Err(ApiError::bad_request(
            "not a WebSocket upgrade: an upgrade request has no body",
        ));
    }
    response.extensions_mut().insert(Accepted {
        opening,
        settings,
        metrics,
        counted,
    });
    Ok(response)
}

/// Runs the session `accepted` on a connection's read side, whose client already sent `early`,
/// as a task on this worker; what the session writes is for the caller to hand to the kernel
/// (`Outgoing::write`), with the socket's place among the open ones, to give back when the
/// connection ends.
pub(crate) fn open(accepted: Accepted, read: ReadSide, early: BytesMut) -> (Outgoing, SocketGuard) {
    let Accepted {
        opening,
        settings,
        metrics,
        counted,
    } = accepted;
    let outgoing = Outgoing::new(
        settings.send_buffer_bytes,
        metrics.ws_send_buffer.clone(),
        settings.timeout,
    );
    let incoming = Incoming::new(read, early, settings.max_frame_bytes);
    let now = Instant::now();
    let id = outbound::next_session_id();
    let registration = Registration::new(id);
    let session = Rc::new(RefCell::new(Session {
        id,
        user: opening.user,
        room_id: opening.room_id,
        client: opening.client,
        room: opening.room,
        heard: now,
        next_ping: now + ping_every(settings.timeout),
        bucket: TokenBucket::new(settings.rate_per_s, settings.burst),
        strikes: 0,
        connecting: true,
        early: Vec::new(),
        in_flight: Vec::new(),
        in_flight_bytes: 0,
        next_tag: 0,
        outlet: registration.outlet(),
        deferred: Vec::new(),
        deferred_until: None,
        token_expires: opening
            .token_ttl
            .filter(|ttl| *ttl <= LONGEST_WATCHED_TOKEN)
            .map(|ttl| now + ttl),
        expired: false,
        room_closed: false,
        ended: false,
        outgoing: outgoing.clone(),
        settings,
        metrics,
        task: None,
    }));
    registration.attach(session.clone());
    let (connect, deadline) = {
        let s = session.borrow();
        s.metrics.ws_connections.inc();
        // The room's answer comes first: no client frame is read before it.
        let connect = s.room.connect.send(Connect {
            id,
            user: s.user.clone(),
            session: s.outlet.clone(),
        });
        (connect, s.deadline())
    };
    let task = SocketTask {
        session,
        incoming,
        connect: Some(Box::pin(connect)),
        timer: Box::pin(tokio::time::sleep_until(deadline)),
        timer_at: deadline,
        _registration: registration,
    };
    actix_rt::spawn(task);
    (outgoing, counted)
}

/// Pings a third of the timeout apart (at least 50 ms apart).
fn ping_every(timeout: Duration) -> Duration {
    (timeout / 3).max(Duration::from_millis(50))
}

impl Session {
    /// Writes a text frame, sent when this turn ends, unless it would take the outgoing buffer
    /// past its bound: then the client is not taking what it is sent, and the socket is dropped
    /// instead.
    fn send(&mut self, text: &[u8]) {
        if self.may_send(text) {
            self.outgoing.frame(OpCode::Text, text);
        }
    }

    /// Writes a room's broadcast as `send` does, sent at the worker's next flush tick (or with
    /// this socket's next answer, if that comes first).
    fn broadcast(&mut self, text: &[u8]) {
        if self.may_send(text) {
            self.outgoing.broadcast(text);
        }
    }

    /// Whether `text` may be written: not after the socket's end (a room's message may follow
    /// it in the same turn), and not past the buffer's bound (the socket is dropped).
    fn may_send(&mut self, text: &[u8]) -> bool {
        if self.ended || self.outgoing.is_finished() {
            return false;
        }
        if self.outgoing.would_pass(text.len()) {
            self.drop_slow();
            return false;
        }
        true
    }

    /// Ends the session: its task ends at its next turn, and the socket leaves its room.
    fn stop(&mut self) {
        self.ended = true;
        if let Some(task) = self.task.take() {
            task.wake();
        }
    }

    /// Drops a socket whose client does not read: its backlog is freed, a close frame (1008) is
    /// the last thing it would get, and it leaves the room like any closed socket.
    fn drop_slow(&mut self) {
        self.metrics.ws_slow_clients.inc();
        tracing::warn!(
            user = %self.user,
            room.id = %self.room_id,
            client.addr = %self.client,
            held = self.outgoing.held(),
            limit = self.outgoing.limit(),
            "dropping a socket whose client does not take what it is sent (its outgoing buffer \
             would pass limits.ws_send_buffer_bytes)"
        );
        let reason = format!(
            "too slow: more than {} bytes sent and not read",
            self.outgoing.limit()
        );
        self.outgoing
            .abandon(ws::CloseReason::from((CloseCode::Policy, reason)));
        self.stop();
    }

    fn send_error(&mut self, req: &Value, error: &ApiError) {
        self.metrics.refused(error.error.as_str());
        self.send(frames::error(req, error.error, &error.message).as_bytes());
    }

    /// Ends the socket for `reason`, with `description` in the close frame.
    fn end(&mut self, reason: CloseReason, description: &str) {
        if self.ended {
            return;
        }
        self.outgoing.close(Some(ws::CloseReason {
            code: close_code(reason),
            description: Some(description.to_owned()),
        }));
        self.stop();
    }

    /// Fails the connection for a frame that breaks RFC 6455 (1002).
    fn protocol_error(&mut self, error: &dyn std::fmt::Display) {
        tracing::debug!(user = %self.user, client.addr = %self.client, %error, "WebSocket protocol error");
        let reason = CloseReason::ProtocolError;
        self.end(reason, reason.describe());
    }

    /// When the task next has something to do without being woken: a ping, the silence
    /// timeout, the token's expiry, the end of the grace for the room's last frames.
    fn deadline(&self) -> Instant {
        let silent = self.heard + self.settings.timeout;
        [
            self.token_expires.filter(|_| !self.expired),
            self.deferred_until,
        ]
        .into_iter()
        .flatten()
        .fold(self.next_ping.min(silent), Instant::min)
    }

    /// Does what is due at `now`.
    fn on_deadline(&mut self, now: Instant) {
        if self.deferred_until.is_some_and(|at| at <= now) {
            self.play_deferred();
        }
        if !self.expired && self.token_expires.is_some_and(|at| at <= now) {
            // The token expired: an `unauthorized` error frame, then close 4001 — after the
            // answers to requests already with the room, like the room's own last frames.
            self.expired = true;
            let error =
                ApiError::unauthorized("the user token expired; reconnect with a fresh one");
            self.send_error(&Value::Null, &error);
            self.handle(&Outbound::End(CloseReason::TokenExpired));
        }
        if now >= self.heard + self.settings.timeout {
            tracing::debug!(user = %self.user, client.addr = %self.client, "socket silent past the timeout; dropping it");
            return self.stop();
        }
        if self.next_ping <= now {
            self.outgoing.frame(OpCode::Ping, b"");
            self.next_ping = now + ping_every(self.settings.timeout);
        }
    }

    /// The room answered the socket's join: its first state, or why not.
    fn connected(&mut self, result: Result<Reply<Arc<Shared<RoomView>>>, MailboxError>) {
        self.connecting = false;
        let now = Instant::now();
        self.heard = now;
        self.next_ping = now + ping_every(self.settings.timeout);
        let refused = match result {
            Ok(Ok(first_state)) => {
                self.send(first_state.text(frames::state).as_bytes());
                for what in std::mem::take(&mut self.early) {
                    self.handle(&what);
                }
                return;
            }
            Ok(Err(failure)) => ApiError::from(failure),
            Err(mailbox) => ApiError::from(mailbox),
        };
        self.early.clear();
        self.send_error(&Value::Null, &refused);
        let reason = match refused.error {
            ErrorCode::Unavailable => CloseReason::TryAgainLater,
            _ => CloseReason::Refused,
        };
        self.end(reason, &refused.message);
    }

    /// Takes a rate token for any text frame, well-formed or not, so garbage floods are
    /// limited too. Returns false when the frame must be dropped.
    fn admit(&mut self, req: &Value) -> bool {
        if self.bucket.take() {
            self.strikes = 0;
            return true;
        }
        self.strikes += 1;
        let limited = ApiError::new(ErrorCode::RateLimited, "too many frames; slow down");
        self.send_error(req, &limited);
        if self.strikes >= FLOOD_STRIKES {
            tracing::info!(user = %self.user, client.addr = %self.client, "disconnecting a flooding socket");
            self.end(CloseReason::Flooding, CloseReason::Flooding.describe());
        }
        false
    }

    fn on_frame(&mut self, frame: Result<Frame, ProtocolError>) {
        let frame = match frame {
            Ok(frame) => frame,
            Err(ProtocolError::Overflow) => {
                let error = ApiError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "frames are limited to {} bytes",
                        self.settings.max_frame_bytes
                    ),
                );
                self.send_error(&Value::Null, &error);
                let reason = CloseReason::FrameTooLarge;
                return self.end(reason, reason.describe());
            }
            Err(error) => return self.protocol_error(&error),
        };
        self.heard = Instant::now();
        match frame {
            Frame::Text(bytes) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.on_text(text),
                // RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection.
                Err(error) => self.protocol_error(&error),
            },
            // A client that pings and does not read gets no pongs past the bound (RFC 6455
            // §5.5.3 lets a pong answer only the latest ping).
            Frame::Ping(bytes) => {
                if !self.outgoing.would_pass(bytes.len() + 2) {
                    self.outgoing.frame(OpCode::Pong, &bytes);
                }
            }
            Frame::Pong(_) => {}
            Frame::Binary(_) | Frame::Continuation(_) => {
                if self.admit(&Value::Null) {
                    let error = ApiError::bad_request("frames must be single JSON text frames");
                    self.send_error(&Value::Null, &error);
                }
            }
            Frame::Close(reason) => {
                self.outgoing.close(reason);
                self.stop();
            }
        }
    }

    fn on_text(&mut self, text: &str) {
        let parsed = frames::parse(text);
        let req = match &parsed {
            Ok(frame) => frame.req().clone(),
            Err(bad) => bad.req.clone(),
        };
        if !self.admit(&req) {
            return;
        }
        if self.expired {
            let error = ApiError::unauthorized("the user token expired");
            return self.send_error(&req, &error);
        }
        let frame = match parsed {
            Ok(frame) => frame,
            Err(bad) => {
                return self.send_error(&bad.req, &ApiError::bad_request(bad.message));
            }
        };
        let (req, command) = match frame {
            ClientFrame::Vote { side, req } => (
                req,
                Command::Vote {
                    user: self.user.clone(),
                    side,
                },
            ),
            ClientFrame::Retract { req } => (
                req,
                Command::Retract {
                    user: self.user.clone(),
                },
            ),
            ClientFrame::Say { text, req } => {
                // A string `req` serves as the message's idempotency key (docs/api.md): a repeat
                // of it gets the first message's seq.
                let key = req.as_str().map(IdempotencyKey::of_req);
                (
                    req,
                    Command::Say {
                        user: self.user.clone(),
                        text,
                        key,
                    },
                )
            }
        };
        let kept = Req::of(&req);
        if self.in_flight.len() >= MAX_IN_FLIGHT
            || self.in_flight_bytes + kept.len() > self.settings.send_buffer_bytes
        {
            let error = ApiError::rate_limited(format!(
                "{} requests of this socket await their answers; wait for them before sending \
                 more",
                self.in_flight.len()
            ));
            return self.send_error(&req, &error);
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        // Answered through the hub (`Outbound::Answer`): in order with the room's frames where
        // this node owns the room. A room that stopped drops the request, and its `AnswerTo`
        // answers that it stopped (see `refusal`).
        self.room.mutate.do_send(SocketMutate {
            command,
            session: self.id,
            answer: AnswerTo::new(self.outlet.clone(), tag),
        });
        self.in_flight_bytes += kept.len();
        self.in_flight.push(InFlight { tag, req: kept });
    }

    /// The room answered the request `tag`.
    fn answered(&mut self, tag: u64, outcome: &Reply<u64>) {
        let Some(at) = self.in_flight.iter().position(|r| r.tag == tag) else {
            return;
        };
        let InFlight { req, .. } = self.in_flight.remove(at);
        self.in_flight_bytes -= req.len();
        match outcome {
            Ok(seq) => self.send(frames::ack_to(&req, *seq).as_bytes()),
            Err(failure) => {
                let error = refusal(failure, self.room_closed);
                self.metrics.refused(error.error.as_str());
                self.send(frames::error_to(&req, error.error, &error.message).as_bytes());
            }
        }
        if self.in_flight.is_empty() {
            self.play_deferred();
        }
    }

    /// Sends what the room sent to end the socket once nothing is in flight any more.
    fn play_deferred(&mut self) {
        self.deferred_until = None;
        for what in std::mem::take(&mut self.deferred) {
            self.deliver_now(&what);
        }
    }

    /// What the room sent: written now, or held while the first state is awaited, or (a last
    /// frame) while requests are in flight.
    fn handle(&mut self, what: &Outbound) {
        if self.ended {
            return;
        }
        if let Outbound::Answer { tag, outcome } = what {
            return self.answered(*tag, outcome);
        }
        if matches!(
            what,
            Outbound::Closed(_) | Outbound::End(CloseReason::RoomClosed)
        ) {
            self.room_closed = true;
        }
        if self.connecting {
            return self.early.push(what.clone());
        }
        let last = matches!(what, Outbound::Closed(_) | Outbound::End(_));
        if !last || (self.in_flight.is_empty() && self.deferred.is_empty()) {
            return self.deliver_now(what);
        }
        if self.deferred.is_empty() {
            self.deferred_until = Some(Instant::now() + LAST_ANSWERS_GRACE);
            // The task's deadline moved closer.
            if let Some(task) = &self.task {
                task.wake_by_ref();
            }
        }
        self.deferred.push(what.clone());
    }

    /// Turns what the room sent into frames (the only place server frames are encoded).
    fn deliver_now(&mut self, what: &Outbound) {
        match what {
            Outbound::State(view) => self.broadcast(view.text(frames::state).as_bytes()),
            Outbound::Message(message) => self.broadcast(message.text(frames::message).as_bytes()),
            Outbound::Closed(view) => self.send(view.text(frames::closed).as_bytes()),
            Outbound::End(reason) => self.end(*reason, reason.describe()),
            Outbound::Answer { tag, outcome } => self.answered(*tag, outcome),
        }
    }

    /// The session is over, whatever ended it: the writer sends what is queued and ends the
    /// connection, and the socket leaves its room.
    fn stopped(&mut self) {
        self.ended = true;
        self.outgoing.finish();
        self.metrics.ws_connections.dec();
        self.room.disconnect.do_send(Disconnect { id: self.id });
    }
}

impl Deliver for RefCell<Session> {
    fn deliver(&self, what: &Outbound) {
        self.borrow_mut().handle(what);
    }
}

/// The socket's task: the client's frames, the room's answers and the deadline, in one future.
struct SocketTask {
    session: Rc<RefCell<Session>>,
    incoming: Incoming,
    /// The room's answer to the join, until it came.
    connect: Option<Pin<Box<RecipientRequest<Connect>>>>,
    timer: Pin<Box<Sleep>>,
    timer_at: Instant,
    /// The session's place on its worker's hub: the room reaches it until the task ends.
    _registration: Registration,
}

impl Future for SocketTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut session = this.session.borrow_mut();
        if !session
            .task
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            session.task = Some(cx.waker().clone());
        }
        loop {
            if session.ended {
                return Poll::Ready(());
            }
            // While the room's answer is awaited, nothing else happens (no client frame read, no
            // ping, no expiry frame before the first state, no silence counted).
            if let Some(connect) = this.connect.as_mut() {
                let result = ready!(connect.as_mut().poll(cx));
                this.connect = None;
                session.connected(result);
                continue;
            }
            match this.incoming.poll_next_unpin(cx) {
                Poll::Ready(Some(frame)) => {
                    session.on_frame(frame);
                    continue;
                }
                // The client ended the connection (or the writer let go of it).
                Poll::Ready(None) => {
                    session.stop();
                    continue;
                }
                Poll::Pending => {}
            }
            let due = session.deadline();
            if due < this.timer_at {
                this.timer_at = due;
                this.timer.as_mut().reset(due);
            }
            if this.timer.as_mut().poll(cx).is_ready() {
                session.on_deadline(Instant::now());
                this.timer_at = session.deadline();
                this.timer.as_mut().reset(this.timer_at);
                continue;
            }
            return Poll::Pending;
        }
    }
}

impl Drop for SocketTask {
    fn drop(&mut self) {
        self.session.borrow_mut().stopped();
    }
}

#[cfg(test)]
mod tests {
    use roomstate_core::room::RoomError;

    use super::*;

    #[test]
    fn a_request_the_stopped_room_never_answered_is_room_closed_once_the_close_was_heard() {
        let code = |failure: RoomFailure, room_closed| refusal(&failure, room_closed).error;
        assert_eq!(code(RoomFailure::Stopped, false), ErrorCode::Unavailable);
        assert_eq!(code(RoomFailure::Stopped, true), ErrorCode::RoomClosed);
        let down = RoomFailure::Unavailable("journal down".into());
        assert_eq!(code(down, true), ErrorCode::Unavailable, "only a stop");
        let rule = RoomFailure::Rule(RoomError::Closed);
        assert_eq!(code(rule, false), ErrorCode::RoomClosed);
    }
}
