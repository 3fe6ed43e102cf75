//! `roomstate-load big-room`: one room, many sockets (default 2000), votes at a fixed open-loop
//! rate (default 1000/s) and a few chat messages spread round robin over them. It measures what
//! the issue asks of a big room:
//!
//! - **state visibility**: for every acknowledged vote (seq `s`, ack at `t`) and every socket,
//!   the time from `t` until that socket first received a `state` frame with a seq of at least
//!   `s` (docs/api.md: intermediate states may be skipped, the newest goes out within 100 ms);
//!   p50/p99/max over all (vote, socket) pairs, in an HDR histogram;
//! - **message delivery**: every chat message reaches every socket (missing ones counted per
//!   socket), and how long after its ack;
//! - **CPU per delivered frame**: the engine's CPU over the measured window (`--cpu
//!   engine=PID`, from `/proc`) divided by the frames the sockets received in it (every type),
//!   and per ack.
//!
//! The sockets run on this one thread and read only a frame's type, seq and req (`peek`), since
//! they share the cores with the engine; the load generator's own CPU is reported beside the
//! engine's (a saturated client would show in the delays).

mod acks;
mod client;
mod report;
mod schedule;
mod visibility;

use std::{
    cell::{Cell, RefCell},
    collections::BTreeMap,
    path::PathBuf,
    rc::Rc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Args;
use futures_util::future::join_all;
use tokio::sync::mpsc;

use self::{
    acks::Acks,
    client::{FrameCount, Progress, Seen, Window},
    report::{BigRoomSummary, CpuShare},
    schedule::Rates,
    visibility::{Match, Since},
};
use crate::{cpu, engine, stats::LatencyMs};

/// Sockets connecting at once.
const CONNECT_AT_ONCE: usize = 32;
/// How long after the schedule ends answers are still awaited.
const ANSWER_GRACE: Duration = Duration::from_secs(30);
/// How long after the last answer the sockets may take to show the last state and message.
const CATCH_UP: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct BigRoomArgs {
    /// Engine base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Sockets in the room, each its own user.
    #[arg(long, default_value_t = 2000)]
    sockets: usize,
    /// Votes per second over all sockets (open loop); each socket switches side every time.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Chat messages per second over all sockets (open loop).
    #[arg(long, default_value_t = 20.0)]
    messages_per_s: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Name for this run in the summary.
    #[arg(long, default_value = "big-room")]
    label: String,
    /// Append the JSON summary to this file (one JSON object per line).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Report the CPU time of this process over the measured window: `NAME=PID` (repeatable;
    /// `engine=PID` gives the CPU per delivered frame).
    #[arg(long)]
    cpu: Vec<cpu::Watched>,
}

/// A socket of the run: where its requests go, what it shows meanwhile, what it saw in the end.
struct Member {
    requests: mpsc::UnboundedSender<client::Request>,
    progress: Rc<Progress>,
    task: actix_rt::task::JoinHandle<Seen>,
}

/// As many open files as the hard limit allows: 2000 sockets pass the usual soft limit of 1024.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Opens `count` sockets to `room`, each read by its own task from the moment it is connected.
async fn connect_all(
    base: &str,
    room: &str,
    count: usize,
    acks: &Rc<RefCell<Acks>>,
    window: &Rc<Cell<Option<Window>>>,
) -> anyhow::Result<Vec<Member>> {
    let ws_base = base.replacen("http", "ws", 1);
    let mut members = Vec::with_capacity(count);
    let indexes: Vec<usize> = (0..count).collect();
    for chunk in indexes.chunks(CONNECT_AT_ONCE) {
        let connected = join_all(chunk.iter().map(|k| {
            let url = format!("{ws_base}/rooms/{room}/ws?user=u{k}");
            async move { engine::connect(&url).await }
        }))
        .await;
        for (k, framed) in chunk.iter().zip(connected) {
            let framed = framed.with_context(|| format!("socket {k} of {count}"))?;
            let (requests, receiver) = mpsc::unbounded_channel();
            let progress = Rc::new(Progress::default());
            let task = actix_rt::spawn(client::run(
                framed,
                k % 2 == 0,
                receiver,
                acks.clone(),
                progress.clone(),
                window.clone(),
            ));
            members.push(Member {
                requests,
                progress,
                task,
            });
        }
    }
    Ok(members)
}

/// Waits until `done` holds, checking every 20 ms, at most until `deadline`.
async fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) {
    while !done() && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(args: BigRoomArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.sockets > 0, "--sockets must be at least 1");
    raise_open_files_limit();
    let room = engine::create_rooms(&args.url, 1)
        .await?
        .pop()
        .context("no room created")?;
    let acks = Rc::new(RefCell::new(Acks::default()));
    let shared_window = Rc::new(Cell::new(None));
    let connecting = Instant::now();
    let members = connect_all(&args.url, &room, args.sockets, &acks, &shared_window).await?;
    let connect_s = connecting.elapsed().as_secs_f64();

    let start = Instant::now();
    let from = start + Duration::from_secs_f64(args.warmup);
    let window = Window {
        from,
        until: from + Duration::from_secs_f64(args.duration),
    };
    shared_window.set(Some(window));
    acks.borrow_mut().window = Some(window);
    let mut watched = args.cpu.clone();
    watched.push(cpu::Watched {
        name: "load-generator".to_owned(),
        pid: std::process::id(),
    });
    let cpu_window =
        actix_rt::spawn(async move { cpu::over_window(&watched, window.from, window.until).await });

    let bar = crate::progress(args.warmup + args.duration, &args.label);
    let ticker = crate::tick(&bar, None);
    let senders: Vec<_> = members.iter().map(|m| m.requests.clone()).collect();
    let rates = Rates {
        votes: args.rate,
        messages: args.messages_per_s,
    };
    schedule::run(&senders, rates, start, window.until, &acks).await;
    drop(senders);
    ticker.abort();
    bar.finish_and_clear();

    // Every answer, then every socket showing the last acknowledged vote and message.
    wait_until(window.until + ANSWER_GRACE, || {
        acks.borrow().outstanding() == 0
    })
    .await;
    let (last_vote, last_message) = {
        let acks = acks.borrow();
        let last = |list: &[acks::Acked]| list.iter().map(|a| a.seq).max().unwrap_or(0);
        (last(&acks.votes), last(&acks.messages))
    };
    wait_until(Instant::now() + CATCH_UP, || {
        members.iter().all(|m| {
            let p = &m.progress;
            p.lost.get()
                || (p.max_state_seq.get() >= last_vote && p.max_message_seq.get() >= last_message)
        })
    })
    .await;

    let mut seen = Vec::with_capacity(members.len());
    for member in members {
        drop(member.requests);
        seen.push(member.task.await.context("socket task")?);
    }
    let used = cpu_window.await.context("CPU sampler")??;
    let summary = summarize(&args, connect_s, window, &acks.borrow(), &seen, used);
    println!("{}", summary.line());
    crate::write_json(&args.json, &summary)
}

