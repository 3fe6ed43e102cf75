//! `Follower`: a copy of a room owned elsewhere, kept from the room's durable log alone (a node
//! that serves sockets for a room it does not own mirrors it this way).
//!
//! Votes, messages, the peak and the seq follow from the events exactly, as at replay. Who is
//! present does not: the log tells who arrived (`Joined`, with the count right after) and who
//! left (`Left`: one less), and a new owner starts with nobody present. So the follower counts
//! participants from those steps, anchored on a view the owner answered (the count is exact at
//! that view's seq). It never decides anything: it only applies what the owner made durable.

use std::collections::VecDeque;

use super::{
    event::{Event, EventKind},
    snapshot::Snapshot,
    state::{ReplayError, RoomState},
    view::{ChatMessage, RoomView},
    RoomId,
};

/// Presence steps kept to re-anchor on a view older than the follower.
const STEPS_KEPT: usize = 4096;

/// How one event (or an owner change) moved the participants count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `Joined`: the count right after it.
    Set(u32),
    /// `Left`: one less.
    Less,
    /// A new owner took over: it replayed the room with nobody present.
    Reset,
}

impl Step {
    fn apply(self, count: u32) -> u32 {
        match self {
            Step::Set(n) => n,
            Step::Less => count.saturating_sub(1),
            Step::Reset => 0,
        }
    }
}

/// A room followed from its log.
#[derive(Debug, Clone)]
pub struct Follower {
    state: RoomState,
    participants: u32,
    /// The owner's lease epoch as far as the follower knows it.
    epoch: u64,
    /// Recent presence steps, oldest first, each after the event of its seq.
    steps: VecDeque<(u64, Step)>,
    /// Every step after this seq is in `steps`.
    complete_after: u64,
    /// An owner's view ahead of the follower: (seq, participants), applied on reaching it.
    pending: Option<(u64, u32)>,
}

impl Follower {
    /// The room from its snapshot (if any) and the events after it, as the log holds them now
    /// under the owner epoch `epoch`. Nobody is counted present until an anchor or a `Joined`.
    pub fn load(
        room: &RoomId,
        snapshot: Option<&Snapshot>,
        events: &[Event],
        epoch: u64,
    ) -> Result<Self, ReplayError> {
        let state = match snapshot {
            Some(snapshot) => RoomState::restore(snapshot, events)?,
            None => RoomState::replay(room, events)?,
        };
        let seq = state.seq();
        Ok(Self {
            state,
            participants: 0,
            epoch,
            steps: VecDeque::new(),
            complete_after: seq,
            pending: None,
        })
    }

    pub fn id(&self) -> &RoomId {
        self.state.id()
    }

