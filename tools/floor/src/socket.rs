//! One WebSocket of the floor (an actix-web-actors actor, as the engine's sessions are): opening
//! it joins its user and sends the room's state once; each text frame is parsed with the
//! engine's own frame parser, applied to the room's tally and answered with an `ack` (or an
//! `error`) encoded by the engine's own encoder. Nothing else is sent: no `state` frames after
//! the first, no chat messages of others (no fan-out), no pings, no rate limit.

use actix::{Actor, ActorContext, StreamHandler};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws::{self, ProtocolError};
use roomstate_core::{
    protocol::{frames, ClientFrame, ErrorCode},
    room::{RoomId, UserName},
};
use serde_json::Value;

use crate::{rooms::Rooms, tally::Refusal};

/// The engine's default `limits.max_frame_bytes`.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

pub struct Socket {
    rooms: web::Data<Rooms>,
    room: RoomId,
    user: UserName,
}

/// Upgrades `req` to a socket of `user` in `room` (which exists).
pub fn start(
    rooms: web::Data<Rooms>,
    room: RoomId,
    user: UserName,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let socket = Socket { rooms, room, user };
    ws::WsResponseBuilder::new(socket, req, payload)
        .frame_size(MAX_FRAME_BYTES)
        .start()
}

/// The answer to one client frame of `user` in `room`: an `ack`, or an `error` (shared by the
/// actor socket and the raw one, `raw`).
pub fn answer(rooms: &Rooms, room: &RoomId, user: &UserName, frame: ClientFrame) -> String {
    let (req, applied) = match frame {
        ClientFrame::Vote { side, req } => {
            let applied = rooms.with(room, |t| t.vote(user, side));
            (req, applied.map(|count| count.seq))
        }
        ClientFrame::Retract { req } => {
            let applied = rooms.with(room, |t| t.retract(user));
            (req, applied.map(|count| count.seq))
        }
        ClientFrame::Say { text, req } => {
            let applied = rooms.with(room, |t| t.say(user, &text));
            (req, applied)
        }
    };
    match applied {
        Ok(seq) => frames::ack(&req, seq),
        Err(refusal) => frames::error(&req, refusal.code, &refusal.message),
    }
}

/// The answer to one text frame: parsed, then `answer`ed, or `bad_request`.
pub fn answer_text(rooms: &Rooms, room: &RoomId, user: &UserName, text: &str) -> String {
    match frames::parse(text) {
        Ok(frame) => answer(rooms, room, user, frame),
        Err(bad) => frames::error(&bad.req, ErrorCode::BadRequest, &bad.message),
    }
}

impl Actor for Socket {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let user = &self.user;
        let joined = self.rooms.with(&self.room, |t| {
            t.open_socket(user);
            Ok(t.view())
        });
        match joined {
            Ok(view) => ctx.text(frames::state(&view)),
            // The room was there at the upgrade; the floor never closes rooms, so this does not
            // happen, but a socket without a room has nothing to do.
            Err(Refusal { code, message }) => {
                ctx.text(frames::error(&Value::Null, code, &message));
                ctx.close(Some(ws::CloseCode::Policy.into()));
                ctx.stop();
            }
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let user = &self.user;
        let _ = self.rooms.with(&self.room, |t| {
            t.close_socket(user);
            Ok(())
        });
    }
}

impl StreamHandler<Result<ws::Message, ProtocolError>> for Socket {
    fn handle(&mut self, msg: Result<ws::Message, ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Text(text)) => {
                ctx.text(answer_text(&self.rooms, &self.room, &self.user, &text));
            }
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Pong(_) | ws::Message::Nop) => {}
            Ok(ws::Message::Binary(_) | ws::Message::Continuation(_)) => ctx.text(frames::error(
                &Value::Null,
                ErrorCode::BadRequest,
                "frames must be single JSON text frames",
            )),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(error) => {
                tracing::debug!(%error, "WebSocket protocol error");
                ctx.close(Some(ws::CloseCode::Protocol.into()));
                ctx.stop();
            }
        }
    }
}
