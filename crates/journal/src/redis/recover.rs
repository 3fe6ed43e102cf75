//! Reading open rooms back: the set `roomstate:rooms` of every open room, then per room its
//! snapshot and its stream (pipelined, 256 rooms per round trip), each log checked for gaps. A
//! gap is reported as corruption, never papered over. The writer claims the rooms before it
//! reads them (`writer`), so nobody else writes them meanwhile.

use redis::{aio::MultiplexedConnection, streams::StreamRangeReply, Value};
use roomstate_core::room::{Event, RoomId, Snapshot};

use super::{unavailable, Keys, ROOMS_PER_PIPELINE};
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
    let mut logs = Vec::with_capacity(rooms.len());
    for chunk in rooms.chunks(ROOMS_PER_PIPELINE) {
        let mut pipe = redis::pipe();
        for (room, _) in chunk {
            pipe.cmd("GET").arg(keys.snap(room));
            pipe.cmd("XRANGE").arg(keys.log(room)).arg("-").arg("+");
        }
        let replies: Vec<Value> = pipe
            .query_async(&mut *conn)
            .await
            .map_err(|e| unavailable("recover", e))?;
        let mut replies = replies.into_iter();
        for (room, epoch) in chunk {
            let (Some(snap), Some(log)) = (replies.next(), replies.next()) else {
                return Err(unavailable("recover", "short pipeline reply"));
            };
            if let Some(log) = parse_room(room, snap, log, *epoch)? {
                logs.push(log);
            }
        }
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

/// One room's snapshot and stream, checked for gaps. `None` for a room registered in the set
/// with no log at all (its creation never became durable, or its close was cut short).
pub(super) fn parse_room(
    room: &str,
    snap: Value,
    log: Value,
    epoch: Epoch,
) -> Result<Option<RoomLog>, JournalError> {
    let corrupt = |what: String| JournalError::Corrupt(format!("room {room}: {what}"));
    let id = RoomId::parse(room).map_err(|e| corrupt(format!("bad room id: {e}")))?;
    let snapshot: Option<String> =
        redis::from_redis_value(snap).map_err(|e| corrupt(format!("snapshot: {e}")))?;
    let snapshot = snapshot
        .map(|json| serde_json::from_str::<Snapshot>(&json))
        .transpose()
        .map_err(|e| corrupt(format!("undecodable snapshot: {e}")))?;
    let entries: StreamRangeReply =
        redis::from_redis_value(log).map_err(|e| corrupt(format!("log: {e}")))?;
    let mut next = snapshot.as_ref().map_or(1, |s| s.seq + 1);
    let mut events = Vec::with_capacity(entries.ids.len());
    for entry in entries.ids {
        let seq: u64 = entry
            .id
            .split('-')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt(format!("bad entry id {}", entry.id)))?;
        if seq < next {
            continue; // covered by the snapshot, not trimmed yet
        }
        if seq > next {
            return Err(corrupt(format!("gap: seq {next} expected, found {seq}")));
        }
        let json: String = entry
            .map
            .get("e")
            .cloned()
            .map(redis::from_redis_value)
            .transpose()
            .map_err(|e| corrupt(format!("seq {seq}: {e}")))?
            .ok_or_else(|| corrupt(format!("seq {seq}: no event field")))?;
        let event: Event = serde_json::from_str(&json)
            .map_err(|e| corrupt(format!("seq {seq}: undecodable event: {e}")))?;
        if event.seq != seq || event.room != id {
            return Err(corrupt(format!(
                "seq {seq}: entry holds {} seq {}",
                event.room, event.seq
            )));
        }
        events.push(event);
        next += 1;
    }
    if snapshot.is_none() && events.is_empty() {
        tracing::info!(room.id = %room, "room registered without a log; skipping it");
        return Ok(None);
    }
    Ok(Some(RoomLog {
        room: id,
        snapshot,
        events,
        epoch,
    }))
}
