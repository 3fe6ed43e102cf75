//! One room of the floor: its counters and who voted what, in memory, nothing else. A mutation
//! takes the next seq and is "acknowledged" at once: there is no journal behind it, no message
//! text kept (only counted), no idempotency key, no presence timeout.

use std::collections::HashMap;

use roomstate_core::{
    protocol::ErrorCode,
    room::{state::MAX_TEXT_CHARS, Counters, RoomId, RoomStatus, RoomView, Side, UserName},
    time::{self, Timestamp},
};

/// Why a request was refused, as the contract names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// How a user is present: over HTTP (a join) and/or with open sockets.
#[derive(Debug, Default, Clone, Copy)]
struct Links {
    http: bool,
    sockets: u32,
}

/// A room's tally.
#[derive(Debug)]
pub struct Tally {
    id: RoomId,
    title: String,
    created_at: Timestamp,
    counters: Counters,
    votes: HashMap<UserName, Side>,
    present: HashMap<UserName, Links>,
}

/// The vote count after a vote: `{"seq", "pro", "con"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct VoteCount {
    pub seq: u64,
    pub pro: u32,
    pub con: u32,
}

impl Tally {
    /// A new room; its creation is seq 1.
    pub fn new(id: RoomId, title: String) -> Self {
        Self {
            id,
            title,
            created_at: time::now(),
            counters: Counters {
                seq: 1,
                ..Counters::default()
            },
            votes: HashMap::new(),
            present: HashMap::new(),
        }
    }

    pub fn view(&self) -> RoomView {
        RoomView {
            id: self.id.clone(),
            title: self.title.clone(),
            status: RoomStatus::Open,
            counters: self.counters,
            created_at: self.created_at,
            closed_at: None,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.counters.seq += 1;
        self.counters.seq
    }

    /// Counts a user in or out when their first link opens or their last one closes.
    fn relink(&mut self, user: &UserName, change: impl FnOnce(&mut Links)) {
        let links = self.present.entry(user.clone()).or_default();
        let was = links.http || links.sockets > 0;
        change(links);
        let is = links.http || links.sockets > 0;
        if !is {
            self.present.remove(user);
        }
        if was != is {
            let c = &mut self.counters;
            c.participants = if is {
                c.participants + 1
            } else {
                c.participants.saturating_sub(1)
            };
            c.participants_peak = c.participants_peak.max(c.participants);
            self.next_seq();
        }
    }

    pub fn join_http(&mut self, user: &UserName) {
        self.relink(user, |l| l.http = true);
    }

    pub fn leave_http(&mut self, user: &UserName) {
        self.relink(user, |l| l.http = false);
    }

    pub fn open_socket(&mut self, user: &UserName) {
        self.relink(user, |l| l.sockets += 1);
    }

    pub fn close_socket(&mut self, user: &UserName) {
        self.relink(user, |l| l.sockets = l.sockets.saturating_sub(1));
    }

    fn must_be_present(&self, user: &UserName) -> Result<(), Refusal> {
        if self.present.contains_key(user) {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::NotJoined,
                format!("{user} has not joined this room"),
            ))
        }
    }

    fn count(&self) -> VoteCount {
        VoteCount {
            seq: self.counters.seq,
            pro: self.counters.pro,
            con: self.counters.con,
        }
    }

    fn side_count(&mut self, side: Side) -> &mut u32 {
        match side {
            Side::Pro => &mut self.counters.pro,
            Side::Con => &mut self.counters.con,
        }
    }

    /// Votes or moves the vote; the same side again changes nothing (no new seq).
    pub fn vote(&mut self, user: &UserName, side: Side) -> Result<VoteCount, Refusal> {
        self.must_be_present(user)?;
        match self.votes.insert(user.clone(), side) {
            Some(before) if before == side => return Ok(self.count()),
            Some(before) => *self.side_count(before) -= 1,
            None => {}
        }
        *self.side_count(side) += 1;
        self.next_seq();
        Ok(self.count())
    }

    /// Takes the vote back; without one, changes nothing.
    pub fn retract(&mut self, user: &UserName) -> Result<VoteCount, Refusal> {
        self.must_be_present(user)?;
        if let Some(before) = self.votes.remove(user) {
            *self.side_count(before) -= 1;
            self.next_seq();
        }
        Ok(self.count())
    }

    /// Counts a chat message (its text is checked, not kept); returns its seq.
    pub fn say(&mut self, user: &UserName, text: &str) -> Result<u64, Refusal> {
        self.must_be_present(user)?;
        let chars = text.chars().count();
        if chars == 0 || chars > MAX_TEXT_CHARS || text.trim().is_empty() {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("text must be 1 to {MAX_TEXT_CHARS} characters, not blank"),
            ));
        }
        self.counters.messages += 1;
        Ok(self.next_seq())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    #[test]
    fn every_change_takes_a_seq_and_no_change_takes_none() {
        let mut room = Tally::new(RoomId::generate(), "t".into());
        let alice = user("alice");
        assert_eq!(
            room.vote(&alice, Side::Pro).unwrap_err().code,
            ErrorCode::NotJoined
        );
        room.open_socket(&alice);
        room.join_http(&alice);
        assert_eq!(room.view().counters.seq, 2, "one join for two links");
        assert_eq!(
            room.vote(&alice, Side::Pro).unwrap(),
            VoteCount {
                seq: 3,
                pro: 1,
                con: 0
            }
        );
        assert_eq!(room.vote(&alice, Side::Pro).unwrap().seq, 3, "same side");
        assert_eq!(
            room.vote(&alice, Side::Con).unwrap(),
            VoteCount {
                seq: 4,
                pro: 0,
                con: 1
            }
        );
        assert_eq!(room.say(&alice, "hi").unwrap(), 5);
        assert_eq!(
            room.say(&alice, "  ").unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(room.retract(&alice).unwrap().seq, 6);
        assert_eq!(room.retract(&alice).unwrap().seq, 6, "nothing to retract");
        room.close_socket(&alice);
        assert_eq!(
            room.view().counters.participants,
            1,
            "still joined over HTTP"
        );
        room.leave_http(&alice);
        let view = room.view();
        assert_eq!(
            (view.counters.participants, view.counters.participants_peak),
            (0, 1)
        );
        assert_eq!((view.counters.seq, view.counters.messages), (7, 1));
    }
}
