//! `roomstate-floor`: the benchmark's bare-handler floor. The smallest actix-web /
//! actix-web-actors app that `roomstate-load run --target engine` can drive with the same load
//! as the engine, over WebSocket and over HTTP, so the engine's CPU per acknowledged mutation can
//! be read against what the HTTP/WebSocket edge alone costs (docs/benchmarks.md).
//!
//! What it does per request, and no more: the HTTP server and WebSocket codec the engine uses
//! (actix-web, actix-web-actors, `TCP_NODELAY`, the same number of workers), the body or frame
//! parsed into the engine's own types (`roomstate-core`'s frame parser, names checked, unknown
//! fields refused), applied to the room's in-memory tally (one `Mutex<HashMap>` of rooms), and
//! the answer encoded (the engine's own `ack` encoder, the same JSON bodies). What it leaves out:
//! durability (no journal, no `WAIT`, no store: an ack means "applied in memory"), the room
//! actor and its thread hop, fan-out (a socket gets one `state` frame when it opens and then
//! only the answers to its own requests: no `state` frames on changes, no chat messages of
//! others), idempotency keys, presence timeouts and pings, rate limits, auth, origins, CORS and
//! metrics. It is the floor of the edge, not a competing engine.
//!
//! With `--raw-sockets` the sockets leave the HTTP dispatcher at the upgrade and run on small
//! buffers of their own (`raw`): the experiment behind the next design step of
//! docs/benchmarks.md, measured beside the default (actix-web-actors, as the engine).
//!
//! Like the engine it prints `roomstate listening on http://ADDR` on stdout, binds
//! `ROOMSTATE__HTTP__BIND` (default here `127.0.0.1:0`) and runs `ROOMSTATE__HTTP__WORKERS`
//! workers (0: one per core), so the scripts and tools that start an engine start it the same
//! way; every other `ROOMSTATE__*` setting is ignored.

mod error;
mod http;
mod raw;
mod rooms;
mod socket;
mod tally;

use actix_codec::Framed;
use actix_http::{h1, HttpService, Request};
use actix_service::{fn_service, map_config};
use actix_web::{dev::AppConfig, rt::net::TcpStream, web, App, HttpServer};
use anyhow::Context as _;
use clap::Parser;
use roomstate_core::banner;
use tracing_subscriber::EnvFilter;

use crate::rooms::Rooms;

/// The benchmark's bare-handler floor: parses, applies to an in-memory tally, answers. No
/// journal, no fan-out.
#[derive(Parser)]
#[command(name = "roomstate-floor", version)]
struct Cli {
    /// Listen address (default: `ROOMSTATE__HTTP__BIND`, else 127.0.0.1:0).
    #[arg(long)]
    bind: Option<String>,
    /// HTTP worker threads, 0 for one per core (default: `ROOMSTATE__HTTP__WORKERS`, else 0).
    #[arg(long)]
    workers: Option<usize>,
    /// Take each socket out of the HTTP dispatcher at the upgrade and serve it on buffers of
    /// its own (an experiment; the default is actix-web-actors, as the engine). Also
    /// `ROOMSTATE__FLOOR__RAW_SOCKETS=true`.
    #[arg(long)]
    raw_sockets: bool,
}

/// A setting from the command line, else the engine's environment variable, else `default`.
fn setting<T: std::str::FromStr>(given: Option<T>, env: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    if let Some(value) = given {
        return Ok(value);
    }
    match std::env::var(env) {
        Ok(text) if !text.is_empty() => text
            .parse()
            .map_err(|e| anyhow::anyhow!("{env}={text:?}: {e}")),
        _ => Ok(default),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let bind = setting(cli.bind, "ROOMSTATE__HTTP__BIND", "127.0.0.1:0".to_owned())?;
    let workers = match setting(cli.workers, "ROOMSTATE__HTTP__WORKERS", 0)? {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    if cli.raw_sockets || setting(None, "ROOMSTATE__FLOOR__RAW_SOCKETS", false)? {
        actix_web::rt::System::new().block_on(serve_raw(bind, workers))
    } else {
        actix_web::rt::System::new().block_on(serve(bind, workers))
    }
}

async fn serve(bind: String, workers: usize) -> anyhow::Result<()> {
    let rooms = web::Data::new(Rooms::default());
    let server =
        HttpServer::new(move || App::new().app_data(rooms.clone()).configure(http::config))
            // As the engine: small frames go out at once instead of waiting for the client's ACK.
            .on_connect(|conn, _| {
                if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                    if let Err(error) = tcp.set_nodelay(true) {
                        tracing::debug!(%error, "TCP_NODELAY not set");
                    }
                }
            })
            .workers(workers)
            .shutdown_timeout(1)
            .bind(&bind)
            .with_context(|| format!("binding {bind}"))?;
    for addr in server.addrs() {
        println!("{}", banner::listening_line(addr));
    }
    tracing::info!(
        workers,
        "roomstate-floor: the bare-handler floor (parse, in-memory tally, answer; no journal, no fan-out)"
    );
    server.run().await.context("HTTP server")
}

/// The same routes, served through actix-http directly so that upgrades go to `raw::upgrade`.
async fn serve_raw(bind: String, workers: usize) -> anyhow::Result<()> {
    let rooms = web::Data::new(Rooms::default());
    let listener = std::net::TcpListener::bind(&bind).with_context(|| format!("binding {bind}"))?;
    let addr = listener.local_addr().context("the listener's address")?;
    let server = actix_server::Server::build()
        .listen("roomstate-floor", listener, move || {
            let upgrade_rooms = rooms.clone();
            let app = App::new().app_data(rooms.clone()).configure(http::config);
            HttpService::build()
                .tcp_nodelay(true)
                .upgrade(fn_service(
                    move |(req, framed): (Request, Framed<TcpStream, h1::Codec>)| {
                        let rooms = upgrade_rooms.clone();
                        async move {
                            // The socket is over either way; how it ended is only logged.
                            if let Err(error) = raw::upgrade(rooms, req, framed).await {
                                tracing::debug!(%error, "raw socket ended");
                            }
                            Ok::<(), actix_web::Error>(())
                        }
                    },
                ))
                .finish(map_config(app, |_| AppConfig::default()))
                .tcp()
        })
        .context("serving the listener")?
        .workers(workers)
        .shutdown_timeout(1)
        .run();
    println!("{}", banner::listening_line(addr));
    tracing::info!(
        workers,
        "roomstate-floor: the bare-handler floor with raw sockets (parse, in-memory tally, answer; no journal, no fan-out)"
    );
    server.await.context("HTTP server")
}
