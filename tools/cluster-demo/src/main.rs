//! `roomstate-cluster-demo`: the cluster demo's driver (issue 9; `scripts/cluster-demo` builds
//! and runs it).
//!
//! It starts everything it needs with the test kit — a Redis sentinel set of its own, a MariaDB
//! database of its own (or the store at `--store-url`), and three `roomstate` nodes in cluster
//! mode on them — creates a room, and spreads WebSocket voters over the nodes. Each voter sticks
//! to its node, votes pro/con back and forth and now and then posts a chat message, and moves to
//! another node only when it loses its own; a request whose outcome it could not know (its socket
//! went, or a `503`) is sent again, the same, until acknowledged. Then it kills the node that owns
//! the room (SIGKILL), waits for a survivor to take the lease over and for writes to resume,
//! pauses the new owner past its lease (SIGSTOP), waits for the last node to take over, resumes
//! the paused node (SIGCONT) and waits for it to answer its clients again, restarts the killed
//! node, and stops the load. It closes the room, reads the final record from the store and holds
//! it against every acknowledgement. It prints a timeline and exits non-zero if an acknowledged
//! vote or message is missing or different in the final record.

use std::{
    cell::{Cell, RefCell},
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::ExitCode,
    rc::Rc,
    time::{Duration, Instant},
};

use actix_rt as rt;
use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use roomstate_core::{redact, room::RoomId};
use roomstate_store::Store;
use roomstate_testkit::{
    cluster::{Roster, TestCluster},
    engine::{workspace_binary, DropPolicy},
    final_record,
    mysql::TestDatabase,
    sentinel_set::SentinelSet,
    ws::{Incoming, WsClient},
};
use serde_json::{json, Value};

/// Pause after each answer, so one socket stays well under the engine's per-socket frame rate
/// (50/s by default). It paces the load; it waits for nothing.
const PACE: Duration = Duration::from_millis(30);
/// Pause before a refused request is sent again, or a connection is tried again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How often the driver looks at what the voters saw.
const POLL: Duration = Duration::from_millis(20);
/// Every this-many-th request of a voter is a chat message.
const SAY_EVERY: u64 = 5;

