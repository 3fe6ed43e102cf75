//! One socket of the big room: sends the requests the schedule hands it (a vote, switching side
//! each time, or a chat message), reads every frame the engine sends it, and keeps what the
//! measurement needs: when each newer `state` arrived, when each `message` arrived, and how many
//! frames came inside the measured window. Acknowledgements go to the shared `Acks`.

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    time::Instant,
};

use actix_codec::Framed;
use awc::{
    ws::{Codec, Frame, Message},
    BoxedSocket,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::acks::Acks;
use crate::peek::{self, Type};

/// A request the schedule gives a socket.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub kind: Kind,
    /// Unique per kind over the run; the frame's `req` is `v<id>` or `m<id>`.
    pub id: u64,
    /// When it was due (latency counts from here).
    pub due: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vote,
    Message,
}

/// The measured window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: Instant,
    pub until: Instant,
}

impl Window {
    pub fn holds(&self, t: Instant) -> bool {
        t >= self.from && t < self.until
    }
}

/// Frames a socket received inside the window, by type.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct FrameCount {
    pub state: u64,
    pub message: u64,
    pub ack: u64,
    pub error: u64,
    pub other: u64,
}

impl FrameCount {
    pub fn total(&self) -> u64 {
        self.state + self.message + self.ack + self.error + self.other
    }

    pub fn add(&mut self, other: &FrameCount) {
        self.state += other.state;
        self.message += other.message;
        self.ack += other.ack;
        self.error += other.error;
        self.other += other.other;
    }
}

/// What one socket saw, handed back when it ends.
#[derive(Debug, Default)]
pub struct Seen {
    /// Each `state` frame whose seq was higher than any before it: (seq, arrival).
    pub states: Vec<(u64, Instant)>,
    /// Each `message` frame: (seq, arrival).
    pub messages: Vec<(u64, Instant)>,
    /// `state` frames with a lower seq than one already seen (the contract says never).
    pub regressions: u64,
    pub frames: FrameCount,
    /// Why the socket ended before the run did, if it did.
    pub lost: Option<String>,
}

/// Progress every socket shows the run while it lasts, to tell when every socket caught up.
#[derive(Default)]
pub struct Progress {
    /// The highest `state` seq seen.
    pub max_state_seq: Cell<u64>,
    /// The highest `message` seq seen.
    pub max_message_seq: Cell<u64>,
    /// The socket is gone.
    pub lost: Cell<bool>,
}

/// Reads and writes one socket until the schedule drops its sender; returns what it saw.
pub async fn run(
    mut framed: Framed<BoxedSocket, Codec>,
    first_side_pro: bool,
    mut requests: mpsc::UnboundedReceiver<Request>,
    acks: Rc<RefCell<Acks>>,
    progress: Rc<Progress>,
    window: Rc<Cell<Option<Window>>>,
) -> Seen {
    let mut seen = Seen::default();
    let mut pro = first_side_pro;
    // Requests sent and not answered yet: (req, request). Rarely more than one.
    let mut outstanding: Vec<(String, Request)> = Vec::new();
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(request) = request else { break };
                let (req, frame) = match request.kind {
                    Kind::Vote => {
                        let side = if pro { "pro" } else { "con" };
                        pro = !pro;
                        let req = format!("v{}", request.id);
                        let frame = format!(r#"{{"type":"vote","side":"{side}","req":"{req}"}}"#);
                        (req, frame)
                    }
                    Kind::Message => {
                        let req = format!("m{}", request.id);
                        let frame = format!(
                            r#"{{"type":"say","text":"big room message {}","req":"{req}"}}"#,
                            request.id
                        );
                        (req, frame)
                    }
                };
                if let Err(e) = framed.send(Message::Text(frame.into())).await {
                    acks.borrow_mut().failed(&request);
                    seen.lost = Some(format!("send: {e}"));
                    break;
                }
                outstanding.push((req, request));
            }
            frame = framed.next() => {
                let now = Instant::now();
                let bytes = match frame {
                    Some(Ok(Frame::Text(bytes))) => bytes,
                    Some(Ok(Frame::Ping(bytes))) => {
                        let _ = framed.send(Message::Pong(bytes)).await;
                        continue;
                    }
                    Some(Ok(Frame::Close(reason))) => {
                        seen.lost = Some(format!("closed by the server: {reason:?}"));
                        break;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        seen.lost = Some(format!("read: {e}"));
                        break;
                    }
                    None => {
                        seen.lost = Some("the connection ended".to_owned());
                        break;
                    }
                };
                let frame = peek::peek(&bytes);
                let in_window = window.get().is_some_and(|w| w.holds(now));
                let count = &mut seen.frames;
                match frame.kind {
                    Type::State => {
                        let seq = frame.seq.unwrap_or(0);
                        let max = progress.max_state_seq.get();
                        if seq > max {
                            progress.max_state_seq.set(seq);
                            seen.states.push((seq, now));
                        } else if seq < max {
                            seen.regressions += 1;
                        }
                        count.state += u64::from(in_window);
                    }
                    Type::Message => {
                        let seq = frame.seq.unwrap_or(0);
                        progress.max_message_seq.set(progress.max_message_seq.get().max(seq));
                        seen.messages.push((seq, now));
                        count.message += u64::from(in_window);
                    }
                    Type::Ack | Type::Error => {
                        if frame.kind == Type::Ack {
                            count.ack += u64::from(in_window);
                        } else {
                            count.error += u64::from(in_window);
                        }
                        let at = frame
                            .req
                            .and_then(|req| outstanding.iter().position(|(r, _)| r == req));
                        if let Some(at) = at {
                            let (_, request) = outstanding.swap_remove(at);
                            let mut acks = acks.borrow_mut();
                            match (frame.kind, frame.seq) {
                                (Type::Ack, Some(seq)) => acks.acked(&request, seq, now),
                                _ => acks.refused(&request),
                            }
                        }
                    }
                    Type::Closed | Type::Other => count.other += u64::from(in_window),
                }
            }
        }
    }
    if seen.lost.is_some() {
        progress.lost.set(true);
        let mut acks = acks.borrow_mut();
        for (_, request) in &outstanding {
            acks.failed(request);
        }
    } else {
        let _ = framed.send(Message::Close(None)).await;
    }
    seen
}
