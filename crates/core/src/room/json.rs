//! The JSON of a room's hot values written by hand (see `crate::json`): an event and a snapshot
//! as the journal stores them, a chat message and the room view as clients see them. Byte for
//! byte what their serde derives write, which stay the definition; the tests hold the two equal.

use super::{ChatMessage, Event, EventKind, RememberedKey, RoomStatus, RoomView, Snapshot};
use crate::json;

impl Event {
    /// The event as JSON, as `serde_json::to_string` writes it.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128 + text_len(&self.kind));
        out.push_str("{\"room\":");
        json::string(&mut out, self.room.as_str());
        out.push_str(",\"seq\":");
        json::uint(&mut out, self.seq);
        out.push_str(",\"at\":");
        json::timestamp(&mut out, &self.at);
        out.push_str(",\"kind\":{\"type\":\"");
        out.push_str(self.kind.name());
        out.push('"');
        match &self.kind {
            EventKind::Created { title } => {
                out.push_str(",\"title\":");
                json::string(&mut out, title);
            }
            EventKind::Joined { user, participants } => {
                out.push_str(",\"user\":");
                json::string(&mut out, user.as_str());
                out.push_str(",\"participants\":");
                json::uint(&mut out, u64::from(*participants));
            }
            EventKind::Left { user } | EventKind::Retracted { user } => {
                out.push_str(",\"user\":");
                json::string(&mut out, user.as_str());
            }
            EventKind::Voted { user, side } => {
                out.push_str(",\"user\":");
                json::string(&mut out, user.as_str());
                out.push_str(",\"side\":\"");
                out.push_str(side.as_str());
                out.push('"');
            }
            EventKind::Said { user, text, key } => {
                out.push_str(",\"user\":");
                json::string(&mut out, user.as_str());
                out.push_str(",\"text\":");
                json::string(&mut out, text);
                if let Some(key) = key {
                    out.push_str(",\"key\":");
                    json::string(&mut out, key.as_str());
                }
            }
        }
        out.push_str("}}");
        out
    }
}

fn text_len(kind: &EventKind) -> usize {
    match kind {
        EventKind::Created { title } => title.len(),
        EventKind::Said { text, .. } => text.len(),
        _ => 0,
    }
}

impl ChatMessage {
    /// Appends the message as JSON, as `serde_json::to_writer` writes it.
    pub fn write_json(&self, out: &mut String) {
        out.push('{');
        self.write_json_fields(out);
        out.push('}');
    }

    /// The message's fields, `"seq":…` to `"sent_at":"…"`, for an object that holds them.
    pub fn write_json_fields(&self, out: &mut String) {
        out.push_str("\"seq\":");
        json::uint(out, self.seq);
        out.push_str(",\"user\":");
        json::string(out, self.user.as_str());
        out.push_str(",\"text\":");
        json::string(out, &self.text);
        out.push_str(",\"sent_at\":");
        json::timestamp(out, &self.sent_at);
    }
}

impl Snapshot {
    /// Appends the snapshot as JSON, as `serde_json::to_writer` writes it.
    pub fn write_json(&self, out: &mut String) {
        let texts: usize = self.messages.iter().map(|m| m.text.len()).sum();
        out.reserve(
            256 + texts + 96 * self.messages.len() + 48 * (self.votes.len() + self.keys.len()),
        );
        out.push_str("{\"room\":");
        json::string(out, self.room.as_str());
        out.push_str(",\"seq\":");
        json::uint(out, self.seq);
        out.push_str(",\"title\":");
        json::string(out, &self.title);
        out.push_str(",\"created_at\":");
        json::timestamp(out, &self.created_at);
        out.push_str(",\"participants_peak\":");
        json::uint(out, u64::from(self.participants_peak));
        out.push_str(",\"votes\":");
        list(out, &self.votes, |out, (user, side)| {
            out.push('[');
            json::string(out, user.as_str());
            out.push_str(",\"");
            out.push_str(side.as_str());
            out.push_str("\"]");
        });
        out.push_str(",\"messages\":");
        list(out, &self.messages, |out, message| message.write_json(out));
        if let Some(count) = self.message_count {
            out.push_str(",\"message_count\":");
            json::uint(out, u64::from(count));
        }
        out.push_str(",\"older_upto\":");
        json::uint(out, self.older_upto);
        out.push_str(",\"keys\":");
        list(out, &self.keys, |out, key: &RememberedKey| {
            out.push_str("{\"user\":");
            json::string(out, key.user.as_str());
            out.push_str(",\"key\":");
            json::string(out, key.key.as_str());
            out.push_str(",\"seq\":");
            json::uint(out, key.seq);
            out.push_str(",\"at\":");
            json::timestamp(out, &key.at);
            out.push('}');
        });
        out.push('}');
    }
}

/// Appends `items` as a JSON array, each by `write`.
fn list<T>(out: &mut String, items: &[T], mut write: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(out, item);
    }
    out.push(']');
}

