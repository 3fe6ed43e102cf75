//! roomstate-core: what a room is and how clients talk about it, as plain data.
//!
//! # Layout
//! - [`room`]: the pure room state machine (`RoomState`), its events, views, snapshot, names and
//!   presence. Every rule of the client contract lives here, testable without actors or I/O.
//! - [`protocol`]: the wire vocabulary shared by HTTP and WebSocket: the error codes, the
//!   WebSocket frames (client requests in, server frames out) and why a socket is closed.
//! - [`json`]: JSON text written by hand for the hot values (events, messages, views, frames),
//!   byte for byte what their serde derives write.
//! - [`time`]: timestamps as the API shows them (RFC 3339, milliseconds).
//! - [`redact`]: the one way a URL with a secret in it is shown in logs, errors and status.
//! - [`banner`]: the line the engine prints when it listens, which tools and tests read.
//!
//! This crate must never do I/O or depend on actix, tokio, Redis or SQL: every layer above it
//! (journal, store, engine, tools) shares these types, and nothing below them.

pub mod banner;
pub mod json;
pub mod protocol;
pub mod redact;
pub mod room;
pub mod time;