#[derive(Debug, Parser)]
#[command(
    name = "roomstate-cluster-demo",
    about = "Three roomstate nodes on one sentinel set and one store, WebSocket voters spread \
             over them; kills the room's owner, pauses the next one past its lease; prints the \
             timeline and checks every acknowledgement against the final record"
)]
struct Args {
    /// WebSocket voters (users voter0, voter1, ...), spread over the nodes.
    #[arg(long, default_value_t = 12)]
    clients: usize,
    /// Every node's `cluster.lease_ms`.
    #[arg(long, default_value_t = 1500)]
    lease_ms: u64,
    /// Load before the owner is killed, in seconds.
    #[arg(long, default_value_t = 3.0)]
    warmup_secs: f64,
    /// How long the second node stays paused, in seconds (default: three leases).
    #[arg(long)]
    pause_secs: Option<f64>,
    /// Load after the last disruption, in seconds.
    #[arg(long, default_value_t = 3.0)]
    after_secs: f64,
    /// The SQL store (`mysql://...`); default: a MariaDB database of the demo's own on the test
    /// server (`ROOMSTATE_TEST_MYSQL_URL`, else roomstate@127.0.0.1:3306), dropped at the end.
    #[arg(long)]
    store_url: Option<String>,
    /// The `roomstate` binary; default: the one next to this driver.
    #[arg(long)]
    engine_bin: Option<PathBuf>,
    /// Keep the nodes' data dirs and logs here (`node-<i>/engine.log`); default: a temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// How long a takeover, a resumption, a voter's answer and the close may each take.
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
            eprintln!("roomstate-cluster-demo: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// One acknowledgement: when its request went out, when the ack came, through which node.
#[derive(Debug, Clone, Copy)]
struct Ack {
    sent: Instant,
    at: Instant,
    node: usize,
}

/// What the voters share: the stop flag and every acknowledgement.
#[derive(Default)]
struct Shared {
    stop: Cell<bool>,
    acks: RefCell<Vec<Ack>>,
}

impl Shared {
    /// When the first acknowledgement came of a request sent after `after` (through `node`, if
    /// given).
    fn first_ack_sent_after(&self, after: Instant, node: Option<usize>) -> Option<Ack> {
        self.acks
            .borrow()
            .iter()
            .filter(|a| a.sent > after && node.is_none_or(|n| a.node == n))
            .min_by_key(|a| a.at)
            .copied()
    }
}

/// What one voter saw.
#[derive(Debug, Default)]
struct VoterLog {
    user: String,
    /// Every node it was connected to, in order.
    nodes: Vec<usize>,
    /// The side of the user's vote for sure (the last acknowledged vote).
    side: Option<&'static str>,
    /// Acknowledged chat messages: (seq, text).
    messages: Vec<(u64, String)>,
    /// Seqs of acknowledgements that each took a seq of their own (a vote sent once, a message).
    own_seqs: Vec<u64>,
    acked: u64,
    /// `503 unavailable` answers (each request was sent again).
    refused: u64,
    /// Sockets lost under a request (sent again through another node).
    lost: u64,
    /// A request neither acknowledged nor settled when the voter gave up (it may have landed).
    in_flight: Option<Request>,
    /// Why the voter stopped early, if it did.
    failure: Option<String>,
}

#[derive(Debug, Clone)]
enum Request {
    Vote(&'static str),
    Say(String),
}

/// Events of the timeline, as offsets from the start of the load.
#[derive(Default)]
struct Timeline {
    events: RefCell<Vec<(Duration, String)>>,
}

impl Timeline {
    fn note(&self, at: Duration, what: impl Into<String>) {
        let what = what.into();
        eprintln!("t+{:>7.3}s  {what}", at.as_secs_f64());
        self.events.borrow_mut().push((at, what));
    }

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
    let lease = Duration::from_millis(args.lease_ms);
    let pause_for = args.pause_secs.map_or(lease * 3, Duration::from_secs_f64);
    if pause_for <= lease {
        bail!(
            "--pause-secs {:.3} is not past the lease ({} ms): the paused node would keep its room",
            pause_for.as_secs_f64(),
            args.lease_ms
        );
    }
    let bin = match &args.engine_bin {
        Some(bin) => bin.clone(),
        None => workspace_binary("roomstate").map_err(|e| anyhow!("{e}"))?,
    };

    // The pieces: a sentinel set, the store, three nodes.
    eprintln!("starting a Redis sentinel set (1 primary, 2 replicas, 3 sentinels)");
    let set = SentinelSet::start().await;
    let (_db, store_url) = match &args.store_url {
        Some(url) => (None, url.clone()),
        None => {
            let db = TestDatabase::create();
            let url = db.url();
            (Some(db), url)
        }
    };
    eprintln!(
        "starting 3 nodes ({}, store {})",
        bin.display(),
        redact::url(&store_url)
    );
    let mut builder = TestCluster::builder(&bin)
        .nodes(3)
        .lease_ms(args.lease_ms)
        .on_drop(DropPolicy::Terminate);
    if let Some(dir) = &args.dir {
        builder = builder.dir(dir);
    }
    let mut cluster = builder.start(&set, &store_url).await;
    let roster = cluster.roster();
    let name = |i: usize| roster.id(i);

    // The room and the voters.
    let room = cluster
        .create_room(0, "Cluster demo: which node is awake?")
        .await;
    let first = cluster.owner_of(&room).await;
    let shared = Rc::new(Shared::default());
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        let user = format!("voter{i}");
        let home = i % cluster.len();
        let link = connect(&roster, &room, &user, home, deadline)
            .await
            .map_err(|e| anyhow!("{user}: {e}"))?;
        tasks.push(rt::spawn(vote_until_stopped(
            link,
            roster.clone(),
            room.clone(),
            user,
            i,
            shared.clone(),
            deadline,
        )));
    }
    let t0 = Instant::now();
    let since = move |at: Instant| at.saturating_duration_since(t0);
    let timeline = Timeline::default();
    println!(
        "cluster demo: nodes {}, sentinels {}, t0 = {}",
        (0..cluster.len())
            .map(|i| format!("{}={}", name(i), cluster.node(i)))
            .collect::<Vec<_>>()
            .join(" "),
        set.sentinels_setting(),
        roomstate_core::time::format(&roomstate_core::time::now())
    );
    timeline.note(
        Duration::ZERO,
        format!(
            "load started: {} WebSocket voters over {} nodes in room {room}, owned by {} \
             (epoch {})",
            args.clients,
            cluster.len(),
            first.node,
            first.epoch
        ),
    );
    rt::time::sleep(Duration::from_secs_f64(args.warmup_secs)).await;
    if shared.acks.borrow().is_empty() {
        bail!(
            "no request was acknowledged during the {} s warm-up",
            args.warmup_secs
        );
    }

    // 1. Kill the owner.
    let killed = cluster.index_of(&first.node);
    let killed_at = Instant::now();
    cluster.kill(killed);
    timeline.note(
        since(killed_at),
        format!("{} (the owner) killed with SIGKILL", first.node),
    );
    let second = cluster
        .wait_for_owner_other_than(&room, &first.node, deadline)
        .await;
    timeline.note(
        since(Instant::now()),
        format!(
            "lease taken over by {} (epoch {} -> {}), {:.3} s after the kill",
            second.node,
            first.epoch,
            second.epoch,
            killed_at.elapsed().as_secs_f64()
        ),
    );
    let resumed = wait_for(deadline, || shared.first_ack_sent_after(killed_at, None))
        .await
        .context("waiting for writes to resume after the kill")?;
    timeline.note(
        since(resumed.at),
        format!(
            "writes resumed through {}, {:.3} s after the kill (lease {} ms + 2 s = {:.3} s \
             allowed)",
            name(resumed.node),
            (resumed.at - killed_at).as_secs_f64(),
            args.lease_ms,
            (lease + Duration::from_secs(2)).as_secs_f64()
        ),
    );
    let takeover_resume = resumed.at - killed_at;

    // 2. Pause the new owner past its lease.
    let paused = cluster.index_of(&second.node);
    let paused_at = Instant::now();
    cluster.pause(paused);
    timeline.note(
        since(paused_at),
        format!("{} (the owner now) paused with SIGSTOP", second.node),
    );
    let third = cluster
        .wait_for_owner_other_than(&room, &second.node, deadline)
        .await;
    timeline.note(
        since(Instant::now()),
        format!(
            "lease taken over by {} (epoch {} -> {}), {:.3} s after the pause",
            third.node,
            second.epoch,
            third.epoch,
            paused_at.elapsed().as_secs_f64()
        ),
    );
    let resumed = wait_for(deadline, || shared.first_ack_sent_after(paused_at, None))
        .await
        .context("waiting for writes to resume after the pause")?;
    timeline.note(
        since(resumed.at),
        format!(
            "writes resumed through {}, {:.3} s after the pause",
            name(resumed.node),
            (resumed.at - paused_at).as_secs_f64()
        ),
    );
    let pause_resume = resumed.at - paused_at;
    // The one fixed wait: the length of the pause.
    if let Some(left) = pause_for.checked_sub(paused_at.elapsed()) {
        rt::time::sleep(left).await;
    }
    let woke_at = Instant::now();
    cluster.resume(paused);
    timeline.note(
        since(woke_at),
        format!(
            "{} resumed with SIGCONT after {:.3} s stopped",
            second.node,
            (woke_at - paused_at).as_secs_f64()
        ),
    );
    let answered = wait_for(deadline, || {
        shared.first_ack_sent_after(paused_at, Some(paused))
    })
    .await
    .context("waiting for the resumed node to answer its clients")?;
    let seen = cluster
        .owner_seen_by(paused, &room)
        .await
        .map_err(|e| anyhow!(e))?;
    timeline.note(
        since(answered.at),
        format!(
            "{} answers its clients again (it names {} the owner, epoch {})",
            second.node, seen.node, seen.epoch
        ),
    );

    // 3. Bring the killed node back.
    cluster.restart(killed).await;
    timeline.note(
        since(Instant::now()),
        format!("{} restarted and back in the cluster", first.node),
    );
    rt::time::sleep(Duration::from_secs_f64(args.after_secs)).await;

    // Stop the load: each voter settles its current request.
    shared.stop.set(true);
    let stop_at = Instant::now();
    let mut logs = Vec::new();
    for task in tasks {
        logs.push(task.await.context("a voter task panicked")?);
    }
    timeline.note(since(stop_at), "load stopped");

    // Close through a node that did not own the room, and read the record.
    let via = (0..cluster.len())
        .find(|&i| cluster.node_id(i) != third.node)
        .unwrap_or(0);
    let final_view = close_room(&cluster, via, &room, deadline).await?;
    timeline.note(
        since(Instant::now()),
        format!(
            "room closed through {}: seq {}, pro {}, con {}, {} messages",
            name(via),
            final_view["seq"],
            final_view["pro"],
            final_view["con"],
            final_view["messages"]
        ),
    );
    let (stored_votes, transcript) = final_record(&store_url, &room).await?;
    let check = compare(&logs, &stored_votes, &transcript, &final_view);

    let mut per_node = Vec::new();
    for i in cluster.up() {
        per_node.push(json!({
            "node": name(i),
            "leases": cluster.metric(i, "roomstate_cluster_leases").await,
            "takeovers": cluster.metric(i, "roomstate_cluster_takeovers_total").await,
            "forwarded": cluster.metric(i, "roomstate_cluster_forwarded_total").await,
        }));
    }

    println!();
    timeline.print();
    println!();
    let acked: u64 = logs.iter().map(|l| l.acked).sum();
    let refused: u64 = logs.iter().map(|l| l.refused).sum();
    let lost: u64 = logs.iter().map(|l| l.lost).sum();
    let moved = logs.iter().filter(|l| l.nodes.len() > 1).count();
    let acked_messages: usize = logs.iter().map(|l| l.messages.len()).sum();
    println!(
        "kill -> writes resumed: {:.3} s; pause -> writes resumed: {:.3} s (lease {} ms)",
        takeover_resume.as_secs_f64(),
        pause_resume.as_secs_f64(),
        args.lease_ms
    );
    for node in &per_node {
        println!(
            "{}: leases {}, takeovers {}, forwarded calls {}",
            node["node"].as_str().unwrap_or("?"),
            node["leases"],
            node["takeovers"],
            node["forwarded"]
        );
    }
    println!(
        "acknowledged: {acked} requests ({acked_messages} messages); {refused} answered 503 and \
         {lost} lost with their socket, all sent again; {moved} voters moved to another node"
    );
    println!(
        "final record: {} votes ({} match the last acknowledged vote), {} messages ({} \
         acknowledged ones missing, {} not acknowledged)",
        stored_votes.len(),
        check.matching,
        transcript.len(),
        check.missing_messages,
        check.extra_messages
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
            "OK: every acknowledged vote and message is in the final record, nothing else"
        } else {
            "FAILED: the final record differs from the acknowledgements"
        }
    );

    if let Some(path) = &args.json {
        let secs = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
        let summary = json!({
            "ok": ok,
            "room": room,
            "clients": args.clients,
            "lease_ms": args.lease_ms,
            "owners": [
                {"node": first.node, "epoch": first.epoch},
                {"node": second.node, "epoch": second.epoch},
                {"node": third.node, "epoch": third.epoch},
            ],
            "killed": first.node,
            "paused": second.node,
            "kill_to_resumed_s": secs(takeover_resume),
            "pause_to_resumed_s": secs(pause_resume),
            "acked": acked,
            "acked_messages": acked_messages,
            "refused_unavailable": refused,
            "lost_with_socket": lost,
            "voters_moved": moved,
            "final_seq": final_view["seq"],
            "final_votes": stored_votes.len(),
            "final_messages": transcript.len(),
            "matching_votes": check.matching,
            "problems": check.problems,
            "nodes": per_node,
            "timeline": timeline.sorted().iter().map(|(at, what)| {
                json!({"t": secs(*at), "event": what})
            }).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&summary).context("encoding the summary")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ok)
}

/// Polls `probe` every few ms until it gives a value, or fails after `deadline`.
async fn wait_for<T>(deadline: Duration, probe: impl Fn() -> Option<T>) -> Result<T> {
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() >= until {
            bail!("nothing within {} s", deadline.as_secs());
        }
        rt::time::sleep(POLL).await;
    }
}

/// Closes the room through node `via`, retrying while it answers 503; returns the final view.
async fn close_room(
    cluster: &TestCluster,
    via: usize,
    room: &str,
    deadline: Duration,
) -> Result<Value> {
    let until = Instant::now() + deadline;
    loop {
        let (status, body) = cluster.close_room(via, room).await;
        match status.as_u16() {
            200 => return Ok(body),
            503 if Instant::now() < until => rt::time::sleep(RETRY_PAUSE).await,
            other => bail!(
                "closing the room through {} answered {other}: {body}",
                cluster.node_id(via)
            ),
        }
    }
}

/// The final votes (by user) and the whole transcript (seq, text) stored for `room`.
async fn final_record(
    store_url: &str,
    room: &str,
) -> Result<(BTreeMap<String, String>, Vec<(u64, String)>)> {
    let id = RoomId::parse(room).map_err(|e| anyhow!("room id {room}: {e}"))?;
    let url = store_url.to_owned();
    let store = rt::task::spawn_blocking(move || Store::open(&url))
        .await
        .context("opening the store panicked")?
        .with_context(|| format!("opening the store {}", redact::url(store_url)))?;
    let votes = store
        .votes(&id)
        .await
        .with_context(|| format!("reading the final votes of {room}"))?
        .into_iter()
        .map(|(user, side)| (user.to_string(), side.as_str().to_owned()))
        .collect();
    let mut transcript = Vec::new();
    loop {
        let after = transcript.last().map_or(0, |(seq, _)| *seq);
        let page = store
            .messages(&id, after, 500)
            .await
            .with_context(|| format!("reading the transcript of {room}"))?;
        if page.is_empty() {
            break;
        }
        transcript.extend(page.into_iter().map(|m| (m.seq, m.text)));
    }
    Ok((votes, transcript))
}

struct Check {
    matching: usize,
    missing_messages: usize,
    extra_messages: usize,
    problems: Vec<String>,
}

/// Every voter's vote for sure must be its stored vote; every acknowledged message must be in
/// the transcript, and nothing else (a message a voter gave up on may be either way); the tally
/// must agree with the stored votes; no seq may be acknowledged twice or above the final seq.
fn compare(
    logs: &[VoterLog],
    stored: &BTreeMap<String, String>,
    transcript: &[(u64, String)],
    final_view: &Value,
) -> Check {
    let mut matching = 0;
    let mut problems = Vec::new();
    for log in logs {
        let found = stored.get(&log.user).map(String::as_str);
        let maybe = match &log.in_flight {
            Some(Request::Vote(side)) => Some(*side),
            _ => None,
        };
        if found == log.side || (maybe.is_some() && found == maybe) {
            matching += usize::from(found.is_some());
        } else {
            problems.push(format!(
                "{}: last acknowledged vote {}, final record {}",
                log.user,
                log.side.unwrap_or("none"),
                found.unwrap_or("none")
            ));
        }
    }
    let users: BTreeSet<&str> = logs.iter().map(|l| l.user.as_str()).collect();
    for user in stored.keys().filter(|u| !users.contains(u.as_str())) {
        problems.push(format!("{user}: in the final record but not a voter"));
    }

    let acked: BTreeSet<(u64, &str)> = logs
        .iter()
        .flat_map(|l| l.messages.iter().map(|(seq, text)| (*seq, text.as_str())))
        .collect();
    let unsettled: BTreeSet<&str> = logs
        .iter()
        .filter_map(|l| match &l.in_flight {
            Some(Request::Say(text)) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let recorded: BTreeSet<(u64, &str)> = transcript
        .iter()
        .map(|(seq, text)| (*seq, text.as_str()))
        .collect();
    let missing: Vec<_> = acked.difference(&recorded).collect();
    let extra: Vec<_> = recorded
        .difference(&acked)
        .filter(|(_, text)| !unsettled.contains(text))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "acknowledged messages missing from the transcript: {missing:?}"
        ));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "messages in the transcript nobody was acknowledged: {extra:?}"
        ));
    }
    if recorded.len() != transcript.len() {
        problems.push("the transcript holds a message twice".to_owned());
    }

    problems.extend(final_record::tally_mismatch(stored, final_view));
    problems.extend(final_record::seq_problems(
        logs.iter().flat_map(|l| l.own_seqs.iter().copied()),
        final_view,
    ));
    Check {
        matching,
        missing_messages: missing.len(),
        extra_messages: extra.len(),
        problems,
    }
}

