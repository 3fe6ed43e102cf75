//! A socket's outgoing side: the bytes its session wrote that the kernel has not taken yet,
//! bounded by `limits.ws_send_buffer_bytes`, and the writer that hands them to the kernel.
//!
//! The session encodes every frame straight into one buffer (`Outgoing::frame`) and wakes the
//! writer; the writer runs after the session's turn, so everything the session wrote in one
//! turn — an `ack` and the `state` after it, a burst of broadcasts — leaves in one `send`. A
//! broadcast (`Outgoing::broadcast`) does not wake the writer itself: the worker's flush tick
//! does (`flush.rs`), so broadcasts that arrive apart within a tick, and the socket's next
//! `ack`, share one `send` too. The
//! buffer is exactly what was written and not yet taken by the kernel, and when it empties its
//! memory goes: an idle socket holds no buffer at all.
//!
//! The session asks before every frame whether it would take the buffer past its bound
//! (`Outgoing::would_pass`), and drops a socket that would (`Outgoing::abandon`): the backlog is
//! freed at once, and a close frame (1008, policy) is the last thing queued. Once the session
//! ends (`Outgoing::finish`), the writer sends what is left — within the socket's timeout
//! (`presence.ws_timeout_s`): a client that takes nothing for that long is gone, and its bytes
//! with it — ends its side of the connection, and reads until the client ends its side, for at
//! most `LINGER`. A client that never reads again does not keep the connection. When the
//! writer lets go, for whatever reason, the session's read side ends too, so the session leaves
//! its room. What all sockets' buffers hold is the gauge `roomstate_ws_send_buffer_bytes`.

use std::{
    cell::RefCell,
    future::poll_fn,
    io,
    net::Shutdown,
    pin::Pin,
    rc::Rc,
    task::{ready, Context, Poll, Waker},
    time::Duration,
};

use actix_http::ws::{CloseReason, OpCode, Parser};
use actix_web::web::{Buf as _, BytesMut};
use prometheus::IntGauge;
use tokio::{io::AsyncWrite, net::tcp::OwnedWriteHalf};

use super::{
    flush,
    incoming::{self, ReadSide},
};

/// How long a finished socket waits to hear the client's end once its last bytes are sent.
pub(crate) const LINGER: Duration = Duration::from_secs(5);

/// What an empty buffer reserves at least when a frame is written to it: an `ack` and a `state`
/// frame take ~300 bytes (with a short title).
const FIRST_CAPACITY: usize = 512;

/// The longest header of an unmasked server frame (RFC 6455 §5.2).
const MAX_HEADER: usize = 10;

/// What the session and the writer share (both on one worker thread).
struct Buffer {
    /// Encoded frames not yet handed to the kernel, whole: it starts where a frame starts.
    bytes: BytesMut,
    /// How much of `bytes` (of its first frame) the kernel took already.
    written: usize,
    /// Nothing more goes into `bytes`: the session ended, or the socket was dropped.
    finished: bool,
    /// The connection failed: what the session writes goes nowhere.
    broken: bool,
    writer: Option<Waker>,
    /// The socket is due at the worker's next flush tick (until the tick comes).
    at_tick: bool,
    /// What every socket's buffer holds (`held()` is this one's share).
    gauge: IntGauge,
}

impl Buffer {
    fn wake_writer(&mut self) {
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }

    fn held(&self) -> usize {
        self.bytes.len() - self.written
    }

    /// Appends a frame of about `len` bytes with `write`, counting what it added.
    fn append(&mut self, len: usize, write: impl FnOnce(&mut BytesMut)) {
        if self.finished || self.broken {
            return;
        }
        let before = self.bytes.len();
        // An empty buffer holds no memory; one that starts to fill starts at a size that takes
        // an ack and the state after it (or a few broadcasts) without growing frame by frame.
        if self.bytes.capacity() == 0 {
            self.bytes.reserve(len.max(FIRST_CAPACITY));
        }
        write(&mut self.bytes);
        self.gauge.add((self.bytes.len() - before) as i64);
    }

