//! One batch of the writer as Redis commands: one `FCALL roomstate_batch_runs` (`roomstate.lua`)
//! carrying every room operation, and the room index updates beside it.
//!
//! Each event is serialised once: the same JSON goes into the call and, once the batch is
//! acknowledged, into the writer's record of what it appended (`recent`). Events, snapshots and
//! chat messages are written by the core's hand-written JSON encoders (`Event::to_json`,
//! `Snapshot::write_json`, `ChatMessage::write_json`): the same bytes as their serde derives at a
//! fraction of the instructions. Snapshots and messages are written into one reused `String`,
//! keys into one reused byte buffer (`write_arg`), each then copied into the command whole:
//! encoded through the command's own writer, every quote and comma was a call through
//! `dyn Write`, and a message took twice the instructions (docs/benchmarks.md, "Instructions per
//! ack").

use redis::Cmd;
use roomstate_core::room::Event;

use super::{Keys, Op, BATCH_FUNCTION};
use crate::JournalError;

/// The keys of one room the function touches, in the order it expects them.
const ROOM_KEYS: [&str; 4] = ["log", "snap", "owner", "msgs"];

/// One batch as Redis commands.
pub(super) struct BatchCall {
    pub(super) fcall: Cmd,
    /// `SADD` of new rooms (the index is global, so outside the function, whose keys all belong
    /// to rooms). Sent with the call, so that its `WAIT` covers them: a room whose first event
    /// is durable is in the index. A refused append's `SADD` is harmless (recovery leaves out a
    /// room with no log). The `SREM` of a deleted room waits for the function's answer instead
    /// (`deleted_rooms`): a refused delete must not drop a room another owner serves.
    pub(super) index: Vec<Cmd>,
    /// Per room operation in the call, in order: the op's index in the batch and, for an
    /// append, its events' JSON as sent.
    pub(super) function_ops: Vec<FunctionOp>,
    /// `Check` requests in the batch.
    pub(super) checks: usize,
}

/// One operation the function answers.
pub(super) struct FunctionOp {
    /// Its index in the batch.
    pub(super) op: usize,
    /// An append's events, encoded as they were sent (empty for any other op).
    pub(super) events_json: Vec<String>,
}

/// The room an op changes through the function; `None` for an op that is not part of the call
/// (a `Check`, an empty append).
pub(super) fn room_of(op: &Op) -> Option<&str> {
    match op {
        Op::Append(_, events) => events.first().map(|e| e.room.as_str()),
        Op::Snapshot(_, snapshot) => Some(snapshot.room.as_str()),
        Op::Delete(_, room) | Op::Release(_, room) => Some(room.as_str()),
        Op::Claim(claim) => Some(claim.room.as_str()),
        Op::Check => None,
    }
}

