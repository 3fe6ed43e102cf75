//! `WsSession`: one actor per WebSocket. It parses client frames, forwards requests to its room,
//! and turns what the room tells it into frames. It owns the socket's heartbeat and rate limit,
//! the bound of its outgoing buffer (`outgoing.rs`: a client that does not take what it is sent
//! is dropped with 1008), the encoding of every server frame and the choice of every close code,
//! and nothing of the room: every decision about state is the room's.
//!
//! The HTTP route decides whether a socket opens (`accept`: every refusal comes before the
//! upgrade); the upgrade service (`upgrade.rs`) then takes the connection out of the HTTP
//! dispatcher and `open` runs the session on it: frames in through `incoming.rs`, frames out
//! through `outgoing.rs`.

use std::{
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use actix::prelude::*;
use actix_http::ws::{self, CloseCode, Frame, OpCode, ProtocolError};
use actix_web::{web::BytesMut, HttpMessage as _, HttpRequest, HttpResponse};
use bytestring::ByteString;
use roomstate_core::{
    protocol::{frames, ClientFrame, CloseReason, ErrorCode},
    room::{Command, IdempotencyKey, RoomId, UserName, Via},
};
use serde_json::Value;

use super::{
    incoming::{Incoming, ReadSide},
    open_sockets::{OpenSockets, SocketGuard},
    outgoing::Outgoing,
};
use crate::{
    error::ApiError,
    metrics::Metrics,
    ratelimit::TokenBucket,
    room::{
        link::RoomLink,
        messages::{Connect, Disconnect, Mutate},
        outbound::{Outbound, SessionId},
    },
};

/// Refused frames in a row after which a flooding client is disconnected.
const FLOOD_STRIKES: u32 = 50;
/// How long the room's last frames (`closed`, the socket's end) wait for the answers to requests
/// this socket still has with the room: the room answers those before it ends its sockets, but
/// the answers travel apart from the frames.
const LAST_ANSWERS_GRACE: Duration = Duration::from_secs(2);

/// Tokens that outlive this are not watched: a timer that far out is pointless (the socket will
/// have been dropped or reconnected long before) and a far-future `exp` must not overflow one.
const LONGEST_WATCHED_TOKEN: Duration = Duration::from_secs(366 * 24 * 3600);

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

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

pub(crate) struct WsSession {
    id: SessionId,
    user: UserName,
    room_id: RoomId,
    client: IpAddr,
    room: RoomLink,
    heard: Instant,
    bucket: TokenBucket,
    strikes: u32,
    /// Requests sent to the room and not answered yet.
    in_flight: usize,
    /// What the room sent to end the socket while requests were in flight: held until they are
    /// answered (or `LAST_ANSWERS_GRACE` passed), so no durable request loses its `ack`.
    deferred: Vec<Outbound>,
    /// How long the user token the socket was opened with stays valid (`None`: open mode).
    token_ttl: Option<Duration>,
    /// The token expired: the socket takes no more requests and is closing.
    expired: bool,
    /// Frames written and not yet taken by the client.
    outgoing: Outgoing,
    settings: SessionSettings,
    metrics: Metrics,
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
    sockets: &OpenSockets,
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
        counted: sockets.open(),
    });
    Ok(response)
}

/// Runs the session `accepted` on a connection's read side, whose client already sent `early`;
/// what the session writes is for the caller to hand to the kernel (`Outgoing::write`), with
/// the socket's place among the open ones, to give back when the connection ends.
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
    let session = WsSession {
        id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        user: opening.user,
        room_id: opening.room_id,
        client: opening.client,
        room: opening.room,
        heard: Instant::now(),
        bucket: TokenBucket::new(settings.rate_per_s, settings.burst),
        strikes: 0,
        in_flight: 0,
        deferred: Vec::new(),
        token_ttl: opening.token_ttl,
        expired: false,
        outgoing: outgoing.clone(),
        settings,
        metrics,
    };
    WsSession::create(|ctx| {
        ctx.add_stream(incoming);
        session
    });
    (outgoing, counted)
}

