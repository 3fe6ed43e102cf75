//! Which primaries the writer must not write to right now, from what the sentinels announced to
//! the watcher (`watch`). During `SENTINEL FAILOVER` the old primary stays a writable master with
//! the non-promoted replica attached for about a second after the promoted one left it, so
//! `WAIT 1` still succeeds there, and whatever it acknowledged is then dropped when that replica
//! full-resyncs from the new primary. The fence closes that window: from a sentinel's first
//! failover event for our master until that failover is over, the writer acknowledges nothing
//! written to that primary and does not connect to it.
//!
//! Two kinds of entry, each with a time limit so that a missed event cannot stop the writer for
//! good:
//! - a *mark* per sentinel: "a failover of the master at X is under way here", set by its
//!   progress events (`+try-failover` … `+slave-reconf-done`), cleared by its `+failover-end`,
//!   `-failover-abort-*` or `+switch-master`, and re-read from `SENTINEL MASTER` every second
//!   while it is set (`watch`); one not confirmed for 30 s (the sentinel is unreachable) lapses;
//! - *deposed* X: some sentinel switched from X to another primary (`+switch-master`); it stays
//!   until the writer has connected to another primary, a sentinel switches back to X, or 30 s
//!   have passed (the old primary is demoted to a replica about 10 s after a failover).
//!
//! The writer asks `blocks(address)` before writing and before acknowledging; the watcher only
//! ever takes the lock for a few map operations, so neither waits on the other.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

/// A mark not confirmed by its sentinel for this long lapses.
const MARK_TTL: Duration = Duration::from_secs(30);
/// A deposed primary stays fenced at most this long.
const DEPOSED_TTL: Duration = Duration::from_secs(30);

/// What a sentinel said about the failover of the primary at some address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Signal {
    /// A failover of it is under way on that sentinel.
    Progress,
    /// That sentinel's failover of it ended or was given up.
    Over,
    /// That sentinel now names `to` instead.
    Switched { to: String },
}

#[derive(Debug)]
struct Mark {
    primary: String,
    confirmed: Instant,
}

#[derive(Debug)]
struct Deposed {
    successor: String,
    since: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// Per sentinel (the index of its address in the configuration).
    marks: Vec<Option<Mark>>,
    deposed: BTreeMap<String, Deposed>,
}

impl State {
    fn blocks(&self, primary: &str, now: Instant) -> Option<String> {
        let marked = self.marks.iter().flatten().any(|mark| {
            mark.primary == primary && now.saturating_duration_since(mark.confirmed) <= MARK_TTL
        });
        if marked {
            return Some(format!(
                "the sentinels are failing over the primary {primary}; nothing written to it is \
                 acknowledged until they name another one"
            ));
        }
        self.deposed
            .get(primary)
            .filter(|d| now.saturating_duration_since(d.since) <= DEPOSED_TTL)
            .map(|d| {
                format!(
                    "the sentinels replaced the primary {primary} by {}",
                    d.successor
                )
            })
    }
}

/// The fence the watcher raises and the writer obeys.
#[derive(Debug)]
pub(super) struct Fences {
    state: Mutex<State>,
}

impl Fences {
    /// A fence fed by `sentinels` sources.
    pub(super) fn new(sentinels: usize) -> Self {
        Self {
            state: Mutex::new(State {
                marks: (0..sentinels).map(|_| None).collect(),
                deposed: BTreeMap::new(),
            }),
        }
    }

    /// Why the writer must not write to (nor acknowledge a write on) `primary` now, if it must
    /// not.
    pub(super) fn blocks(&self, primary: &str, now: Instant) -> Option<String> {
        self.state.lock().blocks(primary, now)
    }

    /// Sentinel `source` said `signal` about the primary at `primary`.
    pub(super) fn observe(&self, source: usize, primary: &str, signal: Signal, now: Instant) {
        let mut state = self.state.lock();
        let touched: Vec<String> = match &signal {
            Signal::Switched { to } => vec![primary.to_owned(), to.clone()],
            _ => vec![primary.to_owned()],
        };
        let before: Vec<bool> = touched
            .iter()
            .map(|p| state.blocks(p, now).is_some())
            .collect();
        let mark = match signal {
            Signal::Progress => Some(Mark {
                primary: primary.to_owned(),
                confirmed: now,
            }),
            Signal::Over => None,
            Signal::Switched { to } => {
                state.deposed.remove(&to);
                state.deposed.insert(
                    primary.to_owned(),
                    Deposed {
                        successor: to,
                        since: now,
                    },
                );
                None
            }
        };
        if let Some(slot) = state.marks.get_mut(source) {
            *slot = mark;
        }
        for (primary, was) in touched.iter().zip(before) {
            log_change(primary, was, state.blocks(primary, now));
        }
    }

