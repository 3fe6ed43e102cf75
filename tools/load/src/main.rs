//! `roomstate-load`: the project's benchmark. Drives a roomstate engine over real WebSockets and
//! HTTP, and the two designs it replaces (one MariaDB transaction per mutation; one Redis round
//! trip + `WAIT` per mutation) with the same clients and mutation mix; measures ack throughput
//! and latency (HDR histogram), memory per room and per socket, recovery time, and one engine
//! against a cluster of engines (throughput, CPU per ack, takeover time), and one big room (state
//! visibility and message delivery to 2000 sockets, CPU per delivered frame). Prints a summary
//! line per run and writes JSON for `docs/benchmarks.md`.

mod baseline_mysql;
mod baseline_redis;
mod big_room;
mod cluster;
mod cpu;
mod engine;
mod memory;
mod mix;
mod peek;
mod process;
mod recovery;
mod room_acks;
mod settle;
mod stats;
mod workload;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use roomstate_journal::redis::RedisTarget;
use serde::Serialize;

use crate::{
    engine::Transport,
    stats::Summary,
    workload::{Run, Workload},
};

#[derive(Parser)]
#[command(version, about = "Benchmark for roomstate and the designs it replaces")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Throughput and ack latency of one target.
    Run(RunArgs),
    /// Resident memory per idle open room and per connected socket of a fresh engine.
    Memory {
        #[arg(long)]
        engine_bin: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        rooms: usize,
        #[arg(long, default_value_t = 2_000)]
        sockets: usize,
        #[arg(long, default_value = "target/bench/memory")]
        work_dir: PathBuf,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Time to restart an engine whose Redis journal holds many open rooms.
    Recovery {
        #[arg(long)]
        engine_bin: PathBuf,
        #[command(flatten)]
        redis: RedisArgs,
        #[arg(long, default_value_t = 10_000)]
        rooms: usize,
        #[arg(long, default_value_t = 100)]
        events: usize,
        /// Events per append while filling, so per entry of a room's log: 1, the most entries
        /// to read back, is a room whose events each came alone.
        #[arg(long, default_value_t = 1)]
        events_per_append: usize,
        #[arg(long, default_value = "target/bench/recovery")]
        work_dir: PathBuf,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// One engine vs a cluster of engines side by side (acks/s, CPU per ack, forwarded share),
    /// and the takeover time of a killed owner per lease.
    Cluster(cluster::ClusterArgs),
    /// One room with many sockets under a steady vote rate: how soon each socket sees each new
    /// state, whether every socket gets every message, and CPU per delivered frame.
    BigRoom(big_room::BigRoomArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// A running roomstate engine (`--url`).
    Engine,
    /// Baseline (b): one Redis round trip + WAIT per mutation.
    RedisPerMutation,
    /// Baseline (a): one MariaDB transaction per mutation.
    MysqlPerMutation,
}

#[derive(Args, Clone)]
struct RedisArgs {
    /// Sentinel addresses, comma-separated.
    #[arg(long, value_delimiter = ',')]
    sentinels: Vec<String>,
    #[arg(long, default_value = "roomstate")]
    master_name: String,
    /// A plain Redis URL instead of sentinels.
    #[arg(long)]
    redis_url: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    #[arg(long, value_enum)]
    target: Target,
    /// Engine base URL; several (comma-separated) for the nodes of a cluster: the rooms are
    /// created through the first, and each client sticks to one node, taking them in turn.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    url: Vec<String>,
    #[arg(long, value_enum, default_value = "ws")]
    transport: Transport,
    #[command(flatten)]
    redis: RedisArgs,
    /// Replicas each baseline mutation waits for.
    #[arg(long, default_value_t = 1)]
    replica_acks: u32,
    #[arg(long)]
    mysql_url: Option<String>,
    #[arg(long, default_value_t = 20)]
    rooms: usize,
    /// Users (clients) per room.
    #[arg(long, default_value_t = 10)]
    users: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Share of requests that are chat messages, in percent (the rest are votes and switches).
    #[arg(long, default_value_t = 20)]
    messages: u32,
    /// Open loop at this many requests per second in total; closed loop when absent.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Name for this run in the summary (default: the target).
    #[arg(long)]
    label: Option<String>,
    /// Append the JSON summary to this file (one JSON object per line).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Report the CPU time of this process over the measured window, and per ack: `NAME=PID`
    /// (repeatable; e.g. `--cpu engine=1234 --cpu redis-primary=5678`).
    #[arg(long)]
    cpu: Vec<cpu::Watched>,
    /// The engine's admin token (`--target engine` only): once the run is done, close the rooms
    /// it created (their final record goes to the engine's SQL store, their keys leave the
    /// journal), so that the next run starts from a journal without them. Checked against
    /// `GET /admin/stats` before the run (refused for a server without admin routes, e.g. the
    /// bare-handler floor); a room that would not close fails the run after its summary.
    #[arg(long)]
    admin_token: Option<String>,
}

fn progress(seconds: f64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new((seconds * 10.0) as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>20} [{bar:30}] {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

fn write_json<T: Serialize>(path: &Option<PathBuf>, value: &T) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(path) = path {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{}", serde_json::to_string(value)?)?;
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let w = Workload {
        rooms: args.rooms,
        users: args.users,
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
        message_percent: args.messages,
        rate: args.rate,
        seed: args.seed,
    };
    let label = args.label.clone().unwrap_or_else(|| {
        match args.target {
            Target::Engine => "engine",
            Target::RedisPerMutation => "redis-per-mutation",
            Target::MysqlPerMutation => "mysql-per-mutation",
        }
        .to_owned()
    });
    if let Some(token) = &args.admin_token {
        if args.target != Target::Engine {
            anyhow::bail!("--admin-token closes an engine's rooms: it is for --target engine only");
        }
        let first = args.url.first().context("no engine URL")?;
        engine::check_admin(first, token).await?;
    }
    let bar = progress(args.warmup + args.duration, &label);
    // The watched processes, and this load generator itself: on a shared box the clients' CPU
    // per ack is part of what each design costs.
    let mut watch = args.cpu.clone();
    watch.push(cpu::Watched {
        name: "load-generator".to_owned(),
        pid: std::process::id(),
    });
    let cpu_window;
    let mut rooms_closed = None;
    let mut close_error = None;
    let (recorder, clients, transport) = match args.target {
        Target::MysqlPerMutation => {
            let url = args.mysql_url.clone().context("--mysql-url is required")?;
            let ticker = tick(&bar, None);
            // The baseline's clients are threads: it runs off this thread, so the CPU sampler
            // here can wake at the window it is told once the tables are set up.
            let (window_tx, window_rx) = tokio::sync::oneshot::channel();
            cpu_window = Some(actix_rt::spawn(async move {
                let (from, until) = window_rx
                    .await
                    .context("the mysql baseline ended before its window")?;
                cpu::over_window(&watch, from, until).await
            }));
            let workload = w.clone();
            let (recorder, _) = actix_rt::task::spawn_blocking(move || {
                baseline_mysql::run(&url, &workload, |from, until| {
                    let _ = window_tx.send((from, until));
                })
            })
            .await
            .context("the mysql baseline's thread")??;
            ticker.abort();
            (
                recorder,
                w.clients().min(baseline_mysql::MAX_CONNECTIONS),
                "sql",
            )
        }
        Target::Engine | Target::RedisPerMutation => {
            // Clients connect before the clock starts.
            let run = Run::start(&w);
            let ticker = tick(&bar, Some(run.acks.clone()));
            let (from, until) = (run.measure_from, run.end);
            cpu_window = Some(actix_rt::spawn(async move {
                cpu::over_window(&watch, from, until).await
            }));
            match args.target {
                Target::Engine => {
                    let rooms = engine::run(&args.url, args.transport, &w, &run).await?;
                    if let (Some(token), Some(first)) = (&args.admin_token, args.url.first()) {
                        // A room that would not close fails the run, once its summary is out.
                        let (closed, error) = engine::close_rooms(first, token, &rooms).await;
                        rooms_closed = Some(closed);
                        close_error = error;
                    }
                }
                _ => {
                    let url = baseline_redis::primary(
                        &args.redis.sentinels,
                        &args.redis.master_name,
                        args.redis.redis_url.as_deref(),
                    )
                    .await?;
                    baseline_redis::run(&url, args.replica_acks, &w, &run).await?;
                    baseline_redis::clean(&url).await?;
                }
            }
            ticker.abort();
            let recorder = std::mem::take(&mut *run.recorder.borrow_mut());
            let transport = match (args.target, args.transport) {
                (Target::Engine, Transport::Ws) => "ws",
                (Target::Engine, Transport::Http) => "http",
                _ => "redis",
            };
            (recorder, w.clients(), transport)
        }
    };
    bar.finish_and_clear();
    let mut summary = Summary::new(&label, &w, transport, clients, &recorder);
    summary.rooms_closed = rooms_closed;
    if let Some(window) = cpu_window {
        let used = window.await.context("CPU sampler")??;
        summary.cpu = cpu::per_ack(used, summary.acked);
    }
    println!("{}", summary.line());
    write_json(&args.json, &summary)?;
    match close_error {
        Some(e) => Err(e.context(format!(
            "the run is measured and written, but {} of its {} rooms are still open",
            summary.rooms - summary.rooms_closed.unwrap_or(0),
            summary.rooms
        ))),
        None => Ok(()),
    }
}

/// Advances the progress bar every 100 ms, showing acks per second.
fn tick(
    bar: &ProgressBar,
    acks: Option<std::rc::Rc<std::cell::Cell<u64>>>,
) -> actix_rt::task::JoinHandle<()> {
    let bar = bar.clone();
    actix_rt::spawn(async move {
        let started = Instant::now();
        let mut last = 0;
        loop {
            actix_rt::time::sleep(Duration::from_millis(100)).await;
            bar.inc(1);
            if let Some(acks) = &acks {
                let now = acks.get();
                bar.set_message(format!("{} acks/s", (now - last) * 10));
                last = now;
            }
            if started.elapsed() > Duration::from_secs(3600) {
                return;
            }
        }
    })
}

fn redis_target(args: &RedisArgs) -> anyhow::Result<RedisTarget> {
    Ok(match (&args.redis_url, args.sentinels.is_empty()) {
        (_, false) => RedisTarget::Sentinels {
            addrs: args.sentinels.clone(),
            master_name: args.master_name.clone(),
        },
        (Some(url), true) => RedisTarget::Url(url.clone()),
        (None, true) => anyhow::bail!("give --sentinels or --redis-url"),
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    actix_rt::System::new().block_on(async move {
        match cli.command {
            Cmd::Run(args) => run(args).await,
            Cmd::Cluster(args) => cluster::run(args).await,
            Cmd::BigRoom(args) => big_room::run(args).await,
            Cmd::Memory {
                engine_bin,
                rooms,
                sockets,
                work_dir,
                json,
            } => {
                let report = memory::measure(&engine_bin, &work_dir, rooms, sockets).await?;
                println!(
                    "memory: {:.0} bytes per idle room ({} rooms), {:.0} bytes per socket ({} sockets); RSS {} -> {} -> {} MiB",
                    report.bytes_per_room,
                    report.rooms,
                    report.bytes_per_socket,
                    report.sockets,
                    report.rss_start_bytes >> 20,
                    report.rss_rooms_bytes >> 20,
                    report.rss_sockets_bytes >> 20
                );
                write_json(&json, &report)
            }
            Cmd::Recovery {
                engine_bin,
                redis,
                rooms,
                events,
                events_per_append,
                work_dir,
                json,
            } => {
                let target = redis_target(&redis)?;
                let env = match &target {
                    RedisTarget::Url(url) => vec![("ROOMSTATE__REDIS__URL".to_owned(), url.clone())],
                    RedisTarget::Sentinels { addrs, master_name } => vec![
                        ("ROOMSTATE__REDIS__SENTINELS".to_owned(), addrs.join(",")),
                        ("ROOMSTATE__REDIS__MASTER_NAME".to_owned(), master_name.clone()),
                    ],
                };
                let report =
                    recovery::measure(&engine_bin, &work_dir, target, env, rooms, events, events_per_append).await?;
                println!(
                    "recovery: {} rooms x {} events ({} per append): journal filled in {:.1} s, Redis settled in {:.1} s; restart to serving in {:.2} s ({} rooms open)",
                    report.rooms, report.events_per_room, report.events_per_append, report.fill_s, report.settle_s, report.restart_s, report.rooms_after
                );
                write_json(&json, &report)
            }
        }
    })
}
