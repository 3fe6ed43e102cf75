//! A socket's incoming side: the client's frames, decoded from the connection as they arrive.
//!
//! Bytes are read onto the stack and kept only while they hold part of a frame: an idle socket
//! holds no read buffer at all (an HTTP dispatcher keeps 8 KiB for the life of the
//! connection). A read that does not fill the chunk tells the reactor the kernel has nothing
//! more, so a wake-up costs one `recv`, not a second one to hear "nothing". Frames are limited
//! to `limits.max_frame_bytes` (`ProtocolError::Overflow`) as soon as a frame's header says it is
//! larger, before its payload is read; the stream ends when the client ends the connection or
//! after the first error.

use std::{
    cell::RefCell,
    mem::MaybeUninit,
    pin::Pin,
    rc::Rc,
    task::{ready, Context, Poll},
};

use actix_codec::Decoder as _;
use actix_http::ws::{Codec, Frame, ProtocolError};
use actix_web::web::BytesMut;
use futures_util::Stream;
use tokio::{
    io::{AsyncRead, ReadBuf},
    net::tcp::OwnedReadHalf,
};

/// What a read asks the kernel for at most.
const READ_CHUNK: usize = 2048;

/// A connection's read side: the session's frames come from it, and once the session ended the
/// writer reads the client's last bytes from it (`Outgoing::write`).
pub(crate) type ReadSide = Rc<RefCell<OwnedReadHalf>>;

/// Reads what the kernel has into `into` (at most `READ_CHUNK` bytes); `Ok(0)` is the end.
pub(crate) fn poll_read(
    read: &ReadSide,
    cx: &mut Context<'_>,
    into: &mut BytesMut,
) -> Poll<std::io::Result<usize>> {
    let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
    let mut buf = ReadBuf::uninit(&mut chunk);
    ready!(Pin::new(&mut *read.borrow_mut()).poll_read(cx, &mut buf))?;
    into.extend_from_slice(buf.filled());
    Poll::Ready(Ok(buf.filled().len()))
}

/// The payload length the header at the start of `bytes` declares (RFC 6455 §5.2), once
/// enough of the header is there to tell.
fn declared_length(bytes: &[u8]) -> Option<u64> {
    let declared = *bytes.get(1)? & 0x7f;
    match declared {
        126 => Some(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]).into()),
        127 => Some(u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?)),
        short => Some(short.into()),
    }
}

/// The frames a client sends, in order.
pub(crate) struct Incoming {
    read: ReadSide,
    codec: Codec,
    /// Read and not yet decoded: part of a frame, or nothing (then no allocation).
    bytes: BytesMut,
    /// The client ended the connection, or a frame was refused: nothing more comes.
    ended: bool,
    max_frame_bytes: u64,
}

impl Incoming {
    /// The frames of `io`, starting with `early` (what the client sent right after its
    /// upgrade request), each at most `max_frame_bytes`.
    pub(crate) fn new(read: ReadSide, early: BytesMut, max_frame_bytes: usize) -> Self {
        Self {
            read,
            codec: Codec::new().max_size(max_frame_bytes),
            bytes: early,
            ended: false,
            max_frame_bytes: u64::try_from(max_frame_bytes).unwrap_or(u64::MAX),
        }
    }

    fn next_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame, ProtocolError>>> {
        loop {
            let decoded = self.codec.decode(&mut self.bytes);
            if self.bytes.is_empty() {
                // Let go of the allocation (a frame's payload may still share it).
                self.bytes = BytesMut::new();
            }
            match decoded {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) => {}
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
            // The codec refuses a frame over the limit only once all of it has come: a header
            // declaring one is refused at once, before its payload is read into memory.
            if declared_length(&self.bytes).is_some_and(|length| length > self.max_frame_bytes) {
                return Poll::Ready(Some(Err(ProtocolError::Overflow)));
            }
            let this = &mut *self;
            match ready!(poll_read(&this.read, cx, &mut this.bytes)) {
                // The client ended the connection (part of a frame, if any, is lost with it).
                Ok(0) => return Poll::Ready(None),
                Ok(_) => {}
                Err(error) => return Poll::Ready(Some(Err(error.into()))),
            }
        }
    }
}

