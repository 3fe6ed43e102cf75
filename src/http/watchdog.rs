//! A watchdog over each HTTP connection: one on which no byte has moved either way for
//! `STALL_LIMIT`, with no request being handled, is closed.
//!
//! actix-http times a connection's first request head and the idle wait between requests, but
//! not the head of a later request once its first bytes came: a client that sends part of a
//! second request and stops would hold the connection for good. Nor does it time a response
//! that the client does not read. Neither is legitimate past a few seconds (the head and
//! keep-alive timers are 5 s), so a connection where nothing moved for 10–20 s while no handler
//! was working on it is a stalled or hostile client's. A WebSocket leaves the watchdog at its
//! upgrade: its own pings judge it.

use std::{
    cell::Cell,
    future::Future,
    io,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
    time::Duration,
};

use actix_web::rt::{
    net::TcpStream,
    time::{sleep, Instant, Sleep},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a connection may stand with nothing moving and nothing being handled before it is
/// closed; it is found within twice that.
pub(crate) const STALL_LIMIT: Duration = Duration::from_secs(10);

/// What the watchdog and the requests of one connection share: the requests mark themselves
/// being handled (`Watch::handling`).
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// Reads and writes that moved bytes, so far.
    moved: Cell<u64>,
    /// Requests being handled now (0 or 1: one at a time on an HTTP/1 connection).
    handling: Cell<u32>,
}

impl Watch {
    /// Marks a request being handled until the guard drops (its answer is ready, or the
    /// connection went and dropped it).
    pub(crate) fn handling(self: &Rc<Self>) -> Handling {
        self.handling.set(self.handling.get() + 1);
        Handling(self.clone())
    }

    fn moved(&self) {
        self.moved.set(self.moved.get().wrapping_add(1));
    }
}

/// A request being handled (`Watch::handling`).
pub(crate) struct Handling(Rc<Watch>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.handling.set(self.0.handling.get().saturating_sub(1));
    }
}

/// A connection's stream, watched.
pub(crate) struct Watched {
    io: TcpStream,
    watch: Rc<Watch>,
    /// When the watchdog looks next, and what `moved` was when it last looked.
    check: Pin<Box<Sleep>>,
    moved_at_check: u64,
    limit: Duration,
}

impl Watched {
    pub(crate) fn new(io: TcpStream) -> Self {
        Self::with_limit(io, STALL_LIMIT)
    }

    fn with_limit(io: TcpStream, limit: Duration) -> Self {
        Self {
            io,
            watch: Rc::default(),
            check: Box::pin(sleep(limit)),
            moved_at_check: 0,
            limit,
        }
    }

    /// What the connection's requests mark themselves in.
    pub(crate) fn watch(&self) -> Rc<Watch> {
        self.watch.clone()
    }

    /// The stream, unwatched (an upgraded WebSocket's).
    pub(crate) fn into_inner(self) -> TcpStream {
        self.io
    }

    /// Polled whenever the connection waits for bytes to move: an error once it stalled.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.check.as_mut().poll(cx).is_ready() {
            let moved = self.watch.moved.get();
            if moved == self.moved_at_check && self.watch.handling.get() == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "nothing moved on the connection for {} s, with no request being handled",
                        self.limit.as_secs()
                    ),
                ));
            }
            self.moved_at_check = moved;
            self.check.as_mut().reset(Instant::now() + self.limit);
        }
        Ok(())
    }

    /// Counts a read or write that moved bytes; on one that waits, polls the watchdog.
    fn after<T>(
        &mut self,
        polled: Poll<io::Result<T>>,
        moved: bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(Ok(done)) => {
                if moved {
                    self.watch.moved();
                }
                Poll::Ready(Ok(done))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                self.poll_stall(cx)?;
                Poll::Pending
            }
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let moved = buf.filled().len() > before;
        this.after(polled, moved, cx)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        let moved = matches!(polled, Poll::Ready(Ok(n)) if n > 0);
        this.after(polled, moved, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        let moved = matches!(polled, Poll::Ready(Ok(n)) if n > 0);
        this.after(polled, moved, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_web::rt::{
        net::{TcpListener, TcpStream},
        time::{timeout, Instant},
    };
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::Watched;

    const LIMIT: Duration = Duration::from_millis(200);

    /// A watched server side and the client's side of one loopback connection.
    async fn pair(limit: Duration) -> (Watched, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Watched::with_limit(server, limit), client)
    }

    /// Reads until the stream fails; what it read, and the error's kind.
    async fn read_until_failed(watched: &mut Watched) -> (Vec<u8>, std::io::ErrorKind) {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match watched.read(&mut buf).await {
                Ok(0) => panic!("the peer closed: the watchdog was to end it first"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(error) => return (got, error.kind()),
            }
        }
    }

    #[actix_rt::test]
    async fn a_connection_where_nothing_moves_fails_within_two_limits() {
        let (mut watched, mut client) = pair(LIMIT).await;
        client.write_all(b"GET / HT").await.unwrap();
        let started = Instant::now();
        let (got, kind) = timeout(LIMIT * 25, read_until_failed(&mut watched))
            .await
            .expect("the watchdog never ended the stalled connection");
        assert_eq!(got, b"GET / HT");
        assert_eq!(kind, std::io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(waited >= LIMIT, "ended after {waited:?}, before the limit");
    }

    #[actix_rt::test]
    async fn bytes_that_keep_coming_keep_the_connection() {
        // A limit of a second and a byte every 100 ms: a check finds nothing moved only if the
        // machine stalls this test for a second.
        let limit = Duration::from_secs(1);
        let (mut watched, mut client) = pair(limit).await;
        let trickle = async {
            for _ in 0..30 {
                client.write_all(b"x").await.unwrap();
                actix_rt::time::sleep(limit / 10).await;
            }
        };
        let read = async {
            let mut got = 0;
            let mut buf = [0u8; 8];
            while got < 30 {
                got += watched
                    .read(&mut buf)
                    .await
                    .expect("ended while bytes kept coming");
            }
        };
        // Thirty bytes over three limits: each check saw some arrive since the last.
        futures_util::future::join(trickle, read).await;
    }

    #[actix_rt::test]
    async fn a_request_being_handled_keeps_the_connection() {
        let (mut watched, _client) = pair(LIMIT).await;
        let handling = watched.watch().handling();
        let mut buf = [0u8; 8];
        // Nothing moves for five limits while a request is handled: the read just waits.
        let waited = timeout(LIMIT * 5, watched.read(&mut buf)).await;
        assert!(waited.is_err(), "the read ended: {waited:?}");
        drop(handling);
        let (_, kind) = timeout(LIMIT * 25, read_until_failed(&mut watched))
            .await
            .expect("the watchdog never ended the connection once the request was answered");
        assert_eq!(kind, std::io::ErrorKind::TimedOut);
    }

    #[actix_rt::test]
    async fn an_answer_the_client_does_not_read_ends_the_connection() {
        let (mut watched, _client) = pair(LIMIT).await;
        let chunk = vec![b'a'; 64 * 1024];
        let write = async {
            loop {
                watched.write_all(&chunk).await?;
            }
        };
        let ended: std::io::Result<()> = timeout(LIMIT * 25, write)
            .await
            .expect("the writes never ended though the client reads nothing");
        assert_eq!(ended.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    }
}
