//! `roomstate-failover-demo`: the failover demo's driver (issue 3; `scripts/failover-demo` runs it
//! against a sentinel set and an engine of its own).
//!
//! Against a running engine whose journal is a Redis sentinel set, it creates a room, puts N
//! WebSocket voters in it that vote pro/con back and forth in a closed loop (each recording every
//! acknowledgement), then puts the Redis primary to sleep with `DEBUG SLEEP` past the sentinels'
//! `down-after-milliseconds` — as the seed experiment did — and watches: when the primary stopped,
//! when the sentinels promoted a replica, when the engine acknowledged again, when the old primary
//! woke up and was demoted. It then stops the voters, closes the room, reads the final record from
//! the engine's SQL store and compares every user's stored vote with the last vote the engine
//! acknowledged to that user. It prints a timeline and exits non-zero if an acknowledged vote is
//! missing or different in the final record.

use std::{
    cell::{Cell, RefCell},
    collections::BTreeMap,
    path::PathBuf,
    process::ExitCode,
    rc::Rc,
    time::{Duration, Instant},
};

use actix_rt as rt;
use anyhow::{anyhow, bail, Context, Result};
use awc::{
    error::WsProtocolError,
    ws::{Frame, Message},
};
use clap::Parser;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use redis::{aio::MultiplexedConnection, AsyncConnectionConfig};
use roomstate_core::{redact, room::RoomId};
use roomstate_journal::sentinel;
use roomstate_store::Store;
use roomstate_testkit::final_record;
use serde_json::{json, Value};

/// Pause after each answer, so one socket stays well under the engine's per-socket frame rate
/// (50/s by default). It paces the load; it waits for nothing.
const PACE: Duration = Duration::from_millis(30);
/// How often the sentinels and the old primary are polled.
const POLL: Duration = Duration::from_millis(50);
/// Timeout of one command to a sentinel or a server (not DEBUG SLEEP's connection).
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Parser)]
#[command(
    name = "roomstate-failover-demo",
    about = "Votes from many WebSocket clients while the Redis primary is put to sleep; prints the \
             failover timeline and checks every acknowledged vote against the final record"
)]
struct Args {
    /// The engine's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    engine: String,
    /// The engine's admin token (to close the room).
    #[arg(long)]
    token: String,
    /// The sentinels the engine uses, `host:port,host:port,...`.
    #[arg(long, value_delimiter = ',', required = true)]
    sentinels: Vec<String>,
    /// The sentinels' name for the primary.
    #[arg(long, default_value = "roomstate")]
    master_name: String,
    /// The engine's SQL store (`sqlite://path` or `mysql://...`), to read the final record.
    #[arg(long)]
    store_url: String,
    /// WebSocket voters (users voter0, voter1, ...).
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Load before the primary is put to sleep, in seconds.
    #[arg(long, default_value_t = 3.0)]
    warmup_secs: f64,
    /// The length of the DEBUG SLEEP, in seconds (longer than down-after-milliseconds).
    #[arg(long, default_value_t = 8)]
    sleep_secs: u64,
    /// Load after the engine resumed acknowledging, in seconds.
    #[arg(long, default_value_t = 5.0)]
    after_secs: f64,
    /// How long the promotion, the engine's resumption and the close may each take.
    #[arg(long, default_value_t = 60)]
    deadline_secs: u64,
    /// Also write a machine-readable summary here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[actix_rt::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("roomstate-failover-demo: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// What the voters share: the stop flag and the time of every acknowledgement.
#[derive(Default)]
struct Shared {
    stop: Cell<bool>,
    ack_times: RefCell<Vec<Instant>>,
}

/// What one voter saw.
#[derive(Debug, Default)]
struct VoterLog {
    user: String,
    /// The side of the last vote the engine acknowledged.
    last_acked: Option<&'static str>,
    /// A vote sent but neither acknowledged nor refused (the voter gave up on it).
    in_flight: Option<&'static str>,
    acked: u64,
    /// Seqs of the acknowledged votes.
    seqs: Vec<u64>,
    /// Request-to-ack time of each acknowledged vote.
    latencies: Vec<Duration>,
    /// `unavailable` (503) refusals.
    unavailable: u64,
    /// Any other refusal, by code.
    other_errors: BTreeMap<String, u64>,
    /// Why the voter stopped early, if it did.
    failure: Option<String>,
}

/// Events of the timeline, as offsets from the start of the load.
#[derive(Default)]
struct Timeline {
    events: RefCell<Vec<(Duration, String)>>,
}

impl Timeline {
    fn note(&self, at: Duration, what: impl Into<String>) {
        self.events.borrow_mut().push((at, what.into()));
    }

