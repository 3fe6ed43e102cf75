//! Where a WebSocket leaves the HTTP dispatcher.
//!
//! actix-http hands every request that asks for an upgrade (`Connection: Upgrade`) to this
//! service, with its connection, instead of keeping it in its HTTP/1 dispatcher. The request
//! still goes through the whole application — routing, middleware (CORS, refusal counting,
//! request metrics) and the route's own checks — exactly like any other request:
//!
//! - a `101` that carries an accepted socket (`session::accept`) is sent, the dispatcher's
//!   buffers are let go (only what the client already sent after its request is kept), and
//!   the session runs on the bare connection: `session::open` reads, `Outgoing::write` writes
//!   until the socket ends, on a task of its own (the HTTP connection's task ends; shutdown
//!   waits for sockets through `OpenSockets`);
//! - any other answer (a refusal, or a route that is no socket) is sent with
//!   `Connection: close`, and the connection ends with it: it was asked to become something
//!   else.

use std::{cell::RefCell, io, rc::Rc, time::Duration};

use actix_codec::{Framed, FramedParts};
use actix_http::{
    body::{self, BodySize, MessageBody},
    h1, ConnectionType, HttpMessage as _, Request, Response, StatusCode,
};
use actix_service::Service;
use actix_web::{dev::ServiceResponse, rt::net::TcpStream, web::BytesMut};
use futures_util::SinkExt as _;

use super::{
    outgoing,
    session::{self, Accepted, ThroughUpgrade},
};

/// How long a refused upgrade's connection reads what the client still sends before it ends.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Why an upgrade request's connection ended before a session ran on it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpgradeError {
    #[error("writing the answer: {0}")]
    Io(#[from] io::Error),
    #[error("making the answer's body: {0}")]
    Body(String),
}

/// Serves one upgrade request `req` on `framed` through `app`.
pub(crate) async fn serve<S, B>(
    app: Rc<S>,
    req: Request,
    mut framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), UpgradeError>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    req.extensions_mut().insert(ThroughUpgrade);
    let mut response = match app.call(req).await {
        Ok(response) => Response::from(response).map_into_boxed_body(),
        Err(error) => Response::from(error),
    };
    let accepted = match response.status() {
        StatusCode::SWITCHING_PROTOCOLS => response.extensions_mut().remove::<Accepted>(),
        _ => None,
    };
    let (mut head, body) = response.into_parts();
    let Some(accepted) = accepted else {
        head.head_mut().set_connection_type(ConnectionType::Close);
        let bytes = body::to_bytes(body)
            .await
            .map_err(|error| UpgradeError::Body(error.to_string()))?;
        framed
            .send(h1::Message::Item((
                head,
                BodySize::Sized(bytes.len() as u64),
            )))
            .await?;
        if !bytes.is_empty() {
            framed.send(h1::Message::Chunk(Some(bytes))).await?;
        }
        framed.send(h1::Message::Chunk(None)).await?;
        framed.close().await?;
        // What the client sent that nobody read would turn our close into a reset, and the
        // client might lose the answer with it: read it away, briefly.
        let (read, _write) = framed.into_parts().io.into_split();
        let read = Rc::new(RefCell::new(read));
        let _ = tokio::time::timeout(REFUSAL_LINGER, outgoing::drain(&read)).await;
        return Ok(());
    };
    framed
        .send(h1::Message::Item((head, BodySize::None)))
        .await?;
    let FramedParts { io, read_buf, .. } = framed.into_parts();
    let early = match read_buf.is_empty() {
        true => BytesMut::new(),
        false => BytesMut::from(&read_buf[..]),
    };
    drop(read_buf);
    let (read, write) = io.into_split();
    let read = Rc::new(RefCell::new(read));
    let (outgoing, counted) = session::open(accepted, read.clone(), early);
    // The socket's writer is a task of its own: the HTTP connection's task (actix-http's
    // dispatcher, sized for the application's largest future) ends here.
    actix_rt::spawn(async move {
        outgoing.write(write, read).await;
        drop(counted);
    });
    Ok(())
}
