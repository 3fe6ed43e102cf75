//! Watchers: one listening socket on a node that stays up, open from before the trouble until the
//! room closes, that only reads. What it got is held against the final record: every `message`
//! after its first `state` frame, in seq order, none skipped (across owner changes too); `state`
//! frames never going back to an older seq; and the `closed` frame with the final view.

use std::time::{Duration, Instant};

use roomstate_testkit::{
    cluster::Roster,
    ws::{Incoming, WsClient},
};
use serde_json::Value;

/// How long a watcher may run in all: the whole test, takeovers and failovers included.
const WATCH_DEADLINE: Duration = Duration::from_secs(280);
/// How long `finish` waits for the watcher to see the room close.
const FINISH_DEADLINE: Duration = Duration::from_secs(60);

/// What one watcher saw.
#[derive(Debug)]
pub struct WatchLog {
    pub user: String,
    pub node: String,
    /// The seq of the first `state` frame: the messages after it must all come.
    pub first_seq: u64,
    /// `message` frames: (seq, text), as they came.
    pub messages: Vec<(u64, String)>,
    /// The seqs of the `state` frames, as they came.
    pub state_seqs: Vec<u64>,
    /// The `closed` frame.
    pub closed: Option<Value>,
    /// How the socket ended: `Some(code)` when it closed, `None` when the watch ran out.
    pub ended: Option<Option<u16>>,
}

/// A watcher running as a local task until the room closes.
pub struct Watcher {
    task: actix_rt::task::JoinHandle<WatchLog>,
    user: String,
}

impl Watcher {
    /// Opens `user`'s socket on `node` and starts reading.
    pub async fn start(roster: &Roster, node: usize, room: &str, user: &str) -> Watcher {
        let node_id = roster.id(node);
        let url = roster.ws_url(node, &format!("/rooms/{room}/ws?user={user}"));
        let mut ws = WsClient::connect(&url)
            .await
            .unwrap_or_else(|(status, _)| panic!("watcher {user} on {node_id}: upgrade {status}"));
        let first = ws.next_of("state").await;
        let log = WatchLog {
            user: user.to_owned(),
            node: node_id,
            first_seq: first["seq"].as_u64().expect("the state's seq"),
            messages: Vec::new(),
            state_seqs: vec![first["seq"].as_u64().expect("the state's seq")],
            closed: None,
            ended: None,
        };
        Watcher {
            task: actix_rt::spawn(watch(ws, log)),
            user: user.to_owned(),
        }
    }

    /// Waits for the watcher to have seen the room close (call it after the close).
    pub async fn finish(self) -> WatchLog {
        actix_rt::time::timeout(FINISH_DEADLINE, self.task)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "watcher {}: its socket did not end within {FINISH_DEADLINE:?} of the close",
                    self.user
                )
            })
            .expect("a watcher task panicked (its message is above)")
    }
}

async fn watch(mut ws: WsClient, mut log: WatchLog) -> WatchLog {
    let end = Instant::now() + WATCH_DEADLINE;
    loop {
        match ws.next_before(end).await {
            Some(Incoming::Json(frame)) => match frame["type"].as_str() {
                Some("message") => log.messages.push((
                    frame["seq"].as_u64().expect("a message's seq"),
                    frame["text"].as_str().expect("a message's text").to_owned(),
                )),
                Some("state") => log
                    .state_seqs
                    .push(frame["seq"].as_u64().expect("a state's seq")),
                Some("closed") => log.closed = Some(frame),
                _ => {}
            },
            Some(Incoming::Closed(code)) => {
                log.ended = Some(code);
                return log;
            }
            None => return log,
        }
    }
}

impl WatchLog {
    /// Holds what the watcher saw against the room's whole `transcript` (seq, text) and its
    /// `final_view`.
    pub fn check(&self, transcript: &[(u64, String)], final_view: &Value) {
        let who = format!("watcher {} on {}", self.user, self.node);
        assert_eq!(
            self.ended,
            Some(Some(1000)),
            "{who}: its socket must stay open until the room closes, then close with 1000"
        );
        let closed = self
            .closed
            .as_ref()
            .unwrap_or_else(|| panic!("{who}: no `closed` frame before the socket closed"));
        for key in ["id", "status", "seq", "pro", "con", "messages", "closed_at"] {
            assert_eq!(
                closed[key], final_view[key],
                "{who}: the `closed` frame's {key} differs from the final view: {closed} vs \
                 {final_view}"
            );
        }
        let order: Vec<u64> = self.messages.iter().map(|(seq, _)| *seq).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "{who}: `message` frames out of seq order: {order:?}"
        );
        let expected: Vec<(u64, String)> = transcript
            .iter()
            .filter(|(seq, _)| *seq > self.first_seq)
            .cloned()
            .collect();
        let got: Vec<(u64, String)> = self
            .messages
            .iter()
            .filter(|(seq, _)| *seq > self.first_seq)
            .cloned()
            .collect();
        if got != expected {
            let missing: Vec<u64> = expected
                .iter()
                .filter(|m| !got.contains(m))
                .map(|(seq, _)| *seq)
                .collect();
            let extra: Vec<u64> = got
                .iter()
                .filter(|m| !expected.contains(m))
                .map(|(seq, _)| *seq)
                .collect();
            panic!(
                "{who}: the `message` frames after seq {} are not the transcript: missing seqs \
                 {missing:?}, not in the record {extra:?} ({} got, {} expected)",
                self.first_seq,
                got.len(),
                expected.len()
            );
        }
        assert!(
            self.state_seqs.windows(2).all(|w| w[0] <= w[1]),
            "{who}: a `state` frame went back to an older seq: {:?}",
            self.state_seqs
        );
    }
}