/// A voter's socket on its current node.
struct Link {
    node: usize,
    ws: WsClient,
}

/// A socket for `user` on the first node that is up from `from` on, retrying while nodes answer
/// the upgrade with 503, refuse the join as `unavailable` or close the new socket.
async fn connect(
    roster: &Roster,
    room: &str,
    user: &str,
    from: usize,
    deadline: Duration,
) -> Result<Link, String> {
    let until = Instant::now() + deadline;
    let mut last = String::from("nothing tried yet");
    loop {
        if Instant::now() >= until {
            return Err(format!(
                "no node took its socket within {} s; last: {last}",
                deadline.as_secs()
            ));
        }
        if let Some(node) = roster.next_up(from) {
            let url = roster.ws_url(node, &format!("/rooms/{room}/ws?user={user}"));
            match WsClient::connect(&url).await {
                Ok(mut ws) => match ws.next_before(Instant::now() + deadline).await {
                    Some(Incoming::Json(frame)) if frame["type"] == "state" => {
                        ws.deadline = deadline;
                        return Ok(Link { node, ws });
                    }
                    // The room is between owners: the node says so and closes with 1013.
                    Some(Incoming::Json(frame))
                        if frame["type"] == "error" && frame["error"] == "unavailable" =>
                    {
                        last = format!("{} refused the new socket: {frame}", roster.id(node))
                    }
                    Some(Incoming::Json(frame)) => {
                        return Err(format!("the first frame is not `state`: {frame}"))
                    }
                    Some(Incoming::Closed(code)) => {
                        last = format!("{} closed the new socket ({code:?})", roster.id(node))
                    }
                    None => return Err(format!("no `state` frame from {}", roster.id(node))),
                },
                Err((503, _)) => last = format!("{} answered the upgrade 503", roster.id(node)),
                Err((status, _)) => {
                    return Err(format!("{} answered the upgrade {status}", roster.id(node)))
                }
            }
        } else {
            last = "no node is up".into();
        }
        rt::time::sleep(RETRY_PAUSE).await;
    }
}

