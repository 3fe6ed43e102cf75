//! Wiring: builds the journal, the store, the registry and the HTTP server from settings, runs
//! until SIGTERM/SIGINT, then shuts down in order (stop accepting, make pending events durable,
//! close sockets, exit).

use std::{sync::Arc, time::Duration};

use actix::Arbiter;
use actix_web::{
    dev::{Server, ServerHandle},
    web,
};
use anyhow::Context as _;
use roomstate_core::banner;
use roomstate_journal::{
    local::LocalJournal,
    redis::{RedisJournal, RedisJournalConfig, RedisTail, RedisTarget},
    Journal,
};
use roomstate_store::Store;

use crate::{
    cluster::{
        self, metrics::ClusterMetrics, mirrors::Mirrors, router::Router, Cluster, ClusterSettings,
    },
    config::{self, ClusterPlan, JournalKind, Loaded, Origin},
    http::{self, AppState, Bind, DocumentScope, Listener},
    metrics::Metrics,
    ratelimit::AddressLimiter,
    room::{
        deps::{RoomDeps, RoomSettings},
        registry::Registry,
    },
    ws::{
        self,
        open_sockets::{OpenSockets, SocketLimits},
        session::SessionSettings,
    },
};

/// How long shutdown waits for rooms to make their pending events durable.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// How long a close waits, beyond `store.timeout_s`, for pending events to become durable and
/// the record to be written before answering 503 (the room stays closed to mutations; the close
/// can be retried). Longer than the store's own limit, so a store that does not answer is
/// reported as such, with the room open again.
const CLOSE_BEYOND_STORE: Duration = Duration::from_secs(5);

/// How often a cluster node's journal tail reads (the longest a mirror waits for a new room's
/// first updates, and how often it checks its rooms' owners).
const TAIL_POLL: Duration = Duration::from_millis(250);

/// The journal the settings name; the Redis journal also as itself (a cluster needs more of it
/// than the `Journal` trait), with the configuration it was opened with.
struct Opened {
    journal: Arc<dyn Journal>,
    redis: Option<(RedisJournal, RedisJournalConfig)>,
}

