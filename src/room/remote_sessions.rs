//! The sockets of a room that other nodes of a cluster hold (each node serves its own clients'
//! sockets and mirrors the room; the owner counts them present): which user each belongs to,
//! by node. Only bookkeeping: the actor turns arrivals and departures into joins and leaves.
//!
//! A node that holds sockets of the room tells their whole set again every 10 s (its mirror's
//! resync). One not heard of for `SILENCE` holds none any more, whatever it failed to say: a
//! departure lost on the way (or overtaken by a request of the same socket, which put it back),
//! with its mirror stopped since. Its sockets leave then.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use roomstate_core::room::UserName;

use super::outbound::SessionId;

/// How long a node's sockets in a room stay without word of them: three and a half of the
/// mirrors' resyncs (`cluster::mirror`, every 10 s).
pub(crate) const SILENCE: Duration = Duration::from_secs(35);

/// Remote sockets by node, then by the node's session id.
#[derive(Default)]
pub(crate) struct RemoteSessions {
    by_node: HashMap<String, HashMap<SessionId, UserName>>,
    /// When each node of `by_node` last told of its sockets (an arrival, a request, a sync).
    heard: HashMap<String, Instant>,
}

impl RemoteSessions {
    /// Records a socket; false if it was recorded already.
    pub(crate) fn add(&mut self, node: &str, session: SessionId, user: UserName) -> bool {
        self.add_at(node, session, user, Instant::now())
    }

    fn add_at(&mut self, node: &str, session: SessionId, user: UserName, now: Instant) -> bool {
        self.heard.insert(node.to_owned(), now);
        self.by_node
            .entry(node.to_owned())
            .or_default()
            .insert(session, user)
            .is_none()
    }

    /// Forgets a socket; its user, if it was recorded.
    pub(crate) fn remove(&mut self, node: &str, session: SessionId) -> Option<UserName> {
        let sessions = self.by_node.get_mut(node)?;
        let user = sessions.remove(&session);
        if sessions.is_empty() {
            self.by_node.remove(node);
            self.heard.remove(node);
        }
        user
    }

    /// Forgets every socket of `node`; their users, one per socket.
    pub(crate) fn remove_node(&mut self, node: &str) -> Vec<UserName> {
        self.heard.remove(node);
        self.by_node
            .remove(node)
            .map(|sessions| sessions.into_values().collect())
            .unwrap_or_default()
    }

    /// The nodes holding sockets here that nobody has heard of for `SILENCE` as of `now`.
    pub(crate) fn silent(&self, now: Instant) -> Vec<String> {
        let mut silent: Vec<String> = (self.heard.iter())
            .filter(|(_, heard)| now.saturating_duration_since(**heard) >= SILENCE)
            .map(|(node, _)| node.clone())
            .collect();
        silent.sort();
        silent
    }

    /// Forgets the sockets of `node` whose session id is below `before` (those of a run of the
    /// node that ended); their users, one per socket.
    pub(crate) fn remove_node_before(&mut self, node: &str, before: SessionId) -> Vec<UserName> {
        let Some(sessions) = self.by_node.get_mut(node) else {
            return Vec::new();
        };
        let gone: Vec<SessionId> = sessions.keys().copied().filter(|s| *s < before).collect();
        let users = gone.iter().filter_map(|s| sessions.remove(s)).collect();
        if sessions.is_empty() {
            self.by_node.remove(node);
            self.heard.remove(node);
        }
        users
    }

    /// Makes `node`'s sockets exactly `now`: answers the users of the sockets added and of those
    /// removed, one per socket.
    pub(crate) fn sync(
        &mut self,
        node: &str,
        now: Vec<(SessionId, UserName)>,
    ) -> (Vec<UserName>, Vec<UserName>) {
        self.sync_at(node, now, Instant::now())
    }

