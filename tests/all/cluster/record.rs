//! The cluster tests' final-record check: close the room through one node (any node may be
//! asked), and hold the record in MariaDB against every acknowledgement — each user's vote the
//! last one acknowledged, the transcript exactly the acknowledged messages (none lost, none
//! twice, nothing unacknowledged), every acknowledgement that took a seq of its own with a seq
//! nobody else got and no higher than the final seq, and the record written once.

use std::{collections::BTreeMap, time::Duration};

use roomstate_core::room::RoomId;
use roomstate_store::Store;
use roomstate_testkit::cluster::TestCluster;
use serde_json::Value;

use super::voters::VoterLog;
use crate::close::{store_rows, stored_transcript};

/// How long the close may be refused with 503 (a takeover or a failover still under way).
const CLOSE_DEADLINE: Duration = Duration::from_secs(60);

/// What the clients were told.
#[derive(Debug, Default)]
pub struct Expected {
    /// Each user's vote, for sure.
    pub votes: BTreeMap<String, String>,
    /// Acknowledged messages: (seq, text).
    pub messages: Vec<(u64, String)>,
    /// Seqs of acknowledgements that each took a seq of their own (messages).
    pub own_seqs: Vec<u64>,
    /// Seqs of acknowledged votes: not necessarily their own (`VoterLog::vote_seqs`).
    pub vote_seqs: Vec<u64>,
    /// Who was told each of `own_seqs` (same order): a voter's name, or the test's own client.
    pub told: Vec<String>,
}

impl Expected {
    /// Adds what `logs`' voters were told.
    pub fn add_voters(&mut self, logs: &[VoterLog]) {
        for log in logs {
            if let Some(side) = &log.side {
                self.votes.insert(log.user.clone(), side.clone());
            }
            self.messages.extend(log.messages.iter().cloned());
            self.own_seqs.extend(&log.own_seqs);
            self.vote_seqs.extend(&log.vote_seqs);
            let who = format!("{} (nodes {:?})", log.user, log.nodes);
            self.told
                .extend(std::iter::repeat_n(who, log.own_seqs.len()));
            assert!(
                log.out_of_order.is_empty(),
                "{}: `message` frames out of seq order on its socket (before, after): {:?}",
                log.user,
                log.out_of_order
            );
        }
    }

    pub fn from_voters(logs: &[VoterLog]) -> Expected {
        let mut expected = Expected::default();
        expected.add_voters(logs);
        expected
    }

    /// An acknowledged vote, the user's last.
    pub fn vote(&mut self, user: &str, side: &str, seq: u64) {
        self.votes.insert(user.to_owned(), side.to_owned());
        self.vote_seqs.push(seq);
    }

    /// An acknowledged message.
    pub fn message(&mut self, seq: u64, text: &str) {
        self.messages.push((seq, text.to_owned()));
        self.own_seqs.push(seq);
        self.told.push(format!("the message {text:?}"));
    }

    /// The acknowledged messages in seq order.
    pub fn transcript(&self) -> Vec<(u64, String)> {
        let mut messages = self.messages.clone();
        messages.sort();
        messages
    }
}

/// Closes `room` through node `via` (retrying while it answers 503), closes it again through
/// every other node that is up (each must answer the same final view), and checks the record in
/// the store at `store_url` against `expected`. Returns the final view.
pub async fn close_and_check(
    cluster: &TestCluster,
    via: usize,
    store_url: &str,
    room: &str,
    expected: &Expected,
) -> Value {
    assert!(
        !expected.messages.is_empty(),
        "no message was acknowledged, so the transcript proves nothing"
    );
    let final_view = cluster.close_room_retried(via, room, CLOSE_DEADLINE).await;
    assert_eq!(final_view["status"], "closed", "{final_view}");
    for i in cluster.up() {
        // A node may still answer `503` for a moment (its call to the room's last owner failed
        // during a takeover: retry, as the contract says); then the same final view, whichever
        // node. (A lease left in Redis after the close is not one: `closed_lease_left`.)
        let again = cluster.close_room_retried(i, room, CLOSE_DEADLINE).await;
        assert_eq!(
            again,
            final_view,
            "closing again through {} answers the same final view",
            cluster.node_id(i)
        );
    }

    // A seq is given to one mutation only, and only a durable one is acknowledged: two messages
    // acknowledged with one seq, or any acknowledgement past the final seq, mean an acknowledged
    // event was lost (or two owners both acknowledged) and its seq given out again. (A vote's
    // seq may be another event's: `VoterLog::vote_seqs`.)
    let final_seq = final_view["seq"].as_u64().expect("the final seq");
    let mut seqs = expected.own_seqs.clone();
    seqs.sort_unstable();
    let twice: Vec<u64> = seqs
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    if !twice.is_empty() {
        let told: Vec<(u64, &String)> = (expected.own_seqs.iter().copied())
            .zip(&expected.told)
            .filter(|(seq, _)| twice.contains(seq))
            .collect();
        let logs: Vec<String> = (0..cluster.len())
            .map(|i| {
                format!(
                    "--- {} ---\n{}",
                    cluster.node_id(i),
                    tail(&cluster.log(i), 300)
                )
            })
            .collect();
        panic!(
            "seqs acknowledged twice: {twice:?}, told to {told:?}\n{}",
            logs.join("\n")
        );
    }
    let votes_last = expected.vote_seqs.iter().max();
    if let Some(&last) = seqs.last().max(votes_last) {
        assert!(
            last <= final_seq,
            "seq {last} was acknowledged; the final record ends at {final_seq}"
        );
    }

    let store = Store::open(store_url).expect("opening the cluster's store");
    let id = RoomId::parse(room).expect("a room id");
    let stored: BTreeMap<String, String> = store
        .votes(&id)
        .await
        .expect("reading the final votes")
        .into_iter()
        .map(|(user, side)| (user.to_string(), side.as_str().to_owned()))
        .collect();
    assert_eq!(
        stored, expected.votes,
        "final votes = the last acknowledged vote of each user"
    );
    let transcript = stored_transcript(&store, &id).await;
    let wanted = expected.transcript();
    if transcript != wanted {
        let missing: Vec<&(u64, String)> =
            wanted.iter().filter(|m| !transcript.contains(m)).collect();
        let extra: Vec<&(u64, String)> =
            transcript.iter().filter(|m| !wanted.contains(m)).collect();
        panic!(
            "the transcript is not the acknowledged messages: {} acknowledged messages are not \
             in it {missing:?}; {} in it were not acknowledged {extra:?}",
            missing.len(),
            extra.len()
        );
    }
    let pro = stored.values().filter(|s| *s == "pro").count() as u64;
    let con = stored.len() as u64 - pro;
    assert_eq!(
        (
            final_view["pro"].as_u64(),
            final_view["con"].as_u64(),
            final_view["messages"].as_u64()
        ),
        (Some(pro), Some(con), Some(transcript.len() as u64)),
        "the final view's tally and message count: {final_view}"
    );

    assert_eq!(
        store_rows(store_url, room),
        (1, stored.len() as i64, transcript.len() as i64),
        "one room row, the final votes, the transcript once"
    );
    let mut closes = 0.0;
    for i in cluster.up() {
        closes += cluster.metric(i, "roomstate_rooms_closed_total").await;
    }
    assert_eq!(
        closes, 1.0,
        "the nodes that are up wrote {closes} final records (roomstate_rooms_closed_total); one \
         was due"
    );
    final_view
}

/// The last `lines` lines of `log`.
fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