/// Opens the journal the settings name.
fn open_journal(loaded: &Loaded, metrics: &Metrics) -> anyhow::Result<Opened> {
    let settings = &loaded.settings;
    match settings.journal.kind {
        JournalKind::Local => {
            // Made only here: an engine on Redis and MySQL writes nothing to disk (a default
            // SQLite store makes its own directory).
            std::fs::create_dir_all(&settings.data_dir)
                .with_context(|| format!("creating data_dir {}", settings.data_dir.display()))?;
            let path = settings.data_dir.join("journal.db");
            let journal = LocalJournal::open(&path, metrics.journal.clone())
                .with_context(|| format!("opening the local journal at {}", path.display()))?;
            Ok(Opened {
                journal: Arc::new(journal),
                redis: None,
            })
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
            config.node = loaded.node_id.clone();
            config.commit_delay = Duration::from_millis(redis.commit_delay_ms);
            let journal = RedisJournal::open(config.clone(), metrics.journal.clone())
                .context("starting the redis journal")?;
            Ok(Opened {
                journal: Arc::new(journal.clone()),
                redis: Some((journal, config)),
            })
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
    let metrics = Metrics::new().context("setting up metrics")?;
    let Opened { journal, redis } = open_journal(&loaded, &metrics)?;
    let store = Store::open_with_timeout(&loaded.store_url, settings.store.timeout())
        .context("opening the SQL store")?;
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
                    close_timeout: settings.store.timeout() + CLOSE_BEYOND_STORE,
                    max_messages: settings.limits.room_messages_in_memory,
                },
            },
            config::threads_or_per_core(settings.rooms.threads),
        )
        .with_max_open_rooms(settings.limits.max_open_rooms),
    );
    let cluster = match (&loaded.cluster, redis) {
        (Some(plan), Some((journal, config))) => Some(join_cluster(
            plan, journal, config, &registry, &metrics, &settings,
        )?),
        _ => None,
    };
    match &cluster {
        // A node takes rooms as the cluster gives them: its own (from a run that ended), orphans,
        // and new ones; it never takes every room of the journal.
        Some((cluster, arbiter)) => cluster.start(&arbiter.handle()),
        None => {
            let recovered = registry.recover().await.context("recovering open rooms")?;
            tracing::info!(rooms = recovered, "open rooms recovered from the journal");
        }
    }
    let router = Router::new(registry.clone(), cluster.as_ref().map(|(c, _)| c.clone()));

    // The internal listener is bound first: the document names its address.
    let http = &settings.http;
    let internal = match &http.internal_bind {
        None => None,
        Some(bind) => {
            Some(std::net::TcpListener::bind(bind).with_context(|| format!("binding {bind}"))?)
        }
    };
    let internal_addr = match &internal {
        Some(listener) => Some(listener.local_addr().context("the internal listener")?),
        None => None,
    };
    let openapi = http::openapi_document(&DocumentScope {
        token_mode: loaded.auth.verifier.is_some(),
        admin: loaded.admin_token.is_some(),
        internal: internal_addr.map(|addr| format!("http://{addr}")),
    });

    let limits = &settings.limits;
    let state = web::Data::new(AppState {
        registry: registry.clone(),
        router,
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
        sockets: OpenSockets::new(SocketLimits {
            total: limits.max_sockets,
            per_client: limits.max_sockets_per_client,
        }),
        max_body_bytes: limits.max_body_bytes,
        edge: loaded.edge.clone(),
        openapi,
        node_id: loaded.node_id.clone(),
        node_url: loaded.cluster.as_ref().map_or_else(
            || format!("http://{}", http.bind),
            |c| c.advertise_url.clone(),
        ),
    });
    let workers = config::threads_or_per_core(settings.http.workers);
    let public = match internal {
        None => Listener::All,
        Some(_) => Listener::Public,
    };
    let bind = Bind::Address(&http.bind);
    let (addrs, public) = http::serve(&state, public, bind, workers, http.shutdown_timeout_s)?;
    for addr in addrs {
        println!("{}", banner::listening_line(addr));
    }
    // The internal listener (`/metrics`, `/admin`) is small: one worker.
    let internal = match internal {
        None => None,
        Some(listener) => {
            let bind = Bind::Listener(listener);
            let (addrs, server) =
                http::serve(&state, Listener::Internal, bind, 1, http.shutdown_timeout_s)?;
            for addr in addrs {
                println!("{}", internal_listening_line(addr));
            }
            Some(server)
        }
    };
    if let Some(token) = loaded.admin_token.as_ref().filter(|t| t.generated) {
        println!("admin token (generated for this dev run): {}", token.token);
    }
    let sockets = state.sockets.clone();
    // A socket whose client takes nothing more is not waited for long: prompt clients answer
    // the close at once.
    let sockets_deadline = Duration::from_secs(http.shutdown_timeout_s).min(ws::LINGER);
    let handles: Vec<ServerHandle> = std::iter::once(public.handle())
        .chain(internal.as_ref().map(Server::handle))
        .collect();
    actix_web::rt::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; shutting down");
        for handle in &handles {
            handle.pause().await;
        }
        match &cluster {
            Some((cluster, arbiter)) => {
                // The sockets of rooms owned elsewhere end beside the hand-over of this node's
                // own rooms, not after it: neither waits for the other.
                futures_util::future::join(
                    cluster::hand_off(cluster, DRAIN_DEADLINE),
                    cluster.mirrors().end_all(DRAIN_DEADLINE),
                )
                .await;
                arbiter.stop();
            }
            None => {
                registry.shutdown(DRAIN_DEADLINE).await;
            }
        }
        // The rooms ended their sockets: their close frames go out before the workers stop.
        if !sockets.all_ended(sockets_deadline).await {
            tracing::warn!(
                sockets = sockets.count(),
                "sockets still open at the end of http.shutdown_timeout_s; their connections are cut"
            );
        }
        for handle in &handles {
            handle.stop(true).await;
        }
    });
    match internal {
        None => public.await.context("HTTP server")?,
        Some(internal) => {
            let (public, internal) = futures_util::future::join(public, internal).await;
            public.context("HTTP server")?;
            internal.context("internal HTTP server")?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Joins the cluster `plan` describes: the journal tail and the mirrors it feeds, and this node's
/// part (started by the caller), all on an arbiter of their own.
fn join_cluster(
    plan: &ClusterPlan,
    journal: RedisJournal,
    config: RedisJournalConfig,
    registry: &Arc<Registry>,
    metrics: &Metrics,
    settings: &crate::config::Settings,
) -> anyhow::Result<(Arc<Cluster>, Arbiter)> {
    let cluster_metrics =
        ClusterMetrics::register(metrics.registry()).context("setting up cluster metrics")?;
    let (tail, updates) =
        RedisTail::open(config, TAIL_POLL).context("starting the journal tail for mirrors")?;
    let arbiter = Arbiter::new();
    let mirrors = Mirrors::start(
        arbiter.handle(),
        tail,
        updates,
        cluster_metrics.clone(),
        settings.limits.room_messages_in_memory,
    );
    let cluster = Cluster::new(
        ClusterSettings {
            node_id: plan.node_id.clone(),
            advertise_url: plan.advertise_url.clone(),
            secret: plan.secret.clone(),
            lease: plan.lease,
        },
        journal,
        registry.clone(),
        mirrors,
        cluster_metrics,
    );
    tracing::info!(node.id = %plan.node_id, advertise_url = %plan.advertise_url,
        lease_ms = plan.lease.as_millis() as u64, "cluster enabled");
    Ok((cluster, arbiter))
}

/// What the engine prints for each address of its internal listener (`http.internal_bind`),
/// after the public listening lines (whose format, `banner::listening_line`, tools read).
fn internal_listening_line(addr: impl std::fmt::Display) -> String {
    format!("roomstate internal listener (/metrics, /admin) on http://{addr}")
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
