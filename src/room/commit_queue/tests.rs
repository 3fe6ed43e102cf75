//! The commit pipeline rule by rule, with no actor, journal or clock: the tests play the journal
//! (answering batches with success or failure) and pass the time in.

use std::time::{Duration, Instant};

use roomstate_core::{
    room::{Counters, Event, EventKind, RoomId, UserName},
    time,
};

use super::*;

fn event(seq: u64) -> Event {
    Event {
        room: RoomId::parse("r_queue").unwrap(),
        seq,
        at: time::now(),
        kind: EventKind::Said {
            user: UserName::parse("alice").unwrap(),
            text: format!("m{seq}"),
            key: None,
        },
    }
}

fn counters(seq: u64) -> Counters {
    Counters {
        seq,
        messages: seq as u32,
        ..Counters::default()
    }
}

/// A queue whose durable state ends at seq 1, with events 2..=last pending, each awaited by its
/// own seq.
fn queue_with(last: u64, max_pending: usize) -> CommitQueue<u64> {
    let mut queue = CommitQueue::new(counters(1), max_pending);
    for seq in 2..=last {
        queue.push(event(seq), counters(seq), Some(seq));
    }
    queue
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

#[test]
fn one_batch_in_flight_at_a_time_in_seq_order() {
    let mut queue = queue_with(4, 100);
    let now = Instant::now();
    assert_eq!(seqs(&queue.next_batch().unwrap()), [2, 3, 4]);
    assert!(queue.in_flight());
    queue.push(event(5), counters(5), Some(5));
    assert!(queue.next_batch().is_none(), "a second batch waits");
    let committed = queue.batch_committed(now);
    let released: Vec<u64> = committed
        .entries
        .iter()
        .flat_map(|p| p.waiters.clone())
        .collect();
    assert_eq!(released, [2, 3, 4]);
    assert_eq!(queue.committed().seq, 4);
    assert_eq!(seqs(&queue.next_batch().unwrap()), [5]);
}

#[test]
fn nothing_is_committed_before_the_journal_says_so() {
    let mut queue = queue_with(3, 100);
    queue.next_batch().unwrap();
    assert_eq!(queue.committed().seq, 1, "in flight is not durable");
    assert_eq!(queue.len(), 2);
    queue.batch_failed(Instant::now());
    assert_eq!(queue.committed().seq, 1, "a failed batch is not durable");
    assert_eq!(queue.len(), 2, "its events stay pending");
}

#[test]
fn a_failed_batch_is_resent_unchanged_after_the_backoff() {
    // The journal may have written the batch and still reported an error (a lost reply): the
    // re-send carries the very same events, so the journal's idempotency by seq makes it a no-op
    // instead of a duplicate, and no event is sent twice within one batch.
    let mut queue = queue_with(4, 100);
    let now = Instant::now();
    let first = queue.next_batch().unwrap();
    let retry = queue.batch_failed(now);
    assert_eq!(retry.after, FIRST_RETRY_DELAY);
    assert!(retry.outage_began);
    queue.push(event(5), counters(5), Some(5));
    assert!(
        queue.next_batch().is_none(),
        "nothing goes before the retry is due"
    );
    queue.retry_due();
    let again = queue.next_batch().unwrap();
    assert_eq!(
        seqs(&again),
        [2, 3, 4, 5],
        "from the first event not yet durable"
    );
    assert_eq!(again[..3], first[..], "the failed events unchanged");
    let committed = queue.batch_committed(now + Duration::from_millis(30));
    assert_eq!(committed.entries.len(), 4);
    assert_eq!(committed.outage, Some(Duration::from_millis(30)));
    assert!(queue.is_empty());
    assert_eq!(queue.committed().seq, 5);
}

#[test]
fn the_backoff_doubles_up_to_a_bound_and_resets_on_success() {
    let mut queue = queue_with(2, 100);
    let now = Instant::now();
    let mut delays = Vec::new();
    for _ in 0..10 {
        queue.next_batch().unwrap();
        let retry = queue.batch_failed(now);
        delays.push(retry.after);
        queue.retry_due();
    }
    assert_eq!(delays[0], FIRST_RETRY_DELAY);
    assert_eq!(delays[1], FIRST_RETRY_DELAY * 2);
    assert!(delays.windows(2).all(|w| w[1] >= w[0]));
    assert_eq!(*delays.last().unwrap(), MAX_RETRY_DELAY);
    queue.next_batch().unwrap();
    queue.batch_committed(now);
    queue.push(event(3), counters(3), None);
    queue.next_batch().unwrap();
    assert_eq!(queue.batch_failed(now).after, FIRST_RETRY_DELAY, "reset");
}

#[test]
fn only_the_first_failure_of_an_outage_is_reported() {
    let mut queue = queue_with(2, 100);
    let now = Instant::now();
    queue.next_batch().unwrap();
    assert!(queue.batch_failed(now).outage_began);
    queue.retry_due();
    queue.next_batch().unwrap();
    assert!(!queue.batch_failed(now).outage_began);
}

#[test]
fn batches_over_the_append_bound_are_split_in_order() {
    let last = MAX_APPEND as u64 + 500;
    let mut queue = queue_with(last, 10_000);
    let now = Instant::now();
    let first = queue.next_batch().unwrap();
    assert_eq!(first.len(), MAX_APPEND);
    assert_eq!(first[0].seq, 2);
    let committed = queue.batch_committed(now);
    assert_eq!(committed.entries.len(), MAX_APPEND);
    assert_eq!(queue.committed().seq, MAX_APPEND as u64 + 1);
    let second = queue.next_batch().unwrap();
    assert_eq!(second[0].seq, MAX_APPEND as u64 + 2);
    assert_eq!(second.last().unwrap().seq, last);
    queue.batch_committed(now);
    assert!(queue.is_empty());
    assert_eq!(queue.committed().seq, last);
}

#[test]
fn a_no_op_waits_for_the_pending_events_before_it() {
    let mut queue: CommitQueue<u64> = CommitQueue::new(counters(1), 100);
    assert_eq!(
        queue.wait_for_pending(99),
        Err(99),
        "nothing pending: answer now"
    );
    queue.push(event(2), counters(2), Some(2));
    assert_eq!(queue.wait_for_pending(99), Ok(()));
    queue.next_batch().unwrap();
    let committed = queue.batch_committed(Instant::now());
    assert_eq!(committed.entries[0].waiters, [2, 99]);
}

#[test]
fn the_backlog_bound_refuses_new_mutations() {
    let now = Instant::now();
    let mut queue = queue_with(3, 3);
    assert!(queue.refusal(now).is_none(), "2 of 3");
    queue.push(event(4), counters(4), None);
    let refusal = queue.refusal(now).unwrap();
    assert!(refusal.contains("3 events"), "{refusal}");
    queue.next_batch().unwrap();
    queue.batch_committed(now);
    assert!(queue.refusal(now).is_none());
}

#[test]
fn a_journal_failing_past_the_grace_refuses_new_mutations_until_it_recovers() {
    let mut queue = queue_with(2, 100);
    let start = Instant::now();
    queue.next_batch().unwrap();
    queue.batch_failed(start);
    assert!(
        queue.refusal(start + FAILING_GRACE / 2).is_none(),
        "a failover is latency"
    );
    let refusal = queue.refusal(start + FAILING_GRACE).unwrap();
    assert!(refusal.contains("cannot take writes"), "{refusal}");
    queue.retry_due();
    queue.next_batch().unwrap();
    queue.batch_committed(start + FAILING_GRACE);
    assert!(queue.refusal(start + FAILING_GRACE * 2).is_none());
}
