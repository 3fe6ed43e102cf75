//! The store's queries: plain blocking functions over `&mut DbConnection`.
//!
//! `Store` runs them on the blocking thread pool; nothing here may be called on the actix event
//! loop, and nothing here knows about pools or async.

use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
};
use roomstate_core::room::{ChatMessage, RoomId, RoomStatus, RoomView, Side, UserName};

use super::{
    connection::{on_backend, DbConnection},
    models::{stored_seq, stored_time, MessageRow, NewMessage, NewRoom, NewVote, RoomRow, VoteRow},
    schema::{room_messages, room_votes, rooms},
    FinalRecord, StoreError,
};

/// Rows per multi-row INSERT of messages: 5 placeholders each, far below SQLite's 32766 and
/// MySQL's 65535 placeholders, and at most ~4 MB of text (500 x 2000 four-byte characters), well
/// inside MariaDB's default 16 MB `max_allowed_packet`.
const MESSAGE_CHUNK: usize = 500;
/// Rows per multi-row INSERT of votes (3 placeholders each, short values).
const VOTE_CHUNK: usize = 1000;

/// Turns a failed query into the error callers see.
pub(crate) fn query_failed(e: DieselError) -> StoreError {
    match e {
        DieselError::DeserializationError(e) => {
            StoreError::Corrupt(format!("a stored value does not decode: {e}"))
        }
        e => StoreError::Unavailable(format!("query failed: {e}")),
    }
}