/// How one attempt ended.
enum Answer {
    Ack(u64),
    Unavailable,
    /// Any other refusal (the frame).
    Refused(Value),
    /// The socket went away under the request: it may or may not have landed.
    Lost,
}

/// Sends `frame` and waits for the answer to `req`, within `deadline`.
async fn ask(ws: &mut WsClient, frame: &Value, req: &str, deadline: Duration) -> Result<Answer> {
    if !ws.try_send_json(frame).await {
        return Ok(Answer::Lost);
    }
    let until = Instant::now() + deadline;
    loop {
        match ws.next_before(until).await {
            Some(Incoming::Json(answer)) => {
                if answer["type"] == "closed" {
                    bail!("the room was closed");
                }
                let is_answer =
                    (answer["type"] == "ack" || answer["type"] == "error") && answer["req"] == req;
                if !is_answer {
                    continue;
                }
                return Ok(if answer["type"] == "ack" {
                    Answer::Ack(answer["seq"].as_u64().context("an ack without a seq")?)
                } else if answer["error"] == "unavailable" {
                    Answer::Unavailable
                } else {
                    Answer::Refused(answer)
                });
            }
            Some(Incoming::Closed(_)) => return Ok(Answer::Lost),
            None => bail!("no answer to {req} within {} s", deadline.as_secs()),
        }
    }
}

