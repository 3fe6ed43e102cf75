//! A socket's outgoing buffer: the frames its session wrote that the client has not taken yet,
//! bounded by `limits.ws_send_buffer_bytes`.
//!
//! actix-web-actors runs a socket's actor inside the response body: the HTTP dispatcher polls
//! the actor only when it wants more bytes to write. A client that stops reading fills the
//! kernel's buffers, the dispatcher stops asking (its own write buffer is full), and the actor
//! stops running — while its room keeps sending it broadcasts, which pile up unseen and without
//! bound in the actor's mailbox. So here the actor runs on a task of its own (the pump), which
//! moves every chunk the actor encodes into a queue, and the response body is that queue. The
//! queue is exactly what was written and not yet taken by the transport; beyond it only the
//! dispatcher's write buffer (32 KiB) and the kernel's socket buffers hold anything.
//!
//! The session asks before every frame whether it would take the buffer past its bound
//! (`Outgoing::would_pass`), and drops a socket that would (`Outgoing::abandon`): the backlog is
//! freed at once, a close frame (1008, policy) is the last thing queued, and whatever the actor
//! still writes while it stops is thrown away. The transport sends the close frame if the client
//! ever reads again, and the connection ends with it. What all sockets' queues hold is the gauge
//! `roomstate_ws_send_buffer_bytes`.

use std::{
    cell::RefCell,
    collections::VecDeque,
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
};

use actix_web::{
    body::{BodyStream, BoxBody, MessageBody},
    web::Bytes,
    HttpResponse,
};
use futures_util::Stream;
use prometheus::IntGauge;

type BodyError = Box<dyn std::error::Error>;

/// Chunks the pump moves in one go before it lets the worker's other tasks run.
const CHUNKS_PER_TURN: usize = 64;

/// What the session, the pump and the body share (all on one worker thread).
struct Buffer {
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    queued: usize,
    /// Bytes of frames the session handed its context since the pump last took its output
    /// (the actor's context encodes them only when the pump polls it).
    handed: usize,
    /// Nothing more goes into `chunks`: the actor ended, or the socket was dropped.
    finished: bool,
    /// The socket was dropped for being slow: what the actor still writes is thrown away.
    abandoned: bool,
    /// The actor's stream failed: the transport ends the connection.
    error: Option<BodyError>,
    /// The transport let go of the body: the connection is gone.
    released: bool,
    body_waker: Option<Waker>,
    pump_waker: Option<Waker>,
    /// What every socket's queue holds (`queued` is this queue's share of it).
    gauge: IntGauge,
}

impl Buffer {
    fn wake_body(&mut self) {
        if let Some(waker) = self.body_waker.take() {
            waker.wake();
        }
    }

    fn push(&mut self, chunk: Bytes) {
        self.queued += chunk.len();
        self.gauge.add(chunk.len() as i64);
        self.chunks.push_back(chunk);
        self.wake_body();
    }

    fn pop(&mut self) -> Option<Bytes> {
        let chunk = self.chunks.pop_front()?;
        self.queued -= chunk.len();
        self.gauge.sub(chunk.len() as i64);
        Some(chunk)
    }

