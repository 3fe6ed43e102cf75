//! The mutation mix every target is driven with: first votes, vote switches and chat messages,
//! in proportions given on the command line. Pure: it only decides what a client does next.

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;

/// One client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A user's first vote.
    Vote(&'static str),
    /// A vote for the other side than the user's current one.
    Switch(&'static str),
    /// A chat message.
    Say(String),
}

impl Op {
    pub fn kind(&self) -> Kind {
        match self {
            Op::Vote(_) => Kind::Vote,
            Op::Switch(_) => Kind::Switch,
            Op::Say(_) => Kind::Say,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vote,
    Switch,
    Say,
}

/// How many of each kind a run sent and had acknowledged.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MixCount {
    pub votes: u64,
    pub switches: u64,
    pub messages: u64,
}

impl MixCount {
    pub fn add(&mut self, kind: Kind) {
        match kind {
            Kind::Vote => self.votes += 1,
            Kind::Switch => self.switches += 1,
            Kind::Say => self.messages += 1,
        }
    }

    /// Adds another client's counts (the MariaDB baseline runs one recorder per thread).
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub fn merge(&mut self, other: MixCount) {
        self.votes += other.votes;
        self.switches += other.switches;
        self.messages += other.messages;
    }
}

/// One client's position in the mix.
pub struct Mixer {
    rng: StdRng,
    message_percent: u32,
    side: Option<&'static str>,
    sent: u64,
}

impl Mixer {
    /// `message_percent` of the requests are chat messages; the rest are votes, each after the
    /// user's first one a switch (so every request is a real mutation, none a no-op).
    pub fn new(seed: u64, message_percent: u32) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            message_percent: message_percent.min(100),
            side: None,
            sent: 0,
        }
    }

    pub fn next_op(&mut self) -> Op {
        self.sent += 1;
        if self.rng.random_range(0..100) < self.message_percent {
            return Op::Say(format!("message {} from the load generator", self.sent));
        }
        match self.side {
            None => {
                let side = if self.rng.random_bool(0.5) {
                    "pro"
                } else {
                    "con"
                };
                self.side = Some(side);
                Op::Vote(side)
            }
            Some(current) => {
                let side = if current == "pro" { "con" } else { "pro" };
                self.side = Some(side);
                Op::Switch(side)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_then_switches_and_the_message_share() {
        let mut mixer = Mixer::new(7, 20);
        let ops: Vec<Op> = (0..10_000).map(|_| mixer.next_op()).collect();
        let votes = ops.iter().filter(|o| matches!(o, Op::Vote(_))).count();
        let says = ops.iter().filter(|o| matches!(o, Op::Say(_))).count();
        assert_eq!(votes, 1, "one first vote, then switches");
        assert!((1800..2200).contains(&says), "{says}");
        let sides: Vec<&str> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Vote(s) | Op::Switch(s) => Some(*s),
                Op::Say(_) => None,
            })
            .collect();
        assert!(
            sides.windows(2).all(|w| w[0] != w[1]),
            "every switch changes side"
        );
    }
}
