//! Reading open rooms back: the set `roomstate:rooms` of every open room, then per room its
//! snapshot and its stream (pipelined, 256 rooms per round trip, the next on its way while one is
//! parsed on a blocking-pool thread), each log checked for gaps. A gap is reported as
//! corruption, never papered over. The writer claims the rooms before it reads them (`writer`),
//! so nobody else writes them meanwhile.

use futures_util::{stream, StreamExt as _};
use redis::{aio::MultiplexedConnection, Value};
use roomstate_core::room::{Event, RoomId, Snapshot};

use super::{entry::Run, unavailable, Keys, ROOMS_PER_PIPELINE};
use crate::{Epoch, JournalError, RoomLog};

/// Every open room in the index, sorted.
pub(super) async fn list_rooms(
    conn: &mut MultiplexedConnection,
    keys: &Keys<'_>,
) -> Result<Vec<String>, JournalError> {
    let mut rooms: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.rooms())
        .query_async(&mut *conn)
        .await
        .map_err(|e| unavailable("recover", e))?;
    rooms.sort();
    Ok(rooms)
}

/// The logs of `rooms` (each with the epoch its reader claimed it under), from the primary
/// behind `conn`. A room with no log at all is left out.
pub(super) async fn read_rooms(
    conn: &mut MultiplexedConnection,
    keys: &Keys<'_>,
    rooms: &[(String, Epoch)],
) -> Result<Vec<RoomLog>, JournalError> {
    // Two pipelines in flight, in order, and the parsing off the journal's thread: while a
    // blocking-pool thread parses one pipeline's replies, Redis builds the next one's and the
    // journal's thread reads them off the connection. (A reply's time limit, `response_timeout`,
    // runs from when its pipeline is sent: it covers Redis building two replies, a few hundred
    // ms for 256 rooms of 100 events on a slow box, against 2 s.)
    let reader = conn.clone();
    let mut replies = stream::iter(rooms.chunks(ROOMS_PER_PIPELINE))
        .map(|chunk| {
            let mut pipe = redis::pipe();
            for (room, _) in chunk {
                pipe.cmd("GET").arg(keys.snap(room));
                pipe.cmd("XRANGE").arg(keys.log(room)).arg("-").arg("+");
            }
            let mut conn = reader.clone();
            let chunk = chunk.to_vec();
            async move {
                let replies: Vec<Value> = pipe
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| unavailable("recover", e))?;
                tokio::task::spawn_blocking(move || parse_rooms(&chunk, replies))
                    .await
                    .map_err(|e| unavailable("recover: parsing", e))?
            }
        })
        .buffered(2);
    let mut logs = Vec::with_capacity(rooms.len());
    while let Some(read) = replies.next().await {
        logs.extend(read?);
    }
    backfill_archives(conn, keys, &logs).await?;
    Ok(logs)
}

/// Journals written before the message archive existed kept whole transcripts in snapshots
/// (which say so by having no `message_count`): put those messages, and the ones the log posts
/// after them, into the archive, once (entry ids are seqs, so doing it twice adds nothing).
async fn backfill_archives(
    conn: &mut MultiplexedConnection,
    keys: &Keys<'_>,
    logs: &[RoomLog],
) -> Result<(), JournalError> {
    for log in logs {
        let Some(snapshot) = log.snapshot.as_ref().filter(|s| s.message_count.is_none()) else {
            continue;
        };
        let messages = snapshot
            .messages
            .iter()
            .cloned()
            .chain(log.events.iter().filter_map(crate::message_of));
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let key = keys.msgs(log.room.as_str());
        let mut writes = 0;
        for message in messages {
            let json = serde_json::to_string(&message).map_err(|e| {
                JournalError::Corrupt(format!("room {}: message not encodable: {e}", log.room))
            })?;
            pipe.cmd("XADD")
                .arg(&key)
                .arg(format!("{}-0", message.seq))
                .arg("m")
                .arg(json);
            writes += 1;
        }
        if writes == 0 {
            continue;
        }
        let replies: Vec<redis::RedisResult<Value>> = pipe
            .query_async(&mut *conn)
            .await
            .map_err(|e| unavailable("recover: filling the message archive", e))?;
        for reply in replies {
            match reply {
                Ok(_) => {}
                Err(e) if super::already_stored(&e) => {}
                Err(e) => return Err(unavailable("recover: filling the message archive", e)),
            }
        }
        tracing::info!(room.id = %log.room, messages = writes, "message archive filled from an older snapshot");
    }
    Ok(())
}