    /// The events, earliest first.
    fn sorted(&self) -> Vec<(Duration, String)> {
        let mut events = self.events.borrow().clone();
        events.sort_by_key(|(at, _)| *at);
        events
    }

    fn print(&self) {
        for (at, what) in self.sorted() {
            println!("t+{:>7.3}s  {what}", at.as_secs_f64());
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    let deadline = Duration::from_secs(args.deadline_secs);
    let http = awc::Client::builder()
        .max_http_version(awc::http::Version::HTTP_11)
        .timeout(Duration::from_secs(30))
        .finish();
    let engine = args.engine.trim_end_matches('/').to_owned();

    // The room and the voters.
    let room = create_room(&http, &engine).await?;
    let shared = Rc::new(Shared::default());
    let mut voters = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let user = format!("voter{i}");
        let url = format!("{}/rooms/{room}/ws?user={user}", ws_base(&engine));
        let (_, mut framed) = http
            .ws(url.as_str())
            .connect()
            .await
            .map_err(|e| anyhow!("WebSocket connect to {url}: {e}"))?;
        next_json_of(&mut framed, |f| f["type"] == "state", deadline)
            .await
            .with_context(|| format!("the first state frame of {user}"))?;
        voters.push((user, framed));
    }

    let t0 = Instant::now();
    let timeline = Rc::new(Timeline::default());
    let since = move |at: Instant| at.saturating_duration_since(t0);
    println!(
        "failover demo: engine {engine}, sentinels {}, t0 = {}",
        args.sentinels.join(","),
        roomstate_core::time::format(&roomstate_core::time::now())
    );
    timeline.note(
        Duration::ZERO,
        format!("load started: {} clients in room {room}", args.clients),
    );
    let tasks: Vec<_> = voters
        .into_iter()
        .enumerate()
        .map(|(i, (user, framed))| {
            let shared = shared.clone();
            rt::spawn(vote_until_stopped(framed, user, i, shared, deadline))
        })
        .collect();

    // Warm-up, then put the primary to sleep.
    rt::time::sleep(Duration::from_secs_f64(args.warmup_secs)).await;
    let mut sentinels = Sentinels::new(&args.sentinels, &args.master_name);
    let old_primary = sentinels
        .primary()
        .await
        .context("asking the sentinels for the primary")?;
    let acks_before = shared.ack_times.borrow().len();
    if acks_before == 0 {
        bail!(
            "no vote was acknowledged during the {} s warm-up",
            args.warmup_secs
        );
    }
    let sleep_sent = debug_sleep(&old_primary, args.sleep_secs, timeline.clone(), t0).await?;
    timeline.note(
        since(sleep_sent),
        format!(
            "DEBUG SLEEP {} sent to primary {old_primary}",
            args.sleep_secs
        ),
    );
    eprintln!("primary {old_primary} put to sleep; waiting for the sentinels to promote a replica");

    // The promotion.
    let (new_primary, promoted_at) = sentinels
        .wait_for_other(&old_primary, deadline)
        .await
        .context("waiting for the sentinels to promote a replica")?;
    timeline.note(
        since(promoted_at),
        format!("sentinels promoted {new_primary}"),
    );
    let watcher = rt::spawn(watch_old_primary(
        old_primary.clone(),
        sleep_sent + Duration::from_secs(args.sleep_secs),
        timeline.clone(),
        t0,
        Duration::from_secs(args.sleep_secs) + deadline,
    ));

    // The engine acknowledges again.
    let resumed_seen = wait_until(deadline, || {
        shared
            .ack_times
            .borrow()
            .last()
            .is_some_and(|at| *at >= promoted_at)
    })
    .await;
    if !resumed_seen {
        eprintln!(
            "the engine did not acknowledge within {} s after the promotion",
            deadline.as_secs()
        );
    } else {
        eprintln!(
            "the engine acknowledges again; {} s more load",
            args.after_secs
        );
        rt::time::sleep(Duration::from_secs_f64(args.after_secs)).await;
    }

    // Stop the load: each voter finishes its current request.
    shared.stop.set(true);
    let stop_at = Instant::now();
    let mut logs = Vec::new();
    for task in tasks {
        logs.push(task.await.context("a voter task panicked")?);
    }
    timeline.note(since(stop_at), "load stopped");

    // Where did acknowledgements stop and resume? The longest gap between two acknowledgements
    // that ends after DEBUG SLEEP was sent.
    let ack_times = shared.ack_times.borrow().clone();
    let stall = longest_gap_after(&ack_times, sleep_sent);
    if let Some((last, first)) = stall {
        timeline.note(since(last), "last ack before the stall");
        timeline.note(
            since(first),
            format!(
                "engine resumed acking (stall {:.3} s)",
                (first - last).as_secs_f64()
            ),
        );
    }

    // Close the room (the journal may still answer 503 for a moment) and read the record.
    let (final_view, closed_at) = close_room(&http, &engine, &args.token, &room, deadline).await?;
    timeline.note(
        since(closed_at),
        format!(
            "room closed: seq {}, pro {}, con {}",
            final_view["seq"], final_view["pro"], final_view["con"]
        ),
    );
    let stored = stored_votes(&args.store_url, &room).await?;
    let failovers = engine_failovers(&http, &engine, &args.token).await;

    // Let the watcher report the old primary's wake-up and demotion, if it has not yet.
    let _ = rt::time::timeout(
        Duration::from_secs(args.sleep_secs) + Duration::from_secs(15),
        watcher,
    )
    .await;

    // Compare.
    let check = compare(&logs, &stored, &final_view);

    println!();
    timeline.print();
    println!();
    let acked: u64 = logs.iter().map(|l| l.acked).sum();
    let unavailable: u64 = logs.iter().map(|l| l.unavailable).sum();
    let mut other_errors: BTreeMap<String, u64> = BTreeMap::new();
    for log in &logs {
        for (code, n) in &log.other_errors {
            *other_errors.entry(code.clone()).or_default() += n;
        }
    }
    let promotion_after_sleep = promoted_at.saturating_duration_since(sleep_sent);
    println!(
        "primary {old_primary} -> {new_primary}: sentinels promoted {:.3} s after DEBUG SLEEP",
        promotion_after_sleep.as_secs_f64()
    );
    if let Some((last, first)) = stall {
        let after_promotion = first.checked_duration_since(promoted_at).map_or_else(
            || {
                format!(
                    "{:.3} s before this driver saw the promotion (it polls every {} ms)",
                    promoted_at.duration_since(first).as_secs_f64(),
                    POLL.as_millis()
                )
            },
            |d| format!("{:.3} s after the promotion", d.as_secs_f64()),
        );
        println!(
            "writes stalled {:.3} s; the engine resumed acking {after_promotion}",
            (first - last).as_secs_f64()
        );
    }
    let mut latencies: Vec<Duration> = logs.iter().flat_map(|l| l.latencies.clone()).collect();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let (p50, p99, max) = (pct(0.5), pct(0.99), pct(1.0));
    println!(
        "request-to-ack latency: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.0} ms (the votes caught in the stall)"
    );
    if let Some(n) = failovers {
        println!("the engine counted {n} failover(s) (/admin/stats)");
    }
    let others = if other_errors.is_empty() {
        String::new()
    } else {
        format!(", other refusals {other_errors:?}")
    };
    println!(
        "acknowledged: {acked} votes ({unavailable} refused with 503{others}); final record: {} \
         users, {} match their last acknowledged vote, {} differ",
        stored.len(),
        check.matching,
        check.problems.len()
    );
    for problem in &check.problems {
        println!("  MISMATCH {problem}");
    }
    for log in logs.iter().filter(|l| l.failure.is_some()) {
        println!(
            "  note: {} stopped early: {}",
            log.user,
            log.failure.as_deref().unwrap_or_default()
        );
    }
    let ok = check.problems.is_empty();
    println!(
        "{}",
        if ok {
            "OK: every acknowledged vote is in the final record"
        } else {
            "FAILED: acknowledged votes are missing or different in the final record"
        }
    );

    if let Some(path) = &args.json {
        let secs = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
        let summary = json!({
            "ok": ok,
            "room": room,
            "clients": args.clients,
            "old_primary": old_primary,
            "new_primary": new_primary,
            "sleep_secs": args.sleep_secs,
            "t_sleep_sent": secs(since(sleep_sent)),
            "t_promoted": secs(since(promoted_at)),
            "t_last_ack_before_stall": stall.map(|(last, _)| secs(since(last))),
            "t_resumed": stall.map(|(_, first)| secs(since(first))),
            "stall_s": stall.map(|(last, first)| secs(first - last)),
            "promotion_after_sleep_s": secs(promotion_after_sleep),
            "engine_failovers": failovers,
            "ack_latency_ms": {"p50": p50, "p99": p99, "max": max},
            "acked_votes": acked,
            "refused_unavailable": unavailable,
            "other_refusals": other_errors,
            "final_users": stored.len(),
            "final_seq": final_view["seq"],
            "matching": check.matching,
            "problems": check.problems,
            "timeline": timeline.sorted().iter().map(|(at, what)| {
                json!({"t": secs(*at), "event": what})
            }).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&summary).context("encoding the summary")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ok)
}

/// `http://host:port` -> `ws://host:port` (https -> wss).
fn ws_base(engine: &str) -> String {
    if let Some(rest) = engine.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = engine.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        engine.to_owned()
    }
}

async fn create_room(http: &awc::Client, engine: &str) -> Result<String> {
    let mut response = http
        .post(format!("{engine}/rooms"))
        .send_json(&json!({"title": "Failover demo: is the primary awake?"}))
        .await
        .map_err(|e| anyhow!("POST {engine}/rooms: {e}"))?;
    let body: Value = response
        .json()
        .await
        .map_err(|e| anyhow!("reading the created room: {e}"))?;
    if response.status().as_u16() != 201 {
        bail!("POST /rooms answered {}: {body}", response.status());
    }
    body["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the created room has no id: {body}"))
}

/// Closes the room, retrying while the engine answers 503; returns the final view.
async fn close_room(
    http: &awc::Client,
    engine: &str,
    token: &str,
    room: &str,
    deadline: Duration,
) -> Result<(Value, Instant)> {
    let until = Instant::now() + deadline;
    loop {
        let url = format!("{engine}/admin/rooms/{room}/close");
        let result = http
            .post(url.as_str())
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| anyhow!("POST {url}: {e}"));
        let answer = match result {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let body: Value = response
                    .json()
                    .await
                    .map_err(|e| anyhow!("reading the close answer: {e}"))?;
                match status {
                    200 => return Ok((body, Instant::now())),
                    503 => format!("503: {body}"),
                    _ => bail!("closing the room answered {status}: {body}"),
                }
            }
            Err(error) => format!("{error:#}"),
        };
        if Instant::now() >= until {
            bail!(
                "the room did not close within {} s; last answer {answer}",
                deadline.as_secs()
            );
        }
        rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The final votes stored for `room`, by user.
async fn stored_votes(store_url: &str, room: &str) -> Result<BTreeMap<String, String>> {
    let id = RoomId::parse(room).map_err(|e| anyhow!("room id {room}: {e}"))?;
    let url = store_url.to_owned();
    let store = rt::task::spawn_blocking(move || Store::open(&url))
        .await
        .context("opening the store panicked")?
        .with_context(|| format!("opening the store {}", redact::url(store_url)))?;
    let votes = store
        .votes(&id)
        .await
        .with_context(|| format!("reading the final votes of {room}"))?;
    Ok(votes
        .into_iter()
        .map(|(user, side)| (user.to_string(), side.as_str().to_owned()))
        .collect())
}

/// The engine's count of primary switches, if /admin/stats answers.
async fn engine_failovers(http: &awc::Client, engine: &str, token: &str) -> Option<u64> {
    let mut response = http
        .get(format!("{engine}/admin/stats"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    let stats: Value = response.json().await.ok()?;
    stats["failovers"].as_u64()
}

/// How the final record compares with the acknowledgements.
struct Check {
    matching: usize,
    problems: Vec<String>,
}

/// Every voter's last acknowledged vote must be its stored vote; the tally must agree with the
/// stored votes; no seq may be acknowledged twice or above the final seq.
fn compare(logs: &[VoterLog], stored: &BTreeMap<String, String>, final_view: &Value) -> Check {
    let mut matching = 0;
    let mut problems = Vec::new();
    for log in logs {
        let found = stored.get(&log.user).map(String::as_str);
        match (log.last_acked, found) {
            (Some(acked), Some(found)) if acked == found => matching += 1,
            // A later vote was sent and never answered (the voter gave up): it may have landed.
            (Some(_), found) if log.in_flight.is_some() && found == log.in_flight => matching += 1,
            (Some(acked), found) => problems.push(format!(
                "{}: last acknowledged vote {acked}, final record {}",
                log.user,
                found.unwrap_or("none")
            )),
            (None, None) => {}
            (None, Some(found)) if log.in_flight == Some(found) => {}
            (None, Some(found)) => problems.push(format!(
                "{}: no vote acknowledged, final record {found}",
                log.user
            )),
        }
    }
    let known: std::collections::BTreeSet<&str> = logs.iter().map(|l| l.user.as_str()).collect();
    for user in stored.keys().filter(|u| !known.contains(u.as_str())) {
        problems.push(format!("{user}: in the final record but not a voter"));
    }
    problems.extend(final_record::tally_mismatch(stored, final_view));
    problems.extend(final_record::seq_problems(
        logs.iter().flat_map(|l| l.seqs.iter().copied()),
        final_view,
    ));
    Check { matching, problems }
}

/// The longest gap between consecutive acknowledgements that ends after `after`: (last ack
/// before it, first ack after it).
fn longest_gap_after(times: &[Instant], after: Instant) -> Option<(Instant, Instant)> {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted
        .windows(2)
        .filter(|w| w[1] > after)
        .map(|w| (w[0], w[1]))
        .max_by_key(|(a, b)| *b - *a)
}

/// Polls `done` every few ms until it holds (true) or `deadline` passes (false).
async fn wait_until(deadline: Duration, done: impl Fn() -> bool) -> bool {
    let until = Instant::now() + deadline;
    while !done() {
        if Instant::now() >= until {
            return false;
        }
        rt::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// One voter: votes pro/con back and forth until `stop`, finishing the request under way.
async fn vote_until_stopped<S>(
    mut framed: S,
    user: String,
    offset: usize,
    shared: Rc<Shared>,
    deadline: Duration,
) -> VoterLog
where
    S: Stream<Item = Result<Frame, WsProtocolError>>
        + Sink<Message, Error = WsProtocolError>
        + Unpin,
{
    let mut log = VoterLog {
        user: user.clone(),
        ..VoterLog::default()
    };
    let mut n: u64 = 0;
    while !shared.stop.get() {
        n += 1;
        let req = format!("{user}-{n}");
        let side = if (n as usize + offset).is_multiple_of(2) {
            "pro"
        } else {
            "con"
        };
        let frame = json!({"type": "vote", "side": side, "req": req});
        log.in_flight = Some(side);
        let sent = Instant::now();
        if let Err(error) = framed.send(Message::Text(frame.to_string().into())).await {
            log.failure = Some(format!("sending a vote: {error}"));
            return log;
        }
        let is_answer =
            |f: &Value| (f["type"] == "ack" || f["type"] == "error") && f["req"] == req.as_str();
        let answer = match next_json_of(&mut framed, is_answer, deadline).await {
            Ok(answer) => answer,
            Err(error) => {
                log.failure = Some(format!("{error:#}"));
                return log;
            }
        };
        log.in_flight = None;
        if answer["type"] == "ack" {
            let now = Instant::now();
            shared.ack_times.borrow_mut().push(now);
            log.latencies.push(now - sent);
            log.acked += 1;
            log.last_acked = Some(side);
            if let Some(seq) = answer["seq"].as_u64() {
                log.seqs.push(seq);
            }
        } else {
            match answer["error"].as_str() {
                Some("unavailable") => log.unavailable += 1,
                code => {
                    *log.other_errors
                        .entry(code.unwrap_or("?").to_owned())
                        .or_default() += 1
                }
            }
        }
        rt::time::sleep(PACE).await;
    }
    log.in_flight = None;
    let _ = framed.send(Message::Close(None)).await;
    log
}

/// The next JSON text frame satisfying `wanted`, answering pings on the way.
async fn next_json_of<S>(
    framed: &mut S,
    wanted: impl Fn(&Value) -> bool,
    deadline: Duration,
) -> Result<Value>
where
    S: Stream<Item = Result<Frame, WsProtocolError>>
        + Sink<Message, Error = WsProtocolError>
        + Unpin,
{
    let until = Instant::now() + deadline;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let frame = rt::time::timeout(left, framed.next())
            .await
            .map_err(|_| anyhow!("no answer within {} s", deadline.as_secs()))?;
        match frame {
            None => bail!("the socket closed"),
            Some(Err(error)) => bail!("the socket broke: {error}"),
            Some(Ok(Frame::Text(bytes))) => {
                let value: Value =
                    serde_json::from_slice(&bytes).context("a server frame that is not JSON")?;
                if value["type"] == "closed" {
                    bail!("the room was closed");
                }
                if wanted(&value) {
                    return Ok(value);
                }
            }
            Some(Ok(Frame::Ping(bytes))) => {
                let _ = framed.send(Message::Pong(bytes)).await;
            }
            Some(Ok(Frame::Close(reason))) => bail!("the server closed the socket: {reason:?}"),
            Some(Ok(_)) => {}
        }
    }
}

fn redis_config(timeout: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(timeout))
}

async fn connect(addr: &str, timeout: Duration) -> Result<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}"))
        .with_context(|| format!("redis address {addr}"))?;
    client
        .get_multiplexed_async_connection_with_config(&redis_config(timeout))
        .await
        .with_context(|| format!("connecting to {addr}"))
}

/// Sends `DEBUG SLEEP secs` to `addr` on a connection of its own and returns when it was sent;
/// a background task notes when the server answers again (it wakes up).
async fn debug_sleep(
    addr: &str,
    secs: u64,
    timeline: Rc<Timeline>,
    t0: Instant,
) -> Result<Instant> {
    let mut conn = connect(addr, Duration::from_secs(secs + 30)).await?;
    let addr = addr.to_owned();
    let sent = Instant::now();
    rt::spawn(async move {
        let reply: redis::RedisResult<()> = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(secs)
            .query_async(&mut conn)
            .await;
        let at = Instant::now().saturating_duration_since(t0);
        match reply {
            Ok(()) => timeline.note(
                at,
                format!("old primary {addr} woke up (DEBUG SLEEP returned)"),
            ),
            Err(error) => timeline.note(at, format!("DEBUG SLEEP on {addr} failed: {error}")),
        }
    });
    // Let the task write the command before anything else runs.
    rt::task::yield_now().await;
    Ok(sent)
}

/// After the old primary's sleep, notes what it says it is when it wakes and when it is demoted.
async fn watch_old_primary(
    addr: String,
    wakes: Instant,
    timeline: Rc<Timeline>,
    t0: Instant,
    deadline: Duration,
) {
    let until = Instant::now() + deadline;
    rt::time::sleep_until(wakes.into()).await;
    let mut first_role: Option<String> = None;
    let mut conn: Option<MultiplexedConnection> = None;
    while Instant::now() < until {
        if conn.is_none() {
            conn = connect(&addr, REDIS_TIMEOUT).await.ok();
        }
        if let Some(c) = conn.as_mut() {
            let role: redis::RedisResult<Vec<redis::Value>> =
                redis::cmd("ROLE").query_async(c).await;
            match role.ok().and_then(|r| r.into_iter().next()) {
                Some(value) => {
                    let role: String = redis::from_redis_value(value).unwrap_or_default();
                    let at = Instant::now().saturating_duration_since(t0);
                    if first_role.is_none() {
                        first_role = Some(role.clone());
                        if role == "master" {
                            timeline.note(
                                at,
                                format!(
                                    "old primary {addr} answers again, still calling itself master"
                                ),
                            );
                        }
                    }
                    if role == "slave" {
                        timeline.note(at, format!("old primary {addr} is a replica now"));
                        return;
                    }
                }
                None => conn = None,
            }
        }
        rt::time::sleep(POLL).await;
    }
}

/// The sentinels the engine uses, asked on fresh connections with short timeouts.
struct Sentinels {
    addrs: Vec<String>,
    master: String,
    config: AsyncConnectionConfig,
}

impl Sentinels {
    fn new(addrs: &[String], master: &str) -> Self {
        Sentinels {
            addrs: addrs.to_vec(),
            master: master.to_owned(),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(REDIS_TIMEOUT))
                .set_response_timeout(Some(REDIS_TIMEOUT)),
        }
    }

