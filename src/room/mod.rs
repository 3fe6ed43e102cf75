//! Rooms at run time: one actor per open room, and the registry that finds them.
//!
//! The rules of a room are `roomstate_core::room` (pure); this module runs them. Each concept has
//! its file: `actor` (the glue), `commit_queue` (what is pending, in flight, retried), `throttle`
//! (how often state is broadcast), `snapshots` (when to snapshot), `http_idle` (when an HTTP join
//! lapses), `sessions` (the sockets of a room), `remote_sessions` (its sockets on other nodes of
//! a cluster), `closing` (a close in progress), `departed` (rooms that moved away lately), `outbound` (what a room tells a socket, as typed
//! protocol), `outlet` (where it goes: one queue per HTTP worker), `link` (what a socket talks to: the room, or a cluster node's mirror of it),
//! `messages` (what a room answers), `reply_to` (where a request's answer goes), `failure` (why it refuses), `deps` (what every room shares),
//! `registry` (id -> room; recovery and shutdown).
//!
//! Nothing here knows WebSocket frames, close codes or HTTP: the edges (`ws`, `http`) import
//! rooms, never the reverse.

pub(crate) mod actor;
mod closing;
mod commit_queue;
mod departed;
pub(crate) mod deps;
pub(crate) mod failure;
mod http_idle;
pub(crate) mod link;
pub(crate) mod messages;
pub(crate) mod outbound;
pub(crate) mod outlet;
pub(crate) mod registry;
pub(crate) mod remote_sessions;
mod reply_to;
mod sessions;
mod snapshots;
pub(crate) mod throttle;

#[cfg(test)]
pub(crate) mod tests;
