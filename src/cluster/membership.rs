//! Who is in the cluster, judged from heartbeats alone: a node is alive while its record in Redis
//! keeps changing (every heartbeat bumps its `beat`), as seen by this node over its own clock.
//! No two clocks are ever compared.
//!
//! This node judges others dead only after it has itself been heartbeating without a break for
//! a whole lease: after an outage of Redis (a failover) every record stood still for everyone,
//! and nobody may take anybody's rooms for that. A break in this node's own heartbeats longer
//! than the lease (it was paused, or cut off) means others may have taken its rooms: it must
//! check what it still owns before it trusts it (`Beat::lapsed`).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use roomstate_journal::redis::NodeRecord;

/// What one successful heartbeat tells this node.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Beat {
    /// This node went longer than the lease without a heartbeat: its leases may be gone.
    pub(crate) lapsed: bool,
    /// Nodes whose record vanished since the last heartbeat (they left, or were forgotten).
    pub(crate) vanished: Vec<String>,
    /// Nodes that started a new run since the last heartbeat (restarted under their id), with
    /// the new run's `started_ms`: the sockets of their earlier runs are gone.
    pub(crate) restarted: Vec<(String, u64)>,
}

#[derive(Debug, Clone)]
struct Seen {
    record: NodeRecord,
    /// When this node last saw the record change.
    changed: Instant,
}

pub(crate) struct Membership {
    me: String,
    lease: Duration,
    nodes: HashMap<String, Seen>,
    /// The last successful heartbeat.
    last_ok: Option<Instant>,
    /// Since when this node's heartbeats have succeeded without a break longer than the lease.
    healthy_since: Option<Instant>,
}

impl Membership {
    pub(crate) fn new(me: String, lease: Duration) -> Self {
        Self {
            me,
            lease,
            nodes: HashMap::new(),
            last_ok: None,
            healthy_since: None,
        }
    }

    /// A heartbeat sent at `sent` succeeded, and its answer, at `answered`, says that Redis holds
    /// `records`. Each judgement takes the time that errs on the safe side: this node's record
    /// was written between the two, so the gap the others saw since its last beat may reach
    /// `answered` (lapsed: check its leases), while its next beat is due from `sent`; another's
    /// record was seen as it is when the answer came (a beat queued behind a slow write of this
    /// node's must not make the others' records look older, and them dead sooner).
    pub(crate) fn beat_ok(
        &mut self,
        records: Vec<NodeRecord>,
        sent: Instant,
        answered: Instant,
    ) -> Beat {
        let lapsed = self
            .last_ok
            .is_some_and(|last| answered.saturating_duration_since(last) > self.lease);
        if lapsed || self.healthy_since.is_none() {
            self.healthy_since = Some(answered);
        }
        self.last_ok = Some(sent);
        let mut vanished: Vec<String> = self.nodes.keys().cloned().collect();
        let mut nodes = HashMap::with_capacity(records.len());
        let mut restarted = Vec::new();
        for record in records {
            vanished.retain(|id| *id != record.id);
            let seen = self.nodes.remove(&record.id);
            if let Some(seen) = &seen {
                if seen.record.started_ms != record.started_ms && record.id != self.me {
                    restarted.push((record.id.clone(), record.started_ms));
                }
            }
            let changed = match seen {
                Some(seen)
                    if seen.record.beat == record.beat
                        && seen.record.started_ms == record.started_ms =>
                {
                    seen.changed
                }
                _ => answered,
            };
            nodes.insert(record.id.clone(), Seen { record, changed });
        }
        self.nodes = nodes;
        vanished.sort();
        restarted.sort();
        Beat {
            lapsed,
            vanished,
            restarted,
        }
    }

    /// A heartbeat failed at `now`.
    pub(crate) fn beat_failed(&mut self, now: Instant) {
        if self
            .last_ok
            .is_none_or(|last| now.saturating_duration_since(last) > self.lease)
        {
            self.healthy_since = None;
        }
    }

    /// Whether this node is in the cluster: its heartbeats reach Redis within the lease.
    pub(crate) fn in_cluster(&self, now: Instant) -> bool {
        self.last_ok
            .is_some_and(|last| now.saturating_duration_since(last) <= self.lease)
            && self.nodes.contains_key(&self.me)
    }

    /// Whether this node has watched the others long enough to call any of them dead.
    fn may_judge(&self, now: Instant) -> bool {
        self.in_cluster(now)
            && self
                .healthy_since
                .is_some_and(|since| now.saturating_duration_since(since) >= self.lease)
    }

    /// Whether `id` is alive as far as this node can tell (unknown nodes are not; others are
    /// until this node may judge them).
    pub(crate) fn alive(&self, id: &str, now: Instant) -> bool {
        if id == self.me {
            return self.in_cluster(now);
        }
        let Some(seen) = self.nodes.get(id) else {
            return false;
        };
        !self.may_judge(now) || now.saturating_duration_since(seen.changed) <= self.lease
    }