/// The rooms of one pipeline from its replies (a snapshot and a stream per room, in order).
fn parse_rooms(
    rooms: &[(String, Epoch)],
    replies: Vec<Value>,
) -> Result<Vec<RoomLog>, JournalError> {
    let mut logs = Vec::with_capacity(rooms.len());
    let mut replies = replies.into_iter();
    for (room, epoch) in rooms {
        let (Some(snap), Some(log)) = (replies.next(), replies.next()) else {
            return Err(unavailable("recover", "short pipeline reply"));
        };
        if let Some(log) = parse_room(room, snap, log, *epoch)? {
            logs.push(log);
        }
    }
    Ok(logs)
}

/// One room's snapshot and stream, checked for gaps. `None` for a room registered in the set
/// with no log at all (its creation never became durable, or its close was cut short).
pub(super) fn parse_room(
    room: &str,
    snap: Value,
    log: Value,
    epoch: Epoch,
) -> Result<Option<RoomLog>, JournalError> {
    let corrupt = |what: String| JournalError::Corrupt(format!("room {room}: {what}"));
    let room_id = RoomId::parse(room).map_err(|e| corrupt(format!("bad room id: {e}")))?;
    let snapshot: Option<String> =
        redis::from_redis_value(snap).map_err(|e| corrupt(format!("snapshot: {e}")))?;
    let snapshot = snapshot
        .map(|json| serde_json::from_str::<Snapshot>(&json))
        .transpose()
        .map_err(|e| corrupt(format!("undecodable snapshot: {e}")))?;
    let entries = match log {
        Value::Array(entries) => entries,
        Value::Nil => Vec::new(),
        other => {
            return Err(corrupt(format!(
                "log: {} where a stream range belongs",
                shape(&other)
            )))
        }
    };
    let mut next = snapshot.as_ref().map_or(1, |s| s.seq + 1);
    let mut events = Vec::with_capacity(entries.len());
    for entry in &entries {
        let (id, fields) = stream_entry(entry).map_err(|what| corrupt(format!("log: {what}")))?;
        let run = Run::read(id, |name| fields.get(id, name)).map_err(corrupt)?;
        for (seq, json) in run.events() {
            if seq < next {
                continue; // covered by the snapshot, not trimmed yet
            }
            if seq > next {
                return Err(corrupt(format!("gap: seq {next} expected, found {seq}")));
            }
            let event: Event = serde_json::from_slice(json)
                .map_err(|e| corrupt(format!("seq {seq}: undecodable event: {e}")))?;
            if event.seq != seq || event.room != room_id {
                return Err(corrupt(format!(
                    "seq {seq}: entry holds {} seq {}",
                    event.room, event.seq
                )));
            }
            events.push(event);
            next += 1;
        }
    }
    if snapshot.is_none() && events.is_empty() {
        tracing::info!(room.id = %room, "room registered without a log; skipping it");
        return Ok(None);
    }
    Ok(Some(RoomLog {
        room: room_id,
        snapshot,
        events,
        epoch,
    }))
}

/// One entry of an `XRANGE` reply, read where it lies (no map per entry, no copy): its id and
/// its fields. Redis sends the fields as a flat array of names and values (in RESP2 and RESP3
/// alike); a map is read too.
fn stream_entry(entry: &Value) -> Result<(&str, Fields<'_>), String> {
    let Value::Array(parts) = entry else {
        return Err(format!("an entry is {}, not [id, fields]", shape(entry)));
    };
    let [id, fields] = parts.as_slice() else {
        return Err(format!("an entry of {} parts", parts.len()));
    };
    let id = match id {
        Value::BulkString(id) => {
            std::str::from_utf8(id).map_err(|_| "an entry id not UTF-8".to_owned())?
        }
        Value::SimpleString(id) => id.as_str(),
        other => return Err(format!("an entry id is {}", shape(other))),
    };
    let fields = match fields {
        Value::Array(flat) if flat.len() % 2 != 0 => {
            return Err(format!("entry {id}: {} field names and values", flat.len()))
        }
        Value::Array(flat) => Fields::Flat(flat),
        Value::Map(pairs) => Fields::Map(pairs),
        Value::Nil => Fields::Flat(&[]),
        other => return Err(format!("entry {id}: its fields are {}", shape(other))),
    };
    Ok((id, fields))
}

/// An entry's fields, as the reply holds them.
enum Fields<'v> {
    /// Names and values in turn.
    Flat(&'v [Value]),
    Map(&'v [(Value, Value)]),
}

impl<'v> Fields<'v> {
    /// The value of the field `name` of the entry `id`, if it has one.
    fn get(&self, id: &str, name: &str) -> Result<Option<&'v [u8]>, String> {
        let name = name.as_bytes();
        let value = match self {
            Fields::Flat(flat) => flat
                .chunks_exact(2)
                .find(|pair| bytes(&pair[0]) == Some(name))
                .map(|pair| &pair[1]),
            Fields::Map(pairs) => pairs
                .iter()
                .find(|(field, _)| bytes(field) == Some(name))
                .map(|(_, value)| value),
        };
        value
            .map(|value| {
                bytes(value).ok_or_else(|| format!("entry {id}: its field is {}", shape(value)))
            })
            .transpose()
    }
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes.as_slice()),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

