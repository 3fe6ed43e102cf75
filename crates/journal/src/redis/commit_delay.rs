//! `CommitDelay`: when the writer holds a batch back to let more join it (`redis.commit_delay_ms`,
//! like MySQL's `binlog_group_commit_sync_delay`). Off (zero) by default.
//!
//! While batches for several rooms follow each other, a batch starts at most once per delay: the
//! rooms' writes that arrive in the meantime join it, so Redis runs one function call, one `WAIT`
//! and one replication round for more of them, and the engine's threads wake fewer times. Each
//! write's acknowledgement may wait up to the delay longer (plus the timer's 1 ms grain). An
//! engine that was idle, or whose last batch held one room's writes (a lone client, one request
//! after another), is never held back: waiting would only add latency, nothing would join. Only
//! a batch led by a write waits; one led by a read or a cluster call goes at once (and takes the
//! writes queued behind it).

use std::time::{Duration, Instant};

#[derive(Debug)]
pub(super) struct CommitDelay {
    delay: Duration,
    /// When the last batch with writes started, and whether they were of several rooms.
    last: Option<(Instant, Rooms)>,
}

/// Whose writes a batch held: a room's (or none: a health check's), or several rooms'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rooms {
    One,
    Several,
}

impl Rooms {
    /// Of a batch's writes, by room (`None`: a write of no room).
    pub(super) fn of<'a>(rooms: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let mut first = None;
        for room in rooms.into_iter().flatten() {
            match first {
                None => first = Some(room),
                Some(seen) if seen != room => return Rooms::Several,
                Some(_) => {}
            }
        }
        Rooms::One
    }
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
        let (started, rooms) = self.last?;
        // A delay too long for the clock to add is none (the engine's setting is bounded).
        let next = started.checked_add(self.delay)?;
        (rooms == Rooms::Several && now < next).then_some(next)
    }

    /// A batch with writes of `rooms` starts at `now`.
    pub(super) fn started(&mut self, now: Instant, rooms: Rooms) {
        self.last = Some((now, rooms));
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
        delay.started(t0, Rooms::Several);
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
        delay.started(t0, Rooms::Several);
        assert_eq!(delay.hold_until(t0 + MS), Some(t0 + 2 * MS));
        assert_eq!(delay.hold_until(t0 + 2 * MS), None, "the delay is over");
        assert_eq!(delay.hold_until(t0 + 5 * MS), None, "idle since");
    }

    #[test]
    fn a_lone_rooms_write_is_not_held_back() {
        let t0 = Instant::now();
        let mut delay = CommitDelay::new(2 * MS);
        delay.started(t0, Rooms::One);
        assert_eq!(delay.hold_until(t0 + MS), None);
        delay.started(t0 + MS, Rooms::Several);
        assert_eq!(delay.hold_until(t0 + MS), Some(t0 + 3 * MS));
    }

    #[test]
    fn one_rooms_several_writes_and_writes_of_no_room_are_one_room() {
        // A room's snapshot and its next append may share a batch; a health check has no room.
        assert_eq!(Rooms::of([Some("a"), None, Some("a")]), Rooms::One);
        assert_eq!(Rooms::of([None]), Rooms::One);
        assert_eq!(Rooms::of([Some("a"), None, Some("b")]), Rooms::Several);
    }

    #[test]
    fn a_delay_past_the_clocks_end_holds_nothing_back() {
        let t0 = Instant::now();
        let mut delay = CommitDelay::new(Duration::MAX);
        delay.started(t0, Rooms::Several);
        assert_eq!(delay.hold_until(t0), None);
    }
}