    /// Live nodes that take rooms (alive, not leaving), by id.
    pub(crate) fn serving(&self, now: Instant) -> Vec<&NodeRecord> {
        let mut nodes: Vec<&NodeRecord> = self
            .nodes
            .values()
            .filter(|s| !s.record.leaving && self.alive(&s.record.id, now))
            .map(|s| &s.record)
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        nodes
    }

    /// The nodes this one may hand its rooms to when it leaves: the others that take rooms
    /// (alive, not leaving themselves), with their URLs, by id.
    pub(crate) fn successors(&self, now: Instant) -> Vec<(String, String)> {
        self.serving(now)
            .into_iter()
            .filter(|record| record.id != self.me)
            .map(|record| (record.id.clone(), record.advertise_url.clone()))
            .collect()
    }

    /// Nodes this node judges dead now (never itself; none while it may not judge).
    pub(crate) fn dead(&self, now: Instant) -> Vec<String> {
        if !self.may_judge(now) {
            return Vec::new();
        }
        let mut dead: Vec<String> = self
            .nodes
            .keys()
            .filter(|id| **id != self.me && !self.alive(id, now))
            .cloned()
            .collect();
        dead.sort();
        dead
    }

    /// Whether a room owned by `node` needs a new owner: nobody (released at a hand-off), a node
    /// that is not in the records, or one judged dead. A released room may be taken at once; the
    /// others only once this node may judge.
    pub(crate) fn orphaned_by(&self, node: &str, now: Instant) -> bool {
        if node.is_empty() {
            return true;
        }
        if node == self.me || !self.may_judge(now) {
            return false;
        }
        !self.alive(node, now)
    }

    /// Every known node with whether it is alive, by id (`/admin/cluster`).
    pub(crate) fn view(&self, now: Instant) -> Vec<(NodeRecord, bool)> {
        let mut nodes: Vec<(NodeRecord, bool)> = self
            .nodes
            .values()
            .map(|s| (s.record.clone(), self.alive(&s.record.id, now)))
            .collect();
        nodes.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        nodes
    }

    /// The advertised URL of `id`, if it is known.
    pub(crate) fn url_of(&self, id: &str) -> Option<&str> {
        self.nodes.get(id).map(|s| s.record.advertise_url.as_str())
    }