    /// What sentinel `source` reports when asked (`SENTINEL MASTER`): the address of the
    /// primary it is failing over, or `None`. Replaces its mark: it covers events missed while
    /// the subscription was down.
    pub(super) fn reconcile(&self, source: usize, in_progress: Option<String>, now: Instant) {
        let mut state = self.state.lock();
        let touched: Vec<String> = state
            .marks
            .get(source)
            .and_then(|m| m.as_ref().map(|m| m.primary.clone()))
            .into_iter()
            .chain(in_progress.clone())
            .collect();
        let before: Vec<bool> = touched
            .iter()
            .map(|p| state.blocks(p, now).is_some())
            .collect();
        if let Some(slot) = state.marks.get_mut(source) {
            *slot = in_progress.map(|primary| Mark {
                primary,
                confirmed: now,
            });
        }
        for (primary, was) in touched.iter().zip(before) {
            log_change(primary, was, state.blocks(primary, now));
        }
    }

    /// Whether sentinel `source` has a failover under way, as far as the watcher knows.
    pub(super) fn is_marked(&self, source: usize) -> bool {
        self.state
            .lock()
            .marks
            .get(source)
            .is_some_and(Option::is_some)
    }

    /// The writer connected to `primary` (the sentinels named it and it says `master`): every
    /// other deposed primary is behind us. Marks stay: they lapse with their sentinel's word.
    pub(super) fn connected(&self, primary: &str) {
        self.state.lock().deposed.retain(|old, _| old == primary);
    }
}

fn log_change(primary: &str, was: bool, now: Option<String>) {
    match (was, now) {
        (false, Some(why)) => tracing::warn!(
            redis.primary = %primary, reason = %why,
            "failover under way: the journal stops writing to this primary"
        ),
        (true, None) => tracing::info!(
            redis.primary = %primary,
            "no failover of this primary under way any more: the journal may write to it again"
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "127.0.0.1:6379";
    const B: &str = "127.0.0.1:6380";

    #[test]
    fn a_failover_blocks_the_old_primary_only_until_its_sentinel_says_it_is_over() {
        let fences = Fences::new(3);
        let now = Instant::now();
        assert!(fences.blocks(A, now).is_none());
        fences.observe(0, A, Signal::Progress, now);
        assert!(fences.blocks(A, now).is_some());
        assert!(
            fences.blocks(B, now).is_none(),
            "the successor is not fenced"
        );
        assert!(fences.is_marked(0) && !fences.is_marked(1));
        // An abort from another sentinel does not end sentinel 0's failover.
        fences.observe(1, A, Signal::Over, now);
        assert!(fences.blocks(A, now).is_some());
        fences.observe(0, A, Signal::Over, now);
        assert!(
            fences.blocks(A, now).is_none(),
            "aborted: A stays the primary"
        );
    }

    #[test]
    fn a_switch_deposes_the_old_primary_until_the_writer_has_moved_on() {
        let fences = Fences::new(3);
        let now = Instant::now();
        fences.observe(0, A, Signal::Progress, now);
        // Another sentinel learns the new configuration first (hello), then the leader ends.
        fences.observe(1, A, Signal::Switched { to: B.into() }, now);
        fences.observe(0, A, Signal::Over, now);
        assert!(fences.blocks(A, now).is_some(), "deposed");
        fences.observe(0, A, Signal::Switched { to: B.into() }, now);
        assert!(fences.blocks(A, now).is_some());
        assert!(fences.blocks(B, now).is_none());
        fences.connected(B);
        assert!(fences.blocks(A, now).is_none(), "the writer is on B");
    }

    #[test]
    fn switching_back_unfences_the_primary_switched_to() {
        let fences = Fences::new(1);
        let now = Instant::now();
        fences.observe(0, A, Signal::Switched { to: B.into() }, now);
        assert!(fences.blocks(A, now).is_some());
        fences.observe(0, B, Signal::Switched { to: A.into() }, now);
        assert!(fences.blocks(A, now).is_none());
        assert!(fences.blocks(B, now).is_some());
    }

    #[test]
    fn entries_lapse_when_nobody_confirms_them() {
        let fences = Fences::new(2);
        let t0 = Instant::now();
        fences.observe(0, A, Signal::Progress, t0);
        fences.observe(1, B, Signal::Switched { to: A.into() }, t0);
        let later = t0 + MARK_TTL.max(DEPOSED_TTL) + Duration::from_secs(1);
        assert!(fences.blocks(A, later).is_none());
        assert!(fences.blocks(B, later).is_none());
    }

    #[test]
    fn reconciling_replaces_a_sentinels_mark() {
        let fences = Fences::new(2);
        let now = Instant::now();
        // The watcher (re)subscribed during a failover: the sentinel's state says so.
        fences.reconcile(0, Some(A.into()), now);
        assert!(fences.blocks(A, now).is_some());
        // A second later it is over; the end event was missed.
        fences.reconcile(0, None, now);
        assert!(fences.blocks(A, now).is_none());
        assert!(!fences.is_marked(0));
        // Confirmation keeps a long failover's mark alive past the time limit.
        fences.observe(1, A, Signal::Progress, now);
        let later = now + MARK_TTL;
        fences.reconcile(1, Some(A.into()), later);
        assert!(fences.blocks(A, later + Duration::from_secs(5)).is_some());
    }

    #[test]
    fn an_unknown_sentinel_index_changes_nothing() {
        let fences = Fences::new(1);
        let now = Instant::now();
        fences.observe(7, A, Signal::Progress, now);
        fences.reconcile(7, Some(A.into()), now);
        assert!(fences.blocks(A, now).is_none());
    }
}
