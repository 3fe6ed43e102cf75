//! A small load of real clients for the durability tests: voters on WebSockets that vote back
//! and forth and post chat messages, each remembering exactly what the engine acknowledged.

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

/// What one voter saw acknowledged.
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
    pub acked: u64,
    pub refused: u64,
}

/// Voters running as local tasks until `stop`.
pub struct Voters {
    tasks: Vec<actix_rt::task::JoinHandle<VoterLog>>,
    stop: Rc<Cell<bool>>,
    acks: Rc<Cell<u64>>,
}

impl Voters {
    /// `n` voters in `room`, named `{prefix}{i}`, each on its own socket.
    pub async fn start(app: &TestApp, room: &str, prefix: &str, n: usize) -> Voters {
        let stop = Rc::new(Cell::new(false));
        let acks = Rc::new(Cell::new(0));

        let mut tasks = Vec::new();
        for i in 0..n {
            let user = format!("{prefix}{i}");
            let url = app.ws_url(&format!("/rooms/{room}/ws?user={user}"));
            let mut ws = WsClient::connect(&url).await.expect("voter socket");
            ws.next_of("state").await;
            ws.deadline = ANSWER_DEADLINE;
            let (stop, acks) = (stop.clone(), acks.clone());
            tasks.push(actix_rt::spawn(async move {
                vote_until(ws, user, i, stop, acks).await
            }));
        }
        Voters { tasks, stop, acks }
    }

    /// Acknowledged requests so far, over all voters.
    pub fn acks(&self) -> u64 {
        self.acks.get()
    }

    /// Lets each voter finish its current request, then returns what they saw.
    pub async fn stop(self) -> Vec<VoterLog> {
        self.stop.set(true);
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

async fn vote_until(
    mut ws: WsClient,
    user: String,
    offset: usize,
    stop: Rc<Cell<bool>>,
    acks: Rc<Cell<u64>>,
) -> VoterLog {
    let mut log = VoterLog {
        user: user.clone(),
        ..VoterLog::default()
    };
    let mut n: u64 = 0;
    while !stop.get() {
        n += 1;
        let req = format!("{user}-{n}");
        let (frame, side, text) = if n % 5 == 0 {
            let text = format!("{user} message {n}");
            (
                json!({"type": "say", "text": text, "req": req}),
                None,
                Some(text),
            )
        } else {
            let side = if (n as usize + offset) % 2 == 0 {
                "pro"
            } else {
                "con"
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
            break; // the engine is gone (a crash test); the vote may or may not have landed
        }
        let Some(answer) = ws.answer_to(&req).await else {
            break; // the engine went away under this request (a crash test): it stays in flight
        };
        log.in_flight = None;
        log.in_flight_text = None;
        match answer["type"].as_str() {
            Some("ack") => {
                log.acked += 1;
                acks.set(acks.get() + 1);
                let seq = answer["seq"].as_u64().expect("ack seq");
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
            }
        }
        actix_rt::time::sleep(PACE).await;
    }
    log
}
