//! `RoomState`: the pure state machine of one room, every rule of docs/api.md and nothing else.
//!
//! It knows nothing of actors, journals, SQL or time sources: callers pass the time in, and get
//! back the event to journal (if the command changed anything) together with the counters right
//! after it. It must never do I/O or panic on any command a client can send.

use std::collections::{HashMap, VecDeque};

use super::{
    event::{Event, EventKind, Side},
    id::{IdempotencyKey, RoomId, UserName},
    idempotency::RecentKeys,
    presence::{Presence, Transition, Via},
    snapshot::Snapshot,
    view::{ChatMessage, Counters, RoomStatus, RoomView},
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
    Join {
        user: UserName,
        via: Via,
    },
    Leave {
        user: UserName,
        via: Via,
    },
    Vote {
        user: UserName,
        side: Side,
    },
    Retract {
        user: UserName,
    },
    /// Post `text`; with a `key`, a repeat of the same key by the same user within the key's
    /// lifetime is answered with the first message's seq and adds nothing.
    Say {
        user: UserName,
        text: String,
        key: Option<IdempotencyKey>,
    },
}

impl Command {
    /// The user the command is about.
    pub fn user(&self) -> &UserName {
        match self {
            Command::Join { user, .. }
            | Command::Leave { user, .. }
            | Command::Vote { user, .. }
            | Command::Retract { user }
            | Command::Say { user, .. } => user,
        }
    }
}

/// The outcome of an accepted command.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The event to journal, or `None` when the command changed nothing durable (same vote
    /// again, a second socket of a present user, retracting no vote, ...).
    pub event: Option<Event>,
    /// The counters right after the command.
    pub counters: Counters,
    /// The command repeated an idempotency key: this is the seq of the message it first came
    /// with (`event` is `None`; nothing changed).
    pub repeat_of: Option<u64>,
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
    /// The newest chat messages, oldest first: at most `max_messages` (older ones are in the
    /// journal, or the store once the room is closed).
    messages: VecDeque<ChatMessage>,
    max_messages: usize,
    /// Messages posted in all (the API's `messages` counter), in memory or not.
    message_count: u32,
    /// Seq of the newest message no longer in memory (0: every message is in memory).
    older_upto: u64,
    keys: RecentKeys,
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
            messages: VecDeque::new(),
            max_messages: usize::MAX,
            message_count: 0,
            older_upto: 0,
            keys: RecentKeys::default(),
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
        state.messages = snapshot.messages.iter().cloned().collect();
        let count = u32::try_from(snapshot.messages.len()).unwrap_or(u32::MAX);
        state.message_count = snapshot.message_count.unwrap_or(count);
        state.older_upto = snapshot.older_upto;
        for k in &snapshot.keys {
            state.keys.remember(&k.user, &k.key, k.seq, k.at);
        }
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
            messages: self.messages.iter().cloned().collect(),
            message_count: Some(self.message_count),
            older_upto: self.older_upto,
            keys: self.keys.to_vec(),
        }
    }

    /// Applies one durable event written by the room's owner elsewhere (a mirror of the room
    /// follows its log): the same as replay, presence aside — the log does not say who is
    /// present, only who arrived and left (`Follower` counts them).
    pub fn follow(&mut self, event: &Event) -> Result<(), ReplayError> {
        self.replay_one(event)
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
            EventKind::Said { user, text, key } => {
                self.push_message(ChatMessage {
                    seq: event.seq,
                    user: user.clone(),
                    text: text.clone(),
                    sent_at: event.at,
                });
                if let Some(key) = key {
                    self.keys.remember(user, key, event.seq, event.at);
                }
            }
        }
        self.seq = event.seq;
        Ok(())
    }

    /// Applies a client command at time `at`.
    pub fn apply(&mut self, command: Command, at: Timestamp) -> Result<Change, RoomError> {
        if self.closed_at.is_some() {
            return Err(RoomError::Closed);
        }
        // A repeat is recognised before any other rule: its first answer stands, whether or not
        // the user is still present (docs/api.md "Idempotent retries").
        if let Command::Say {
            user,
            key: Some(key),
            ..
        } = &command
        {
            if let Some(seq) = self.keys.lookup(user, key, at) {
                return Ok(Change {
                    event: None,
                    counters: self.counters(),
                    repeat_of: Some(seq),
                });
            }
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
            Command::Say { user, text, key } => {
                validate_text(&text)?;
                self.require_present(&user)?;
                self.push_message(ChatMessage {
                    seq: self.seq + 1,
                    user: user.clone(),
                    text: text.clone(),
                    sent_at: at,
                });
                if let Some(key) = &key {
                    self.keys.remember(&user, key, self.seq + 1, at);
                }
                Some(EventKind::Said { user, text, key })
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
            repeat_of: None,
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

    /// Takes back a close whose final record could not be written: the room takes commands
    /// again (nothing of the close was applied).
    pub fn reopen(&mut self) {
        self.closed_at = None;
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
            messages: self.message_count,
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

    /// Keeps at most `max` chat messages in memory from now on (the oldest go first); the
    /// journal keeps them all.
    pub fn bound_messages(&mut self, max: usize) {
        self.max_messages = max.max(1);
        self.evict();
    }

    fn push_message(&mut self, message: ChatMessage) {
        self.messages.push_back(message);
        self.message_count = self.message_count.saturating_add(1);
        self.evict();
    }

    fn evict(&mut self) {
        while self.messages.len() > self.max_messages {
            if let Some(gone) = self.messages.pop_front() {
                self.older_upto = gone.seq;
            }
        }
    }

    /// Seq of the newest message no longer in memory (0: every message is in memory).
    pub fn older_upto(&self) -> u64 {
        self.older_upto
    }

    /// Messages with `after < seq <= upto`, oldest first, at most `limit` — `None` when some of
    /// them are no longer in memory (`after < older_upto()`): read those from the journal.
    pub fn messages(&self, after: u64, upto: u64, limit: usize) -> Option<Vec<ChatMessage>> {
        if after < self.older_upto {
            return None;
        }
        let start = self.messages.partition_point(|m| m.seq <= after);
        Some(
            self.messages
                .range(start..)
                .take_while(|m| m.seq <= upto)
                .take(limit)
                .cloned()
                .collect(),
        )
    }

    /// The messages still in memory with `seq <= upto`: the whole transcript when
    /// `older_upto()` is 0, else its part after `older_upto()`.
    pub fn recent_transcript(&self, upto: u64) -> Vec<ChatMessage> {
        self.messages
            .iter()
            .take_while(|m| m.seq <= upto)
            .cloned()
            .collect()
    }

    /// Every user's current vote, sorted by user.
    pub fn votes(&self) -> Vec<(UserName, Side)> {
        let mut votes: Vec<_> = self.votes.iter().map(|(u, s)| (u.clone(), *s)).collect();
        votes.sort_by(|a, b| a.0.cmp(&b.0));
        votes
    }
}

#[cfg(test)]
mod tests;