/// Encodes `ops` as one call (see the module's notes).
pub(super) fn batch_call(keys: &Keys<'_>, ops: &[Op]) -> Result<BatchCall, JournalError> {
    let mut function_ops = Vec::new();
    let mut json_bytes = 0;
    // Each event's JSON first: it sizes the call, and the writer's record keeps it.
    for (op, batched) in ops.iter().enumerate() {
        if room_of(batched).is_none() {
            continue;
        }
        let events_json: Vec<String> = match batched {
            Op::Append(_, events) => events.iter().map(Event::to_json).collect(),
            _ => Vec::new(),
        };
        // The call joins a room's events one per line (`append_args`): JSON escapes line
        // breaks inside strings, so a raw one is an encoder's bug, refused before it is sent.
        if let Op::Append(_, events) = batched {
            if let Some((event, _)) = events
                .iter()
                .zip(&events_json)
                .find(|(_, json)| json.contains('\n'))
            {
                return Err(not_encodable(
                    event.room.as_str(),
                    "event",
                    format!("seq {}: a line break in its JSON", event.seq),
                ));
            }
        }
        json_bytes += events_json.iter().map(String::len).sum::<usize>();
        function_ops.push(FunctionOp { op, events_json });
    }
    let rooms = function_ops.len();
    // Messages repeat part of their event's JSON; 64 bytes per room for keys and numbers.
    let mut fcall = Cmd::with_capacity(4 * rooms + 8 * ops.len() + 4, 2 * json_bytes + 64 * rooms);
    fcall.arg("FCALL").arg(BATCH_FUNCTION).arg(4 * rooms);
    // Keys' bytes, and the JSON of snapshots and messages: reused for each.
    let mut scratch = Vec::new();
    let mut text = String::new();
    // Keys come before any argument: one pass over the function's ops for each.
    for f in &function_ops {
        let room = room_of(&ops[f.op]).unwrap_or_default();
        for part in ROOM_KEYS {
            write_arg(&mut fcall, &mut scratch, |w| {
                keys.room_key(room, part).write_to(w)
            })
            .map_err(|e| not_encodable(room, "key", e))?;
        }
    }
    let mut index = Vec::new();
    for f in &function_ops {
        let batched = &ops[f.op];
        let room = room_of(batched).unwrap_or_default();
        match batched {
            Op::Append(epoch, events) => {
                append_args(
                    &mut fcall,
                    &mut scratch,
                    &mut text,
                    epoch.0,
                    events,
                    &f.events_json,
                );
                if events.first().is_some_and(|first| first.seq == 1) {
                    let mut sadd = redis::cmd("SADD");
                    sadd.arg(keys.rooms()).arg(room);
                    index.push(sadd);
                }
            }
            Op::Snapshot(epoch, snapshot) => {
                fcall.arg("S").arg(epoch.0).arg(snapshot.seq);
                text.clear();
                snapshot.write_json(&mut text);
                fcall.arg(text.as_bytes());
            }
            Op::Delete(epoch, _) => {
                fcall.arg("D").arg(epoch.0);
            }
            Op::Claim(claim) => {
                fcall.arg("C");
                match claim.seen {
                    Some(epoch) => fcall.arg(epoch.0),
                    None => fcall.arg("*"),
                };
                let how = if claim.new { "new" } else { "take" };
                fcall.arg(claim.node.as_str()).arg(how);
            }
            Op::Release(epoch, _) => {
                fcall.arg("R").arg(epoch.0);
            }
            // Not among the function's ops (`room_of`).
            Op::Check => {}
        }
    }
    let checks = ops.iter().filter(|op| matches!(op, Op::Check)).count();
    // The command was made whole, with `FCALL` as its first argument.
    Ok(BatchCall {
        fcall,
        index,
        function_ops,
        checks,
    })
}

/// An append's arguments: `A`, epoch, first seq, the events' count, their JSON in one argument
/// (one per line: the log's entry holds them as one text, `entry`), then the chat messages among
/// them (count, then seq and JSON of each) for the room's archive.
fn append_args(
    fcall: &mut Cmd,
    scratch: &mut Vec<u8>,
    text: &mut String,
    epoch: u64,
    events: &[Event],
    json: &[String],
) {
    let first = events.first().map_or(0, |e| e.seq);
    fcall.arg("A").arg(epoch).arg(first).arg(events.len());
    scratch.clear();
    for (i, event_json) in json.iter().enumerate() {
        if i > 0 {
            scratch.push(b'\n');
        }
        scratch.extend_from_slice(event_json.as_bytes());
    }
    fcall.arg(&scratch[..]);
    let messages: Vec<_> = events.iter().filter_map(crate::message_of).collect();
    fcall.arg(messages.len());
    for message in &messages {
        fcall.arg(message.seq);
        text.clear();
        message.write_json(text);
        fcall.arg(text.as_bytes());
    }
}

/// Adds one argument to `cmd` (a key), encoded by `write` into `scratch` first (see the module's
/// notes).
fn write_arg<E>(
    cmd: &mut Cmd,
    scratch: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    scratch.clear();
    write(scratch)?;
    cmd.arg(&scratch[..]);
    Ok(())
}

fn not_encodable(room: &str, what: &str, e: impl std::fmt::Display) -> JournalError {
    JournalError::Corrupt(format!("room {room}: {what} not encodable: {e}"))
}

