//! A real WebSocket client (awc) that reads JSON frames with deadlines and answers pings.

use std::time::Duration;

use actix_codec::Framed;
use awc::{
    ws::{Codec, Frame, Message},
    BoxedSocket,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

/// What a test is willing to wait for one frame.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(20);

pub struct WsClient {
    framed: Framed<BoxedSocket, Codec>,
    /// Answer server pings (a silent client leaves this off).
    pub answer_pings: bool,
}

/// What came off the socket.
#[derive(Debug)]
pub enum Incoming {
    Json(Value),
    Closed(Option<u16>),
}

impl WsClient {
    pub async fn connect(url: &str) -> Result<WsClient, (u16, Value)> {
        let client = awc::Client::builder()
            .max_http_version(awc::http::Version::HTTP_11)
            .finish();
        match client.ws(url).max_frame_size(1 << 20).connect().await {
            Ok((_, framed)) => Ok(WsClient {
                framed,
                answer_pings: true,
            }),
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
                Err((status.as_u16(), Value::Null))
            }
            Err(e) => panic!("WebSocket connect to {url}: {e}"),
        }
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(value.to_string()).await;
    }

    /// Sends a JSON frame; false when the socket is gone.
    pub async fn try_send_json(&mut self, value: &Value) -> bool {
        self.framed
            .send(Message::Text(value.to_string().into()))
            .await
            .is_ok()
    }

    pub async fn send_text(&mut self, text: String) {
        self.framed
            .send(Message::Text(text.into()))
            .await
            .expect("sending a frame");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.framed
            .send(Message::Binary(bytes.into()))
            .await
            .expect("sending a frame");
    }

    /// The next JSON frame or the close, within `FRAME_DEADLINE`.
    pub async fn next(&mut self) -> Incoming {
        loop {
            let frame = actix_rt::time::timeout(FRAME_DEADLINE, self.framed.next())
                .await
                .expect("no frame within the deadline");
            match frame {
                None => return Incoming::Closed(None),
                // A broken connection (the engine died) reads as a close without a code.
                Some(Err(_)) => return Incoming::Closed(None),
                Some(Ok(Frame::Text(bytes))) => {
                    let value = serde_json::from_slice(&bytes).expect("server frames are JSON");
                    return Incoming::Json(value);
                }
                Some(Ok(Frame::Ping(bytes))) => {
                    if self.answer_pings {
                        let _ = self.framed.send(Message::Pong(bytes)).await;
                    }
                }
                Some(Ok(Frame::Close(reason))) => {
                    return Incoming::Closed(reason.map(|r| u16::from(r.code)))
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next JSON frame; fails the test on a close.
    pub async fn next_json(&mut self) -> Value {
        match self.next().await {
            Incoming::Json(value) => value,
            Incoming::Closed(code) => panic!("socket closed ({code:?}) while a frame was expected"),
        }
    }

    /// Skips frames until one of type `kind`.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Skips frames until a `state` frame satisfying `pred`.
    pub async fn state_where(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let frame = self.next_of("state").await;
            if pred(&frame) {
                return frame;
            }
        }
    }

    /// Reads until the socket closes; returns the close code and the frames before it.
    pub async fn until_closed(&mut self) -> (Option<u16>, Vec<Value>) {
        let mut frames = Vec::new();
        loop {
            match self.next().await {
                Incoming::Json(value) => frames.push(value),
                Incoming::Closed(code) => return (code, frames),
            }
        }
    }
}
