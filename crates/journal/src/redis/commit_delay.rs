//! `CommitDelay`: when the writer holds a batch back to let more join it (`redis.commit_delay_ms`,
//! like MySQL's `binlog_group_commit_sync_delay`). Off (zero) by default.
//!
//! While batches for several rooms follow each other, a batch starts at most once per delay: the
//! rooms' writes that arrive in the meantime join it, so Redis runs one function call, one `WAIT`
//! and one replication round for more of them, and the engine's threads wake fewer times. Each
//! write's acknowledgement may wait up to the delay longer (plus the timer's 1 ms grain). An
//! engine that was idle, or whose last batch held one room's write (a lone client, one request
//! after another), is never held back: waiting would only add latency, nothing would join.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub(super) struct CommitDelay {
    delay: Duration,
    /// When the last batch with writes started, and how many writes (room operations) it held.
    last: Option<(Instant, usize)>,
}

impl CommitDelay {
    pub(super) fn new(delay: Duration) -> Self {
        Self { delay, last: None }
    }

    /// The instant the next batch may start, when it has to wait (`now` is when its first
    /// request came); `None`: start now.
    pub(super) fn hold_until(&self, now: Instant) -> Option<Instant> {
        if self.delay.is_zero() {
            return None;
        }
        let (started, writes) = self.last?;
        let next = started + self.delay;
        (writes >= 2 && now < next).then_some(next)
    }

    /// A batch of `writes` room operations starts at `now`.
    pub(super) fn started(&mut self, now: Instant, writes: usize) {
        if writes > 0 {
            self.last = Some((now, writes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn off_never_holds_back() {
        let t0 = Instant::now();
        let mut delay = CommitDelay::new(Duration::ZERO);
        delay.started(t0, 10);
        assert_eq!(delay.hold_until(t0), None);
    }

    #[test]
    fn the_first_batch_goes_at_once() {
        let delay = CommitDelay::new(2 * MS);
        assert_eq!(delay.hold_until(Instant::now()), None);
    }

    #[test]
    fn batches_of_several_rooms_start_at_most_once_per_delay() {
        let t0 = Instant::now();
        let mut delay = CommitDelay::new(2 * MS);
        delay.started(t0, 3);
        assert_eq!(delay.hold_until(t0 + MS), Some(t0 + 2 * MS));
        assert_eq!(delay.hold_until(t0 + 2 * MS), None, "the delay is over");
        assert_eq!(delay.hold_until(t0 + 5 * MS), None, "idle since");
    }

    #[test]
    fn a_lone_rooms_write_is_not_held_back() {
        let t0 = Instant::now();
        let mut delay = CommitDelay::new(2 * MS);
        delay.started(t0, 1);
        assert_eq!(delay.hold_until(t0 + MS), None);
        delay.started(t0 + MS, 2);
        assert_eq!(delay.hold_until(t0 + MS), Some(t0 + 3 * MS));
    }

    #[test]
    fn a_batch_without_writes_changes_nothing() {
        // Recoveries, message reads and cluster calls ride the queue too; they are not commits.
        let t0 = Instant::now();
        let mut delay = CommitDelay::new(2 * MS);
        delay.started(t0, 2);
        delay.started(t0 + MS, 0);
        assert_eq!(delay.hold_until(t0 + MS), Some(t0 + 2 * MS));
    }
}