    /// The kernel took `n` more bytes: frames sent whole leave the buffer, and when all have,
    /// its memory goes.
    fn wrote(&mut self, n: usize) {
        self.written += n;
        self.gauge.sub(n as i64);
        if self.written == self.bytes.len() {
            self.bytes = BytesMut::new();
            self.written = 0;
            return;
        }
        while let Some(len) = frame_len(&self.bytes).filter(|len| *len <= self.written) {
            self.bytes.advance(len);
            self.written -= len;
        }
    }

    /// Drops every frame the kernel has not started on; a frame it took part of is kept
    /// whole, so the client never sees a cut frame.
    fn cut(&mut self) {
        let keep = match self.written {
            0 => 0,
            _ => frame_len(&self.bytes).unwrap_or(self.bytes.len()),
        };
        self.gauge.sub((self.bytes.len() - keep) as i64);
        // A copy, so the backlog's allocation goes with it.
        self.bytes = BytesMut::from(&self.bytes[..keep]);
    }

    /// The writer let go: nothing is sent any more, nothing is held.
    fn let_go(&mut self) {
        self.broken = true;
        self.gauge.sub(self.held() as i64);
        self.bytes = BytesMut::new();
        self.written = 0;
    }
}

/// The flush tick came: the writer sends what waits (if it is waiting; if not, it was woken
/// already, or is sending, and sends it with the rest). Nothing holds the buffer across a turn,
/// so it is free when the tick comes.
impl flush::Due for RefCell<Buffer> {
    fn tick(&self) {
        if let Ok(mut buffer) = self.try_borrow_mut() {
            buffer.at_tick = false;
            buffer.wake_writer();
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.gauge.sub(self.held() as i64);
    }
}

/// The length of the server frame `bytes` starts with (header and payload; server frames are
/// unmasked), if its header is whole.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let (header, payload) = match *bytes.get(1)? & 0x7f {
        126 => (
            4,
            u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]) as usize,
        ),
        127 => (
            10,
            usize::try_from(u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?)).ok()?,
        ),
        len => (2, len as usize),
    };
    Some(header + payload)
}

/// A socket's outgoing buffer and its bound.
#[derive(Clone)]
pub(crate) struct Outgoing {
    buffer: Rc<RefCell<Buffer>>,
    limit: usize,
    /// How long the client may take nothing before the writer gives up on it.
    stalled_after: Duration,
}

impl Outgoing {
    /// An empty buffer of at most `limit` bytes, counted in `gauge` with every other socket's,
    /// for a client that is gone once it takes nothing for `stalled_after`.
    pub(crate) fn new(limit: usize, gauge: IntGauge, stalled_after: Duration) -> Self {
        let buffer = Buffer {
            bytes: BytesMut::new(),
            written: 0,
            finished: false,
            broken: false,
            writer: None,
            at_tick: false,
            gauge,
        };
        Self {
            buffer: Rc::new(RefCell::new(buffer)),
            limit,
            stalled_after,
        }
    }