/// One voter: votes pro/con back and forth (and now and then says something) until `stop`,
/// settling the request under way; moves to another node when its socket goes.
async fn vote_until_stopped(
    mut link: Link,
    roster: Roster,
    room: String,
    user: String,
    offset: usize,
    shared: Rc<Shared>,
    deadline: Duration,
) -> VoterLog {
    let mut log = VoterLog {
        user: user.clone(),
        nodes: vec![link.node],
        ..VoterLog::default()
    };
    let mut n: u64 = 0;
    // A request sent before with an unknown outcome, sent again until acknowledged.
    let mut pending: Option<(String, Request)> = None;
    loop {
        let again = pending.is_some();
        let (req, request) = match pending.take() {
            Some(pending) => pending,
            None if shared.stop.get() => break,
            None => {
                n += 1;
                let req = format!("{user}-{n}");
                let request = if n.is_multiple_of(SAY_EVERY) {
                    Request::Say(format!("{user} says hello ({n})"))
                } else {
                    Request::Vote(match log.side {
                        Some("pro") => "con",
                        Some(_) => "pro",
                        None if offset.is_multiple_of(2) => "pro",
                        None => "con",
                    })
                };
                (req, request)
            }
        };
        let frame = match &request {
            Request::Vote(side) => json!({"type": "vote", "side": side, "req": req}),
            Request::Say(text) => json!({"type": "say", "text": text, "req": req}),
        };
        log.in_flight = Some(request.clone());
        let sent = Instant::now();
        let answer = match ask(&mut link.ws, &frame, &req, deadline).await {
            Ok(answer) => answer,
            Err(error) => {
                log.failure = Some(format!("{error:#}"));
                return log;
            }
        };
        match answer {
            Answer::Ack(seq) => {
                log.in_flight = None;
                log.acked += 1;
                shared.acks.borrow_mut().push(Ack {
                    sent,
                    at: Instant::now(),
                    node: link.node,
                });
                match request {
                    Request::Vote(side) => {
                        log.side = Some(side);
                        if !again {
                            log.own_seqs.push(seq);
                        }
                    }
                    Request::Say(text) => {
                        log.messages.push((seq, text));
                        log.own_seqs.push(seq);
                    }
                }
            }
            Answer::Unavailable => {
                log.refused += 1;
                pending = Some((req, request));
                rt::time::sleep(RETRY_PAUSE).await;
            }
            Answer::Refused(frame) => {
                log.failure = Some(format!("refused: {frame}"));
                return log;
            }
            Answer::Lost => {
                log.lost += 1;
                pending = Some((req, request));
                match connect(&roster, &room, &user, link.node, deadline).await {
                    Ok(next) => {
                        link = next;
                        log.nodes.push(link.node);
                    }
                    Err(error) => {
                        log.failure = Some(error);
                        return log;
                    }
                }
            }
        }
        rt::time::sleep(PACE).await;
    }
    log.in_flight = None;
    log
}
