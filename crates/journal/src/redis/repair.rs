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
//! so a re-append never lands inside one). Only when that succeeded does the batch go out.
//!
//! The re-append is fenced (`repair.lua`, one script per room): an event written under an epoch
//! below the one the room's owner hash now holds does not go back. A room another
//! node claimed meanwhile (this one was cut off past its lease) was replayed there without these
//! events, and its owner numbers its own from where that log stopped; they are reported as lost
//! (error log, `journal_unrepairable_events_total`) and the room leaves the record. An owner hash
//! at the events' epoch or below it (the failover lost the claim as well) takes them back. Each room repaired is logged at warn level and counted
//! (`journal_repaired_events_total`); a missing range older than the record can only be
//! reported (error log, `journal_unrepairable_events_total`): the log has a gap from then on.

use std::{collections::VecDeque, ops::RangeInclusive};

use redis::{aio::MultiplexedConnection, RedisResult, Value};
use roomstate_core::{redact, room::RoomId};

use super::{
    entry,
    recent::{Acked, Recent},
    unavailable, Keys, MAX_BATCH_EVENTS, ROOMS_PER_PIPELINE,
};
use crate::{JournalError, JournalMetrics};

/// The script that puts one room's events back under its lease.
const REPAIR_SCRIPT: &str = include_str!("repair.lua");

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

/// Where a repair runs and how it makes its writes durable.
pub(super) struct Target<'a> {
    pub(super) conn: &'a mut MultiplexedConnection,
    /// The primary's address, for logs and metrics.
    pub(super) primary: &'a str,
    pub(super) keys: Keys<'a>,
    pub(super) min_acks: u32,
    pub(super) wait_ms: u64,
}

/// Re-appends to `target` every event of `recent` it lacks, then waits for the replicas. A room
/// claimed under a newer lease since its events were recorded leaves `recent`.
/// `Err`: the primary may hold only part of the repair; nothing new may be written on this
/// connection, and the next connection repairs again.
pub(super) async fn run(
    target: Target<'_>,
    recent: &mut Recent,
    metrics: &JournalMetrics,
) -> Result<(), JournalError> {
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
        return Ok(());
    }

    // One EVAL per room and at most MAX_BATCH_EVENTS events (the script checks the lease each
    // time), as many as make MAX_BATCH_EVENTS events per pipeline.
    let pieces: Vec<(&RoomId, &[&Acked])> = missing
        .iter()
        .flat_map(|(room, events)| {
            events
                .chunks(MAX_BATCH_EVENTS)
                .map(move |piece| (*room, piece))
        })
        .collect();
    let mut outcomes: Vec<(&RoomId, &[&Acked], Outcome)> = Vec::with_capacity(pieces.len());
    let mut start = 0;
    while start < pieces.len() {
        let mut end = start;
        let mut events = 0;
        while end < pieces.len()
            && (end == start || events + pieces[end].1.len() <= MAX_BATCH_EVENTS)
        {
            events += pieces[end].1.len();
            end += 1;
        }
        let mut pipe = redis::pipe();
        for (room, piece) in &pieces[start..end] {
            pipe.add_command(put_back(&keys, room, piece));
        }
        let replies: Vec<RedisResult<Value>> = pipe
            .query_async(&mut *conn)
            .await
            .map_err(|e| unavailable("repair: re-appending", e))?;
        if replies.len() != end - start {
            return Err(unavailable("repair", "short pipeline reply"));
        }
        for ((room, piece), reply) in pieces[start..end].iter().zip(replies) {
            let what = || format!("repair: room {room}");
            let value = reply.map_err(|e| unavailable(&what(), e))?;
            let outcome =
                redis::from_redis_value::<Outcome>(value).map_err(|e| unavailable(&what(), e))?;
            outcomes.push((room, piece, outcome));
        }
        start = end;
    }

    // One outcome per room (its pieces are consecutive).
    let mut rooms: Vec<(&RoomId, u64, u64, Outcome)> = Vec::new();
    for (room, piece, outcome) in outcomes {
        let (Some(first), Some(last)) = (piece.first(), piece.last()) else {
            continue;
        };
        match rooms.last_mut() {
            Some((same, _, upto, sum)) if *same == room => {
                *upto = last.seq;
                sum.add(outcome);
            }
            _ => rooms.push((room, first.seq, last.seq, outcome)),
        }
    }

    // A room with its first event back is in the index again (the index is global, so outside
    // the script); one WAIT after it covers every write of the repair.
    let mut pipe = redis::pipe();
    for (room, _, _, outcome) in &rooms {
        if outcome.lowest_kept == 1 {
            pipe.cmd("SADD")
                .arg(keys.rooms())
                .arg(room.as_str())
                .ignore();
        }
    }
    if min_acks > 0 {
        pipe.cmd("WAIT").arg(min_acks).arg(wait_ms);
    }
    // Nothing to index and no replicas to wait for: Redis would refuse an empty pipeline.
    let replies: Vec<i64> = if pipe.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(&mut *conn)
            .await
            .map_err(|e| unavailable("repair: indexing and waiting for the replicas", e))?
    };

    // Counted once they are on the primary, before the replicas are checked: if WAIT falls
    // short, the next connection's repair finds them there and does not count them again. The
    // refused ones are counted once too: their rooms leave the record here.
    let (mut repaired_rooms, mut repaired, mut refused) = (0, 0, 0);
    let mut stale = Vec::new();
    for (room, first, last, outcome) in &rooms {
        if outcome.refused > 0 {
            tracing::error!(
                room.id = %room, seq.first = first, seq.last = last,
                events = outcome.refused, owner.epoch = outcome.epoch, owner.node = %outcome.node,
                redis.primary = %shown,
                "acknowledged events are missing on the primary, and the room has been claimed \
                 under a newer lease since they were written; they cannot go back"
            );
            refused += outcome.refused;
            stale.push((*room).clone());
        }
        if outcome.kept > 0 {
            tracing::warn!(
                room.id = %room, seq.first = first, seq.last = last,
                events = outcome.kept, redis.primary = %shown,
                "re-appended acknowledged events the primary lacked"
            );
            repaired_rooms += 1;
            repaired += outcome.kept;
        }
    }
    for room in &stale {
        recent.forget(room);
    }
    metrics
        .repaired_events
        .with_label_values(&[shown.as_str()])
        .inc_by(repaired);
    metrics
        .unrepairable_events
        .with_label_values(&[shown.as_str()])
        .inc_by(refused);
    tracing::warn!(
        rooms = repaired_rooms, events = repaired, refused, redis.primary = %shown,
        "repaired the primary: it lacked acknowledged events (a failover lost them)"
    );
    if min_acks > 0 {
        let acked = replies.last().copied().unwrap_or(0);
        if acked < i64::from(min_acks) {
            return Err(JournalError::Unavailable(format!(
                "repair: only {acked} of {min_acks} replicas acknowledged the re-appended \
                 events within {wait_ms} ms"
            )));
        }
    }
    Ok(())
}