    /// Nothing more is written: the session ended, the socket was dropped, or the connection
    /// failed.
    pub(crate) fn is_finished(&self) -> bool {
        let buffer = self.buffer.borrow();
        buffer.finished || buffer.broken
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes written and not yet taken by the kernel.
    pub(crate) fn held(&self) -> usize {
        self.buffer.borrow().held()
    }

    /// Whether a frame of `len` more bytes would take the buffer past its bound.
    pub(crate) fn would_pass(&self, len: usize) -> bool {
        self.held().saturating_add(len) > self.limit
    }

    /// Queues one unfragmented server frame (unmasked, RFC 6455 §5.1), sent as soon as the
    /// session's turn ends.
    pub(crate) fn frame(&self, op: OpCode, payload: &[u8]) {
        let mut buffer = self.buffer.borrow_mut();
        buffer.append(payload.len() + MAX_HEADER, |bytes| {
            Parser::write_message(bytes, payload, op, true, false)
        });
        buffer.wake_writer();
    }

    /// Queues a text frame sent at the worker's next flush tick, or sooner with a `frame` (or
    /// once a quarter of the bound waits: held bytes count against it).
    pub(crate) fn broadcast(&self, text: &[u8]) {
        let mut buffer = self.buffer.borrow_mut();
        buffer.append(text.len() + MAX_HEADER, |bytes| {
            Parser::write_message(bytes, text, OpCode::Text, true, false)
        });
        if buffer.held() > self.limit / 4 {
            return buffer.wake_writer();
        }
        // A writer not waiting (it was woken, or is sending) sends this with the rest; one due
        // at the tick already sends it then.
        if buffer.writer.is_some() && !buffer.at_tick {
            buffer.at_tick = true;
            drop(buffer);
            flush::at_next_tick(self.buffer.clone());
        }
    }

    /// Queues a close frame and finishes: nothing is written after it.
    pub(crate) fn close(&self, reason: Option<CloseReason>) {
        let mut buffer = self.buffer.borrow_mut();
        buffer.append(MAX_HEADER + 125, |bytes| {
            Parser::write_close(bytes, reason.map(short), false)
        });
        buffer.finished = true;
        buffer.wake_writer();
    }

    /// Nothing more is written: the writer sends what is queued and ends the connection.
    pub(crate) fn finish(&self) {
        let mut buffer = self.buffer.borrow_mut();
        buffer.finished = true;
        buffer.wake_writer();
    }

    /// Drops the socket's backlog: a close frame for `reason` is the last thing the client
    /// gets, if it reads again in time. Nothing, once the socket is finished.
    pub(crate) fn abandon(&self, reason: CloseReason) {
        if self.is_finished() {
            return;
        }
        self.buffer.borrow_mut().cut();
        self.close(Some(reason));
    }

    /// Hands what the session writes to the kernel until the session finishes or the
    /// connection fails, then ends the connection (see the module's notes).
    pub(crate) async fn write(&self, mut write: OwnedWriteHalf, read: ReadSide) {
        let ended = match self.send_all(&mut write).await {
            Ok(()) => self.end(&mut write, &read).await,
            Err(error) => Err(error),
        };
        if let Err(error) = ended {
            tracing::debug!(%error, held = self.held(), "a socket's connection ended early");
        }
        self.buffer.borrow_mut().let_go();
        // The session hears the end (if it is still reading) and leaves its room.
        let _ = socket2::SockRef::from(read.borrow().as_ref()).shutdown(Shutdown::Read);
    }

    /// Once the session finished: its last bytes, within the client's time; then our end of
    /// the connection, and the client's.
    async fn end(&self, write: &mut OwnedWriteHalf, read: &ReadSide) -> io::Result<()> {
        tokio::time::timeout(self.stalled_after, self.flush(write))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        poll_fn(|cx| Pin::new(&mut *write).poll_shutdown(cx)).await?;
        tokio::time::timeout(LINGER, drain(read))
            .await
            .unwrap_or(Ok(()))
    }

    /// Sends what the session writes until it finishes (the rest is `flush`'s, within the
    /// client's time).
    async fn send_all(&self, write: &mut OwnedWriteHalf) -> io::Result<()> {
        poll_fn(|cx| loop {
            let mut buffer = self.buffer.borrow_mut();
            if buffer.finished {
                return Poll::Ready(Ok(()));
            }
            if buffer.held() == 0 {
                buffer.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            match Self::poll_send(&mut buffer, write, cx) {
                Poll::Ready(Ok(())) => {}
                // Woken by the kernel's room, or by the session finishing.
                Poll::Pending => {
                    buffer.writer = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            }
        })
        .await
    }

    /// Sends everything queued.
    async fn flush(&self, write: &mut OwnedWriteHalf) -> io::Result<()> {
        poll_fn(|cx| loop {
            let mut buffer = self.buffer.borrow_mut();
            if buffer.held() == 0 {
                return Poll::Ready(Ok(()));
            }
            ready!(Self::poll_send(&mut buffer, write, cx))?;
        })
        .await
    }

    /// One `send` of what `buffer` holds.
    fn poll_send(
        buffer: &mut Buffer,
        write: &mut OwnedWriteHalf,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let written = buffer.written;
        match ready!(Pin::new(write).poll_write(cx, &buffer.bytes[written..])) {
            Ok(0) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                buffer.wrote(n);
                Poll::Ready(Ok(()))
            }
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

/// Reads and drops what the client still sends until it ends its side.
pub(crate) async fn drain(read: &ReadSide) -> io::Result<()> {
    let mut sink = BytesMut::new();
    loop {
        if poll_fn(|cx| incoming::poll_read(read, cx, &mut sink)).await? == 0 {
            return Ok(());
        }
        sink.clear();
    }
}

/// A close reason whose description fits a control frame (RFC 6455 §5.5: at most 123 bytes
/// after the code), cut on a character.
fn short(mut reason: CloseReason) -> CloseReason {
    if let Some(description) = reason.description.as_mut() {
        let mut end = description.len().min(123);
        while !description.is_char_boundary(end) {
            end -= 1;
        }
        description.truncate(end);
    }
    reason
}

#[cfg(test)]
mod tests {
    use actix_http::ws::CloseCode;

    use super::*;

    fn gauge() -> IntGauge {
        IntGauge::new("held", "held").unwrap()
    }

    #[test]
    fn a_close_reason_is_cut_to_fit_a_control_frame() {
        let long = short(CloseReason {
            code: CloseCode::Policy,
            description: Some("é".repeat(100)),
        });
        let description = long.description.unwrap();
        assert!(description.len() <= 123 && description.len() >= 122);
        let kept = short(CloseReason::from((CloseCode::Policy, "too slow")));
        assert_eq!(kept.description.as_deref(), Some("too slow"));
    }

    #[test]
    fn the_bound_counts_what_is_queued() {
        let gauge = gauge();
        let outgoing = Outgoing::new(100, gauge.clone(), Duration::from_secs(5));
        assert!(!outgoing.would_pass(100));
        outgoing.frame(OpCode::Text, &[b'x'; 58]);
        assert_eq!(outgoing.held(), 60, "two bytes of header, then the payload");
        assert!(outgoing.would_pass(41) && !outgoing.would_pass(40));
        assert_eq!(gauge.get(), 60);
        outgoing.abandon(CloseReason::from((CloseCode::Policy, "x")));
        assert_eq!(
            outgoing.held(),
            5,
            "the backlog is gone, the close frame stays"
        );
        outgoing.frame(OpCode::Text, b"after the end");
        assert_eq!(outgoing.held(), 5, "nothing is written after the close");
        assert_eq!(gauge.get(), 5);
        drop(outgoing);
        assert_eq!(gauge.get(), 0, "a socket's share leaves with it");
    }

    #[test]
    fn frames_are_encoded_unmasked_and_whole() {
        let outgoing = Outgoing::new(1 << 20, gauge(), Duration::from_secs(5));
        outgoing.frame(OpCode::Text, b"hi");
        outgoing.close(Some(CloseReason::from((CloseCode::Normal, "bye"))));
        let bytes = outgoing.buffer.borrow().bytes.clone();
        assert_eq!(&bytes[..4], &[0x81, 2, b'h', b'i']);
        assert_eq!(&bytes[4..], &[0x88, 5, 0x03, 0xe8, b'b', b'y', b'e']);
    }

    #[test]
    fn frame_lengths_are_read_from_every_header_size() {
        for payload in [0, 125, 126, 65_535, 65_536] {
            let mut bytes = BytesMut::new();
            Parser::write_message(&mut bytes, vec![b'x'; payload], OpCode::Text, true, false);
            assert_eq!(frame_len(&bytes), Some(bytes.len()), "{payload}");
            assert_eq!(frame_len(&bytes[..1]), None);
        }
    }

    #[test]
    fn a_frame_the_kernel_took_part_of_stays_whole_when_the_rest_goes() {
        let gauge = gauge();
        let outgoing = Outgoing::new(1 << 20, gauge.clone(), Duration::from_secs(5));
        outgoing.frame(OpCode::Text, &[b'a'; 10]);
        outgoing.frame(OpCode::Text, &[b'b'; 10]);
        outgoing.frame(OpCode::Text, &[b'c'; 10]);
        outgoing.buffer.borrow_mut().wrote(15);
        assert_eq!(outgoing.held(), 21);
        {
            let buffer = outgoing.buffer.borrow();
            assert_eq!(buffer.bytes.len(), 24, "the first frame, sent whole, left");
            assert_eq!(buffer.written, 3);
        }
        outgoing.abandon(CloseReason::from((CloseCode::Policy, "x")));
        let buffer = outgoing.buffer.borrow();
        assert_eq!(&buffer.bytes[buffer.written..12], &[b'b'; 9][..]);
        assert_eq!(&buffer.bytes[12..], &[0x88, 3, 0x03, 0xf0, b'x']);
        assert_eq!(gauge.get() as usize, buffer.held());
    }

    /// A client's connection (with that receive buffer, if given), and `outgoing`'s writer on
    /// its server side.
    async fn writing(
        outgoing: &Outgoing,
        recv_buffer: Option<u32>,
    ) -> (tokio::net::TcpStream, actix_rt::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let client = socket
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (read, write) = server.into_split();
        let writer = actix_rt::spawn({
            let outgoing = outgoing.clone();
            async move { outgoing.write(write, Rc::new(RefCell::new(read))).await }
        });
        (client, writer)
    }

    #[actix_rt::test]
    async fn the_writer_sends_everything_then_ends_the_connection() {
        use tokio::io::AsyncReadExt as _;
        let gauge = gauge();
        let outgoing = Outgoing::new(1 << 20, gauge.clone(), Duration::from_secs(5));
        let (mut client, writer) = writing(&outgoing, None).await;
        outgoing.frame(OpCode::Text, &[b'a'; 300]);
        outgoing.close(None);
        let mut seen = Vec::new();
        // The server ends its side after the close frame; then the client ends its own.
        client.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen.len(), 4 + 300 + 2);
        assert_eq!(&seen[seen.len() - 2..], &[0x88, 0]);
        drop(client);
        writer.await.unwrap();
        assert_eq!(gauge.get(), 0);
    }

    #[actix_rt::test]
    async fn a_broadcast_waits_for_the_flush_tick_and_an_answer_takes_it_along() {
        use std::sync::{atomic::Ordering, Arc};

        use crate::ws::flush::{
            tests::{until, Count},
            EVERY,
        };

        // A paused clock: the ticks come in virtual time, as soon as nothing else can run.
        tokio::time::pause();
        let outgoing = Outgoing::new(1 << 20, gauge(), Duration::from_secs(5));
        let woken = Arc::new(Count::default());
        let count = || woken.0.load(Ordering::SeqCst);
        // The writer waits for bytes (as `send_all` leaves it with nothing held).
        let waiting = |outgoing: &Outgoing| {
            outgoing.buffer.borrow_mut().writer = Some(Waker::from(woken.clone()));
        };
        waiting(&outgoing);
        outgoing.broadcast(b"state");
        outgoing.broadcast(b"message");
        assert_eq!(count(), 0, "not by a broadcast");
        until(&woken, 1).await;
        assert_eq!(outgoing.held(), 2 + 5 + 2 + 7, "both wait for one send");

        waiting(&outgoing);
        outgoing.broadcast(b"state");
        outgoing.frame(OpCode::Text, b"ack");
        assert_eq!(
            count(),
            2,
            "an answer wakes the writer at once, and the broadcast before it goes along"
        );
        // The writer sent it all and waits again; the socket is still due at the tick, and a
        // broadcast now goes then, without the socket being due twice.
        waiting(&outgoing);
        outgoing.broadcast(b"state");
        assert_eq!((count(), flush::due_now()), (2, 1), "due once");
        until(&woken, 3).await;
        waiting(&outgoing);
        tokio::time::sleep(EVERY * 3).await;
        assert_eq!(count(), 3, "one wake at the tick, none at a later one");

        // Broadcasts held past a quarter of the bound do not wait for the tick.
        let bounded = Outgoing::new(400, gauge(), Duration::from_secs(5));
        waiting(&bounded);
        bounded.broadcast(&[b'x'; 90]);
        assert_eq!(count(), 3, "92 bytes held wait");
        bounded.broadcast(&[b'x'; 90]);
        assert_eq!(count(), 4, "184 bytes held go now");
    }

    #[actix_rt::test]
    async fn a_socket_stays_due_at_the_tick_when_its_writer_sends_in_between() {
        use tokio::io::AsyncReadExt as _;
        let outgoing = Outgoing::new(1 << 20, gauge(), Duration::from_secs(5));
        let (mut client, _writer) = writing(&outgoing, None).await;
        let parked = || async {
            while outgoing.buffer.borrow().writer.is_none() {
                tokio::task::yield_now().await;
            }
        };
        parked().await;
        // Due at a tick (marked by hand: no tick runs in this test), then an answer: the writer
        // sends at once and waits again, and the socket is still due (only the tick clears the
        // mark, so a broadcast before the tick does not put the socket on its list again).
        outgoing.buffer.borrow_mut().at_tick = true;
        outgoing.frame(OpCode::Text, b"ack");
        let mut seen = [0; 5];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut seen))
            .await
            .expect("the answer within 10 s")
            .unwrap();
        parked().await;
        assert!(
            outgoing.buffer.borrow().at_tick,
            "the writer cleared the mark"
        );
        outgoing.broadcast(b"state");
        assert_eq!(flush::due_now(), 0, "put on the tick's list again");
        flush::Due::tick(&*outgoing.buffer);
        assert!(!outgoing.buffer.borrow().at_tick);
        let mut seen = [0; 7];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut seen))
            .await
            .expect("the broadcast within 10 s at its tick")
            .unwrap();
        assert_eq!(&seen[2..], b"state");
    }

