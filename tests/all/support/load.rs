//! A small load of real clients for the durability tests: voters on WebSockets that switch their
//! vote back and forth and post chat messages, each remembering exactly what the engine
//! acknowledged (every seq), what it refused, and what was still in flight when the engine died.

use std::{cell::Cell, rc::Rc, time::Duration};

use serde_json::json;

use super::{app::TestApp, ws::WsClient};

/// Pause between one voter's requests, so a few voters stay under the per-socket rate limit
/// and leave CPU for the Redis processes (this paces load; it waits for nothing).
const PACE: Duration = Duration::from_millis(25);
/// How long one request may wait for its answer: through a failover (detection, election, the
/// engine finding the new primary) and a loaded machine, with room to spare. A request the
/// engine never answers fails the test after this, instead of hanging it.
const ANSWER_DEADLINE: Duration = Duration::from_secs(120);
/// How long `stop` waits for every voter to finish its last request.
const STOP_DEADLINE: Duration = Duration::from_secs(150);

/// What one voter saw.
#[derive(Debug, Default, Clone)]
pub struct VoterLog {
    pub user: String,
    /// The side of the last acknowledged vote.
    pub last_acked: Option<String>,
    /// The side of a vote that was sent but neither acknowledged nor refused (only when the
    /// engine died under it).
    pub in_flight: Option<String>,
    /// Likewise, the text of a chat message.
    pub in_flight_text: Option<String>,
    /// Acknowledged chat messages: (seq, text).
    pub messages: Vec<(u64, String)>,
    /// The seq of every acknowledged request, votes and messages, in the order they came. Each
    /// request changes the room (a vote always switches side), so each took a seq of its own.
    pub acked_seqs: Vec<u64>,
    /// Requests refused with `503 unavailable` (the only refusal a voter accepts).
    pub refused: u64,
}

/// Voters running as local tasks until `stop`.
pub struct Voters {
    tasks: Vec<actix_rt::task::JoinHandle<VoterLog>>,
    live: Rc<Live>,
}

/// What the running voters have seen so far, for waits and checks while they run.
#[derive(Default)]
struct Live {
    stop: Cell<bool>,
    acks: Cell<u64>,
    refusals: Cell<u64>,
    max_acked_seq: Cell<u64>,
}

impl Voters {
    /// `n` voters in `room`, named `{prefix}{i}`, each on its own socket.
    pub async fn start(app: &TestApp, room: &str, prefix: &str, n: usize) -> Voters {
        let live = Rc::new(Live::default());
        let mut tasks = Vec::new();
        for i in 0..n {
            let user = format!("{prefix}{i}");
            let url = app.ws_url(&format!("/rooms/{room}/ws?user={user}"));
            let mut ws = WsClient::connect(&url).await.expect("voter socket");
            ws.next_of("state").await;
            ws.deadline = ANSWER_DEADLINE;
            let live = live.clone();
            tasks.push(actix_rt::spawn(async move {
                vote_until(ws, user, i, live).await
            }));
        }
        Voters { tasks, live }
    }

    /// Acknowledged requests so far, over all voters.
    pub fn acks(&self) -> u64 {
        self.live.acks.get()
    }

    /// Requests refused with 503 so far, over all voters.
    pub fn refusals(&self) -> u64 {
        self.live.refusals.get()
    }

    /// The highest seq acknowledged to any voter so far (0: none yet).
    pub fn max_acked_seq(&self) -> u64 {
        self.live.max_acked_seq.get()
    }

    /// Lets each voter finish its current request, then returns what they saw.
    pub async fn stop(self) -> Vec<VoterLog> {
        self.live.stop.set(true);
        let all = futures_util::future::join_all(self.tasks);
        let done = actix_rt::time::timeout(STOP_DEADLINE, all)
            .await
            .unwrap_or_else(|_| panic!("the voters did not finish within {STOP_DEADLINE:?}"));
        done.into_iter()
            .map(|task| task.expect("voter task"))
            .collect()
    }

    /// Waits until `more` further requests were acknowledged (fails the test after `deadline`).
    pub async fn wait_for_acks(&self, more: u64, deadline: Duration) {
        let target = self.acks() + more;
        super::app::eventually(
            &format!("{more} more acknowledged requests"),
            deadline,
            || async { (self.acks() >= target).then_some(()) },
        )
        .await;
    }
}

async fn vote_until(mut ws: WsClient, user: String, offset: usize, live: Rc<Live>) -> VoterLog {
    let mut log = VoterLog {
        user: user.clone(),
        ..VoterLog::default()
    };
    let mut n: u64 = 0;
    while !live.stop.get() {
        n += 1;
        let req = format!("{user}-{n}");
        let (frame, side, text) = if n.is_multiple_of(5) {
            let text = format!("{user} message {n}");
            (
                json!({"type": "say", "text": text, "req": req}),
                None,
                Some(text),
            )
        } else {
            // Always the other side than the last acknowledged vote: a vote for the side a user
            // already has changes nothing and is answered with an older seq, which would make
            // "every acknowledgement has a seq of its own" untestable. (A refused vote changed
            // nothing, so the next one tries the same switch.)
            let side = match log.last_acked.as_deref() {
                Some("pro") => "con",
                Some(_) => "pro",
                None if offset.is_multiple_of(2) => "pro",
                None => "con",
            };
            (
                json!({"type": "vote", "side": side, "req": req}),
                Some(side.to_owned()),
                None,
            )
        };
        log.in_flight = side.clone();
        log.in_flight_text = text.clone();
        if !ws.try_send_json(&frame).await {
            break; // the engine is gone (a crash test); the request may or may not have landed
        }
        let Some(answer) = ws.answer_to(&req).await else {
            break; // the engine went away under this request (a crash test): it stays in flight
        };
        log.in_flight = None;
        log.in_flight_text = None;
        match answer["type"].as_str() {
            Some("ack") => {
                let seq = answer["seq"].as_u64().expect("ack seq");
                log.acked_seqs.push(seq);
                live.acks.set(live.acks.get() + 1);
                live.max_acked_seq.set(live.max_acked_seq.get().max(seq));
                if let Some(side) = side {
                    log.last_acked = Some(side);
                }
                if let Some(text) = text {
                    log.messages.push((seq, text));
                }
            }
            _ => {
                assert_eq!(
                    answer["error"], "unavailable",
                    "only 503s are expected: {answer}"
                );
                log.refused += 1;
                live.refusals.set(live.refusals.get() + 1);
            }
        }
        actix_rt::time::sleep(PACE).await;
    }
    log
}