#[cfg(test)]
mod tests {
    use roomstate_core::{
        room::{EventKind, RoomId, Snapshot, UserName},
        time,
    };

    use super::*;
    use crate::{redis::Claim, Epoch};

    fn event(room: &RoomId, seq: u64, kind: EventKind) -> Event {
        Event {
            room: room.clone(),
            seq,
            at: time::now(),
            kind,
        }
    }

    fn json(value: &impl serde::Serialize) -> String {
        serde_json::to_string(value).unwrap()
    }

    fn args(cmd: &Cmd) -> Vec<String> {
        cmd.args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => "<not a plain argument>".to_owned(),
            })
            .collect()
    }

    #[test]
    fn a_batch_is_one_call_with_every_rooms_keys_then_every_ops_arguments() {
        let (a, b, c) = (
            RoomId::parse("r_a").unwrap(),
            RoomId::parse("r_b").unwrap(),
            RoomId::parse("r_c").unwrap(),
        );
        let alice = UserName::parse("alice").unwrap();
        let created = event(&a, 1, EventKind::Created { title: "T".into() });
        let said = event(
            &a,
            2,
            EventKind::Said {
                user: alice.clone(),
                text: "hi \"you\"".into(),
                key: None,
            },
        );
        let left = event(&b, 7, EventKind::Left { user: alice });
        let snapshot = Snapshot {
            room: b.clone(),
            seq: 7,
            title: "T".into(),
            created_at: time::now(),
            participants_peak: 1,
            votes: Vec::new(),
            messages: Vec::new(),
            message_count: None,
            older_upto: 0,
            keys: Vec::new(),
        };
        let ops = [
            Op::Check,
            Op::Append(Epoch(3), vec![created.clone(), said.clone()]),
            Op::Append(Epoch(3), Vec::new()),
            Op::Append(Epoch(4), vec![left.clone()]),
            Op::Snapshot(Epoch(4), snapshot.clone()),
            Op::Claim(Claim {
                room: c.clone(),
                seen: None,
                node: "n1".into(),
                new: true,
            }),
            Op::Delete(Epoch(5), c.clone()),
            Op::Release(Epoch(6), b.clone()),
        ];
        let keys = Keys { prefix: "p" };
        let call = batch_call(&keys, &ops).unwrap();

        let message = crate::message_of(&said).unwrap();
        let mut expected: Vec<String> = ["FCALL", "roomstate_batch_runs", "24"]
            .map(String::from)
            .to_vec();
        for room in ["r_a", "r_b", "r_b", "r_c", "r_c", "r_b"] {
            for part in ["log", "snap", "owner", "msgs"] {
                expected.push(format!("p:{{{room}}}:{part}"));
            }
        }
        expected.extend([
            "A".into(),
            "3".into(),
            "1".into(),
            "2".into(),
            format!("{}\n{}", json(&created), json(&said)),
            "1".into(),
            "2".into(),
            json(&message),
            "A".into(),
            "4".into(),
            "7".into(),
            "1".into(),
            json(&left),
            "0".into(),
            "S".into(),
            "4".into(),
            "7".into(),
            json(&snapshot),
            "C".into(),
            "*".into(),
            "n1".into(),
            "new".into(),
            "D".into(),
            "5".into(),
            "R".into(),
            "6".into(),
        ]);
        assert_eq!(args(&call.fcall), expected);

        let answered: Vec<usize> = call.function_ops.iter().map(|f| f.op).collect();
        assert_eq!(answered, [1, 3, 4, 5, 6, 7], "the empty append is not sent");
        assert_eq!(
            call.function_ops[0].events_json,
            [json(&created), json(&said)],
            "what the record keeps is what was sent"
        );
        assert!(call.function_ops[2].events_json.is_empty());
        let index: Vec<Vec<String>> = call.index.iter().map(args).collect();
        assert_eq!(index, [["SADD", "p:rooms", "r_a"]]);
        assert_eq!(call.checks, 1);
    }
}
