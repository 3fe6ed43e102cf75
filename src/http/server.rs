//! The HTTP server of a listener: actix-http serving the application (`config`), with every
//! upgrade request handed to `ws::upgrade` so that a WebSocket leaves the HTTP dispatcher once
//! it is open, and every connection watched for stalls (`watchdog.rs`). Listeners are bound like
//! actix-web's own server binds them (every address the name resolves to, `SO_REUSEADDR`, a deep
//! backlog).

use std::{
    net::{SocketAddr, TcpListener, ToSocketAddrs},
    rc::Rc,
    time::Duration,
};

use actix_codec::Framed;
use actix_http::{error::DispatchError, h1, HttpService, Protocol as HttpProtocol, Request};
use actix_service::{
    fn_factory, fn_service, map_config, IntoServiceFactory as _, ServiceFactory,
    ServiceFactoryExt as _,
};
use actix_web::{
    body::MessageBody,
    dev::{AppConfig, Server, ServiceRequest, ServiceResponse},
    rt::net::TcpStream,
    web, App,
};
use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};

use super::{watchdog::Watched, AppState, Listener};
use crate::{thread_name, ws};

/// Connections waiting to be accepted, per listener (actix-web's default).
const BACKLOG: i32 = 1024;

/// Where a server listens.
pub(crate) enum Bind<'a> {
    /// An address to bind (`http.bind`): every address it resolves to.
    Address(&'a str),
    /// A socket bound already.
    Listener(TcpListener),
}

/// An HTTP server for `listener` on `bind`, running once awaited, with the addresses it got.
pub(crate) fn serve(
    state: &web::Data<AppState>,
    listener: Listener,
    bind: Bind<'_>,
    workers: usize,
    shutdown_timeout_s: u64,
) -> anyhow::Result<(Vec<SocketAddr>, Server)> {
    let sockets = match bind {
        Bind::Address(addr) => bind_all(addr).with_context(|| format!("binding {addr}"))?,
        Bind::Listener(socket) => vec![socket],
    };
    let addrs = sockets
        .iter()
        .map(TcpListener::local_addr)
        .collect::<std::io::Result<Vec<_>>>()
        .context("the listener's address")?;
    let mut server = Server::build()
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(shutdown_timeout_s);
    let stopping = server.graceful_shutdown_signal();
    for (socket, addr) in sockets.into_iter().zip(addrs.iter().copied()) {
        let state = state.clone();
        let stopping = stopping.clone();
        server = server
            .listen("roomstate-http", socket, move || {
                // Called on each worker thread as it starts.
                thread_name::set("roomstate-http");
                let upgrade_state = state.clone();
                let upgrades = fn_factory(move || {
                    let app = app(upgrade_state.clone(), listener).into_factory();
                    async move {
                        let app = Rc::new(app.new_service(AppConfig::default()).await?);
                        Ok::<_, ()>(fn_service(
                            move |(req, framed): (Request, Framed<Watched, h1::Codec>)| {
                                let app = app.clone();
                                // A socket is judged by its pings, not the watchdog.
                                let framed = framed.into_map_io(Watched::into_inner);
                                async move {
                                    // The socket is over either way; how it ended is logged.
                                    if let Err(error) = ws::upgrade::serve(app, req, framed).await
                                    {
                                        tracing::debug!(%error, "an upgrade request's connection failed");
                                    }
                                    Ok::<(), actix_web::Error>(())
                                }
                            },
                        ))
                    }
                });
                let stopping = stopping.clone();
                // As actix-web's own server: idle keep-alive connections end when the server
                // stops, and a closing connection gets a second to say goodbye.
                let http = HttpService::build()
                    .graceful_shutdown_signal(move || {
                        let stopping = stopping.clone();
                        async move { stopping.notified().await }
                    })
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .local_addr(addr)
                    // Each request marks itself in its connection's watchdog while handled.
                    .on_connect_ext(|io: &Watched, data| {
                        data.insert(io.watch());
                    })
                    .upgrade(upgrades)
                    .finish(map_config(app(state.clone(), listener), |_| {
                        AppConfig::default()
                    }));
                // As actix-http's own `tcp()`, with each connection watched.
                fn_service(|io: TcpStream| async move {
                    // Small frames (acks, states) must go out at once, not wait for Nagle's
                    // algorithm to meet the client's delayed ACK (40 ms per request on
                    // loopback without this).
                    if let Err(error) = io.set_nodelay(true) {
                        tracing::debug!(%error, "TCP_NODELAY not set on a connection");
                    }
                    let peer = io.peer_addr().ok();
                    Ok::<_, DispatchError>((Watched::new(io), HttpProtocol::Http1, peer))
                })
                .and_then(http)
            })
            .context("serving the listener")?;
    }
    Ok((addrs, server.run()))
}

/// The application: every route `listener` serves, inside the middleware every answer passes.
fn app(
    state: web::Data<AppState>,
    listener: Listener,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(actix_web::middleware::from_fn(super::layer::edge))
        .configure(move |cfg| super::config(cfg, state, listener))
}

/// Listeners on every address `addr` resolves to; an error only if none could be bound.
fn bind_all(addr: &str) -> std::io::Result<Vec<TcpListener>> {
    let mut sockets = Vec::new();
    let mut last_error = None;
    for addr in addr.to_socket_addrs()? {
        match bind_one(addr) {
            Ok(socket) => sockets.push(socket),
            Err(error) => last_error = Some(error),
        }
    }
    match (sockets.is_empty(), last_error) {
        (false, _) => Ok(sockets),
        (true, Some(error)) => Err(error),
        (true, None) => Err(std::io::Error::other("the address resolves to nothing")),
    }
}

fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // A restarted engine binds its port again at once, whatever connections of the last one
    // are still in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
