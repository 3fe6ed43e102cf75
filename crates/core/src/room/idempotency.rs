//! `RecentKeys`: the idempotency keys a room remembers, so a client that lost an answer can send
//! the same `say` again without it counting twice (docs/api.md "Idempotent retries").
//!
//! A key is remembered per user for `KEY_TTL` after the message it came with. Memory is bounded
//! whatever clients send: at most `MAX_KEYS_PER_USER` keys per user and `MAX_KEYS_PER_ROOM` per
//! room; past either bound the oldest key is forgotten first (a repeat of a forgotten key counts as
//! a new message). Pure bookkeeping over times passed in; the state machine decides what is a
//! repeat, and the keys travel in the journal with their messages and in snapshots.

use std::collections::{HashMap, VecDeque};

use chrono::Duration;

use super::{
    id::{IdempotencyKey, UserName},
    snapshot::RememberedKey,
};
use crate::time::Timestamp;

/// How long a key is recognised after its message.
pub const KEY_TTL_SECS: i64 = 600;
/// Most keys remembered for one user in one room.
pub const MAX_KEYS_PER_USER: usize = 256;
/// Most keys remembered in one room.
pub const MAX_KEYS_PER_ROOM: usize = 4096;

/// The keys of one room, oldest first.
#[derive(Debug, Clone, Default)]
pub struct RecentKeys {
    /// In the order they were remembered (which is seq order, so oldest first).
    order: VecDeque<RememberedKey>,
    /// (user, key) -> seq and time of its message.
    seqs: HashMap<(UserName, IdempotencyKey), (u64, Timestamp)>,
    per_user: HashMap<UserName, usize>,
}

impl RecentKeys {
    /// The seq of the message `user` sent with `key`, if that was less than `KEY_TTL` before
    /// `now`.
    pub fn lookup(&self, user: &UserName, key: &IdempotencyKey, now: Timestamp) -> Option<u64> {
        let (seq, at) = *self.seqs.get(&(user.clone(), key.clone()))?;
        (now - at < Duration::seconds(KEY_TTL_SECS)).then_some(seq)
    }

    /// Remembers that `user` posted message `seq` with `key` at `at`, forgetting what has
    /// expired by then and the oldest keys past the bounds.
    pub fn remember(&mut self, user: &UserName, key: &IdempotencyKey, seq: u64, at: Timestamp) {
        self.expire(at);
        let id = (user.clone(), key.clone());
        if self.seqs.contains_key(&id) {
            // Only a repeat can carry a known key, and a repeat is not remembered again.
            return;
        }
        if self.per_user.get(user).copied().unwrap_or(0) >= MAX_KEYS_PER_USER {
            if let Some(at) = self.order.iter().position(|k| k.user == *user) {
                self.forget(at);
            }
        }
        if self.order.len() >= MAX_KEYS_PER_ROOM {
            self.forget(0);
        }
        self.seqs.insert(id, (seq, at));
        *self.per_user.entry(user.clone()).or_default() += 1;
        self.order.push_back(RememberedKey {
            user: user.clone(),
            key: key.clone(),
            seq,
            at,
        });
    }

    /// Forgets every key older than `KEY_TTL` at `now`.
    pub fn expire(&mut self, now: Timestamp) {
        while self
            .order
            .front()
            .is_some_and(|k| now - k.at >= Duration::seconds(KEY_TTL_SECS))
        {
            self.forget(0);
        }
    }

    fn forget(&mut self, index: usize) {
        let Some(gone) = self.order.remove(index) else {
            return;
        };
        self.seqs.remove(&(gone.user.clone(), gone.key));
        if let Some(n) = self.per_user.get_mut(&gone.user) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(&gone.user);
            }
        }
    }

    /// Every remembered key, oldest first (for a snapshot).
    pub fn to_vec(&self) -> Vec<RememberedKey> {
        self.order.iter().cloned().collect()
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time;

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::parse(k).unwrap()
    }

    #[test]
    fn a_key_is_recognised_for_its_user_within_the_ttl() {
        let t0 = time::now();
        let mut keys = RecentKeys::default();
        keys.remember(&user("alice"), &key("k1"), 7, t0);
        assert_eq!(keys.lookup(&user("alice"), &key("k1"), t0), Some(7));
        assert_eq!(keys.lookup(&user("bob"), &key("k1"), t0), None, "per user");
        assert_eq!(keys.lookup(&user("alice"), &key("k2"), t0), None);
        let almost = t0 + Duration::seconds(KEY_TTL_SECS - 1);
        assert_eq!(keys.lookup(&user("alice"), &key("k1"), almost), Some(7));
        let later = t0 + Duration::seconds(KEY_TTL_SECS);
        assert_eq!(keys.lookup(&user("alice"), &key("k1"), later), None);
        keys.expire(later);
        assert!(keys.is_empty());
    }

    #[test]
    fn memory_is_bounded_per_user_and_per_room_oldest_first() {
        let t0 = time::now();
        let mut keys = RecentKeys::default();
        let flooder = user("flood");
        for i in 0..(MAX_KEYS_PER_USER as u64 + 10) {
            keys.remember(&flooder, &key(&format!("k{i}")), i + 1, t0);
        }
        assert_eq!(keys.len(), MAX_KEYS_PER_USER);
        assert_eq!(
            keys.lookup(&flooder, &key("k0"), t0),
            None,
            "oldest forgotten"
        );
        let last = format!("k{}", MAX_KEYS_PER_USER + 9);
        assert!(keys.lookup(&flooder, &key(&last), t0).is_some());

        let mut room = RecentKeys::default();
        let mut seq = 0;
        for u in 0..(MAX_KEYS_PER_ROOM / 100 + 2) {
            for k in 0..100 {
                seq += 1;
                room.remember(&user(&format!("u{u}")), &key(&format!("k{k}")), seq, t0);
            }
        }
        assert_eq!(room.len(), MAX_KEYS_PER_ROOM);
        assert_eq!(room.lookup(&user("u0"), &key("k0"), t0), None);
        assert_eq!(room.to_vec().len(), MAX_KEYS_PER_ROOM);
    }
}
