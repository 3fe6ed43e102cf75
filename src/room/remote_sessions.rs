//! The sockets of a room that other nodes of a cluster hold (each node serves its own clients'
//! sockets and mirrors the room; the owner counts them present): which user each belongs to,
//! by node. Only bookkeeping: the actor turns arrivals and departures into joins and leaves.
//!
//! A node that holds sockets of the room tells their whole set again every 10 s (its mirror's
//! resync). One not heard of for `SILENCE` holds none any more, whatever it failed to say: a
//! departure lost on the way, with its mirror stopped since. Its sockets leave then.
//!
//! A departure may also overtake what the node sent before it (a request of the socket, a sync
//! built before the socket went): a socket that departed is not taken back for `SILENCE`.

use std::{
    collections::{HashMap, VecDeque},
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
    /// Sockets that departed within `SILENCE`, with when, and in that order to prune them.
    departed: HashMap<(String, SessionId), Instant>,
    departures: VecDeque<(Instant, String, SessionId)>,
}

impl RemoteSessions {
    /// Records a socket; false if it was recorded already.
    pub(crate) fn add(&mut self, node: &str, session: SessionId, user: UserName) -> bool {
        self.add_at(node, session, user, Instant::now())
    }

    fn add_at(&mut self, node: &str, session: SessionId, user: UserName, now: Instant) -> bool {
        if self.departed_lately(node, session, now) {
            return false;
        }
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

    /// A socket departed: forgets it, and takes it back for no word that its node sent before
    /// (for `SILENCE`). Its user, if it was recorded.
    pub(crate) fn detach(&mut self, node: &str, session: SessionId) -> Option<UserName> {
        self.detach_at(node, session, Instant::now())
    }

    fn detach_at(&mut self, node: &str, session: SessionId, now: Instant) -> Option<UserName> {
        self.prune(now);
        self.departed.insert((node.to_owned(), session), now);
        self.departures.push_back((now, node.to_owned(), session));
        self.remove(node, session)
    }

    fn departed_lately(&mut self, node: &str, session: SessionId, now: Instant) -> bool {
        self.prune(now);
        !self.departed.is_empty() && self.departed.contains_key(&(node.to_owned(), session))
    }

    /// Forgets departures older than `SILENCE`.
    fn prune(&mut self, now: Instant) {
        while let Some((at, _, _)) = self.departures.front() {
            if now.saturating_duration_since(*at) < SILENCE {
                break;
            }
            let Some((at, node, session)) = self.departures.pop_front() else {
                break;
            };
            let key = (node, session);
            if self.departed.get(&key) == Some(&at) {
                self.departed.remove(&key);
            }
        }
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
        self.prune(at);
        let mut before = self.by_node.remove(node).unwrap_or_default();
        let mut added = Vec::new();
        let mut kept = HashMap::with_capacity(now.len());
        for (session, user) in now {
            // Listed before its departure reached this room.
            if self.departed.contains_key(&(node.to_owned(), session)) {
                continue;
            }
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

    #[test]
    fn a_departed_socket_is_not_taken_back_by_word_sent_before_its_departure() {
        let mut remote = RemoteSessions::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        // The departure overtook the socket's request: the request does not put it back.
        assert_eq!(remote.detach_at("n1", 7, t0), None);
        assert!(!remote.add_at("n1", 7, user("ann"), t0 + s));
        // Nor does a sync built before the departure; the node's other sockets are taken.
        let (added, removed) =
            remote.sync_at("n1", vec![(7, user("ann")), (8, user("bob"))], t0 + s * 2);
        assert_eq!((added, removed), (vec![user("bob")], Vec::new()));
        // A departure of a recorded socket forgets it too.
        assert_eq!(remote.detach_at("n1", 8, t0 + s * 3), Some(user("bob")));
        assert!(!remote.add_at("n1", 8, user("bob"), t0 + s * 4));
        // Another node's socket of the same number is another socket.
        assert!(remote.add_at("n2", 7, user("cid"), t0 + s * 4));
        // After the silence, nothing of an old departure is kept.
        assert!(remote.add_at("n1", 7, user("ann"), t0 + SILENCE + s));
        assert!(remote.departed.len() <= 1 && remote.departures.len() <= 1);
    }
}