    /// How long `id` has been dead, as far as this node can tell.
    pub(crate) fn dead_for(&self, id: &str, now: Instant) -> Option<Duration> {
        let seen = self.nodes.get(id)?;
        (!self.alive(id, now)).then(|| now.saturating_duration_since(seen.changed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(1000);

    fn record(id: &str, beat: u64) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            advertise_url: format!("http://{id}"),
            rooms: 0,
            beat,
            started_ms: 1,
            leaving: false,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_node_whose_record_stands_still_for_a_lease_is_dead_once_this_one_may_judge() {
        let t0 = Instant::now();
        let mut m = Membership::new("a".into(), LEASE);
        m.beat_ok(vec![record("a", 1), record("b", 1)], t0, t0);
        // b stops beating right away; a keeps beating. Before a full lease of a's own watching,
        // nobody is judged.
        m.beat_ok(
            vec![record("a", 2), record("b", 1)],
            t0 + ms(600),
            t0 + ms(600),
        );
        assert!(m.dead(t0 + ms(600)).is_empty());
        m.beat_ok(
            vec![record("a", 3), record("b", 1)],
            t0 + ms(1200),
            t0 + ms(1200),
        );
        assert_eq!(m.dead(t0 + ms(1200)), vec!["b".to_string()]);
        assert!(m.orphaned_by("b", t0 + ms(1200)));
        assert_eq!(m.serving(t0 + ms(1200)).len(), 1);
        // It beats again: alive.
        m.beat_ok(
            vec![record("a", 4), record("b", 2)],
            t0 + ms(1500),
            t0 + ms(1500),
        );
        assert!(m.dead(t0 + ms(1500)).is_empty());
    }

    /// A beat whose answer came late (queued behind a slow write of this node's): the others'
    /// records were seen when it came, not when it was sent, so a node beating on time is not
    /// judged dead for this node's delay.
    #[test]
    fn a_late_answer_does_not_make_the_others_records_look_older() {
        let t0 = Instant::now();
        let mut m = Membership::new("a".into(), LEASE);
        m.beat_ok(vec![record("a", 1), record("b", 1)], t0, t0);
        m.beat_ok(
            vec![record("a", 2), record("b", 2)],
            t0 + ms(300),
            t0 + ms(300),
        );
        // Sent at 1000 ms, answered at 1900 ms: b's record had changed by then.
        m.beat_ok(
            vec![record("a", 3), record("b", 3)],
            t0 + ms(1000),
            t0 + ms(1900),
        );
        // b beats every 250 ms, and this node's next beat (sent at 1900 ms, its own beats on
        // time) reads b's record before b's next beat landed: b's record last changed when the
        // late answer came, 150 ms before, not when that beat was sent, 1050 ms before.
        m.beat_ok(
            vec![record("a", 4), record("b", 3)],
            t0 + ms(1900),
            t0 + ms(2050),
        );
        assert!(m.dead(t0 + ms(2050)).is_empty(), "b beats on time");
        assert!(!m.orphaned_by("b", t0 + ms(2050)));
    }

    /// A beat sent within the lease but answered past it may have written this node's record
    /// past it too: the others may have judged this node dead meanwhile, so it checks its leases.
    #[test]
    fn a_beat_answered_past_the_lease_counts_as_lapsed() {
        let t0 = Instant::now();
        let mut m = Membership::new("a".into(), LEASE);
        m.beat_ok(vec![record("a", 1)], t0, t0);
        let beat = m.beat_ok(vec![record("a", 2)], t0 + ms(900), t0 + ms(1500));
        assert!(beat.lapsed);
        let beat = m.beat_ok(vec![record("a", 3)], t0 + ms(1600), t0 + ms(1650));
        assert!(
            !beat.lapsed,
            "the next beat is due from when the last was sent"
        );
    }

    #[test]
    fn a_leaving_node_hands_its_rooms_to_the_others_that_take_rooms() {
        let t0 = Instant::now();
        let mut m = Membership::new("a".into(), LEASE);
        let mut c = record("c", 1);
        c.leaving = true;
        m.beat_ok(vec![record("a", 1), record("b", 1), c], t0, t0);
        // Neither itself nor a node leaving at the same time (which would not serve them).
        assert_eq!(
            m.successors(t0),
            vec![("b".to_string(), "http://b".to_string())]
        );
    }

    #[test]
    fn after_a_redis_outage_nobody_is_judged_for_a_lease() {
        let t0 = Instant::now();
        let mut m = Membership::new("a".into(), LEASE);
        m.beat_ok(vec![record("a", 1), record("b", 1)], t0, t0);
        m.beat_ok(
            vec![record("a", 2), record("b", 2)],
            t0 + ms(1100),
            t0 + ms(1100),
        );
        // Redis gone for 3 s: every record stood still.
        m.beat_failed(t0 + ms(2000));
        m.beat_failed(t0 + ms(4000));
        assert!(!m.in_cluster(t0 + ms(4000)));
        let beat = m.beat_ok(
            vec![record("a", 3), record("b", 2)],
            t0 + ms(4100),
            t0 + ms(4100),
        );
        assert!(beat.lapsed, "a's own leases may be gone");
        assert!(m.dead(t0 + ms(4100)).is_empty(), "b is not judged yet");
        m.beat_ok(
            vec![record("a", 4), record("b", 3)],
            t0 + ms(4600),
            t0 + ms(4600),
        );
        m.beat_ok(
            vec![record("a", 5), record("b", 4)],
            t0 + ms(5200),
            t0 + ms(5200),
        );
        assert!(m.dead(t0 + ms(5200)).is_empty());
    }

    #[test]
    fn a_restarted_node_is_a_new_run_and_a_vanished_one_is_reported() {
        let t0 = Instant::now();
        let mut m = Membership::new("a".into(), LEASE);
        m.beat_ok(vec![record("a", 1), record("b", 9), record("c", 1)], t0, t0);
        let mut restarted = record("b", 9);
        restarted.started_ms = 2;
        let beat = m.beat_ok(
            vec![record("a", 2), restarted.clone()],
            t0 + ms(500),
            t0 + ms(500),
        );
        assert_eq!(beat.vanished, vec!["c".to_string()]);
        assert_eq!(
            beat.restarted,
            vec![("b".to_string(), 2)],
            "b's new run, once"
        );
        assert!(!beat.lapsed);
        let beat = m.beat_ok(
            vec![record("a", 3), restarted],
            t0 + ms(1200),
            t0 + ms(1200),
        );
        assert!(beat.restarted.is_empty(), "told once");
        // b's beat count is the same as at t0, but it is a new run since 500: alive at 1200,
        // when this node may judge (it has beaten for a whole lease).
        assert!(m.alive("b", t0 + ms(1200)));
        assert!(m.dead(t0 + ms(1200)).is_empty());
        assert!(m.orphaned_by("c", t0 + ms(1200)), "an unknown owner");
        assert!(m.orphaned_by("", t0), "a released room");
        assert!(
            !m.orphaned_by("a", t0 + ms(1200)),
            "its own rooms are not orphans"
        );
    }
}
