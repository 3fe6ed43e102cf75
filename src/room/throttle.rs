//! `StateThrottle`: how often a room broadcasts its state. docs/api.md lets a room skip
//! intermediate states under load but wants the latest within 100 ms; a room sends at most one
//! `state` per `STATE_INTERVAL`, always the newest durable one, and a change in a quiet room goes
//! out at once.

use std::time::{Duration, Instant};

/// Least time between two state broadcasts of a room.
pub(crate) const STATE_INTERVAL: Duration = Duration::from_millis(25);

/// What to do about a change of the committed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Publish {
    /// Send the state now.
    Now,
    /// Send it after this delay (then call [`StateThrottle::timer_fired`]).
    After(Duration),
    /// A send is already scheduled; it will carry the newest state.
    AlreadyScheduled,
}

#[derive(Debug)]
pub(crate) struct StateThrottle {
    last_sent: Instant,
    last_seq: u64,
    scheduled: bool,
}

impl StateThrottle {
    /// A throttle for a room whose clients have seen the state at `seq` (or will, in their first
    /// frame), ready to send the next change at once.
    pub(crate) fn new(seq: u64, now: Instant) -> Self {
        Self {
            last_sent: now.checked_sub(STATE_INTERVAL).unwrap_or(now),
            last_seq: seq,
            scheduled: false,
        }
    }

    /// The committed state changed.
    pub(crate) fn changed(&mut self, now: Instant) -> Publish {
        if self.scheduled {
            return Publish::AlreadyScheduled;
        }
        let since = now.saturating_duration_since(self.last_sent);
        if since >= STATE_INTERVAL {
            return Publish::Now;
        }
        self.scheduled = true;
        Publish::After(STATE_INTERVAL - since)
    }

    /// The delay of a `Publish::After` passed.
    pub(crate) fn timer_fired(&mut self) {
        self.scheduled = false;
    }

    /// Whether the state at `seq` is news to the sockets; if so it counts as sent `now`.
    pub(crate) fn take(&mut self, seq: u64, now: Instant) -> bool {
        if seq <= self.last_seq {
            return false;
        }
        self.last_seq = seq;
        self.last_sent = now;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_room_sends_at_once_a_busy_one_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut throttle = StateThrottle::new(1, t0);
        assert_eq!(throttle.changed(t0), Publish::Now);
        assert!(throttle.take(2, t0));
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(
            throttle.changed(t1),
            Publish::After(Duration::from_millis(15))
        );
        assert_eq!(throttle.changed(t1), Publish::AlreadyScheduled);
        throttle.timer_fired();
        let t2 = t0 + STATE_INTERVAL;
        assert!(throttle.take(5, t2), "the newest state goes out");
        assert_eq!(
            throttle.changed(t2 + STATE_INTERVAL),
            Publish::Now,
            "quiet again"
        );
    }

    #[test]
    fn never_an_older_or_the_same_seq_again() {
        let t0 = Instant::now();
        let mut throttle = StateThrottle::new(3, t0);
        assert!(!throttle.take(3, t0));
        assert!(!throttle.take(2, t0));
        assert!(throttle.take(4, t0));
        assert!(!throttle.take(4, t0 + STATE_INTERVAL));
    }
}