impl Stream for Incoming {
    type Item = Result<Frame, ProtocolError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let next = self.next_frame(cx);
        if matches!(next, Poll::Ready(None | Some(Err(_)))) {
            self.ended = true;
            self.bytes = BytesMut::new();
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use actix_http::ws::{OpCode, Parser};
    use futures_util::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    /// A client frame: masked, as RFC 6455 §5.3 requires.
    fn client_frame(op: OpCode, payload: &[u8]) -> BytesMut {
        let mut bytes = BytesMut::new();
        Parser::write_message(&mut bytes, payload, op, true, true);
        bytes
    }

    /// A client's connection, and the server's read side of it.
    async fn pair() -> (tokio::net::TcpStream, ReadSide) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (read, _) = server.into_split();
        (client, Rc::new(RefCell::new(read)))
    }

    #[actix_rt::test]
    async fn frames_come_whole_whatever_the_reads_and_the_buffer_goes_between() {
        let (mut client, server) = pair().await;
        let early = client_frame(OpCode::Text, b"early");
        let mut incoming = Incoming::new(server, early, 1024);
        assert_eq!(
            incoming.next().await.unwrap().unwrap(),
            Frame::Text("early".into())
        );
        let frame = client_frame(OpCode::Text, b"split across two writes");
        client.write_all(&frame[..5]).await.unwrap();
        client.flush().await.unwrap();
        let later = async {
            tokio::task::yield_now().await;
            client.write_all(&frame[5..]).await.unwrap();
            client
        };
        let (next, mut client) = tokio::join!(incoming.next(), later);
        assert_eq!(
            next.unwrap().unwrap(),
            Frame::Text("split across two writes".into())
        );
        assert_eq!(incoming.bytes.capacity(), 0, "no buffer while idle");
        client
            .write_all(&client_frame(OpCode::Ping, b"p"))
            .await
            .unwrap();
        assert_eq!(
            incoming.next().await.unwrap().unwrap(),
            Frame::Ping("p".into())
        );
        drop(client);
        assert!(incoming.next().await.is_none(), "the client's end ends it");
    }

    #[actix_rt::test]
    async fn a_frame_over_the_limit_is_refused_and_ends_the_stream() {
        let (mut client, server) = pair().await;
        let mut incoming = Incoming::new(server, BytesMut::new(), 16);
        client
            .write_all(&client_frame(OpCode::Text, &[b'x'; 17]))
            .await
            .unwrap();
        assert!(matches!(
            incoming.next().await,
            Some(Err(ProtocolError::Overflow))
        ));
        assert!(incoming.next().await.is_none());
    }

    /// A masked text frame's header declaring `length` bytes of payload (none of it).
    fn header_declaring(length: u64) -> Vec<u8> {
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&length.to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        header
    }

    #[actix_rt::test]
    async fn a_header_declaring_a_frame_over_the_limit_is_refused_before_its_payload() {
        for length in [17, 1 << 20, 1 << 40] {
            let (mut client, server) = pair().await;
            let mut incoming = Incoming::new(server, BytesMut::new(), 16);
            client.write_all(&header_declaring(length)).await.unwrap();
            client.write_all(&[b'x'; 10]).await.unwrap();
            let next = tokio::time::timeout(std::time::Duration::from_secs(20), incoming.next());
            assert!(
                matches!(next.await, Ok(Some(Err(ProtocolError::Overflow)))),
                "a header declaring {length} bytes"
            );
            assert!(incoming.next().await.is_none());
            assert_eq!(incoming.bytes.capacity(), 0, "nothing kept of it");
        }
    }

    #[test]
    fn the_declared_length_is_read_once_the_header_holds_it() {
        let mut medium = vec![0x81, 0x80 | 126];
        medium.extend_from_slice(&300u16.to_be_bytes());
        assert_eq!(declared_length(&[0x81]), None);
        assert_eq!(declared_length(&[0x81, 0x80 | 5]), Some(5));
        assert_eq!(declared_length(&medium[..3]), None);
        assert_eq!(declared_length(&medium), Some(300));
        assert_eq!(declared_length(&header_declaring(1 << 40)[..9]), None);
        assert_eq!(declared_length(&header_declaring(1 << 40)), Some(1 << 40));
    }

    #[actix_rt::test]
    async fn an_unmasked_client_frame_is_a_protocol_error() {
        let (mut client, server) = pair().await;
        let mut incoming = Incoming::new(server, BytesMut::new(), 1024);
        let mut unmasked = BytesMut::new();
        Parser::write_message(&mut unmasked, b"hi", OpCode::Text, true, false);
        client.write_all(&unmasked).await.unwrap();
        assert!(matches!(incoming.next().await, Some(Err(_))));
    }
}
