//! How long after its ack each acknowledged change reached each socket, over every (change,
//! socket) pair: for a vote acknowledged with seq `s` at `t`, the first `state` frame with a seq
//! of at least `s` at that socket (intermediate states may be skipped: a newer one shows the vote
//! too); for a chat message, the `message` frame with its very seq (none may be skipped). Both
//! lists of a socket are in seq order, so each socket is one merge over the acks sorted by seq.
//!
//! The change became durable somewhere between the request and its ack, so the delay is measured
//! from both: from the ack (what the issue asks; a frame that beats the ack to its sender counts
//! as 0) and from when the request was due (an upper bound, including the request's own path).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{acks::Acked, client::Window};

/// What the contract promises for the newest state: out within 100 ms of the change.
pub const STATE_PROMISE: Duration = Duration::from_millis(100);

/// Where a delay counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// The ack's arrival at the sender.
    Ack,
    /// The moment the request was due.
    Request,
}

/// Delays over (change, socket) pairs.
pub struct Delays {
    /// Start (`Since`) → arrival, microseconds, for the changes due in the window.
    histogram: Histogram<u64>,
    /// Pairs of changes due in the window whose frame arrived.
    pub pairs: u64,
    /// Of those, the frame came before the start (the ack reached its sender; recorded as 0).
    pub before_ack: u64,
    /// Of those, later than `STATE_PROMISE`.
    pub over_promise: u64,
    /// Pairs (of every acknowledged change of the run) whose frame never arrived.
    pub missing: u64,
    /// Sockets with at least one missing pair.
    pub sockets_missing: u64,
}

/// The summary of `Delays`, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct DelaySummary {
    pub pairs: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub before_ack: u64,
    /// Share of pairs later than 100 ms.
    pub over_100ms_share: f64,
    pub missing: u64,
    pub sockets_missing: u64,
}

impl Delays {
    fn new() -> Self {
        Self {
            // 1 µs to 10 min at 3 significant figures (constant, valid bounds).
            histogram: Histogram::new_with_bounds(1, 600_000_000, 3)
                .expect("constant histogram bounds"),
            pairs: 0,
            before_ack: 0,
            over_promise: 0,
            missing: 0,
            sockets_missing: 0,
        }
    }

    fn record(&mut self, start: Instant, arrived: Instant) {
        self.pairs += 1;
        if arrived < start {
            self.before_ack += 1;
        }
        let delay = arrived.saturating_duration_since(start);
        if delay > STATE_PROMISE {
            self.over_promise += 1;
        }
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX).max(1);
        self.histogram.saturating_record(micros);
    }

    pub fn summary(&self) -> DelaySummary {
        let ms = |q: f64| self.histogram.value_at_quantile(q) as f64 / 1000.0;
        DelaySummary {
            pairs: self.pairs,
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: self.histogram.max() as f64 / 1000.0,
            mean_ms: self.histogram.mean() / 1000.0,
            before_ack: self.before_ack,
            over_100ms_share: if self.pairs > 0 {
                self.over_promise as f64 / self.pairs as f64
            } else {
                0.0
            },
            missing: self.missing,
            sockets_missing: self.sockets_missing,
        }
    }
}

/// How a socket's frames answer a change of seq `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// The first frame with a seq of at least `s` (states: a newer state shows the change too).
    AtLeast,
    /// The frame with seq `s` itself (messages: none may be skipped).
    Exactly,
}

/// Delays of every change in `changes` (any order) at every socket of `sockets` (each in seq
/// order: (seq, arrival)), counted `since` its ack or its request; the histogram holds the changes
/// due in `window`.
pub fn measure<'a>(
    changes: &[Acked],
    sockets: impl IntoIterator<Item = &'a [(u64, Instant)]>,
    how: Match,
    since: Since,
    window: Window,
) -> Delays {
    let mut changes = changes.to_vec();
    changes.sort_unstable_by_key(|c| c.seq);
    let mut delays = Delays::new();
    for frames in sockets {
        let mut next = 0;
        let mut missing = 0;
        for change in &changes {
            while next < frames.len() && frames[next].0 < change.seq {
                next += 1;
            }
            let found = frames.get(next).filter(|(seq, _)| match how {
                Match::AtLeast => true,
                Match::Exactly => *seq == change.seq,
            });
            match found {
                Some(&(_, arrived)) if window.holds(change.due) => {
                    let start = match since {
                        Since::Ack => change.at,
                        Since::Request => change.due,
                    };
                    delays.record(start, arrived)
                }
                Some(_) => {}
                None => missing += 1,
            }
        }
        delays.missing += missing;
        delays.sockets_missing += u64::from(missing > 0);
    }
    delays
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_may_skip_messages_may_not() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let window = Window {
            from: t0,
            until: ms(1000),
        };
        let changes = [
            Acked {
                seq: 12,
                due: ms(5),
                at: ms(10),
            },
            Acked {
                seq: 10,
                due: ms(0),
                at: ms(5),
            },
            Acked {
                seq: 14,
                due: ms(8),
                at: ms(20),
            },
        ];
        // Socket a: one state carrying 12, then 14 late. Socket b: saw only up to 12.
        let a = vec![(12, ms(30)), (14, ms(170))];
        let b = vec![(9, ms(1)), (12, ms(7))];
        let states = measure(
            &changes,
            [a.as_slice(), b.as_slice()],
            Match::AtLeast,
            Since::Ack,
            window,
        );
        assert_eq!(states.pairs, 5);
        assert_eq!(states.missing, 1, "b never saw 14");
        assert_eq!(states.sockets_missing, 1);
        assert_eq!(
            states.before_ack, 1,
            "b saw 12 (at 7 ms) before its ack (10 ms)"
        );
        assert_eq!(states.over_promise, 1, "14 reached a 150 ms after its ack");
        let summary = states.summary();
        assert!((149.0..151.0).contains(&summary.max_ms), "{summary:?}");

        let messages = measure(
            &changes,
            [a.as_slice(), b.as_slice()],
            Match::Exactly,
            Since::Ack,
            window,
        );
        assert_eq!(messages.missing, 1 + 2, "a lacks 10; b lacks 10 and 14");
        assert_eq!(messages.pairs, 3);
        assert_eq!(messages.sockets_missing, 2);

        let from_requests = measure(
            &changes,
            [a.as_slice(), b.as_slice()],
            Match::AtLeast,
            Since::Request,
            window,
        );
        assert_eq!(from_requests.before_ack, 0);
        let summary = from_requests.summary();
        assert!(
            (161.0..163.0).contains(&summary.max_ms),
            "14 due at 8 ms, seen at 170 ms"
        );
    }
}
