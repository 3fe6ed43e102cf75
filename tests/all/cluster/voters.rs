//! Voters for the cluster tests: clients that each stick to one node (over WebSocket or HTTP),
//! switch their vote back and forth and post chat messages, and move to another node (the
//! roster's next one that is up) only when they lose theirs.
//!
//! A request whose outcome is unknown — the connection was lost under it, or it was refused with
//! `503 unavailable`, which in a cluster may come from a node that could not reach the owner — is
//! sent again, the same (the same side; the same text with the same idempotency key), until it is
//! acknowledged. So when the voters stop, each user's vote and each message is known for sure and
//! the final record must equal the acknowledgements exactly. Every acknowledgement is kept with
//! when it was sent and answered and through which node, for the timing checks; every `message`
//! frame a socket gets is checked to come in seq order.

use std::{
    cell::Cell,
    rc::Rc,
    time::{Duration, Instant},
};

use awc::{http::StatusCode, Client};
use roomstate_testkit::{
    cluster::Roster,
    ws::{Incoming, WsClient},
};
use serde_json::{json, Value};

/// Pause between one voter's requests: a few voters per node stay under the per-socket rate
/// limit and leave CPU for the nodes and Redis (this paces load; it waits for nothing).
const PACE: Duration = Duration::from_millis(25);
/// Pause before sending a refused request again.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long one request may wait for its answer: through a takeover, a paused node's hold, a
/// Redis failover and a loaded machine, with room to spare. A request never answered fails the
/// test after this instead of hanging it.
const ANSWER_DEADLINE: Duration = Duration::from_secs(120);
/// How long a voter may take to get a socket (or an HTTP join) on some node.
const CONNECT_DEADLINE: Duration = Duration::from_secs(60);
/// How long `stop` waits for every voter to settle its last request.
const STOP_DEADLINE: Duration = Duration::from_secs(180);

/// How a voter talks to its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A socket: `vote` / `say` frames, answered by `ack` / `error`.
    Ws,
    /// `PUT /votes/{user}` and `POST /messages` with an `Idempotency-Key`.
    Http,
}

/// Who votes where: one voter per entry of `homes` (a node index), named `{prefix}{i}`.
pub struct Plan {
    pub prefix: String,
    pub homes: Vec<usize>,
    pub via: Via,
    /// Every this-many-th request of a voter is a chat message; the others are votes.
    pub say_every: u64,
}

impl Plan {
    /// `per_node` socket voters on each of `nodes`.
    pub fn ws(prefix: &str, nodes: &[usize], per_node: usize) -> Plan {
        Plan {
            prefix: prefix.to_owned(),
            homes: nodes
                .iter()
                .flat_map(|&n| std::iter::repeat_n(n, per_node))
                .collect(),
            via: Via::Ws,
            say_every: 4,
        }
    }

    /// `per_node` HTTP voters on each of `nodes`.
    pub fn http(prefix: &str, nodes: &[usize], per_node: usize) -> Plan {
        Plan {
            via: Via::Http,
            ..Plan::ws(prefix, nodes, per_node)
        }
    }

    pub fn say_every(mut self, n: u64) -> Plan {
        assert!(n >= 1);
        self.say_every = n;
        self
    }
}

/// One acknowledgement.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    /// When the attempt that was acknowledged went out.
    pub sent: Instant,
    /// When its acknowledgement came.
    pub at: Instant,
    /// Through which node.
    pub node: usize,
}

/// What one voter saw.
#[derive(Debug, Clone)]
pub struct VoterLog {
    pub user: String,
    pub via: Via,
    /// The node it started on.
    pub home: usize,
    /// Every node it connected to (or joined through), in order: home first.
    pub nodes: Vec<usize>,
    /// The user's vote for sure: the side of the last acknowledged vote.
    pub side: Option<String>,
    /// Acknowledged chat messages: (seq, text).
    pub messages: Vec<(u64, String)>,
    /// Seqs of acknowledgements that each took a seq of their own: every message (a repeat of
    /// a message answers with its first seq).
    pub own_seqs: Vec<u64>,
    /// Seqs of acknowledged votes. A vote that changed nothing answers with the room's seq then,
    /// another event's (docs/api.md), and a vote the voter sent once may still reach the owner
    /// twice: a node whose forward got no answer (its owner died under it) sends it again to the
    /// new owner, where it is a no-op if the first made it. So these are not a vote's own.
    pub vote_seqs: Vec<u64>,
    /// Every acknowledgement.
    pub acks: Vec<Ack>,
    /// `503 unavailable` answers.
    pub refused: u64,
    /// When each 503 came.
    pub refused_at: Vec<Instant>,
    /// Connections lost under a request.
    pub lost: u64,
    /// HTTP voters: `409 not_joined` answers, after which the voter joined again.
    pub rejoins: u64,
    /// `message` frames that came after one with the same or a higher seq on the same socket:
    /// (the seq before, this seq).
    pub out_of_order: Vec<(u64, u64)>,
}

