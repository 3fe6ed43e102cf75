//! A real WebSocket client (awc) that reads JSON frames and answers pings.
//!
//! Every wait has ONE deadline for the whole call, not one per frame: a server ping or another
//! client's broadcast is a frame too, so a per-frame deadline would let a wait for an `ack` that
//! never comes run forever on a busy room. A wait that runs out fails the test saying what it
//! waited for and what came instead.

use std::time::{Duration, Instant};

use actix_codec::Framed;
use awc::{
    ws::{Codec, Frame, Message},
    BoxedSocket,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

/// What a test is willing to wait for one call (`next_of`, `state_where`, ...) by default.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Frames kept to show in a failure message.
const SHOWN: usize = 5;

pub struct WsClient {
    framed: Framed<BoxedSocket, Codec>,
    /// Answer server pings (a silent client leaves this off).
    pub answer_pings: bool,
    /// How long each waiting call may take in all.
    pub deadline: Duration,
}

/// What came off the socket.
#[derive(Debug)]
pub enum Incoming {
    Json(Value),
    Closed(Option<u16>),
}

/// A wait that ran out.
#[derive(Debug)]
pub struct TimedOut {
    pub waited: Duration,
    /// The last frames seen meanwhile (JSON), newest last.
    pub seen: Vec<Value>,
    pub skipped: usize,
}

impl WsClient {
    pub async fn connect(url: &str) -> Result<WsClient, (u16, Value)> {
        let client = awc::Client::builder()
            .max_http_version(awc::http::Version::HTTP_11)
            .timeout(DEADLINE)
            .finish();
        let connect = client.ws(url).max_frame_size(1 << 20).connect();
        match actix_rt::time::timeout(DEADLINE, connect).await {
            Ok(Ok((_, framed))) => Ok(WsClient {
                framed,
                answer_pings: true,
                deadline: DEADLINE,
            }),
            Ok(Err(awc::error::WsClientError::InvalidResponseStatus(status))) => {
                Err((status.as_u16(), Value::Null))
            }
            Ok(Err(e)) => panic!("WebSocket connect to {url}: {e}"),
            Err(_) => panic!("WebSocket connect to {url}: no answer within {DEADLINE:?}"),
        }
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(value.to_string()).await;
    }

    /// Sends a JSON frame; false when the socket is gone.
    pub async fn try_send_json(&mut self, value: &Value) -> bool {
        let send = self.framed.send(Message::Text(value.to_string().into()));
        matches!(
            actix_rt::time::timeout(self.deadline, send).await,
            Ok(Ok(()))
        )
    }

    pub async fn send_text(&mut self, text: String) {
        self.send(Message::Text(text.into())).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.send(Message::Binary(bytes.into())).await;
    }

    /// Writes `bytes` to the connection as they are, past the codec: part of a frame, a header
    /// that lies about its length.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt as _;
        let io = self.framed.io_mut();
        match actix_rt::time::timeout(self.deadline, io.write_all(bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("writing {} raw bytes: {e}", bytes.len()),
            Err(_) => panic!(
                "writing {} raw bytes took over {:?}",
                bytes.len(),
                self.deadline
            ),
        }
    }

    async fn send(&mut self, message: Message) {
        match actix_rt::time::timeout(self.deadline, self.framed.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("sending a frame: {e}"),
            Err(_) => panic!("sending a frame took over {:?}", self.deadline),
        }
    }

    /// The next JSON frame or the close, before `end`; `None` when `end` passed first.
    pub async fn next_before(&mut self, end: Instant) -> Option<Incoming> {
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let frame = actix_rt::time::timeout(left, self.framed.next())
                .await
                .ok()?;
            match frame {
                None => return Some(Incoming::Closed(None)),
                // A broken connection (the engine died) reads as a close without a code.
                Some(Err(_)) => return Some(Incoming::Closed(None)),
                Some(Ok(Frame::Text(bytes))) => {
                    let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                        panic!(
                            "a server frame is not JSON ({e}): {}",
                            String::from_utf8_lossy(&bytes)
                        )
                    });
                    return Some(Incoming::Json(value));
                }
                Some(Ok(Frame::Ping(bytes))) => {
                    if self.answer_pings {
                        let _ = self.framed.send(Message::Pong(bytes)).await;
                    }
                }
                Some(Ok(Frame::Close(reason))) => {
                    return Some(Incoming::Closed(reason.map(|r| u16::from(r.code))))
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next JSON frame or the close, within the deadline.
    pub async fn next(&mut self) -> Incoming {
        let deadline = self.deadline;
        match self.next_before(Instant::now() + deadline).await {
            Some(incoming) => incoming,
            None => panic!("no frame within {deadline:?}"),
        }
    }

    /// The next JSON frame; fails the test on a close.
    pub async fn next_json(&mut self) -> Value {
        match self.next().await {
            Incoming::Json(value) => value,
            Incoming::Closed(code) => panic!("socket closed ({code:?}) while a frame was expected"),
        }
    }

    /// Reads frames until `want` picks one, all within the deadline. `Ok(None)` from `want`
    /// skips the frame. Fails on a close; `Err` when the deadline passes.
    pub async fn wait_for<T>(
        &mut self,
        mut want: impl FnMut(&Value) -> Option<T>,
    ) -> Result<T, TimedOut> {
        let started = Instant::now();
        let end = started + self.deadline;
        let mut seen: Vec<Value> = Vec::new();
        let mut skipped = 0;
        loop {
            match self.next_before(end).await {
                Some(Incoming::Json(frame)) => {
                    if let Some(found) = want(&frame) {
                        return Ok(found);
                    }
                    skipped += 1;
                    if seen.len() == SHOWN {
                        seen.remove(0);
                    }
                    seen.push(frame);
                }
                Some(Incoming::Closed(code)) => {
                    panic!("socket closed ({code:?}) while waiting; the last frames: {seen:?}")
                }
                None => {
                    return Err(TimedOut {
                        waited: started.elapsed(),
                        seen,
                        skipped,
                    })
                }
            }
        }
    }

    /// Skips frames until one of type `kind`, within the deadline.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        let found = self
            .wait_for(|f| (f["type"] == kind).then(|| f.clone()))
            .await;
        found.unwrap_or_else(|t| {
            panic!(
                "waited {:?} for a `{kind}` frame; {} other frames came, the last: {:?}",
                t.waited, t.skipped, t.seen
            )
        })
    }

    /// Skips frames until a `state` frame satisfying `pred`, within the deadline.
    pub async fn state_where(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let found = self
            .wait_for(|f| (f["type"] == "state" && pred(f)).then(|| f.clone()))
            .await;
        found.unwrap_or_else(|t| {
            panic!(
                "waited {:?} for a `state` frame matching the test's condition; {} other frames \
                 came, the last: {:?}",
                t.waited, t.skipped, t.seen
            )
        })
    }

    /// The `ack` or `error` frame answering `req`, within the deadline; `None` if the socket
    /// closed first.
    pub async fn answer_to(&mut self, req: &str) -> Option<Value> {
        let end = Instant::now() + self.deadline;
        loop {
            match self.next_before(end).await {
                Some(Incoming::Json(frame)) => {
                    if (frame["type"] == "ack" || frame["type"] == "error") && frame["req"] == req {
                        return Some(frame);
                    }
                }
                Some(Incoming::Closed(_)) => return None,
                None => panic!(
                    "no answer to request {req:?} within {:?} (the socket stayed open)",
                    self.deadline
                ),
            }
        }
    }

    /// Reads until the socket closes, within the deadline; returns the close code and the
    /// frames before it.
    pub async fn until_closed(&mut self) -> (Option<u16>, Vec<Value>) {
        let end = Instant::now() + self.deadline;
        let mut frames = Vec::new();
        loop {
            match self.next_before(end).await {
                Some(Incoming::Json(value)) => frames.push(value),
                Some(Incoming::Closed(code)) => return (code, frames),
                None => panic!(
                    "the socket did not close within {:?}; {} frames came, the last: {:?}",
                    self.deadline,
                    frames.len(),
                    frames.last()
                ),
            }
        }
    }
}