    fn sync_at(
        &mut self,
        node: &str,
        now: Vec<(SessionId, UserName)>,
        at: Instant,
    ) -> (Vec<UserName>, Vec<UserName>) {
        let mut before = self.by_node.remove(node).unwrap_or_default();
        let mut added = Vec::new();
        let mut kept = HashMap::with_capacity(now.len());
        for (session, user) in now {
            match before.remove(&session) {
                // A session id names one socket of one user: the recorded user stands.
                Some(known) => {
                    kept.insert(session, known);
                }
                None => {
                    added.push(user.clone());
                    kept.insert(session, user);
                }
            }
        }
        if kept.is_empty() {
            self.heard.remove(node);
        } else {
            self.by_node.insert(node.to_owned(), kept);
            self.heard.insert(node.to_owned(), at);
        }
        (added, before.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    #[test]
    fn sockets_are_recorded_once_and_forgotten_by_session_or_by_node() {
        let mut remote = RemoteSessions::default();
        assert!(remote.add("n1", 1, user("ann")));
        assert!(!remote.add("n1", 1, user("ann")), "recorded already");
        assert!(remote.add("n1", 2, user("ann")));
        assert!(remote.add("n2", 1, user("bob")));
        assert_eq!(remote.remove("n1", 1), Some(user("ann")));
        assert_eq!(remote.remove("n1", 1), None);
        assert_eq!(remote.remove_node("n2"), vec![user("bob")]);
        assert_eq!(remote.remove_node("n1"), vec![user("ann")]);
    }

    #[test]
    fn a_restarted_nodes_earlier_sockets_are_forgotten_and_its_new_ones_kept() {
        let mut remote = RemoteSessions::default();
        remote.add("n1", 10, user("old"));
        remote.add("n1", 11, user("old2"));
        remote.add("n1", 100, user("new"));
        remote.add("n2", 5, user("other"));
        let mut gone = remote.remove_node_before("n1", 100);
        gone.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(gone, vec![user("old"), user("old2")]);
        assert!(remote.remove_node_before("n1", 100).is_empty());
        assert!(remote.remove_node_before("n3", 100).is_empty());
        assert_eq!(remote.remove_node("n1"), vec![user("new")]);
        assert_eq!(
            remote.remove_node("n2"),
            vec![user("other")],
            "another node's kept"
        );
        remote.add("n1", 1, user("last"));
        assert_eq!(remote.remove_node_before("n1", 2), vec![user("last")]);
        assert!(
            remote.remove_node("n1").is_empty(),
            "an emptied node is gone"
        );
    }

    #[test]
    fn a_sync_adds_what_is_new_and_removes_what_is_gone() {
        let mut remote = RemoteSessions::default();
        remote.add("n1", 1, user("ann"));
        remote.add("n1", 2, user("bob"));
        let (added, removed) = remote.sync("n1", vec![(2, user("bob")), (3, user("cid"))]);
        assert_eq!((added, removed), (vec![user("cid")], vec![user("ann")]));
        let (added, removed) = remote.sync("n1", Vec::new());
        assert!(added.is_empty());
        assert_eq!(removed.len(), 2);
        assert!(remote.remove_node("n1").is_empty());
    }

    #[test]
    fn a_node_not_heard_of_for_the_silence_is_found_and_one_heard_of_again_is_not() {
        let mut remote = RemoteSessions::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        remote.add_at("n1", 1, user("ann"), t0);
        remote.add_at("n2", 1, user("bob"), t0);
        assert!(remote.silent(t0 + SILENCE - s).is_empty());
        assert_eq!(remote.silent(t0 + SILENCE), ["n1", "n2"]);
        // n2 syncs: heard of then. n1's last socket leaves: nothing of it to lapse.
        remote.sync_at("n2", vec![(1, user("bob"))], t0 + s * 10);
        assert_eq!(remote.silent(t0 + SILENCE), ["n1"]);
        assert_eq!(remote.remove("n1", 1), Some(user("ann")));
        assert!(remote.silent(t0 + SILENCE).is_empty());
        assert_eq!(remote.silent(t0 + s * 10 + SILENCE), ["n2"]);
        // A request of a socket it holds is word of it too.
        remote.add_at("n2", 1, user("bob"), t0 + s * 20);
        assert!(remote.silent(t0 + s * 10 + SILENCE).is_empty());
        // A sync with none: nothing of it left to lapse.
        remote.sync_at("n2", Vec::new(), t0 + s * 30);
        assert!(remote.silent(t0 + s * 100).is_empty());
    }
}