    fn clear(&mut self) {
        self.gauge.sub(self.queued as i64);
        self.chunks.clear();
        self.queued = 0;
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A socket's outgoing buffer and its bound.
#[derive(Clone)]
pub(crate) struct Outgoing {
    buffer: Rc<RefCell<Buffer>>,
    limit: usize,
}

impl Outgoing {
    /// An empty buffer of at most `limit` bytes, counted in `gauge` with every other socket's.
    pub(crate) fn new(limit: usize, gauge: IntGauge) -> Self {
        let buffer = Buffer {
            chunks: VecDeque::new(),
            queued: 0,
            handed: 0,
            finished: false,
            abandoned: false,
            error: None,
            released: false,
            body_waker: None,
            pump_waker: None,
            gauge,
        };
        Self {
            buffer: Rc::new(RefCell::new(buffer)),
            limit,
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes written and not yet taken by the transport, frames not yet encoded included.
    pub(crate) fn held(&self) -> usize {
        let buffer = self.buffer.borrow();
        buffer.queued + buffer.handed
    }

    /// Whether a frame of `len` more bytes would take the buffer past its bound.
    pub(crate) fn would_pass(&self, len: usize) -> bool {
        self.held().saturating_add(len) > self.limit
    }

    /// The session handed its context a frame of `len` bytes.
    pub(crate) fn handed(&self, len: usize) {
        self.buffer.borrow_mut().handed += len;
    }

    /// Drops the socket's backlog: `close` (an encoded close frame) is the last thing the
    /// transport gets, and what the actor writes from now on is thrown away.
    pub(crate) fn abandon(&self, close: Bytes) {
        let mut buffer = self.buffer.borrow_mut();
        buffer.clear();
        buffer.handed = 0;
        buffer.push(close);
        buffer.abandoned = true;
        buffer.finished = true;
    }

    /// Runs the actor behind `upgrade` (the `101` answer `WsResponseBuilder` made) on a task of
    /// its own, and answers with a body that serves this buffer.
    pub(crate) fn drive(&self, upgrade: HttpResponse) -> HttpResponse {
        let (response, actor) = upgrade.into_parts();
        actix_rt::spawn(Pump {
            actor: Some(actor),
            buffer: self.buffer.clone(),
        });
        response
            .set_body(BodyStream::new(Body {
                buffer: self.buffer.clone(),
            }))
            .map_into_boxed_body()
    }
}

/// Polls the actor (the body `WsResponseBuilder` made) whatever the transport does, and queues
/// what it writes.
struct Pump {
    /// Dropped when the transport lets go: that stops the actor (its `stopped` runs).
    actor: Option<BoxBody>,
    buffer: Rc<RefCell<Buffer>>,
}

impl Future for Pump {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        for _ in 0..CHUNKS_PER_TURN {
            if this.buffer.borrow().released {
                this.actor = None;
                return Poll::Ready(());
            }
            let Some(actor) = this.actor.as_mut() else {
                return Poll::Ready(());
            };
            // No borrow of the buffer is held here: the session uses it while the actor runs.
            let next = Pin::new(actor).poll_next(cx);
            let mut buffer = this.buffer.borrow_mut();
            // The context encodes everything it was handed whenever it is polled.
            buffer.handed = 0;
            match next {
                Poll::Ready(Some(Ok(chunk))) => {
                    if !buffer.abandoned {
                        buffer.push(chunk);
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    if !buffer.abandoned {
                        buffer.error = Some(error);
                    }
                    buffer.finished = true;
                    buffer.wake_body();
                    drop(buffer);
                    this.actor = None;
                    return Poll::Ready(());
                }
                Poll::Ready(None) => {
                    buffer.finished = true;
                    buffer.wake_body();
                    return Poll::Ready(());
                }
                Poll::Pending => {
                    buffer.pump_waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The response body: what the pump queued, in order.
struct Body {
    buffer: Rc<RefCell<Buffer>>,
}

impl Stream for Body {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut buffer = self.buffer.borrow_mut();
        if let Some(chunk) = buffer.pop() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if let Some(error) = buffer.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if buffer.finished {
            return Poll::Ready(None);
        }
        buffer.body_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // The connection is gone: the pump stops the actor.
        if let Ok(mut buffer) = self.buffer.try_borrow_mut() {
            buffer.released = true;
            if let Some(waker) = buffer.pump_waker.take() {
                waker.wake();
            }
        }
    }
}

/// A server's close frame (RFC 6455 §5.5.1: unmasked, the code, then at most 123 bytes of
/// reason), written straight to the transport when the actor's own output is thrown away.
pub(crate) fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut frame = Vec::with_capacity(4 + reason.len());
    frame.push(0x88); // FIN, opcode 8 (close)
    frame.push(2 + reason.len() as u8);
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason);
    Bytes::from(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_frame_is_well_formed_and_short() {
        let frame = close_frame(1008, "too slow");
        assert_eq!(&frame[..4], &[0x88, 10, 0x03, 0xf0]);
        assert_eq!(&frame[4..], b"too slow");
        let long = close_frame(1008, &"é".repeat(100));
        assert_eq!(long[1] as usize, long.len() - 2);
        assert!(long.len() - 4 <= 123);
        assert!(
            std::str::from_utf8(&long[4..]).is_ok(),
            "cut on a character"
        );
    }

    fn gauge() -> IntGauge {
        IntGauge::new("held", "held").unwrap()
    }

    #[test]
    fn the_bound_counts_queued_and_handed_bytes() {
        let gauge = gauge();
        let outgoing = Outgoing::new(100, gauge.clone());
        assert!(!outgoing.would_pass(100));
        outgoing.handed(60);
        assert!(outgoing.would_pass(41) && !outgoing.would_pass(40));
        outgoing.abandon(close_frame(1008, "x"));
        assert_eq!(
            outgoing.held(),
            5,
            "the backlog is gone, the close frame stays"
        );
        assert_eq!(gauge.get(), 5);
        drop(outgoing);
        assert_eq!(gauge.get(), 0, "a socket's share leaves with it");
    }

    #[actix_rt::test]
    async fn the_body_serves_what_was_queued_then_ends() {
        use futures_util::StreamExt;
        let gauge = gauge();
        let outgoing = Outgoing::new(1 << 20, gauge.clone());
        let mut body = Body {
            buffer: outgoing.buffer.clone(),
        };
        outgoing
            .buffer
            .borrow_mut()
            .push(Bytes::from_static(b"abc"));
        assert_eq!(gauge.get(), 3);
        assert_eq!(body.next().await.unwrap().unwrap(), "abc");
        assert_eq!((outgoing.held(), gauge.get()), (0, 0));
        outgoing.abandon(close_frame(1008, "bye"));
        assert_eq!(body.next().await.unwrap().unwrap()[0], 0x88);
        assert!(body.next().await.is_none());
        drop(body);
        assert!(outgoing.buffer.borrow().released);
    }
}