    #[actix_rt::test]
    async fn a_broadcast_reaches_the_client() {
        use tokio::io::AsyncReadExt as _;
        let outgoing = Outgoing::new(1 << 20, gauge(), Duration::from_secs(5));
        let (mut client, _writer) = writing(&outgoing, None).await;
        // Once the writer waits for bytes, and again once it sent some.
        for text in [&b"first"[..], b"second"] {
            while outgoing.buffer.borrow().writer.is_none() {
                tokio::task::yield_now().await;
            }
            outgoing.broadcast(text);
            let mut seen = vec![0; 2 + text.len()];
            tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut seen))
                .await
                .expect("the broadcast within 10 s")
                .unwrap();
            assert_eq!(&seen[2..], text);
        }
    }

    #[actix_rt::test]
    async fn a_client_that_takes_nothing_loses_its_connection_once_the_session_ends() {
        let gauge = gauge();
        let outgoing = Outgoing::new(64 << 20, gauge.clone(), Duration::from_millis(300));
        // A client that reads nothing, with a tiny receive window.
        let (mut client, writer) = writing(&outgoing, Some(4096)).await;
        // More than the kernels' buffers take: the writer waits for room that never comes.
        let chunk = vec![b'x'; 60_000];
        for _ in 0..300 {
            outgoing.frame(OpCode::Text, &chunk);
        }
        let started = std::time::Instant::now();
        while outgoing.held() == 300 * (chunk.len() + 4) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "nothing was sent"
            );
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(outgoing.held() > 0, "the client took everything");
        // The session ends (a dropped slow client): the writer, blocked on the kernel, hears
        // it, gives the client its time, then lets go of the connection and the bytes.
        outgoing.abandon(CloseReason::from((CloseCode::Policy, "too slow")));
        actix_rt::time::timeout(Duration::from_secs(30), writer)
            .await
            .expect("the writer let go")
            .unwrap();
        assert_eq!((outgoing.held(), gauge.get()), (0, 0));
        // The client finds the connection ended after what the kernel held (a frame may be cut:
        // it stopped reading).
        let mut seen = Vec::new();
        use tokio::io::AsyncReadExt as _;
        let read = actix_rt::time::timeout(Duration::from_secs(30), client.read_to_end(&mut seen));
        assert!(read.await.is_ok(), "the connection ended");
    }

    #[test]
    fn a_dropped_backlog_takes_its_memory_with_it() {
        let outgoing = Outgoing::new(1 << 20, gauge(), Duration::from_secs(5));
        for _ in 0..100 {
            outgoing.frame(OpCode::Text, &[b'x'; 1000]);
        }
        outgoing.buffer.borrow_mut().wrote(10);
        outgoing.abandon(CloseReason::from((CloseCode::Policy, "x")));
        let buffer = outgoing.buffer.borrow();
        assert_eq!(
            buffer.bytes.len(),
            1004 + 5,
            "the frame begun, then the close"
        );
        assert!(
            buffer.bytes.capacity() < 4096,
            "{}",
            buffer.bytes.capacity()
        );
    }
}