    pub fn seq(&self) -> u64 {
        self.state.seq()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Keeps at most `max` chat messages in memory, like the owner.
    pub fn bound_messages(&mut self, max: usize) {
        self.state.bound_messages(max);
    }

    /// Applies the room's next durable event, written under `epoch` (`None`: the log does not
    /// say). Answers the chat message it posted, if any. An event the follower has applied
    /// already is ignored; one past the next is a gap (`ReplayError::Gap`): reload.
    pub fn apply(
        &mut self,
        event: &Event,
        epoch: Option<u64>,
    ) -> Result<Option<ChatMessage>, ReplayError> {
        if event.seq <= self.state.seq() {
            return Ok(None);
        }
        if let Some(epoch) = epoch {
            // The first event of a new owner: it took over with nobody present.
            self.owner_changed(epoch);
        }
        self.state.follow(event)?;
        match &event.kind {
            EventKind::Joined { participants, .. } => {
                self.step(event.seq, Step::Set(*participants))
            }
            EventKind::Left { .. } => self.step(event.seq, Step::Less),
            _ => {}
        }
        if let Some((seq, participants)) = self.pending {
            if seq <= event.seq {
                self.pending = None;
                self.anchor(seq, participants);
            }
        }
        Ok(match &event.kind {
            EventKind::Said { user, text, .. } => Some(ChatMessage {
                seq: event.seq,
                user: user.clone(),
                text: text.clone(),
                sent_at: event.at,
            }),
            _ => None,
        })
    }

    /// The room's owner is now at `epoch`: from a newer epoch on, a new owner holds the room,
    /// which it replayed with nobody present.
    pub fn owner_changed(&mut self, epoch: u64) {
        if epoch > self.epoch {
            self.epoch = epoch;
            self.step(self.state.seq(), Step::Reset);
        }
    }

    /// The owner answered a view at `seq` with `participants` present: the count is exact there.
    /// A view ahead of the follower is applied once the follower reaches its seq.
    pub fn anchor(&mut self, seq: u64, participants: u32) {
        if seq > self.state.seq() {
            self.pending = Some((seq, participants));
            return;
        }
        if seq < self.complete_after {
            // Older than the steps kept: what the follower counted is the better guess.
            return;
        }
        // A view at `seq` includes the event at `seq`, but not an owner change noted there: a
        // late view of the old owner at that seq still counts those it had present.
        self.participants = self
            .steps
            .iter()
            .filter(|(at, step)| *at > seq || (*at == seq && *step == Step::Reset))
            .fold(participants, |count, (_, step)| step.apply(count));
    }

    fn step(&mut self, seq: u64, step: Step) {
        self.participants = step.apply(self.participants);
        self.steps.push_back((seq, step));
        while self.steps.len() > STEPS_KEPT {
            if let Some((seq, _)) = self.steps.pop_front() {
                self.complete_after = seq;
            }
        }
    }

    /// The room as its owner showed it at the follower's seq.
    pub fn view(&self) -> RoomView {
        let mut counters = self.state.counters();
        counters.participants = self.participants;
        self.state.view(counters)
    }

    /// Messages with `after < seq <= upto` still in memory (see `RoomState::messages`).
    pub fn messages(&self, after: u64, upto: u64, limit: usize) -> Option<Vec<ChatMessage>> {
        self.state.messages(after, upto, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        room::{Command, Side, UserName, Via},
        time,
    };

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    /// An owner's room and every event it made, to follow.
    struct Owner {
        state: RoomState,
        events: Vec<Event>,
    }

    impl Owner {
        fn new() -> Self {
            let (state, created) =
                RoomState::create(RoomId::parse("r_f").unwrap(), "t".into(), time::now()).unwrap();
            Self {
                state,
                events: vec![created],
            }
        }

        fn run(&mut self, command: Command) -> Option<Event> {
            let event = self.state.apply(command, time::now()).unwrap().event;
            self.events.extend(event.clone());
            event
        }

        fn join(&mut self, name: &str) -> Option<Event> {
            self.run(Command::Join {
                user: user(name),
                via: Via::Socket,
            })
        }

        fn leave(&mut self, name: &str) -> Option<Event> {
            self.run(Command::Leave {
                user: user(name),
                via: Via::Socket,
            })
        }

        fn view(&self) -> RoomView {
            self.state.view(self.state.counters())
        }
    }

    #[test]
    fn following_every_event_shows_what_the_owner_shows() {
        let mut owner = Owner::new();
        let mut follower = Follower::load(owner.state.id(), None, &owner.events, 1).unwrap();
        owner.join("ann");
        owner.join("bob");
        owner.run(Command::Vote {
            user: user("ann"),
            side: Side::Pro,
        });
        owner.run(Command::Say {
            user: user("bob"),
            text: "hi".into(),
            key: None,
        });
        owner.leave("ann");
        let mut said = Vec::new();
        for event in &owner.events[1..] {
            said.extend(follower.apply(event, Some(1)).unwrap());
        }
        assert_eq!(follower.view(), owner.view());
        assert_eq!(said.len(), 1);
        assert_eq!(said[0].text, "hi");
        // Applied twice: ignored.
        assert_eq!(follower.apply(&owner.events[3], Some(1)).unwrap(), None);
        assert_eq!(follower.view(), owner.view());
    }

    #[test]
    fn an_anchor_counts_who_was_present_before_the_follower_started() {
        let mut owner = Owner::new();
        owner.join("ann");
        owner.join("bob");
        // Loaded from the log: presence is not in it.
        let mut follower = Follower::load(owner.state.id(), None, &owner.events, 1).unwrap();
        assert_eq!(follower.view().counters.participants, 0);
        let anchor = owner.view();
        let leave = owner.leave("bob").unwrap();
        follower.apply(&leave, Some(1)).unwrap();
        // The anchor is older than the follower: the leave after it still counts.
        follower.anchor(anchor.counters.seq, anchor.counters.participants);
        assert_eq!(follower.view(), owner.view());

        // An anchor ahead of the follower applies when the follower gets there.
        let carl = owner.join("carl").unwrap();
        let ahead = owner.view();
        follower.anchor(ahead.counters.seq, 7);
        follower.apply(&carl, Some(1)).unwrap();
        assert_eq!(follower.view().counters.participants, 7);
    }

    #[test]
    fn a_new_owner_starts_with_nobody_present() {
        let mut owner = Owner::new();
        let mut follower = Follower::load(owner.state.id(), None, &owner.events, 1).unwrap();
        for event in [owner.join("ann"), owner.join("bob")].into_iter().flatten() {
            follower.apply(&event, Some(1)).unwrap();
        }
        assert_eq!(follower.view().counters.participants, 2);
        // Taken over: the new owner replays the room, nobody present; ann comes back.
        let mut successor = RoomState::replay(owner.state.id(), &owner.events).unwrap();
        let back = successor
            .apply(
                Command::Join {
                    user: user("ann"),
                    via: Via::Socket,
                },
                time::now(),
            )
            .unwrap()
            .event
            .unwrap();
        follower.apply(&back, Some(2)).unwrap();
        assert_eq!(
            follower.view(),
            successor.view(successor.counters()),
            "the count restarts at the new owner's first event"
        );
        // Told of the owner change before any event of the new owner: nobody present yet.
        follower.owner_changed(3);
        assert_eq!(follower.view().counters.participants, 0);
        assert_eq!(follower.epoch(), 3);
    }

    #[test]
    fn a_late_view_of_the_old_owner_at_the_takeovers_seq_counts_nobody() {
        let mut owner = Owner::new();
        owner.join("ann");
        let mut follower = Follower::load(owner.state.id(), None, &owner.events, 1).unwrap();
        follower.anchor(2, 1);
        assert_eq!(follower.view().counters.participants, 1);
        // Taken over at seq 2 (the new owner replayed the room with nobody present); then the
        // old owner's answer of a view at seq 2, ann present, comes late.
        follower.owner_changed(2);
        follower.anchor(2, 1);
        assert_eq!(follower.view().counters.participants, 0);
        // A view at that seq from the new owner agrees.
        follower.anchor(2, 0);
        assert_eq!(follower.view().counters.participants, 0);
    }

    #[test]
    fn a_gap_is_an_error_and_leaves_the_follower_as_it_was() {
        let mut owner = Owner::new();
        let mut follower = Follower::load(owner.state.id(), None, &owner.events, 0).unwrap();
        owner.join("ann");
        let later = owner.join("bob").unwrap();
        let before = follower.view();
        assert!(matches!(
            follower.apply(&later, None),
            Err(ReplayError::Gap { .. })
        ));
        assert_eq!(follower.view(), before);
    }
}
