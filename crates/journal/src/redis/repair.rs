//! Putting back, on a primary the writer has just connected to, the recently acknowledged events
//! it lacks. A failover can take acknowledged events with it (a replica counted by `WAIT`, then
//! full-resynced from a primary that never had them); the rooms will not re-send them, since
//! they were acknowledged, and the next event of such a room would leave a gap in its log.
//!
//! So before writing anything new on a new connection, the writer reads the stream top of every
//! room in its record (`recent`) from that primary (`XINFO STREAM`'s `last-generated-id`, which
//! survives trims), re-appends each recorded event above it as an entry of its own, `<seq>-0`
//! with the same payload (plus the room's `SADD` for a seq 1), then `WAIT`s as for a batch (a
//! run the events were first written in is one entry: everything at or below the top is stored,
//! so a re-append never lands inside one). Only when
//! that succeeded does the batch go out. Each room repaired is logged at warn level and counted
//! (`journal_repaired_events_total`); a missing range older than the record can only be
//! reported (error log, `journal_unrepairable_events_total`): the log has a gap from then on.

use std::{collections::VecDeque, ops::RangeInclusive};

use redis::{aio::MultiplexedConnection, RedisResult, Value};
use roomstate_core::{redact, room::RoomId};

use super::{
    already_stored, entry,
    recent::{Acked, Recent},
    unavailable, Keys, MAX_BATCH_EVENTS, ROOMS_PER_PIPELINE,
};
use crate::{JournalError, JournalMetrics};

/// One write of a repair: an event back in the log, its message back in the archive, or a new
/// room back in the index.
enum Write<'a> {
    Event(&'a str),
    Message(String),
    Index,
}

/// What one room needs on a primary whose stream top for it is known.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RoomPlan<'a> {
    /// Recorded events above the top, in seq order: to re-append.
    pub(super) reappend: Vec<&'a Acked>,
    /// Seqs above the top that the record does not hold: lost.
    pub(super) lost: Vec<RangeInclusive<u64>>,
}

/// Which of a room's `recorded` events a primary whose stream top is `top` (0: no stream)
/// lacks, and which missing seqs nothing can restore.
pub(super) fn plan(recorded: &VecDeque<Acked>, top: u64) -> RoomPlan<'_> {
    let mut reappend = Vec::new();
    let mut lost = Vec::new();
    let mut expected = top + 1;
    for event in recorded.iter().filter(|e| e.seq > top) {
        if event.seq > expected {
            lost.push(expected..=event.seq - 1);
        }
        reappend.push(event);
        expected = event.seq + 1;
    }
    RoomPlan { reappend, lost }
}

/// The seq of a stream's last id from an `XINFO STREAM` reply; 0 for a stream that does not
/// exist. Entry ids are `<seq>-0`, a run's the seq of its last event.
pub(super) fn stream_top(reply: RedisResult<Value>) -> Result<u64, String> {
    let info = match reply {
        Ok(info) => info,
        Err(e) if e.to_string().contains("no such key") => return Ok(0),
        Err(e) => return Err(e.to_string()),
    };
    let pairs: Vec<(&Value, &Value)> = match &info {
        Value::Array(flat) => flat
            .chunks(2)
            .filter_map(|pair| match pair {
                [name, value] => Some((name, value)),
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs.iter().map(|(name, value)| (name, value)).collect(),
        other => return Err(format!("unexpected XINFO STREAM reply {other:?}")),
    };
    let text = |v: &Value| redis::from_redis_value_ref::<String>(v).ok();
    let id = pairs
        .into_iter()
        .find(|(name, _)| text(name).as_deref() == Some("last-generated-id"))
        .and_then(|(_, value)| text(value))
        .ok_or_else(|| format!("no last-generated-id in XINFO STREAM reply {info:?}"))?;
    entry::seq_of(&id).ok_or_else(|| format!("last-generated-id {id} is not <seq>-0"))
}

/// What a repair did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Repaired {
    pub(super) rooms: usize,
    pub(super) events: u64,
}

/// Where a repair runs and how it makes its writes durable.
pub(super) struct Target<'a> {
    pub(super) conn: &'a mut MultiplexedConnection,
    /// The primary's address, for logs and metrics.
    pub(super) primary: &'a str,
    pub(super) keys: Keys<'a>,
    pub(super) min_acks: u32,
    pub(super) wait_ms: u64,
}