    /// Each sentinel's answer to `get-master-addr-by-name` (None: no answer).
    async fn ask_all(&mut self) -> Vec<Option<String>> {
        sentinel::ask_all(&self.addrs, &self.master, &self.config).await
    }

    /// The primary a majority of the sentinels names.
    async fn primary(&mut self) -> Result<String> {
        let answers = self.ask_all().await;
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for answer in answers.iter().flatten() {
            *votes.entry(answer.as_str()).or_default() += 1;
        }
        let majority = self.addrs.len() / 2 + 1;
        let primary = votes
            .into_iter()
            .find(|(_, n)| *n >= majority)
            .map(|(addr, _)| addr.to_owned());
        primary.ok_or_else(|| anyhow!("no majority of the sentinels names a primary: {answers:?}"))
    }

    /// Polls until a sentinel names a primary other than `old`; returns it and when it was seen.
    async fn wait_for_other(&mut self, old: &str, deadline: Duration) -> Result<(String, Instant)> {
        let until = Instant::now() + deadline;
        loop {
            let answers = self.ask_all().await;
            let seen = Instant::now();
            if let Some(new) = answers.into_iter().flatten().find(|a| a != old) {
                return Ok((new, seen));
            }
            if Instant::now() >= until {
                bail!(
                    "no sentinel named a new primary within {} s",
                    deadline.as_secs()
                );
            }
            rt::time::sleep(POLL).await;
        }
    }
}