/// What kind of reply `value` is, for an error message (not the value: it may be large).
fn shape(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) | Value::SimpleString(_) | Value::VerbatimString { .. } => "a string",
        Value::Array(_) | Value::Set(_) => "an array",
        Value::Map(_) => "a map",
        Value::ServerError(_) => "an error",
        _ => "another reply",
    }
}

#[cfg(test)]
mod tests {
    use roomstate_core::{
        room::{EventKind, Side, UserName},
        time,
    };

    use super::*;

    fn event(room: &str, seq: u64) -> Vec<u8> {
        serde_json::to_vec(&Event {
            room: RoomId::parse(room).unwrap(),
            seq,
            at: time::now(),
            kind: EventKind::Voted {
                user: UserName::parse("alice").unwrap(),
                side: Side::Pro,
            },
        })
        .unwrap()
    }

    fn bulk(bytes: impl Into<Vec<u8>>) -> Value {
        Value::BulkString(bytes.into())
    }

    /// An `XRANGE` entry as RESP2 gives it: `[id, [field, value, ...]]`.
    fn entry(seq: u64, fields: Vec<Value>) -> Value {
        Value::Array(vec![bulk(format!("{seq}-0")), Value::Array(fields)])
    }

    fn log(entries: Vec<Value>) -> Value {
        Value::Array(entries)
    }

    fn read(log: Value) -> Result<Option<RoomLog>, JournalError> {
        parse_room("r_1", Value::Nil, log, Epoch::NONE)
    }

    fn corrupt(log: Value) -> String {
        match read(log) {
            Err(JournalError::Corrupt(why)) => why,
            other => panic!("not refused as corrupt: {other:?}"),
        }
    }