/// Writes a closed room's final record in one transaction, unless the room is already stored
/// at the same seq or a later one.
///
/// Returns the view as stored: status closed, times truncated to milliseconds. Idempotency comes
/// from the primary key: the room row is inserted first, so a second close of the same room fails
/// on the key, is rolled back whole, and returns the row already there — unless that row is of
/// an earlier seq, which the new record then replaces. Inserting first (rather
/// than SELECT, then INSERT) also makes the transaction's first statement a write, so SQLite takes
/// its write lock up front and waits on `busy_timeout`, instead of failing with SQLITE_BUSY when a
/// concurrent close commits between our read and our write.
pub fn write_final(conn: &mut DbConnection, record: &FinalRecord) -> Result<RoomView, StoreError> {
    let view = stored_view(&record.room);
    let room_id = view.id.as_str();
    let room_row = NewRoom::from_view(&view)?;
    let votes: Vec<NewVote<'_>> = record
        .votes
        .iter()
        .map(|(user, side)| NewVote {
            room_id,
            user_name: user.as_str(),
            side: side.as_str(),
        })
        .collect();
    let messages = record
        .messages
        .iter()
        .map(|m| {
            Ok(NewMessage {
                room_id,
                seq: stored_seq(m.seq)?,
                user_name: m.user.as_str(),
                text: &m.text,
                sent_at: stored_time(&m.sent_at),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;

    let insert_all = |conn: &mut DbConnection| {
        diesel::insert_into(rooms::table)
            .values(&room_row)
            .execute(conn)?;
        // Multi-row INSERTs go to the concrete connection: diesel 2.3's `MultiConnection` has
        // no batch insert for SQLite (SQLite's lives in a SQLite-only wrapper type).
        for chunk in votes.chunks(VOTE_CHUNK) {
            on_backend!(&mut *conn, |c| diesel::insert_into(room_votes::table)
                .values(chunk)
                .execute(c))?;
        }
        for chunk in messages.chunks(MESSAGE_CHUNK) {
            on_backend!(&mut *conn, |c| diesel::insert_into(room_messages::table)
                .values(chunk)
                .execute(c))?;
        }
        Ok::<_, DieselError>(())
    };
    let written = conn.transaction(insert_all);
    match written {
        Ok(()) => Ok(view),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)) => {
            match room(conn, &record.room.id)? {
                // An earlier close's record, whose answer was lost: that close was reported
                // failed, the room opened again and took more mutations, all of which this
                // record holds. It replaces the earlier one, so no acknowledged mutation is
                // missing from the room's record.
                Some(stored) if stored.counters.seq < view.counters.seq => {
                    let seq = stored_seq(view.counters.seq)?;
                    let replaced = conn
                        .transaction(|conn| {
                            // Checked again in the transaction: of two writers past the stored
                            // record, the one of the later seq stays.
                            if forget_below(conn, room_id, seq)? == 0 {
                                return Ok(false);
                            }
                            insert_all(conn).map(|()| true)
                        })
                        .map_err(query_failed)?;
                    match replaced {
                        true => Ok(view),
                        false => room(conn, &record.room.id)?.ok_or_else(|| {
                            StoreError::Unavailable(format!(
                                "final record of room {} went while it was replaced",
                                record.room.id
                            ))
                        }),
                    }
                }
                // The same close again (a retry), or a stale writer's: the stored record stands.
                Some(stored) => Ok(stored),
                // The room row went in; a vote or message key collided (the record names a user
                // or a seq twice). Nothing was written.
                None => Err(StoreError::Unavailable(format!(
                    "final record of room {} repeats a key: {}",
                    record.room.id,
                    info.message()
                ))),
            }
        }
        Err(e) => Err(query_failed(e)),
    }
}

/// Deletes room `room_id`'s record if its seq is below `seq`; the rows deleted (0 or 1 room).
fn forget_below(conn: &mut DbConnection, room_id: &str, seq: i64) -> Result<usize, DieselError> {
    let gone = diesel::delete(
        rooms::table
            .filter(rooms::id.eq(room_id))
            .filter(rooms::seq.lt(seq)),
    )
    .execute(conn)?;
    if gone > 0 {
        // Also where foreign keys do not cascade.
        diesel::delete(room_votes::table.filter(room_votes::room_id.eq(room_id))).execute(conn)?;
        diesel::delete(room_messages::table.filter(room_messages::room_id.eq(room_id)))
            .execute(conn)?;
    }
    Ok(gone)
}

/// Deletes room `id`'s record if its seq is below `seq`: a close recorded it, but the room's
/// log went on past it (the close's answer was lost and the room opened again). Whether it did.
pub fn forget_stale(conn: &mut DbConnection, id: &RoomId, seq: u64) -> Result<bool, StoreError> {
    let seq = stored_seq(seq)?;
    conn.transaction(|conn| forget_below(conn, id.as_str(), seq))
        .map(|gone| gone > 0)
        .map_err(query_failed)
}

/// The view as the store keeps it.
fn stored_view(view: &RoomView) -> RoomView {
    RoomView {
        status: RoomStatus::Closed,
        created_at: stored_time(&view.created_at).and_utc(),
        closed_at: view.closed_at.map(|t| stored_time(&t).and_utc()),
        ..view.clone()
    }
}

/// A stored room's final view.
pub fn room(conn: &mut DbConnection, id: &RoomId) -> Result<Option<RoomView>, StoreError> {
    rooms::table
        .find(id.as_str())
        .select(RoomRow::as_select())
        .first(conn)
        .optional()
        .map_err(query_failed)?
        .map(RoomRow::into_view)
        .transpose()
}

/// Room ids one `stored_among` query asks about.
pub const IDS_PER_QUERY: usize = 1000;

/// The ids among `ids` that have a stored room row.
pub fn stored_among(conn: &mut DbConnection, ids: &[RoomId]) -> Result<Vec<RoomId>, StoreError> {
    let mut stored = Vec::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let names: Vec<&str> = chunk.iter().map(RoomId::as_str).collect();
        let found: Vec<String> = rooms::table
            .filter(rooms::id.eq_any(names))
            .select(rooms::id)
            .load(conn)
            .map_err(query_failed)?;
        for id in found {
            stored.push(
                RoomId::parse(&id)
                    .map_err(|e| StoreError::Corrupt(format!("room id {id:?}: {e}")))?,
            );
        }
    }
    Ok(stored)
}

/// Up to `limit` messages of a stored room with seq > `after`, oldest first.
pub fn messages(
    conn: &mut DbConnection,
    id: &RoomId,
    after: u64,
    limit: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    // No stored seq exceeds i64::MAX, so there is nothing after such a seq.
    let Ok(after) = i64::try_from(after) else {
        return Ok(Vec::new());
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    room_messages::table
        .filter(room_messages::room_id.eq(id.as_str()))
        .filter(room_messages::seq.gt(after))
        .order(room_messages::seq.asc())
        .limit(limit)
        .select(MessageRow::as_select())
        .load(conn)
        .map_err(query_failed)?
        .into_iter()
        .map(MessageRow::into_message)
        .collect()
}

/// A stored room's final votes, sorted by user (byte order, like `UserName`'s `Ord`).
pub fn votes(conn: &mut DbConnection, id: &RoomId) -> Result<Vec<(UserName, Side)>, StoreError> {
    room_votes::table
        .filter(room_votes::room_id.eq(id.as_str()))
        .order(room_votes::user_name.asc())
        .select(VoteRow::as_select())
        .load(conn)
        .map_err(query_failed)?
        .into_iter()
        .map(VoteRow::into_vote)
        .collect()
}