/// What the running voters have seen so far, for waits while they run.
struct Live {
    stop: Cell<bool>,
    acks: Cell<u64>,
    by_voter: Vec<Cell<u64>>,
    by_node: Vec<Cell<u64>>,
}

/// Voters running as local tasks until `stop`.
pub struct Voters {
    tasks: Vec<actix_rt::task::JoinHandle<VoterLog>>,
    live: Rc<Live>,
    users: Vec<String>,
}

impl Voters {
    /// Starts `plan`'s voters in `room`: each has its socket (or its HTTP join) on its home node
    /// before this returns.
    pub async fn start(roster: &Roster, room: &str, plan: Plan) -> Voters {
        let live = Rc::new(Live {
            stop: Cell::new(false),
            acks: Cell::new(0),
            by_voter: plan.homes.iter().map(|_| Cell::new(0)).collect(),
            by_node: (0..roster.len()).map(|_| Cell::new(0)).collect(),
        });
        let mut tasks = Vec::new();
        let mut users = Vec::new();
        for (index, &home) in plan.homes.iter().enumerate() {
            let user = format!("{}{index}", plan.prefix);
            let mut log = VoterLog {
                user: user.clone(),
                via: plan.via,
                home,
                nodes: Vec::new(),
                side: None,
                messages: Vec::new(),
                own_seqs: Vec::new(),
                vote_seqs: Vec::new(),
                acks: Vec::new(),
                refused: 0,
                refused_at: Vec::new(),
                lost: 0,
                rejoins: 0,
                out_of_order: Vec::new(),
            };
            let link = Link::open(plan.via, roster, room, &user, home, &mut log).await;
            assert_eq!(
                link.node(),
                home,
                "{user}: its home node {} is not up",
                roster.id(home)
            );
            let voter = Voter {
                roster: roster.clone(),
                room: room.to_owned(),
                index,
                say_every: plan.say_every,
                live: live.clone(),
                log,
            };
            tasks.push(actix_rt::spawn(voter.run(link)));
            users.push(user);
        }
        Voters { tasks, live, users }
    }

    /// Acknowledged requests so far, over all voters.
    pub fn acks(&self) -> u64 {
        self.live.acks.get()
    }

    /// Acknowledged requests so far that came through `node`.
    pub fn acks_through(&self, node: usize) -> u64 {
        self.live.by_node[node].get()
    }

    /// Acknowledged requests so far, per voter (in plan order).
    pub fn acks_by_voter(&self) -> Vec<u64> {
        self.live.by_voter.iter().map(Cell::get).collect()
    }

    /// Waits until `more` further requests were acknowledged, over all voters.
    pub async fn wait_for_acks(&self, more: u64, deadline: Duration) {
        let target = self.acks() + more;
        crate::support::app::eventually(
            &format!("{more} more acknowledged requests (now {})", self.acks()),
            deadline,
            || async { (self.acks() >= target).then_some(()) },
        )
        .await;
    }

    /// Waits until `more` further requests were acknowledged through each of `nodes`.
    pub async fn wait_through(&self, nodes: &[usize], more: u64, deadline: Duration) {
        let targets: Vec<(usize, u64)> = nodes
            .iter()
            .map(|&n| (n, self.acks_through(n) + more))
            .collect();
        crate::support::app::eventually(
            &format!("{more} more acknowledged requests through each of the nodes {nodes:?}"),
            deadline,
            || async {
                targets
                    .iter()
                    .all(|&(n, target)| self.acks_through(n) >= target)
                    .then_some(())
            },
        )
        .await;
    }

    /// Waits until every voter has had `more` further requests acknowledged: nobody is stuck.
    pub async fn wait_each_voter(&self, more: u64, deadline: Duration) {
        let targets: Vec<u64> = self.acks_by_voter().iter().map(|a| a + more).collect();
        let what = format!("{more} more acknowledged requests for every voter");
        let result = roomstate_testkit::redis_admin::wait_until(&what, deadline, || async {
            let now = self.acks_by_voter();
            let behind: Vec<&str> = now
                .iter()
                .zip(&targets)
                .zip(&self.users)
                .filter(|((now, target), _)| now < target)
                .map(|(_, user)| user.as_str())
                .collect();
            if behind.is_empty() {
                Ok(())
            } else {
                Err(format!("still behind: {behind:?}"))
            }
        })
        .await;
        if let Err(e) = result {
            panic!("{e}");
        }
    }

