//! Wiring: builds the journal, the store, the registry and the HTTP server from settings, runs
//! until SIGTERM/SIGINT, then shuts down in order (stop accepting, make pending events durable,
//! close sockets, exit).

use std::{sync::Arc, time::Duration};

use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use roomstate_core::banner;
use roomstate_journal::{
    local::LocalJournal,
    redis::{RedisJournal, RedisJournalConfig, RedisTarget},
    Journal,
};
use roomstate_store::Store;

use crate::{
    config::{JournalKind, Loaded, Origin},
    http::{self, AppState},
    metrics::Metrics,
    ratelimit::AddressLimiter,
    room::{
        deps::{RoomDeps, RoomSettings},
        registry::Registry,
    },
    ws::session::SessionSettings,
};

/// How long shutdown waits for rooms to make their pending events durable.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// How long a close waits for pending events to become durable and the record to be written
/// before answering 503 (the room stays closed to mutations; the close can be retried).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// Opens the journal the settings name.
fn open_journal(loaded: &Loaded, metrics: &Metrics) -> anyhow::Result<Arc<dyn Journal>> {
    let settings = &loaded.settings;
    match settings.journal.kind {
        JournalKind::Local => {
            let path = settings.data_dir.join("journal.db");
            let journal = LocalJournal::open(&path, metrics.journal.clone())
                .with_context(|| format!("opening the local journal at {}", path.display()))?;
            Ok(Arc::new(journal))
        }
        JournalKind::Redis => {
            let redis = &settings.redis;
            let target = if redis.sentinels.is_empty() {
                RedisTarget::Url(redis.url.clone().unwrap_or_default())
            } else {
                RedisTarget::Sentinels {
                    addrs: redis.sentinels.clone(),
                    master_name: redis.master_name.clone(),
                }
            };
            let mut config = RedisJournalConfig::new(target, redis.min_replica_acks);
            config.access = loaded.redis_access.clone();
            let journal = RedisJournal::open(config, metrics.journal.clone())
                .context("starting the redis journal")?;
            Ok(Arc::new(journal))
        }
    }
}

/// Runs the engine until a signal stops it.
pub async fn run(loaded: Loaded) -> anyhow::Result<()> {
    let settings = loaded.settings.clone();
    match &loaded.origin {
        Origin::EmbeddedDefaults => tracing::info!("settings: embedded defaults and environment"),
        Origin::File(path) => {
            tracing::info!(config.file = %path.display(), "settings: file and environment")
        }
    }
    tracing::info!("{}", loaded.auth.summary());
    let edge = &loaded.edge;
    if edge.proxies.is_empty() {
        tracing::info!("X-Forwarded-For is ignored (no http.trusted_proxies)");
    } else {
        tracing::info!(proxies = %edge.proxies.describe(), "X-Forwarded-For is believed from trusted proxies");
    }
    tracing::info!(origins = %edge.origins.describe(), "browser pages allowed (http.allowed_origins)");
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data_dir {}", settings.data_dir.display()))?;
    let metrics = Metrics::new().context("setting up metrics")?;
    let journal = open_journal(&loaded, &metrics)?;
    let store = Store::open(&loaded.store_url).context("opening the SQL store")?;
    tracing::info!(journal = ?journal.status(), store = store.backend(), "durability set up");

    let registry = Arc::new(
        Registry::new(
            RoomDeps {
                journal,
                store,
                metrics: metrics.clone(),
                settings: RoomSettings {
                    max_pending: settings.journal.max_pending,
                    http_ttl: settings.presence.http_ttl(),
                    snapshot_every: settings.journal.snapshot_every,
                    close_timeout: CLOSE_TIMEOUT,
                    max_messages: settings.limits.room_messages_in_memory,
                },
            },
            settings.rooms.threads,
        )
        .with_max_open_rooms(settings.limits.max_open_rooms),
    );
    let recovered = registry.recover().await.context("recovering open rooms")?;
    tracing::info!(rooms = recovered, "open rooms recovered from the journal");

    let limits = &settings.limits;
    let state = web::Data::new(AppState {
        registry: registry.clone(),
        metrics,
        admin_token: loaded.admin_token.as_ref().map(|t| t.token.clone()),
        auth: loaded.auth.clone(),
        http_limiter: AddressLimiter::new(limits.http_rate_per_s, limits.http_burst),
        sessions: SessionSettings {
            timeout: settings.presence.ws_timeout(),
            max_frame_bytes: limits.max_frame_bytes,
            rate_per_s: limits.ws_rate_per_s,
            burst: limits.ws_burst,
            send_buffer_bytes: limits.ws_send_buffer_bytes,
        },
        max_body_bytes: limits.max_body_bytes,
        edge: loaded.edge.clone(),
    });
    let workers = match settings.http.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new()
            .wrap(actix_web::middleware::from_fn(http::allow_origin))
            .wrap(actix_web::middleware::from_fn(http::count_refusals))
            .configure(move |cfg| http::config(cfg, state))
    })
    // Small frames (acks, states) must go out at once, not wait for Nagle's algorithm to meet
    // the client's delayed ACK (40 ms per request on loopback without this).
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "TCP_NODELAY not set");
            }
        }
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(settings.http.shutdown_timeout_s)
    .bind(&settings.http.bind)
    .with_context(|| format!("binding {}", settings.http.bind))?;
    for addr in server.addrs() {
        println!("{}", banner::listening_line(addr));
    }
    if let Some(token) = loaded.admin_token.as_ref().filter(|t| t.generated) {
        println!("admin token (generated for this dev run): {}", token.token);
    }
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; shutting down");
        handle.pause().await;
        registry.shutdown(DRAIN_DEADLINE).await;
        handle.stop(true).await;
    });
    server.await.context("HTTP server")?;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    // SIGTERM (supervisors), SIGINT (Ctrl-C) and SIGHUP (a closed terminal, or an operator's
    // "restart") all drain the same way: settings are not reloaded in place.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(mut term), Ok(mut hup)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            _ => {
                tracing::warn!("cannot watch SIGTERM/SIGHUP; only Ctrl-C stops the engine");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