/// Re-appends to `target` every event of `recent` it lacks, then waits for the replicas.
/// `Err`: the primary may hold only part of the repair; nothing new may be written on this
/// connection, and the next connection repairs again.
pub(super) async fn run(
    target: Target<'_>,
    recent: &Recent,
    metrics: &JournalMetrics,
) -> Result<Repaired, JournalError> {
    let Target {
        conn,
        primary,
        keys,
        min_acks,
        wait_ms,
    } = target;
    let shown = redact::url(primary);
    let rooms: Vec<(&RoomId, &VecDeque<Acked>)> = recent.rooms().collect();
    let mut missing: Vec<(&RoomId, Vec<&Acked>)> = Vec::new();
    for chunk in rooms.chunks(ROOMS_PER_PIPELINE) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (room, _) in chunk {
            pipe.cmd("XINFO").arg("STREAM").arg(keys.log(room.as_str()));
        }
        let replies: Vec<RedisResult<Value>> = pipe
            .query_async(&mut *conn)
            .await
            .map_err(|e| unavailable("repair: reading stream tops", e))?;
        if replies.len() != chunk.len() {
            return Err(unavailable("repair", "short pipeline reply"));
        }
        for ((room, recorded), reply) in chunk.iter().zip(replies) {
            let top = stream_top(reply)
                .map_err(|e| unavailable(&format!("repair: stream top of room {room}"), e))?;
            let plan = plan(recorded, top);
            for range in &plan.lost {
                tracing::error!(
                    room.id = %room, seq.first = range.start(), seq.last = range.end(),
                    redis.primary = %shown,
                    "acknowledged events are missing on the primary and are older than the \
                     journal's record of recent acknowledgements; the room's log has a gap"
                );
                metrics
                    .unrepairable_events
                    .with_label_values(&[shown.as_str()])
                    .inc_by(range.end() - range.start() + 1);
            }
            if !plan.reappend.is_empty() {
                missing.push((room, plan.reappend));
            }
        }
    }
    if missing.is_empty() {
        return Ok(Repaired::default());
    }

    // One entry per event (`<seq>-0`), the same payloads as the first time, and a posted message
    // back in the room's archive
    // too; batches of at most MAX_BATCH_EVENTS, and one WAIT after the last: it covers every
    // earlier write on the connection.
    let mut commands: Vec<(&RoomId, u64, Write)> = Vec::new();
    for (room, events) in &missing {
        for event in events {
            commands.push((room, event.seq, Write::Event(event.json.as_str())));
            let message = serde_json::from_str(&event.json)
                .ok()
                .and_then(|e| crate::message_of(&e))
                .and_then(|m| serde_json::to_string(&m).ok());
            if let Some(message) = message {
                commands.push((room, event.seq, Write::Message(message)));
            }
            if event.seq == 1 {
                commands.push((room, 1, Write::Index));
            }
        }
    }
    let batches: Vec<_> = commands.chunks(MAX_BATCH_EVENTS).collect();
    let mut wait_reply = None;
    for (i, batch) in batches.iter().enumerate() {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (room, seq, write) in batch.iter() {
            match write {
                Write::Event(json) => {
                    pipe.cmd("XADD")
                        .arg(keys.log(room.as_str()))
                        .arg(format!("{seq}-0"))
                        .arg("e")
                        .arg(*json);
                }
                Write::Message(json) => {
                    pipe.cmd("XADD")
                        .arg(keys.msgs(room.as_str()))
                        .arg(format!("{seq}-0"))
                        .arg("m")
                        .arg(json);
                }
                Write::Index => {
                    pipe.cmd("SADD").arg(keys.rooms()).arg(room.as_str());
                }
            }
        }
        let wait = i + 1 == batches.len() && min_acks > 0;
        if wait {
            pipe.cmd("WAIT").arg(min_acks).arg(wait_ms);
        }
        let mut replies: Vec<RedisResult<Value>> = pipe
            .query_async(&mut *conn)
            .await
            .map_err(|e| unavailable("repair: re-appending", e))?;
        if wait {
            wait_reply = replies.pop();
        }
        for ((room, seq, write), reply) in batch.iter().zip(replies) {
            match reply {
                Ok(_) => {}
                Err(e) if !matches!(write, Write::Index) && already_stored(&e) => {}
                Err(e) => return Err(unavailable(&format!("repair: room {room} seq {seq}"), e)),
            }
        }
    }

    // Counted once they are on the primary, before the replicas are checked: if WAIT falls
    // short, the next connection's repair finds them there and does not count them again.
    let mut repaired = Repaired::default();
    for (room, events) in &missing {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            continue;
        };
        tracing::warn!(
            room.id = %room, seq.first = first.seq, seq.last = last.seq, events = events.len(),
            redis.primary = %shown,
            "re-appended acknowledged events the primary lacked"
        );
        repaired.rooms += 1;
        repaired.events += events.len() as u64;
    }
    metrics
        .repaired_events
        .with_label_values(&[shown.as_str()])
        .inc_by(repaired.events);
    tracing::warn!(
        rooms = repaired.rooms, events = repaired.events, redis.primary = %shown,
        "repaired the primary: it lacked acknowledged events (a failover lost them)"
    );
    if min_acks > 0 {
        let acked = match wait_reply {
            Some(Ok(reply)) => redis::from_redis_value::<i64>(reply)
                .map_err(|e| unavailable("repair: WAIT reply", e))?,
            Some(Err(e)) => return Err(unavailable("repair: WAIT", e)),
            None => 0,
        };
        if acked < i64::from(min_acks) {
            return Err(JournalError::Unavailable(format!(
                "repair: only {acked} of {min_acks} replicas acknowledged the re-appended \
                 events within {wait_ms} ms"
            )));
        }
    }
    Ok(repaired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(seqs: &[u64]) -> VecDeque<Acked> {
        seqs.iter()
            .map(|&seq| Acked {
                seq,
                json: format!("e{seq}"),
            })
            .collect()
    }

    fn seqs(plan: &RoomPlan<'_>) -> Vec<u64> {
        plan.reappend.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn a_primary_at_or_above_the_record_lacks_nothing() {
        let record = recorded(&[98, 99, 100]);
        for top in [100, 101, 500] {
            let plan = plan(&record, top);
            assert_eq!(
                plan,
                RoomPlan {
                    reappend: vec![],
                    lost: vec![]
                },
                "top {top}"
            );
        }
    }

    #[test]
    fn the_events_above_the_top_are_re_appended_in_order() {
        let record = recorded(&[98, 99, 100, 101]);
        let plan = plan(&record, 99);
        assert_eq!(seqs(&plan), [100, 101]);
        assert!(plan.lost.is_empty());
        assert_eq!(plan.reappend[0].json, "e100", "the same payload");
        // The top just below the record: all of it, nothing lost.
        let plan = super::plan(&record, 97);
        assert_eq!((seqs(&plan), plan.lost), (vec![98, 99, 100, 101], vec![]));
    }

    #[test]
    fn a_room_missing_entirely_gets_its_whole_record_when_it_starts_at_seq_1() {
        let record = recorded(&[1, 2, 3]);
        let plan = plan(&record, 0);
        assert_eq!((seqs(&plan), plan.lost), (vec![1, 2, 3], vec![]));
    }

    #[test]
    fn what_is_missing_below_the_record_is_lost() {
        // The primary stops at 97; the record starts at 120 (98..=119 were evicted).
        let record = recorded(&[120, 121]);
        let plan = plan(&record, 97);
        assert_eq!(
            seqs(&plan),
            [120, 121],
            "what the record holds still goes back"
        );
        assert_eq!(plan.lost, vec![98..=119]);
        let plan = super::plan(&record, 0);
        assert_eq!(plan.lost, vec![1..=119]);
    }

    #[test]
    fn a_hole_inside_the_record_is_reported_too() {
        let record = recorded(&[10, 11, 14]);
        let plan = plan(&record, 9);
        assert_eq!((seqs(&plan), plan.lost), (vec![10, 11, 14], vec![12..=13]));
    }

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn the_top_is_the_last_generated_id_even_of_a_trimmed_stream() {
        let resp2 = Value::Array(vec![
            bulk("length"),
            Value::Int(0),
            bulk("last-generated-id"),
            bulk("307-0"),
            bulk("first-entry"),
            Value::Nil,
        ]);
        assert_eq!(stream_top(Ok(resp2)), Ok(307));
        let resp3 = Value::Map(vec![(bulk("last-generated-id"), bulk("12-0"))]);
        assert_eq!(stream_top(Ok(resp3)), Ok(12));
    }

    #[test]
    fn a_missing_stream_has_top_0_and_other_errors_are_errors() {
        let missing = redis::RedisError::from((redis::ErrorKind::Client, "ERR no such key"));
        assert_eq!(stream_top(Err(missing)), Ok(0));
        let other = redis::RedisError::from((redis::ErrorKind::Io, "connection reset"));
        assert!(stream_top(Err(other)).is_err());
        assert!(stream_top(Ok(Value::Array(vec![bulk("length"), Value::Int(1)]))).is_err());
        let odd = Value::Array(vec![bulk("last-generated-id"), bulk("x-0")]);
        assert!(stream_top(Ok(odd)).is_err());
    }
}