    #[test]
    fn a_stream_is_read_in_order_with_fields_as_an_array_or_a_map() {
        let flat = log(vec![
            entry(1, vec![bulk("e"), bulk(event("r_1", 1))]),
            entry(
                2,
                vec![bulk("x"), bulk("other"), bulk("e"), bulk(event("r_1", 2))],
            ),
        ]);
        let room = read(flat).unwrap().unwrap();
        assert_eq!(
            room.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        let map = log(vec![Value::Array(vec![
            Value::SimpleString("1-0".into()),
            Value::Map(vec![(bulk("e"), bulk(event("r_1", 1)))]),
        ])]);
        assert_eq!(read(map).unwrap().unwrap().events.len(), 1);
        assert!(
            read(log(Vec::new())).unwrap().is_none(),
            "no snapshot, no log"
        );
        assert!(read(Value::Nil).unwrap().is_none());
    }

    #[test]
    fn a_damaged_stream_is_refused_as_corrupt_naming_what() {
        let gap = log(vec![
            entry(1, vec![bulk("e"), bulk(event("r_1", 1))]),
            entry(3, vec![bulk("e"), bulk(event("r_1", 3))]),
        ]);
        assert!(corrupt(gap).contains("gap: seq 2 expected, found 3"));
        let no_field = log(vec![entry(1, vec![bulk("x"), bulk("y")])]);
        assert!(corrupt(no_field).contains("seq 1: no event field"));
        let garbage = log(vec![entry(1, vec![bulk("e"), bulk("{not json")])]);
        assert!(corrupt(garbage).contains("seq 1: undecodable event"));
        let elsewhere = log(vec![entry(1, vec![bulk("e"), bulk(event("r_2", 1))])]);
        assert!(corrupt(elsewhere).contains("entry holds r_2 seq 1"));
        let renumbered = log(vec![entry(1, vec![bulk("e"), bulk(event("r_1", 5))])]);
        assert!(corrupt(renumbered).contains("entry holds r_1 seq 5"));
        let bad_id = log(vec![Value::Array(vec![
            bulk("x-0"),
            Value::Array(Vec::new()),
        ])]);
        assert!(corrupt(bad_id).contains("bad entry id x-0"));
        assert!(corrupt(bulk("a string")).contains("a string where a stream range belongs"));
        assert!(corrupt(log(vec![Value::Int(1)])).contains("an entry is an integer"));
        let odd = log(vec![entry(
            1,
            vec![bulk("e"), bulk(event("r_1", 1)), bulk("x")],
        )]);
        assert!(corrupt(odd).contains("entry 1-0: 3 field names and values"));
        let one_part = log(vec![Value::Array(vec![bulk("1-0")])]);
        assert!(corrupt(one_part).contains("an entry of 1 parts"));
        let int_id = log(vec![Value::Array(vec![Value::Int(1), Value::Nil])]);
        assert!(corrupt(int_id).contains("an entry id is an integer"));
        let int_fields = log(vec![Value::Array(vec![bulk("1-0"), Value::Int(1)])]);
        assert!(corrupt(int_fields).contains("entry 1-0: its fields are an integer"));
        let int_value = log(vec![entry(1, vec![bulk("e"), Value::Int(7)])]);
        assert!(corrupt(int_value).contains("entry 1-0: its field is an integer"));
        let not_utf8 = log(vec![Value::Array(vec![bulk(vec![0xff]), Value::Nil])]);
        assert!(corrupt(not_utf8).contains("an entry id not UTF-8"));
    }

    #[test]
    fn a_pipelines_replies_are_read_room_by_room_in_order() {
        let rooms = [
            ("r_1".to_owned(), Epoch::NONE),
            ("r_2".to_owned(), Epoch::NONE),
        ];
        let stream = |room: &str| log(vec![entry(1, vec![bulk("e"), bulk(event(room, 1))])]);
        let replies = vec![Value::Nil, stream("r_1"), Value::Nil, stream("r_2")];
        let logs = parse_rooms(&rooms, replies).unwrap();
        let read: Vec<_> = logs.iter().map(|log| log.room.as_str()).collect();
        assert_eq!(read, ["r_1", "r_2"]);
        // A reply short of a room's two is refused, not read as an empty room.
        let short = parse_rooms(&rooms, vec![Value::Nil, stream("r_1"), Value::Nil]);
        assert!(
            matches!(&short, Err(JournalError::Unavailable(why)) if why.contains("short pipeline reply")),
            "{short:?}"
        );
        // A room's damage is the whole read's.
        let swapped = parse_rooms(
            &rooms,
            vec![Value::Nil, stream("r_2"), Value::Nil, stream("r_2")],
        );
        assert!(matches!(swapped, Err(JournalError::Corrupt(_))));
    }

    /// A run `first..=last` as one entry (`f`, `b`: one event per line).
    fn run(room: &str, first: u64, last: u64) -> Value {
        let body: Vec<Vec<u8>> = (first..=last).map(|seq| event(room, seq)).collect();
        entry(
            last,
            vec![
                bulk("f"),
                bulk(first.to_string()),
                bulk("b"),
                bulk(body.join(&b'\n')),
                bulk("o"),
                bulk("3"),
            ],
        )
    }

    #[test]
    fn runs_and_single_events_are_read_alike_and_a_snapshot_may_cut_a_run() {
        let stream = log(vec![
            run("r_1", 1, 3),
            entry(4, vec![bulk("e"), bulk(event("r_1", 4))]),
            run("r_1", 5, 6),
        ]);
        let room = read(stream.clone()).unwrap().unwrap();
        assert_eq!(
            room.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
        let snapshot = serde_json::json!({
            "room": "r_1", "seq": 2, "title": "t", "created_at": "2026-11-27T00:00:00Z",
            "participants_peak": 0, "votes": [], "messages": [], "message_count": 0,
        });
        let room = parse_room("r_1", bulk(snapshot.to_string()), stream, Epoch::NONE)
            .unwrap()
            .unwrap();
        assert_eq!(
            room.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [3, 4, 5, 6]
        );
        let gap = log(vec![run("r_1", 1, 2), run("r_1", 4, 5)]);
        assert!(corrupt(gap).contains("gap: seq 3 expected, found 4"));
        let short = log(vec![entry(
            3,
            vec![bulk("f"), bulk("1"), bulk("b"), bulk(event("r_1", 1))],
        )]);
        assert!(corrupt(short).contains("entry 3-0: 1 events for seqs 1 to 3"));
        let swapped = log(vec![entry(
            2,
            vec![
                bulk("f"),
                bulk("1"),
                bulk("b"),
                bulk([event("r_1", 2), event("r_1", 1)].join(&b'\n')),
            ],
        )]);
        assert!(corrupt(swapped).contains("seq 1: entry holds r_1 seq 2"));
    }

    #[test]
    fn events_a_snapshot_covers_are_skipped() {
        let snapshot = serde_json::json!({
            "room": "r_1", "seq": 1, "title": "t", "created_at": "2026-11-27T00:00:00Z",
            "participants_peak": 0, "votes": [], "messages": [], "message_count": 0,
        });
        let snap = bulk(snapshot.to_string());
        let stream = log(vec![
            entry(1, vec![bulk("e"), bulk(event("r_1", 1))]),
            entry(2, vec![bulk("e"), bulk(event("r_1", 2))]),
        ]);
        let room = parse_room("r_1", snap, stream, Epoch::NONE)
            .unwrap()
            .unwrap();
        assert_eq!(room.snapshot.map(|s| s.seq), Some(1));
        assert_eq!(room.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    }
}
