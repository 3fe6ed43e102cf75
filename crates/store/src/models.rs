//! Row structs of the store's tables and their conversion to and from the room types.
//!
//! Writing never fails on a valid record except for a seq beyond `i64::MAX` (BIGINT); reading
//! re-validates every id, user name and side, and reports a row that does not decode as
//! `StoreError::Corrupt` instead of inventing a value.

use chrono::{NaiveDateTime, SubsecRound};
use diesel::prelude::*;

use roomstate_core::{
    room::{ChatMessage, Counters, RoomId, RoomStatus, RoomView, Side, UserName},
    time::Timestamp,
};

use super::{
    schema::{room_messages, room_votes, rooms},
    StoreError,
};

/// A timestamp as stored: UTC, whole milliseconds (what DATETIME(3) keeps).
pub(crate) fn stored_time(t: &Timestamp) -> NaiveDateTime {
    t.trunc_subsecs(3).naive_utc()
}

pub(crate) fn stored_seq(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq)
        .map_err(|_| StoreError::Corrupt(format!("seq {seq} does not fit a BIGINT column")))
}

fn corrupt(what: &str, value: impl std::fmt::Debug, why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what} {value:?}: {why}"))
}

fn counter(what: &str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|e| corrupt(what, value, e))
}

/// A row of `rooms`.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = rooms)]
pub(crate) struct RoomRow {
    pub id: String,
    pub title: String,
    pub created_at: NaiveDateTime,
    pub closed_at: Option<NaiveDateTime>,
    pub participants: i64,
    pub participants_peak: i64,
    pub pro: i64,
    pub con: i64,
    pub messages: i64,
    pub seq: i64,
}

impl RoomRow {
    /// The stored view. Only closed rooms are stored, so the status is not a column.
    pub(crate) fn into_view(self) -> Result<RoomView, StoreError> {
        Ok(RoomView {
            id: RoomId::parse(&self.id).map_err(|e| corrupt("room id", &self.id, e))?,
            title: self.title,
            status: RoomStatus::Closed,
            counters: Counters {
                participants: counter("participants", self.participants)?,
                participants_peak: counter("participants_peak", self.participants_peak)?,
                pro: counter("pro", self.pro)?,
                con: counter("con", self.con)?,
                messages: counter("messages", self.messages)?,
                seq: u64::try_from(self.seq).map_err(|e| corrupt("room seq", self.seq, e))?,
            },
            created_at: self.created_at.and_utc(),
            closed_at: self.closed_at.map(|t| t.and_utc()),
        })
    }
}

/// A row to insert into `rooms`.
#[derive(Debug, Insertable)]
#[diesel(table_name = rooms)]
pub(crate) struct NewRoom<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub created_at: NaiveDateTime,
    pub closed_at: Option<NaiveDateTime>,
    pub participants: i64,
    pub participants_peak: i64,
    pub pro: i64,
    pub con: i64,
    pub messages: i64,
    pub seq: i64,
}

impl<'a> NewRoom<'a> {
    pub(crate) fn from_view(view: &'a RoomView) -> Result<Self, StoreError> {
        let c = &view.counters;
        Ok(NewRoom {
            id: view.id.as_str(),
            title: &view.title,
            created_at: stored_time(&view.created_at),
            closed_at: view.closed_at.as_ref().map(stored_time),
            participants: c.participants.into(),
            participants_peak: c.participants_peak.into(),
            pro: c.pro.into(),
            con: c.con.into(),
            messages: c.messages.into(),
            seq: stored_seq(c.seq)?,
        })
    }
}

/// A row of `room_votes`, read back.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = room_votes)]
pub(crate) struct VoteRow {
    pub user_name: String,
    pub side: String,
}

impl VoteRow {
    pub(crate) fn into_vote(self) -> Result<(UserName, Side), StoreError> {
        let user =
            UserName::parse(&self.user_name).map_err(|e| corrupt("user", &self.user_name, e))?;
        let side = Side::parse(&self.side)
            .ok_or_else(|| corrupt("side", &self.side, "neither pro nor con"))?;
        Ok((user, side))
    }
}

/// A row to insert into `room_votes`.
#[derive(Debug, Insertable)]
#[diesel(table_name = room_votes)]
pub(crate) struct NewVote<'a> {
    pub room_id: &'a str,
    pub user_name: &'a str,
    pub side: &'static str,
}

/// A row of `room_messages`, read back.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = room_messages)]
pub(crate) struct MessageRow {
    pub seq: i64,
    pub user_name: String,
    pub text: String,
    pub sent_at: NaiveDateTime,
}

impl MessageRow {
    pub(crate) fn into_message(self) -> Result<ChatMessage, StoreError> {
        Ok(ChatMessage {
            seq: u64::try_from(self.seq).map_err(|e| corrupt("message seq", self.seq, e))?,
            user: UserName::parse(&self.user_name)
                .map_err(|e| corrupt("user", &self.user_name, e))?,
            text: self.text,
            sent_at: self.sent_at.and_utc(),
        })
    }
}

/// A row to insert into `room_messages`.
#[derive(Debug, Insertable)]
#[diesel(table_name = room_messages)]
pub(crate) struct NewMessage<'a> {
    pub room_id: &'a str,
    pub seq: i64,
    pub user_name: &'a str,
    pub text: &'a str,
    pub sent_at: NaiveDateTime,
}
