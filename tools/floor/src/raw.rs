//! The floor's sockets taken out of the HTTP dispatcher at the upgrade (`--raw-sockets`): the
//! experiment behind the next design step of docs/benchmarks.md, measured here first because
//! the floor is small.
//!
//! With actix-web-actors a WebSocket lives on inside actix-http's HTTP/1 dispatcher for as long
//! as it is open: the dispatcher's two 8 KiB buffers stay, and every frame goes actor →
//! WebSocket context → response body → dispatcher → `send`. actix-http can hand an upgrade
//! request to a service of its own instead (`HttpService::build().upgrade(…)`), with the
//! connection and the buffers. Here that service routes `GET /rooms/{id}/ws?user=U` (anything
//! else that asks for an upgrade gets the floor's `404`/`400` body and the connection ends),
//! answers the handshake, lets go of the dispatcher's buffers and runs the socket as one task:
//! read what the kernel has into a buffer that exists only while bytes are there, decode every
//! whole frame, answer each into one output buffer, write it with one `send`, and wait for
//! readability again holding no buffer at all.
//!
//! The same work per frame as the actor socket (`socket.rs`): the engine's frame parser and
//! encoder, the room's tally, an `ack` or `error` per text frame, pong for ping, close for close.

use std::io;

use actix_codec::{Decoder as _, Encoder as _, Framed, FramedParts};
use actix_http::{body::BodySize, h1, ws, Request, Response};
use actix_web::{
    rt::net::TcpStream,
    web::{self, BytesMut},
};
use futures_util::SinkExt as _;
use roomstate_core::{
    protocol::{frames, ErrorCode},
    room::{RoomId, UserName},
};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use crate::{
    rooms::Rooms,
    socket::{answer_text, MAX_FRAME_BYTES},
    tally::Refusal,
};

/// What a read asks the kernel for at most.
const READ_CHUNK: usize = 2048;

/// Why a raw socket ended other than by a close.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("socket I/O: {0}")]
    Io(#[from] io::Error),
    #[error("WebSocket protocol: {0}")]
    Protocol(#[from] ws::ProtocolError),
    #[error("HTTP/1 codec: {0}")]
    Http(String),
}

/// The upgrade service: one upgrade request with its connection.
pub async fn upgrade(
    rooms: web::Data<Rooms>,
    req: Request,
    mut framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), RawError> {
    let (room, user) = match target(&rooms, &req) {
        Ok(target) => target,
        Err(refusal) => {
            let status = actix_http::StatusCode::from_u16(refusal.code.http_status())
                .unwrap_or(actix_http::StatusCode::INTERNAL_SERVER_ERROR);
            let response = Response::build(status)
                .insert_header((actix_http::header::CONTENT_TYPE, "application/json"))
                .insert_header((actix_http::header::CONNECTION, "close"))
                .finish()
                .drop_body();
            let text = refusal.body().to_string();
            framed
                .send((response, BodySize::Sized(text.len() as u64)).into())
                .await
                .map_err(|e| RawError::Http(e.to_string()))?;
            let mut io = framed.into_parts().io;
            io.write_all(text.as_bytes()).await?;
            return Ok(());
        }
    };
    let response = match ws::handshake(req.head()) {
        Ok(mut builder) => builder.finish().drop_body(),
        Err(error) => {
            let response = Response::from(error).drop_body();
            framed
                .send((response, BodySize::None).into())
                .await
                .map_err(|e| RawError::Http(e.to_string()))?;
            return Ok(());
        }
    };
    // The request's head holds its header map and, through the header values, the dispatcher's
    // whole read buffer: it goes before the socket runs.
    drop(req);
    framed
        .send((response, BodySize::None).into())
        .await
        .map_err(|e| RawError::Http(e.to_string()))?;
    // Only what the client already sent after its request is kept; the dispatcher's 8 KiB
    // buffers go.
    let FramedParts { io, read_buf, .. } = framed.into_parts();
    let early = BytesMut::from(&read_buf[..]);
    drop(read_buf);
    let mut io = io;
    let joined = rooms.with(&room, |t| {
        t.open_socket(&user);
        Ok(t.view())
    });
    let result = match joined {
        Ok(view) => run(&rooms, &room, &user, &mut io, early, frames::state(&view)).await,
        Err(Refusal { code, message }) => {
            let mut out = BytesMut::new();
            let mut codec = ws::Codec::new();
            codec.encode(
                ws::Message::Text(frames::error(&Value::Null, code, &message).into()),
                &mut out,
            )?;
            io.write_all(&out).await?;
            return Ok(());
        }
    };
    let _ = rooms.with(&room, |t| {
        t.close_socket(&user);
        Ok(())
    });
    result
}

/// The room and user of `GET /rooms/{id}/ws?user=U`, or why not.
fn target(rooms: &Rooms, req: &Request) -> Result<(RoomId, UserName), Refusal> {
    let not_found = || Refusal::new(ErrorCode::NotFound, "no such route");
    if req.method() != actix_http::Method::GET {
        return Err(not_found());
    }
    let id = req
        .path()
        .strip_prefix("/rooms/")
        .and_then(|rest| rest.strip_suffix("/ws"))
        .filter(|id| !id.contains('/'))
        .ok_or_else(not_found)?;
    let room = RoomId::parse(id)
        .map_err(|_| Refusal::new(ErrorCode::NotFound, format!("no room {id}")))?;
    let user = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("user="))
        .unwrap_or_default();
    let user =
        UserName::parse(user).map_err(|e| Refusal::new(ErrorCode::BadRequest, e.to_string()))?;
    rooms.with(&room, |_| Ok(()))?;
    Ok((room, user))
}

/// Serves one open socket until it closes: first the room's `state`, then an answer per frame.
async fn run(
    rooms: &Rooms,
    room: &RoomId,
    user: &UserName,
    io: &mut TcpStream,
    mut input: BytesMut,
    first: String,
) -> Result<(), RawError> {
    let mut codec = ws::Codec::new().max_size(MAX_FRAME_BYTES);
    let mut out = BytesMut::new();
    codec.encode(ws::Message::Text(first.into()), &mut out)?;
    loop {
        let mut closing = false;
        while let Some(frame) = codec.decode(&mut input)? {
            let reply = match frame {
                ws::Frame::Text(text) => {
                    let answer = match std::str::from_utf8(&text) {
                        Ok(text) => answer_text(rooms, room, user, text),
                        Err(_) => frames::error(
                            &Value::Null,
                            ErrorCode::BadRequest,
                            "text frames must be UTF-8",
                        ),
                    };
                    ws::Message::Text(answer.into())
                }
                ws::Frame::Ping(bytes) => ws::Message::Pong(bytes),
                ws::Frame::Pong(_) => continue,
                ws::Frame::Binary(_) | ws::Frame::Continuation(_) => ws::Message::Text(
                    frames::error(
                        &Value::Null,
                        ErrorCode::BadRequest,
                        "frames must be single JSON text frames",
                    )
                    .into(),
                ),
                ws::Frame::Close(reason) => {
                    closing = true;
                    ws::Message::Close(reason)
                }
            };
            codec.encode(reply, &mut out)?;
            if closing {
                break;
            }
        }
        if !out.is_empty() {
            io.write_all(&out).await?;
            out = BytesMut::new();
        }
        if closing {
            return Ok(());
        }
        if input.is_empty() {
            // Idle: hold no buffer while waiting.
            input = BytesMut::new();
        }
        io.readable().await?;
        input.reserve(READ_CHUNK);
        match io.try_read_buf(&mut input) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error.into()),
        }
    }
}