/// What `repair.lua` did with one room's events.
#[derive(Debug)]
struct Outcome {
    /// Written now, or found there already.
    kept: u64,
    /// Written under an epoch below the one the room's owner hash holds.
    refused: u64,
    epoch: u64,
    node: String,
    /// The lowest seq kept; 0 for none.
    lowest_kept: u64,
}

impl Outcome {
    /// Adds a later piece of the same room.
    fn add(&mut self, later: Outcome) {
        self.kept += later.kept;
        self.refused += later.refused;
        self.epoch = later.epoch;
        self.node = later.node;
        if self.lowest_kept == 0 {
            self.lowest_kept = later.lowest_kept;
        }
    }
}

impl redis::FromRedisValue for Outcome {
    fn from_redis_value(value: Value) -> Result<Self, redis::ParsingError> {
        let (kept, refused, epoch, node, lowest_kept) = redis::from_redis_value(value)?;
        Ok(Self {
            kept,
            refused,
            epoch,
            node,
            lowest_kept,
        })
    }
}

/// The script's call for `events` of `room` (see `repair.lua`).
fn put_back(keys: &Keys<'_>, room: &RoomId, events: &[&Acked]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(REPAIR_SCRIPT)
        .arg(3)
        .arg(keys.log(room.as_str()))
        .arg(keys.owner(room.as_str()))
        .arg(keys.msgs(room.as_str()));
    for event in events {
        let message = serde_json::from_str(&event.json)
            .ok()
            .and_then(|e| crate::message_of(&e))
            .and_then(|m| serde_json::to_string(&m).ok())
            .unwrap_or_default();
        cmd.arg(event.seq)
            .arg(event.epoch.0)
            .arg(event.json.as_str())
            .arg(message);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(seqs: &[u64]) -> VecDeque<Acked> {
        seqs.iter()
            .map(|&seq| Acked {
                seq,
                epoch: crate::Epoch::NONE,
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
