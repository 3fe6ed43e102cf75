//! `RoomState`: the pure state machine of one room, every rule of API.md and nothing else.
//!
//! It knows nothing of actors, journals, SQL or time sources: callers pass the time in, and get
//! back the event to journal (if the command changed anything) together with the counters right
//! after it. It must never do I/O or panic on any command a client can send.

use std::collections::HashMap;

use super::{
    event::{Event, EventKind, Side},
    id::{RoomId, UserName},
    presence::{Presence, Transition, Via},
    snapshot::Snapshot,
    view::{Counters, Message, RoomStatus, RoomView},
};
use crate::time::Timestamp;

/// Longest room title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest chat message, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// Why a command was refused. Each maps to one API error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("{0}")]
    Invalid(String),
    #[error("user {0} has not joined this room")]
    NotJoined(UserName),
    #[error("the room is closed")]
    Closed,
}

/// Why a journal could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("room {room}: the log is empty or does not start with the room's creation")]
    NoCreation { room: RoomId },
    #[error(
        "room {room}: expected seq {expected}, found {found} (a gap or a duplicate in the log)"
    )]
    Gap {
        room: RoomId,
        expected: u64,
        found: u64,
    },
    #[error("room {room}: event {seq} belongs to room {other}")]
    WrongRoom {
        room: RoomId,
        seq: u64,
        other: RoomId,
    },
}

/// A request to change the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Join { user: UserName, via: Via },
    Leave { user: UserName, via: Via },
    Vote { user: UserName, side: Side },
    Retract { user: UserName },
    Say { user: UserName, text: String },
}

/// The outcome of an accepted command.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The event to journal, or `None` when the command changed nothing durable (same vote
    /// again, a second socket of a present user, retracting no vote, ...).
    pub event: Option<Event>,
    /// The counters right after the command.
    pub counters: Counters,
}

/// Checks that `text` is 1..=`max` characters (not bytes) and not only white space.
fn validate_chars(text: &str, what: &str, max: usize) -> Result<(), RoomError> {
    let chars = text.chars().count();
    if chars == 0 || chars > max || text.trim().is_empty() {
        return Err(RoomError::Invalid(format!(
            "{what} must be 1 to {max} characters and not blank"
        )));
    }
    Ok(())
}

/// Checks a room title.
pub fn validate_title(title: &str) -> Result<(), RoomError> {
    validate_chars(title, "title", MAX_TITLE_CHARS)
}

fn validate_text(text: &str) -> Result<(), RoomError> {
    validate_chars(text, "text", MAX_TEXT_CHARS)
}

/// Everything about one room that the engine holds in memory.
#[derive(Debug, Clone)]
pub struct RoomState {
    id: RoomId,
    title: String,
    created_at: Timestamp,
    closed_at: Option<Timestamp>,
    seq: u64,
    presence: Presence,
    votes: HashMap<UserName, Side>,
    pro: u32,
    con: u32,
    peak: u32,
    messages: Vec<Message>,
}

impl RoomState {
    /// Opens a room: the new state and its creation event (seq 1).
    pub fn create(id: RoomId, title: String, at: Timestamp) -> Result<(Self, Event), RoomError> {
        validate_title(&title)?;
        let event = Event {
            room: id.clone(),
            seq: 1,
            at,
            kind: EventKind::Created {
                title: title.clone(),
            },
        };
        let state = Self::empty(id, title, at, 1);
        Ok((state, event))
    }

    fn empty(id: RoomId, title: String, created_at: Timestamp, seq: u64) -> Self {
        Self {
            id,
            title,
            created_at,
            closed_at: None,
            seq,
            presence: Presence::default(),
            votes: HashMap::new(),
            pro: 0,
            con: 0,
            peak: 0,
            messages: Vec::new(),
        }
    }

    /// Rebuilds a room from its log, exactly as acknowledged, with nobody present.
    pub fn replay<'a>(
        room: &RoomId,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<Self, ReplayError> {
        let mut events = events.into_iter();
        let mut state = match events.next() {
            Some(Event {
                seq: 1,
                at,
                kind: EventKind::Created { title },
                room: r,
            }) if r == room => Self::empty(room.clone(), title.clone(), *at, 1),
            _ => return Err(ReplayError::NoCreation { room: room.clone() }),
        };
        for event in events {
            state.replay_one(event)?;
        }
        state.presence.clear();
        Ok(state)
    }