    /// Lets each voter settle its current request, then returns what they saw.
    pub async fn stop(self) -> Vec<VoterLog> {
        self.live.stop.set(true);
        let all = futures_util::future::join_all(self.tasks);
        let done = actix_rt::time::timeout(STOP_DEADLINE, all)
            .await
            .unwrap_or_else(|_| panic!("the voters did not settle within {STOP_DEADLINE:?}"));
        done.into_iter()
            .map(|task| task.expect("a voter task panicked (its message is above)"))
            .collect()
    }
}

/// One request, kept until it is acknowledged.
#[derive(Clone)]
struct Request {
    req: String,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Vote(&'static str),
    Say(String),
}

/// How one attempt ended.
enum Outcome {
    Ack(u64),
    /// `503 unavailable`: nothing applied, or (in a cluster) not known; send it again.
    Refused,
    /// HTTP `409 not_joined`: the HTTP join lapsed (e.g. at a takeover); join again.
    NotJoined,
    /// The connection went away under it: it may or may not have landed.
    Lost,
}

struct Voter {
    roster: Roster,
    room: String,
    index: usize,
    say_every: u64,
    live: Rc<Live>,
    log: VoterLog,
}

impl Voter {
    async fn run(mut self, mut link: Link) -> VoterLog {
        let mut n: u64 = 0;
        let mut pending: Option<Request> = None;
        loop {
            let request = match pending.take() {
                Some(request) => request,
                None if self.live.stop.get() => break,
                None => {
                    n += 1;
                    self.next_request(n)
                }
            };
            let sent = Instant::now();
            match link.ask(&self.room, &request, &mut self.log).await {
                Outcome::Ack(seq) => self.acknowledged(&request, seq, sent, link.node()),
                Outcome::Refused => {
                    self.log.refused += 1;
                    self.log.refused_at.push(Instant::now());
                    pending = Some(request);
                    actix_rt::time::sleep(RETRY_PAUSE).await;
                }
                Outcome::NotJoined => {
                    self.log.rejoins += 1;
                    link.join(&self.room, &self.log.user).await;
                    // A refusal for presence applied nothing: the next attempt is as the first.
                    pending = Some(request);
                }
                Outcome::Lost => {
                    self.log.lost += 1;
                    pending = Some(request);
                    let from = link.node();
                    link = Link::open(
                        self.log.via,
                        &self.roster,
                        &self.room,
                        &self.log.user.clone(),
                        from,
                        &mut self.log,
                    )
                    .await;
                }
            }
            actix_rt::time::sleep(PACE).await;
        }
        // Dropping the link closes its socket, as when a tab closes.
        drop(link);
        self.log
    }

    fn next_request(&self, n: u64) -> Request {
        let req = format!("{}-{n}", self.log.user);
        let kind = if n.is_multiple_of(self.say_every) {
            Kind::Say(format!("{} message {n}", self.log.user))
        } else {
            // Always the other side than the vote the user has for sure, so a vote sent once
            // takes a seq of its own.
            Kind::Vote(match self.log.side.as_deref() {
                Some("pro") => "con",
                Some(_) => "pro",
                None if self.index.is_multiple_of(2) => "pro",
                None => "con",
            })
        };
        Request { req, kind }
    }

    fn acknowledged(&mut self, request: &Request, seq: u64, sent: Instant, node: usize) {
        let log = &mut self.log;
        log.acks.push(Ack {
            sent,
            at: Instant::now(),
            node,
        });
        match &request.kind {
            Kind::Vote(side) => {
                log.side = Some((*side).to_owned());
                log.vote_seqs.push(seq);
            }
            Kind::Say(text) => {
                log.messages.push((seq, text.clone()));
                log.own_seqs.push(seq);
            }
        }
        let live = &self.live;
        live.acks.set(live.acks.get() + 1);
        let mine = &live.by_voter[self.index];
        mine.set(mine.get() + 1);
        let through = &live.by_node[node];
        through.set(through.get() + 1);
    }
}

/// A voter's connection to its current node.
enum Link {
    Ws {
        node: usize,
        ws: Box<WsClient>,
        /// The seq of the last `message` frame on this socket.
        last_message: u64,
        node_id: String,
    },
    Http {
        node: usize,
        base: String,
        client: Client,
        node_id: String,
    },
}

impl Link {
    fn node(&self) -> usize {
        match self {
            Link::Ws { node, .. } | Link::Http { node, .. } => *node,
        }
    }