impl WsSession {
    /// Writes a text frame, unless it would take the outgoing buffer past its bound: then the
    /// client is not taking what it is sent, and the socket is dropped instead.
    fn send(&mut self, ctx: &mut Context<Self>, text: ByteString) {
        // After the socket's end (a room's message may follow it in the same turn), nothing.
        if self.outgoing.is_finished() {
            return;
        }
        if self.outgoing.would_pass(text.len()) {
            return self.drop_slow(ctx);
        }
        self.outgoing.frame(OpCode::Text, text.as_bytes());
    }

    /// Drops a socket whose client does not read: its backlog is freed, a close frame (1008) is
    /// the last thing it would get, and it leaves the room like any closed socket.
    fn drop_slow(&mut self, ctx: &mut Context<Self>) {
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
        ctx.stop();
    }

    fn send_error(&mut self, ctx: &mut Context<Self>, req: &Value, error: &ApiError) {
        self.metrics.refused(error.error.as_str());
        self.send(ctx, frames::error(req, error.error, &error.message).into());
    }

    /// Ends the socket for `reason`, with `description` in the close frame.
    fn end(&self, ctx: &mut Context<Self>, reason: CloseReason, description: &str) {
        self.outgoing.close(Some(ws::CloseReason {
            code: close_code(reason),
            description: Some(description.to_owned()),
        }));
        ctx.stop();
    }

    /// Fails the connection for a frame that breaks RFC 6455 (1002).
    fn protocol_error(&self, ctx: &mut Context<Self>, error: &dyn std::fmt::Display) {
        tracing::debug!(user = %self.user, client.addr = %self.client, %error, "WebSocket protocol error");
        let reason = CloseReason::ProtocolError;
        self.end(ctx, reason, reason.describe());
    }

    /// Pings a third of the timeout apart; checks for silence often enough that a silent
    /// socket is dropped at most a second after its timeout.
    fn heartbeat(&self, ctx: &mut Context<Self>) {
        let timeout = self.settings.timeout;
        let ping_every = (timeout / 3).max(Duration::from_millis(50));
        let check_every = ping_every.min(Duration::from_secs(1));
        ctx.run_interval(ping_every, |act, _| act.outgoing.frame(OpCode::Ping, b""));
        ctx.run_interval(check_every, move |act, ctx| {
            if act.heard.elapsed() >= timeout {
                tracing::debug!(user = %act.user, client.addr = %act.client, "socket silent past the timeout; dropping it");
                ctx.stop();
            }
        });
    }

    /// Ends the socket when its token expires: an `unauthorized` error frame, then close 4001 —
    /// after the answers to requests already with the room, like the room's own last frames.
    fn watch_token(&self, ctx: &mut Context<Self>) {
        let Some(ttl) = self.token_ttl.filter(|t| *t <= LONGEST_WATCHED_TOKEN) else {
            return;
        };
        ctx.run_later(ttl, |act, ctx| {
            act.expired = true;
            let error =
                ApiError::unauthorized("the user token expired; reconnect with a fresh one");
            act.send_error(ctx, &Value::Null, &error);
            <Self as Handler<Outbound>>::handle(act, Outbound::End(CloseReason::TokenExpired), ctx);
        });
    }

