//! The sockets of a room that other nodes of a cluster hold (each node serves its own clients'
//! sockets and mirrors the room; the owner counts them present): which user each belongs to,
//! by node. Only bookkeeping: the actor turns arrivals and departures into joins and leaves.

use std::collections::HashMap;

use roomstate_core::room::UserName;

use super::outbound::SessionId;

/// Remote sockets by node, then by the node's session id.
#[derive(Default)]
pub(crate) struct RemoteSessions {
    by_node: HashMap<String, HashMap<SessionId, UserName>>,
}

impl RemoteSessions {
    /// Records a socket; false if it was recorded already.
    pub(crate) fn add(&mut self, node: &str, session: SessionId, user: UserName) -> bool {
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
        }
        user
    }

    /// Forgets every socket of `node`; their users, one per socket.
    pub(crate) fn remove_node(&mut self, node: &str) -> Vec<UserName> {
        self.by_node
            .remove(node)
            .map(|sessions| sessions.into_values().collect())
            .unwrap_or_default()
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
        if !kept.is_empty() {
            self.by_node.insert(node.to_owned(), kept);
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
}