    /// Connects `user` to the first node that is up from `from` on (its socket, or an HTTP
    /// join), retrying while nodes answer 503, for up to `CONNECT_DEADLINE`.
    async fn open(
        via: Via,
        roster: &Roster,
        room: &str,
        user: &str,
        from: usize,
        log: &mut VoterLog,
    ) -> Link {
        let end = Instant::now() + CONNECT_DEADLINE;
        let mut last = String::from("nothing tried yet");
        loop {
            assert!(
                Instant::now() < end,
                "{user}: no node took it within {CONNECT_DEADLINE:?}; last: {last}"
            );
            let Some(node) = roster.next_up(from) else {
                last = "no node is up".into();
                actix_rt::time::sleep(RETRY_PAUSE).await;
                continue;
            };
            let node_id = roster.id(node);
            let link = match via {
                Via::Ws => Link::connect_ws(roster, node, room, user, &mut last).await,
                Via::Http => {
                    let mut link = Link::Http {
                        node,
                        base: roster.base(node),
                        client: Client::builder()
                            .max_http_version(awc::http::Version::HTTP_11)
                            .timeout(ANSWER_DEADLINE)
                            .finish(),
                        node_id: node_id.clone(),
                    };
                    link.try_join(room, user, &mut last).await.then_some(link)
                }
            };
            if let Some(link) = link {
                log.nodes.push(node);
                return link;
            }
            actix_rt::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn connect_ws(
        roster: &Roster,
        node: usize,
        room: &str,
        user: &str,
        last: &mut String,
    ) -> Option<Link> {
        let node_id = roster.id(node);
        let url = roster.ws_url(node, &format!("/rooms/{room}/ws?user={user}"));
        match WsClient::connect(&url).await {
            Ok(mut ws) => {
                let first = ws
                    .next_before(Instant::now() + roomstate_testkit::ws::DEADLINE)
                    .await;
                match first {
                    Some(Incoming::Json(frame)) if frame["type"] == "state" => {
                        ws.deadline = ANSWER_DEADLINE;
                        Some(Link::Ws {
                            node,
                            ws: Box::new(ws),
                            last_message: 0,
                            node_id,
                        })
                    }
                    // The room is between owners (a takeover): the node says so and closes
                    // the socket with 1013 (try again later).
                    Some(Incoming::Json(frame))
                        if frame["type"] == "error" && frame["error"] == "unavailable" =>
                    {
                        *last = format!("{node_id} refused the new socket: {frame}");
                        None
                    }
                    Some(Incoming::Json(frame)) => {
                        panic!("{user} on {node_id}: the first frame is not `state`: {frame}")
                    }
                    Some(Incoming::Closed(code)) => {
                        *last = format!("{node_id} closed the new socket ({code:?})");
                        None
                    }
                    None => panic!(
                        "{user} on {node_id}: no `state` frame within {:?} of the upgrade",
                        roomstate_testkit::ws::DEADLINE
                    ),
                }
            }
            Err((503, _)) => {
                *last = format!("{node_id} answered the upgrade with 503");
                None
            }
            Err((status, body)) => {
                panic!("{user}: the socket upgrade on {node_id} answered {status}: {body}")
            }
        }
    }

    /// HTTP: joins `user` through this node; false on 503 or a lost connection.
    async fn try_join(&mut self, room: &str, user: &str, last: &mut String) -> bool {
        let Link::Http {
            base,
            client,
            node_id,
            ..
        } = self
        else {
            unreachable!("only HTTP voters join");
        };
        let url = format!("{base}/rooms/{room}/join");
        match http_call(client.post(&url).send_json(&json!({ "user": user }))).await {
            Ok((status, _)) if status == StatusCode::OK => true,
            Ok((status, body)) if status == StatusCode::SERVICE_UNAVAILABLE => {
                *last = format!("join on {node_id}: 503 {body}");
                false
            }
            Ok((status, body)) => panic!("{user}: join on {node_id} answered {status}: {body}"),
            Err(e) => {
                *last = format!("join on {node_id}: {e}");
                false
            }
        }
    }

    /// HTTP: joins again (after `409 not_joined`) through this node, until it is answered 200.
    async fn join(&mut self, room: &str, user: &str) {
        let end = Instant::now() + CONNECT_DEADLINE;
        let mut last = String::new();
        while !self.try_join(room, user, &mut last).await {
            assert!(
                Instant::now() < end,
                "{user}: could not join again within {CONNECT_DEADLINE:?}; last: {last}"
            );
            actix_rt::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn ask(&mut self, room: &str, request: &Request, log: &mut VoterLog) -> Outcome {
        match self {
            Link::Ws {
                ws,
                last_message,
                node_id,
                ..
            } => ask_ws(ws, last_message, node_id, request, log).await,
            Link::Http {
                base,
                client,
                node_id,
                ..
            } => ask_http(client, base, node_id, room, request, &log.user).await,
        }
    }
}

async fn ask_ws(
    ws: &mut WsClient,
    last_message: &mut u64,
    node_id: &str,
    request: &Request,
    log: &mut VoterLog,
) -> Outcome {
    let frame = match &request.kind {
        Kind::Vote(side) => json!({"type": "vote", "side": side, "req": request.req}),
        Kind::Say(text) => json!({"type": "say", "text": text, "req": request.req}),
    };
    if !ws.try_send_json(&frame).await {
        return Outcome::Lost;
    }
    let end = Instant::now() + ANSWER_DEADLINE;
    loop {
        match ws.next_before(end).await {
            Some(Incoming::Json(frame)) => match frame["type"].as_str() {
                Some("message") => {
                    let seq = frame["seq"].as_u64().expect("a message frame's seq");
                    if seq <= *last_message {
                        log.out_of_order.push((*last_message, seq));
                    }
                    *last_message = seq;
                }
                Some("closed") => panic!(
                    "{} on {node_id}: the room was closed under the voters: {frame}",
                    log.user
                ),
                Some("ack") if frame["req"] == request.req.as_str() => {
                    return Outcome::Ack(frame["seq"].as_u64().expect("an ack's seq"));
                }
                Some("error") if frame["req"] == request.req.as_str() => {
                    return match frame["error"].as_str() {
                        Some("unavailable") => Outcome::Refused,
                        _ => panic!(
                            "{} on {node_id}: request {} was refused with something other \
                             than 503 unavailable: {frame}",
                            log.user, request.req
                        ),
                    };
                }
                _ => {}
            },
            Some(Incoming::Closed(_)) => return Outcome::Lost,
            None => panic!(
                "{} on {node_id}: no answer to {} within {ANSWER_DEADLINE:?} (the socket stayed \
                 open)",
                log.user, request.req
            ),
        }
    }
}

async fn ask_http(
    client: &Client,
    base: &str,
    node_id: &str,
    room: &str,
    request: &Request,
    user: &str,
) -> Outcome {
    let (path, sent) = match &request.kind {
        Kind::Vote(side) => {
            let path = format!("/rooms/{room}/votes/{user}");
            let sent = client
                .put(format!("{base}{path}"))
                .send_json(&json!({ "side": side }));
            (path, http_call(sent).await)
        }
        Kind::Say(text) => {
            let path = format!("/rooms/{room}/messages");
            let sent = client
                .post(format!("{base}{path}"))
                .insert_header(("Idempotency-Key", request.req.as_str()))
                .send_json(&json!({ "user": user, "text": text }));
            (path, http_call(sent).await)
        }
    };
    let (status, body) = match sent {
        Ok(answer) => answer,
        Err(_) => return Outcome::Lost,
    };
    match status.as_u16() {
        200 | 201 => Outcome::Ack(body["seq"].as_u64().unwrap_or_else(|| {
            panic!("{user}: {path} on {node_id} answered {status} without a seq: {body}")
        })),
        503 => {
            assert_eq!(
                body["error"], "unavailable",
                "{user}: {path} on {node_id}: a 503 with the wrong body"
            );
            Outcome::Refused
        }
        409 if body["error"] == "not_joined" => Outcome::NotJoined,
        _ => panic!(
            "{user}: {path} on {node_id} answered {status} (only 2xx and 503 unavailable are \
             expected): {body}"
        ),
    }
}

/// Awaits an HTTP call and reads its JSON body; `Err` when the connection failed or timed out.
async fn http_call(sent: awc::SendClientRequest) -> Result<(StatusCode, Value), String> {
    let mut response = sent.await.map_err(|e| e.to_string())?;
    let bytes = response
        .body()
        .limit(1 << 20)
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        response.status(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}