    /// Takes a rate token for any text frame, well-formed or not, so garbage floods are
    /// limited too. Returns false when the frame must be dropped.
    fn admit(&mut self, req: &Value, ctx: &mut Context<Self>) -> bool {
        if self.bucket.take() {
            self.strikes = 0;
            return true;
        }
        self.strikes += 1;
        let limited = ApiError::new(ErrorCode::RateLimited, "too many frames; slow down");
        self.send_error(ctx, req, &limited);
        if self.strikes >= FLOOD_STRIKES {
            tracing::info!(user = %self.user, client.addr = %self.client, "disconnecting a flooding socket");
            self.end(ctx, CloseReason::Flooding, CloseReason::Flooding.describe());
        }
        false
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        let parsed = frames::parse(text);
        let req = match &parsed {
            Ok(frame) => frame.req().clone(),
            Err(bad) => bad.req.clone(),
        };
        if !self.admit(&req, ctx) {
            return;
        }
        if self.expired {
            let error = ApiError::unauthorized("the user token expired");
            return self.send_error(ctx, &req, &error);
        }
        let frame = match parsed {
            Ok(frame) => frame,
            Err(bad) => {
                return self.send_error(ctx, &bad.req, &ApiError::bad_request(bad.message));
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
                // A `req` that is a valid idempotency key is one (docs/api.md): a repeat of it gets
                // the first message's seq. Any other `req` is only echoed.
                let key = req.as_str().and_then(|r| IdempotencyKey::parse(r).ok());
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
        let request = self.room.mutate.send(Mutate {
            command,
            via: Via::Socket,
            session: Some(self.id),
        });
        self.in_flight += 1;
        ctx.spawn(request.into_actor(self).map(move |result, act, ctx| {
            act.in_flight -= 1;
            match result
                .map_err(ApiError::from)
                .and_then(|r| r.map_err(ApiError::from))
            {
                Ok(applied) => act.send(ctx, frames::ack(&req, applied.seq).into()),
                Err(error) => act.send_error(ctx, &req, &error),
            }
            if act.in_flight == 0 {
                act.play_deferred(ctx);
            }
        }));
    }

    /// Sends what the room sent to end the socket once nothing is in flight any more.
    fn play_deferred(&mut self, ctx: &mut Context<Self>) {
        for outbound in std::mem::take(&mut self.deferred) {
            self.deliver(outbound, ctx);
        }
    }

    /// Turns what the room sent into frames (the only place server frames are encoded).
    fn deliver(&mut self, msg: Outbound, ctx: &mut Context<Self>) {
        match msg {
            Outbound::State(view) => self.send(ctx, view.text(frames::state)),
            Outbound::Message(message) => self.send(ctx, message.text(frames::message)),
            Outbound::Closed(view) => self.send(ctx, view.text(frames::closed)),
            Outbound::End(reason) => self.end(ctx, reason, reason.describe()),
        }
    }
}

impl Actor for WsSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.metrics.ws_connections.inc();
        self.heartbeat(ctx);
        self.watch_token(ctx);
        let connect = self.room.connect.send(Connect {
            id: self.id,
            user: self.user.clone(),
            session: ctx.address().recipient(),
        });
        // Wait for the room before reading any client frame.
        connect
            .into_actor(self)
            .map(|result, act, ctx| {
                let refused = match result {
                    Ok(Ok(first_state)) => return act.send(ctx, first_state.text(frames::state)),
                    Ok(Err(failure)) => ApiError::from(failure),
                    Err(mailbox) => ApiError::from(mailbox),
                };
                act.send_error(ctx, &Value::Null, &refused);
                let reason = match refused.error {
                    ErrorCode::Unavailable => CloseReason::TryAgainLater,
                    _ => CloseReason::Refused,
                };
                act.end(ctx, reason, &refused.message);
            })
            .wait(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Whatever ended the session, the writer sends what is queued and ends the connection.
        self.outgoing.finish();
        self.metrics.ws_connections.dec();
        self.room.disconnect.do_send(Disconnect { id: self.id });
    }
}

impl Handler<Outbound> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: Outbound, ctx: &mut Self::Context) {
        let last = matches!(msg, Outbound::Closed(_) | Outbound::End(_));
        if !last || (self.in_flight == 0 && self.deferred.is_empty()) {
            return self.deliver(msg, ctx);
        }
        if self.deferred.is_empty() {
            ctx.run_later(LAST_ANSWERS_GRACE, |act, ctx| act.play_deferred(ctx));
        }
        self.deferred.push(msg);
    }
}

impl StreamHandler<Result<Frame, ProtocolError>> for WsSession {
    fn handle(&mut self, frame: Result<Frame, ProtocolError>, ctx: &mut Self::Context) {
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
                self.send_error(ctx, &Value::Null, &error);
                let reason = CloseReason::FrameTooLarge;
                return self.end(ctx, reason, reason.describe());
            }
            Err(error) => return self.protocol_error(ctx, &error),
        };
        self.heard = Instant::now();
        match frame {
            Frame::Text(bytes) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.on_text(text, ctx),
                // RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection.
                Err(error) => self.protocol_error(ctx, &error),
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
                if self.admit(&Value::Null, ctx) {
                    let error = ApiError::bad_request("frames must be single JSON text frames");
                    self.send_error(ctx, &Value::Null, &error);
                }
            }
            Frame::Close(reason) => {
                self.outgoing.close(reason);
                ctx.stop();
            }
        }
    }
}