impl RoomView {
    /// The view's fields, `"id":…` to `"closed_at":…`, for an object that holds them.
    pub fn write_json_fields(&self, out: &mut String) {
        let counters = &self.counters;
        out.push_str("\"id\":");
        json::string(out, self.id.as_str());
        out.push_str(",\"title\":");
        json::string(out, &self.title);
        out.push_str(match self.status {
            RoomStatus::Open => ",\"status\":\"open\"",
            RoomStatus::Closed => ",\"status\":\"closed\"",
        });
        for (name, n) in [
            (",\"participants\":", counters.participants),
            (",\"participants_peak\":", counters.participants_peak),
            (",\"pro\":", counters.pro),
            (",\"con\":", counters.con),
            (",\"messages\":", counters.messages),
        ] {
            out.push_str(name);
            json::uint(out, u64::from(n));
        }
        out.push_str(",\"seq\":");
        json::uint(out, counters.seq);
        out.push_str(",\"created_at\":");
        json::timestamp(out, &self.created_at);
        out.push_str(",\"closed_at\":");
        match &self.closed_at {
            Some(t) => json::timestamp(out, t),
            None => out.push_str("null"),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::{
        room::{Counters, IdempotencyKey, RoomId, Side, UserName},
        time::{self, Timestamp},
    };

    /// Texts a client may send, the awkward ones first.
    const TEXTS: [&str; 5] = [
        "say \"hi\" \\ \n\t\r\u{0}\u{1f}\u{7f}",
        "émoji 🎉 中文 \u{2028}",
        "",
        "a",
        "a longer message of plain words, nothing to escape in it at all",
    ];

    fn times() -> Vec<Timestamp> {
        vec![
            time::now(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            // A year past 9999 takes chrono's formatter.
            Utc.with_ymd_and_hms(12_345, 6, 7, 8, 9, 10).unwrap(),
        ]
    }

    #[test]
    fn events_of_every_kind_match_serde_json() {
        let room = RoomId::parse("r_01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap();
        let user = UserName::parse("alice.b-2_x").unwrap();
        let mut kinds = vec![
            EventKind::Joined {
                user: user.clone(),
                participants: u32::MAX,
            },
            EventKind::Left { user: user.clone() },
            EventKind::Voted {
                user: user.clone(),
                side: Side::Pro,
            },
            EventKind::Voted {
                user: user.clone(),
                side: Side::Con,
            },
            EventKind::Retracted { user: user.clone() },
        ];
        for text in TEXTS {
            kinds.push(EventKind::Created { title: text.into() });
            for key in [None, Some(IdempotencyKey::generate())] {
                kinds.push(EventKind::Said {
                    user: user.clone(),
                    text: text.into(),
                    key,
                });
            }
        }
        for at in times() {
            for (seq, kind) in [0, 1, u64::MAX].into_iter().cycle().zip(&kinds) {
                let event = Event {
                    room: room.clone(),
                    seq,
                    at,
                    kind: kind.clone(),
                };
                assert_eq!(event.to_json(), serde_json::to_string(&event).unwrap());
            }
        }
    }

    #[test]
    fn messages_match_serde_json() {
        for at in times() {
            for text in TEXTS {
                let message = ChatMessage {
                    seq: 42,
                    user: UserName::parse("bob").unwrap(),
                    text: text.into(),
                    sent_at: at,
                };
                let mut out = String::new();
                message.write_json(&mut out);
                assert_eq!(out, serde_json::to_string(&message).unwrap());
            }
        }
    }

    #[test]
    fn snapshots_match_serde_json() {
        let user = |name: &str| UserName::parse(name).unwrap();
        let messages: Vec<_> = TEXTS
            .iter()
            .enumerate()
            .map(|(i, text)| ChatMessage {
                seq: 10 + i as u64,
                user: user("carol"),
                text: (*text).into(),
                sent_at: time::now(),
            })
            .collect();
        let keys: Vec<_> = messages
            .iter()
            .map(|m| RememberedKey {
                user: m.user.clone(),
                key: IdempotencyKey::generate(),
                seq: m.seq,
                at: m.sent_at,
            })
            .collect();
        let full = Snapshot {
            room: RoomId::generate(),
            seq: 99,
            title: TEXTS[0].into(),
            created_at: time::now(),
            participants_peak: 7,
            votes: vec![(user("a"), Side::Pro), (user("b.c"), Side::Con)],
            messages,
            message_count: Some(1234),
            older_upto: 9,
            keys,
        };
        let empty = Snapshot {
            votes: Vec::new(),
            messages: Vec::new(),
            message_count: None,
            older_upto: 0,
            keys: Vec::new(),
            ..full.clone()
        };
        for snapshot in [full, empty] {
            let mut out = String::new();
            snapshot.write_json(&mut out);
            assert_eq!(out, serde_json::to_string(&snapshot).unwrap());
        }
    }

    #[test]
    fn views_match_serde_json() {
        for (created_at, closed_at) in times().into_iter().zip([None, Some(time::now()), None]) {
            for (status, title) in [RoomStatus::Open, RoomStatus::Closed]
                .into_iter()
                .zip(TEXTS)
            {
                let view = RoomView {
                    id: RoomId::generate(),
                    title: title.into(),
                    status,
                    counters: Counters {
                        participants: 1,
                        participants_peak: 2,
                        pro: 3,
                        con: u32::MAX,
                        messages: 0,
                        seq: u64::MAX,
                    },
                    created_at,
                    closed_at,
                };
                let mut out = String::from("{");
                view.write_json_fields(&mut out);
                out.push('}');
                assert_eq!(out, serde_json::to_string(&view).unwrap());
            }
        }
    }
}