    /// Rebuilds a room from a snapshot and the events after it (events at or below the
    /// snapshot's seq are skipped: the log may not have been trimmed yet).
    pub fn restore<'a>(
        snapshot: &Snapshot,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<Self, ReplayError> {
        let mut state = Self::empty(
            snapshot.room.clone(),
            snapshot.title.clone(),
            snapshot.created_at,
            snapshot.seq,
        );
        state.peak = snapshot.participants_peak;
        for (user, side) in &snapshot.votes {
            state.set_vote(user, Some(*side));
        }
        state.messages = snapshot.messages.clone();
        for event in events.into_iter().filter(|e| e.seq > snapshot.seq) {
            state.replay_one(event)?;
        }
        Ok(state)
    }

    /// The durable state as a snapshot. Only meaningful when nothing is pending, which the
    /// caller ensures: the state machine itself does not know what is durable.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            room: self.id.clone(),
            seq: self.seq,
            title: self.title.clone(),
            created_at: self.created_at,
            participants_peak: self.peak,
            votes: self.votes(),
            messages: self.messages.clone(),
        }
    }

    fn replay_one(&mut self, event: &Event) -> Result<(), ReplayError> {
        if event.room != self.id {
            return Err(ReplayError::WrongRoom {
                room: self.id.clone(),
                seq: event.seq,
                other: event.room.clone(),
            });
        }
        if event.seq != self.seq + 1 {
            return Err(ReplayError::Gap {
                room: self.id.clone(),
                expected: self.seq + 1,
                found: event.seq,
            });
        }
        match &event.kind {
            // A second creation record can only come from a corrupt log.
            EventKind::Created { .. } => {
                return Err(ReplayError::Gap {
                    room: self.id.clone(),
                    expected: self.seq + 1,
                    found: 1,
                })
            }
            EventKind::Joined { participants, .. } => {
                self.peak = self.peak.max(*participants);
            }
            EventKind::Left { .. } => {}
            EventKind::Voted { user, side } => self.set_vote(user, Some(*side)),
            EventKind::Retracted { user } => self.set_vote(user, None),
            EventKind::Said { user, text } => self.messages.push(Message {
                seq: event.seq,
                user: user.clone(),
                text: text.clone(),
                sent_at: event.at,
            }),
        }
        self.seq = event.seq;
        Ok(())
    }

    /// Applies a client command at time `at`.
    pub fn apply(&mut self, command: Command, at: Timestamp) -> Result<Change, RoomError> {
        if self.closed_at.is_some() {
            return Err(RoomError::Closed);
        }
        let kind = match command {
            Command::Join { user, via } => match self.presence.add(&user, via) {
                Transition::Arrived => {
                    let participants = self.presence.count();
                    self.peak = self.peak.max(participants);
                    Some(EventKind::Joined { user, participants })
                }
                _ => None,
            },
            Command::Leave { user, via } => match self.presence.remove(&user, via) {
                Transition::Departed => Some(EventKind::Left { user }),
                _ => None,
            },
            Command::Vote { user, side } => {
                self.require_present(&user)?;
                if self.votes.get(&user) == Some(&side) {
                    None
                } else {
                    self.set_vote(&user, Some(side));
                    Some(EventKind::Voted { user, side })
                }
            }
            Command::Retract { user } => {
                self.require_present(&user)?;
                if self.votes.contains_key(&user) {
                    self.set_vote(&user, None);
                    Some(EventKind::Retracted { user })
                } else {
                    None
                }
            }
            Command::Say { user, text } => {
                validate_text(&text)?;
                self.require_present(&user)?;
                self.messages.push(Message {
                    seq: self.seq + 1,
                    user: user.clone(),
                    text: text.clone(),
                    sent_at: at,
                });
                Some(EventKind::Said { user, text })
            }
        };
        let event = kind.map(|kind| {
            self.seq += 1;
            Event {
                room: self.id.clone(),
                seq: self.seq,
                at,
                kind,
            }
        });
        Ok(Change {
            event,
            counters: self.counters(),
        })
    }

    fn require_present(&self, user: &UserName) -> Result<(), RoomError> {
        if self.presence.is_present(user) {
            Ok(())
        } else {
            Err(RoomError::NotJoined(user.clone()))
        }
    }

    fn set_vote(&mut self, user: &UserName, side: Option<Side>) {
        let old = match side {
            Some(side) => self.votes.insert(user.clone(), side),
            None => self.votes.remove(user),
        };
        for (side, delta) in [(old, -1i64), (side, 1)] {
            let tally = match side {
                Some(Side::Pro) => &mut self.pro,
                Some(Side::Con) => &mut self.con,
                None => continue,
            };
            *tally = u32::try_from(i64::from(*tally) + delta).unwrap_or(0);
        }
    }

    /// Marks the room closed: every later command is refused with `Closed`.
    pub fn close(&mut self, at: Timestamp) {
        self.closed_at.get_or_insert(at);
    }

    pub fn is_closed(&self) -> bool {
        self.closed_at.is_some()
    }

    pub fn id(&self) -> &RoomId {
        &self.id
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether `user` is present through an HTTP join (for the idle lapse).
    pub fn has_http_presence(&self, user: &UserName) -> bool {
        self.presence.has_http(user)
    }

    pub fn counters(&self) -> Counters {
        Counters {
            participants: self.presence.count(),
            participants_peak: self.peak,
            pro: self.pro,
            con: self.con,
            messages: u32::try_from(self.messages.len()).unwrap_or(u32::MAX),
            seq: self.seq,
        }
    }

    /// The room view with the given counters (the committed ones, usually).
    pub fn view(&self, counters: Counters) -> RoomView {
        RoomView {
            id: self.id.clone(),
            title: self.title.clone(),
            status: if self.closed_at.is_some() {
                RoomStatus::Closed
            } else {
                RoomStatus::Open
            },
            counters,
            created_at: self.created_at,
            closed_at: self.closed_at,
        }
    }

    /// Messages with `after < seq <= upto`, oldest first, at most `limit`.
    pub fn messages(&self, after: u64, upto: u64, limit: usize) -> Vec<Message> {
        let start = self.messages.partition_point(|m| m.seq <= after);
        self.messages[start..]
            .iter()
            .take_while(|m| m.seq <= upto)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Every message with `seq <= upto` (the transcript of the final record).
    pub fn transcript(&self, upto: u64) -> Vec<Message> {
        self.messages(0, upto, usize::MAX)
    }

    /// Every user's current vote, sorted by user.
    pub fn votes(&self) -> Vec<(UserName, Side)> {
        let mut votes: Vec<_> = self.votes.iter().map(|(u, s)| (u.clone(), *s)).collect();
        votes.sort_by(|a, b| a.0.cmp(&b.0));
        votes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time;

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    fn room() -> RoomState {
        RoomState::create(
            RoomId::parse("r_test").unwrap(),
            "Friday?".into(),
            time::now(),
        )
        .unwrap()
        .0
    }

    fn run(state: &mut RoomState, command: Command) -> Result<Change, RoomError> {
        state.apply(command, time::now())
    }

    fn join(state: &mut RoomState, name: &str, via: Via) -> Change {
        run(
            state,
            Command::Join {
                user: user(name),
                via,
            },
        )
        .unwrap()
    }

    fn vote(state: &mut RoomState, name: &str, side: Side) -> Result<Change, RoomError> {
        run(
            state,
            Command::Vote {
                user: user(name),
                side,
            },
        )
    }

    #[test]
    fn creation_is_seq_one() {
        let (state, event) =
            RoomState::create(RoomId::parse("r_a").unwrap(), "t".into(), time::now()).unwrap();
        assert_eq!(event.seq, 1);
        assert_eq!(state.seq(), 1);
        assert_eq!(
            state.counters(),
            Counters {
                seq: 1,
                ..Counters::default()
            }
        );
    }

    #[test]
    fn titles_are_checked() {
        let id = || RoomId::parse("r_a").unwrap();
        assert!(RoomState::create(id(), String::new(), time::now()).is_err());
        assert!(RoomState::create(id(), "   ".into(), time::now()).is_err());
        assert!(RoomState::create(id(), "é".repeat(200), time::now()).is_ok());
        assert!(RoomState::create(id(), "é".repeat(201), time::now()).is_err());
    }

    #[test]
    fn join_counts_and_raises_the_peak() {
        let mut s = room();
        let c = join(&mut s, "alice", Via::Http);
        assert_eq!(c.event.as_ref().map(|e| e.seq), Some(2));
        join(&mut s, "bob", Via::Http);
        assert_eq!(s.counters().participants, 2);
        run(
            &mut s,
            Command::Leave {
                user: user("bob"),
                via: Via::Http,
            },
        )
        .unwrap();
        let c = s.counters();
        assert_eq!((c.participants, c.participants_peak, c.seq), (1, 2, 4));
    }

    #[test]
    fn joining_twice_changes_nothing() {
        let mut s = room();
        join(&mut s, "alice", Via::Http);
        let again = join(&mut s, "alice", Via::Http);
        assert!(again.event.is_none());
        assert_eq!(s.seq(), 2);
    }

    #[test]
    fn two_sockets_of_one_user_count_once() {
        let mut s = room();
        assert!(join(&mut s, "alice", Via::Socket).event.is_some());
        assert!(join(&mut s, "alice", Via::Socket).event.is_none());
        assert_eq!(s.counters().participants, 1);
        let leave = || Command::Leave {
            user: user("alice"),
            via: Via::Socket,
        };
        assert!(
            run(&mut s, leave()).unwrap().event.is_none(),
            "one socket still open"
        );
        assert_eq!(s.counters().participants, 1);
        let last = run(&mut s, leave()).unwrap();
        assert!(matches!(
            last.event.map(|e| e.kind),
            Some(EventKind::Left { .. })
        ));
        assert_eq!(s.counters().participants, 0);
    }

    #[test]
    fn http_and_socket_presence_overlap() {
        let mut s = room();
        join(&mut s, "alice", Via::Socket);
        assert!(join(&mut s, "alice", Via::Http).event.is_none());
        let leave_http = run(
            &mut s,
            Command::Leave {
                user: user("alice"),
                via: Via::Http,
            },
        );
        assert!(
            leave_http.unwrap().event.is_none(),
            "the socket keeps alice present"
        );
        assert_eq!(s.counters().participants, 1);
    }

    #[test]
    fn leaving_when_absent_is_a_no_op() {
        let mut s = room();
        let c = run(
            &mut s,
            Command::Leave {
                user: user("ghost"),
                via: Via::Http,
            },
        )
        .unwrap();
        assert!(c.event.is_none());
        assert_eq!(s.seq(), 1);
    }

    #[test]
    fn voting_needs_presence() {
        let mut s = room();
        assert_eq!(
            vote(&mut s, "alice", Side::Pro),
            Err(RoomError::NotJoined(user("alice")))
        );
        assert_eq!(s.seq(), 1, "a refused command takes no seq");
    }

    #[test]
    fn double_vote_is_accepted_and_changes_nothing() {
        let mut s = room();
        join(&mut s, "alice", Via::Http);
        let first = vote(&mut s, "alice", Side::Pro).unwrap();
        assert_eq!(first.counters.pro, 1);
        assert_eq!(first.counters.seq, 3);
        let again = vote(&mut s, "alice", Side::Pro).unwrap();
        assert!(again.event.is_none());
        assert_eq!((again.counters.pro, again.counters.seq), (1, 3));
    }

    #[test]
    fn switching_moves_the_vote() {
        let mut s = room();
        join(&mut s, "alice", Via::Http);
        vote(&mut s, "alice", Side::Pro).unwrap();
        let c = vote(&mut s, "alice", Side::Con).unwrap().counters;
        assert_eq!((c.pro, c.con, c.seq), (0, 1, 4));
    }

    #[test]
    fn retract_removes_the_vote_once() {
        let mut s = room();
        join(&mut s, "alice", Via::Http);
        vote(&mut s, "alice", Side::Con).unwrap();
        let c = run(
            &mut s,
            Command::Retract {
                user: user("alice"),
            },
        )
        .unwrap();
        assert!(c.event.is_some());
        assert_eq!((c.counters.con, c.counters.seq), (0, 4));
        let again = run(
            &mut s,
            Command::Retract {
                user: user("alice"),
            },
        )
        .unwrap();
        assert!(again.event.is_none(), "no vote: no new seq");
        assert_eq!(again.counters.seq, 4);
    }

    #[test]
    fn retract_needs_presence() {
        let mut s = room();
        let r = run(&mut s, Command::Retract { user: user("bob") });
        assert_eq!(r, Err(RoomError::NotJoined(user("bob"))));
    }

    #[test]
    fn a_vote_stays_counted_after_its_user_leaves() {
        let mut s = room();
        join(&mut s, "alice", Via::Http);
        vote(&mut s, "alice", Side::Pro).unwrap();
        run(
            &mut s,
            Command::Leave {
                user: user("alice"),
                via: Via::Http,
            },
        )
        .unwrap();
        let c = s.counters();
        assert_eq!((c.participants, c.pro), (0, 1));
        assert_eq!(
            vote(&mut s, "alice", Side::Con),
            Err(RoomError::NotJoined(user("alice")))
        );
    }

    #[test]
    fn messages_need_presence_and_valid_text() {
        let mut s = room();
        let say = |text: &str| Command::Say {
            user: user("alice"),
            text: text.into(),
        };
        assert_eq!(
            run(&mut s, say("hi")),
            Err(RoomError::NotJoined(user("alice")))
        );
        join(&mut s, "alice", Via::Http);
        assert!(matches!(run(&mut s, say("")), Err(RoomError::Invalid(_))));
        assert!(matches!(
            run(&mut s, say(" \n")),
            Err(RoomError::Invalid(_))
        ));
        assert!(matches!(
            run(&mut s, say(&"x".repeat(2001))),
            Err(RoomError::Invalid(_))
        ));
        let c = run(&mut s, say(&"ü".repeat(2000))).unwrap();
        assert_eq!((c.counters.messages, c.counters.seq), (1, 3));
        let c = run(&mut s, say("again")).unwrap();
        assert_eq!(c.counters.messages, 2);
        let all = s.messages(0, u64::MAX, 10);
        assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(s.messages(3, u64::MAX, 10).len(), 1);
        assert_eq!(s.messages(0, 3, 10).len(), 1, "upto bounds the listing");
        assert_eq!(
            s.messages(0, u64::MAX, 1).len(),
            1,
            "limit bounds the listing"
        );
    }

    #[test]
    fn a_closed_room_refuses_everything() {
        let mut s = room();
        join(&mut s, "alice", Via::Http);
        s.close(time::now());
        for command in [
            Command::Join {
                user: user("bob"),
                via: Via::Http,
            },
            Command::Leave {
                user: user("alice"),
                via: Via::Http,
            },
            Command::Vote {
                user: user("alice"),
                side: Side::Pro,
            },
            Command::Retract {
                user: user("alice"),
            },
            Command::Say {
                user: user("alice"),
                text: "hi".into(),
            },
        ] {
            assert_eq!(run(&mut s, command), Err(RoomError::Closed));
        }
        assert_eq!(s.view(s.counters()).status, RoomStatus::Closed);
    }

    #[test]
    fn replay_rebuilds_what_was_acknowledged_with_nobody_present() {
        let (mut s, created) =
            RoomState::create(RoomId::parse("r_r").unwrap(), "t".into(), time::now()).unwrap();
        let mut log = vec![created];
        let mut record = |c: Change| log.extend(c.event);
        record(join(&mut s, "alice", Via::Http));
        record(join(&mut s, "bob", Via::Socket));
        record(vote(&mut s, "alice", Side::Pro).unwrap());
        record(vote(&mut s, "bob", Side::Con).unwrap());
        record(vote(&mut s, "bob", Side::Pro).unwrap());
        record(
            run(
                &mut s,
                Command::Say {
                    user: user("bob"),
                    text: "hi".into(),
                },
            )
            .unwrap(),
        );
        record(
            run(
                &mut s,
                Command::Leave {
                    user: user("bob"),
                    via: Via::Socket,
                },
            )
            .unwrap(),
        );

        let back = RoomState::replay(s.id(), &log).unwrap();
        let (live, replayed) = (s.counters(), back.counters());
        assert_eq!(
            replayed,
            Counters {
                participants: 0,
                ..live
            }
        );
        assert_eq!(replayed.participants_peak, 2);
        assert_eq!(back.votes(), s.votes());
        assert_eq!(back.transcript(u64::MAX), s.transcript(u64::MAX));
    }

    #[test]
    fn restore_from_a_snapshot_equals_a_full_replay() {
        let (mut s, created) =
            RoomState::create(RoomId::parse("r_s").unwrap(), "t".into(), time::now()).unwrap();
        let mut log = vec![created];
        log.extend(join(&mut s, "alice", Via::Http).event);
        log.extend(join(&mut s, "bob", Via::Http).event);
        log.extend(vote(&mut s, "alice", Side::Pro).unwrap().event);
        log.extend(
            run(
                &mut s,
                Command::Say {
                    user: user("bob"),
                    text: "a".into(),
                },
            )
            .unwrap()
            .event,
        );
        let snapshot = s.snapshot();
        assert_eq!(snapshot.seq, 5);
        log.extend(vote(&mut s, "bob", Side::Con).unwrap().event);
        log.extend(vote(&mut s, "alice", Side::Con).unwrap().event);
        log.extend(
            run(
                &mut s,
                Command::Say {
                    user: user("bob"),
                    text: "b".into(),
                },
            )
            .unwrap()
            .event,
        );

        let full = RoomState::replay(s.id(), &log).unwrap();
        // Untrimmed log (events up to the snapshot still there) and trimmed log alike.
        for events in [&log[..], &log[5..]] {
            let restored = RoomState::restore(&snapshot, events).unwrap();
            assert_eq!(restored.counters(), full.counters());
            assert_eq!(restored.votes(), full.votes());
            assert_eq!(restored.transcript(u64::MAX), full.transcript(u64::MAX));
        }
        let gap = RoomState::restore(&snapshot, &log[6..]);
        assert!(matches!(
            gap,
            Err(ReplayError::Gap {
                expected: 6,
                found: 7,
                ..
            })
        ));
    }

    #[test]
    fn peak_survives_replays_across_restarts() {
        // alice joins (peak 1); restart; bob joins (participants 1 again, peak still 1).
        let (mut s, created) =
            RoomState::create(RoomId::parse("r_p").unwrap(), "t".into(), time::now()).unwrap();
        let mut log = vec![created];
        log.extend(join(&mut s, "alice", Via::Http).event);
        let mut s = RoomState::replay(s.id(), &log).unwrap();
        log.extend(join(&mut s, "bob", Via::Http).event);
        let back = RoomState::replay(s.id(), &log).unwrap();
        assert_eq!(back.counters().participants_peak, 1);
        assert_eq!(back.counters().seq, 3);
    }

    #[test]
    fn replay_reports_gaps_and_foreign_events() {
        let (mut s, created) =
            RoomState::create(RoomId::parse("r_g").unwrap(), "t".into(), time::now()).unwrap();
        let a = join(&mut s, "alice", Via::Http).event.unwrap();
        let b = join(&mut s, "bob", Via::Http).event.unwrap();
        let gap = RoomState::replay(s.id(), [&created, &b]);
        assert!(matches!(
            gap,
            Err(ReplayError::Gap {
                expected: 2,
                found: 3,
                ..
            })
        ));
        let dup = RoomState::replay(s.id(), [&created, &a, &a]);
        assert!(matches!(dup, Err(ReplayError::Gap { .. })));
        let headless = RoomState::replay(s.id(), [&a]);
        assert!(matches!(headless, Err(ReplayError::NoCreation { .. })));
        let other = RoomId::parse("r_other").unwrap();
        assert!(matches!(
            RoomState::replay(&other, [&created]),
            Err(ReplayError::NoCreation { .. })
        ));
    }
}
