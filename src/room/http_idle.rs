//! `HttpIdle`: when each user last made an HTTP request in a room, so an HTTP join lapses after
//! `presence.http_ttl_s` without one (docs/api.md "Presence": no ghosts). Sockets have their own
//! heartbeat.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use roomstate_core::room::UserName;

#[derive(Debug)]
pub(crate) struct HttpIdle {
    ttl: Duration,
    seen: HashMap<UserName, Instant>,
}

impl HttpIdle {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            seen: HashMap::new(),
        }
    }

    /// How often to look for lapsed joins: a lapse is late by at most this.
    pub(crate) fn sweep_every(&self) -> Duration {
        (self.ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// `user` made an HTTP request in the room.
    pub(crate) fn touch(&mut self, user: &UserName, now: Instant) {
        self.seen.insert(user.clone(), now);
    }

    /// `user` left over HTTP: nothing left to lapse.
    pub(crate) fn forget(&mut self, user: &UserName) {
        self.seen.remove(user);
    }

    /// The users idle for the whole ttl, forgotten as they are returned.
    pub(crate) fn lapsed(&mut self, now: Instant) -> Vec<UserName> {
        let ttl = self.ttl;
        let lapsed: Vec<UserName> = self
            .seen
            .iter()
            .filter(|(_, seen)| now.saturating_duration_since(**seen) >= ttl)
            .map(|(user, _)| user.clone())
            .collect();
        for user in &lapsed {
            self.seen.remove(user);
        }
        lapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_lapses_after_the_ttl_without_a_request() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let (alice, bob) = (
            UserName::parse("alice").unwrap(),
            UserName::parse("bob").unwrap(),
        );
        let mut idle = HttpIdle::new(ttl);
        idle.touch(&alice, t0);
        idle.touch(&bob, t0);
        idle.touch(&bob, t0 + Duration::from_secs(5));
        assert!(idle.lapsed(t0 + Duration::from_secs(9)).is_empty());
        assert_eq!(idle.lapsed(t0 + ttl), [alice]);
        assert!(idle.lapsed(t0 + ttl).is_empty(), "once");
        idle.forget(&bob);
        assert!(
            idle.lapsed(t0 + ttl * 10).is_empty(),
            "left, so nothing lapses"
        );
    }

    #[test]
    fn sweeps_are_frequent_enough_and_not_too_frequent() {
        assert_eq!(
            HttpIdle::new(Duration::from_secs(300)).sweep_every(),
            Duration::from_secs(1)
        );
        assert_eq!(
            HttpIdle::new(Duration::from_millis(100)).sweep_every(),
            Duration::from_millis(50)
        );
    }
}