fn summarize(
    args: &BigRoomArgs,
    connect_s: f64,
    window: Window,
    acks: &Acks,
    seen: &[Seen],
    used: BTreeMap<String, cpu::Used>,
) -> BigRoomSummary {
    let states = || seen.iter().map(|s| s.states.as_slice());
    let messages = || seen.iter().map(|s| s.messages.as_slice());
    let visibility =
        |since| visibility::measure(&acks.votes, states(), Match::AtLeast, since, window).summary();
    let delivery = |since| {
        visibility::measure(&acks.messages, messages(), Match::Exactly, since, window).summary()
    };
    let mut frames = FrameCount::default();
    for s in seen {
        frames.add(&s.frames);
    }
    let delivered = frames.total();
    let seconds = args.duration;
    let per = |cpu_s: f64, n: u64| {
        if n > 0 {
            cpu_s * 1e6 / n as f64
        } else {
            0.0
        }
    };
    let cpu = used
        .into_iter()
        .map(|(name, cpu::Used { pid, cpu_s, .. })| {
            let share = CpuShare {
                pid,
                cpu_s,
                cores: cpu_s / seconds,
                us_per_ack: per(cpu_s, acks.acked_in_window),
                us_per_frame: per(cpu_s, delivered),
            };
            (name, share)
        })
        .collect();
    let in_window = |list: &[acks::Acked]| list.iter().filter(|a| window.holds(a.due)).count();
    let lost: Vec<&str> = seen.iter().filter_map(|s| s.lost.as_deref()).collect();
    if let Some(first) = lost.first() {
        eprintln!("{} sockets ended early; the first: {first}", lost.len());
    }
    BigRoomSummary {
        kind: "big-room",
        target: args.label.clone(),
        sockets: args.sockets,
        vote_rate: args.rate,
        message_rate: args.messages_per_s,
        duration_s: seconds,
        connect_s,
        votes_acked: in_window(&acks.votes) as u64,
        messages_acked: in_window(&acks.messages) as u64,
        acked_in_window: acks.acked_in_window,
        refused: acks.refused,
        failed: acks.failed,
        ack_latency_ms: LatencyMs::of(&acks.latency),
        state_visibility: visibility(Since::Ack),
        state_visibility_since_request: visibility(Since::Request),
        message_delivery: delivery(Since::Ack),
        message_delivery_since_request: delivery(Since::Request),
        state_regressions: seen.iter().map(|s| s.regressions).sum(),
        sockets_lost: lost.len(),
        frames,
        frames_delivered: delivered,
        frames_per_s: delivered as f64 / seconds,
        cpu,
    }
}
