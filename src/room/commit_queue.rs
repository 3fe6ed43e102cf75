//! `CommitQueue`: a room's commit pipeline as plain data — the events applied in memory but not
//! yet durable, the batch handed to the journal, the retry backoff after a failed append, and the
//! backlog bound past which new mutations are refused.
//!
//! It decides what to send and when, never does the sending: the room actor hands each batch it
//! gets from [`CommitQueue::next_batch`] to the journal and reports the outcome back. Its rules:
//! at most one batch in flight, so a room's events become durable in seq order; a failed batch is
//! re-sent from the first event not yet durable, unchanged (appends are idempotent by seq, so a
//! batch that was written but reported as failed is never duplicated); nothing is released to a
//! waiter before the event it waits for is durable.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use roomstate_core::room::{Counters, Event};

/// Most events handed to the journal in one append.
pub(crate) const MAX_APPEND: usize = 1024;
/// First pause before re-sending after a failed append; doubles up to `MAX_RETRY_DELAY`.
pub(crate) const FIRST_RETRY_DELAY: Duration = Duration::from_millis(20);
pub(crate) const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long appends may keep failing before new mutations are refused (pending ones keep
/// waiting). Longer than a sentinel failover, so a failover shows as latency, not errors.
pub(crate) const FAILING_GRACE: Duration = Duration::from_secs(5);

/// An event applied in memory and not yet durable, with whoever waits for it.
#[derive(Debug)]
pub(crate) struct Pending<W> {
    pub(crate) event: Event,
    /// The counters right after `event`.
    pub(crate) counters: Counters,
    pub(crate) waiters: Vec<W>,
}

/// What to do after a failed append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// Re-send after this long (then call [`CommitQueue::retry_due`]).
    pub(crate) after: Duration,
    /// This failure began an outage (the previous append succeeded): worth one log line.
    pub(crate) outage_began: bool,
}

/// A batch the journal made durable.
#[derive(Debug)]
pub(crate) struct Committed<W> {
    /// The events of the batch, oldest first, with their waiters.
    pub(crate) entries: Vec<Pending<W>>,
    /// How long appends had been failing before this one succeeded (`None`: no outage).
    pub(crate) outage: Option<Duration>,
}

/// The commit pipeline of one room. `W` is whatever waits for an event (the actor's reply
/// channels; plain values in tests).
#[derive(Debug)]
pub(crate) struct CommitQueue<W> {
    pending: VecDeque<Pending<W>>,
    /// Events at the front of `pending` handed to the journal and not answered yet.
    in_flight: usize,
    /// A retry is scheduled: nothing is sent until it is due.
    retry_scheduled: bool,
    retry_delay: Duration,
    /// When appends started failing (`None` while they succeed).
    failing_since: Option<Instant>,
    /// Counters as of the last durable event: all that clients may see.
    committed: Counters,
    max_pending: usize,
}

impl<W> CommitQueue<W> {
    /// A queue for a room whose state up to `committed` is durable.
    pub(crate) fn new(committed: Counters, max_pending: usize) -> Self {
        Self {
            pending: VecDeque::new(),
            in_flight: 0,
            retry_scheduled: false,
            retry_delay: FIRST_RETRY_DELAY,
            failing_since: None,
            committed,
            max_pending,
        }
    }

    /// The counters as of the last durable event.
    pub(crate) fn committed(&self) -> Counters {
        self.committed
    }

    /// Events not yet durable.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Why new client mutations must be refused now (the backlog is full, or the journal has
    /// been failing for longer than a failover takes); `None` when they may be taken.
    pub(crate) fn refusal(&self, now: Instant) -> Option<String> {
        if self.pending.len() >= self.max_pending {
            Some(format!(
                "{} events are waiting for the durability log; retry later",
                self.pending.len()
            ))
        } else if self
            .failing_since
            .is_some_and(|since| now.saturating_duration_since(since) >= FAILING_GRACE)
        {
            Some("the durability log cannot take writes; retry later".to_owned())
        } else {
            None
        }
    }

    /// Queues a new event (applied in memory) with its waiter, if any.
    pub(crate) fn push(&mut self, event: Event, counters: Counters, waiter: Option<W>) {
        self.pending.push_back(Pending {
            event,
            counters,
            waiters: waiter.into_iter().collect(),
        });
    }

    /// A waiter for a command that changed nothing: its answer reflects every pending event, so
    /// it waits for the last one. `Err(waiter)` when nothing is pending: answer it at once with
    /// [`CommitQueue::committed`].
    pub(crate) fn wait_for_pending(&mut self, waiter: W) -> Result<(), W> {
        match self.pending.back_mut() {
            Some(last) => {
                last.waiters.push(waiter);
                Ok(())
            }
            None => Err(waiter),
        }
    }

    /// The events to hand to the journal now: up to [`MAX_APPEND`] from the first one not yet
    /// durable. `None` while a batch is in flight, a retry is not yet due, or nothing is pending.
    pub(crate) fn next_batch(&mut self) -> Option<Vec<Event>> {
        if self.in_flight > 0 || self.retry_scheduled || self.pending.is_empty() {
            return None;
        }
        let batch: Vec<Event> = self
            .pending
            .iter()
            .take(MAX_APPEND)
            .map(|p| p.event.clone())
            .collect();
        self.in_flight = batch.len();
        Some(batch)
    }

    /// Whether a batch is with the journal now.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight > 0
    }

    /// The batch in flight is durable: its events leave the queue, in order, and the committed
    /// counters move to the last of them.
    pub(crate) fn batch_committed(&mut self, now: Instant) -> Committed<W> {
        let count = std::mem::take(&mut self.in_flight).min(self.pending.len());
        let outage = self
            .failing_since
            .take()
            .map(|since| now.saturating_duration_since(since));
        self.retry_delay = FIRST_RETRY_DELAY;
        let entries: Vec<Pending<W>> = self.pending.drain(..count).collect();
        if let Some(last) = entries.last() {
            self.committed = last.counters;
        }
        Committed { entries, outage }
    }

    /// The batch in flight failed: its events stay pending and are re-sent, unchanged, once the
    /// returned delay has passed (the delay doubles with each failure in a row, up to
    /// [`MAX_RETRY_DELAY`]).
    pub(crate) fn batch_failed(&mut self, now: Instant) -> Retry {
        self.in_flight = 0;
        self.retry_scheduled = true;
        let outage_began = self.failing_since.is_none();
        if outage_began {
            self.failing_since = Some(now);
        }
        let after = self.retry_delay;
        self.retry_delay = (self.retry_delay * 2).min(MAX_RETRY_DELAY);
        Retry {
            after,
            outage_began,
        }
    }

    /// The retry delay has passed: [`CommitQueue::next_batch`] may send again.
    pub(crate) fn retry_due(&mut self) {
        self.retry_scheduled = false;
    }

    /// Gives up on every pending event (the engine stops before they became durable): the
    /// queue is empty afterwards; returns how many events were dropped and their waiters.
    pub(crate) fn abandon(&mut self) -> (usize, Vec<W>) {
        self.in_flight = 0;
        let dropped = self.pending.len();
        let waiters = self.pending.drain(..).flat_map(|p| p.waiters).collect();
        (dropped, waiters)
    }
}

#[cfg(test)]
mod tests;
