//! roomstate, the engine: live debate chat rooms held in memory by actors, made durable by a
//! journal, written back to SQL when they close, served over HTTP and WebSocket.
//!
//! # Layout
//! The layers below the engine are crates of their own: `roomstate-core` (room rules and wire
//! protocol), `roomstate-journal` (durability log), `roomstate-store` (SQL write-back),
//! `roomstate-sqlite` (how SQLite files are opened). This crate runs them:
//! - `room/`: the room actors and the registry — the commit pipeline, broadcasts, snapshots,
//!   presence lapses (sockets on other nodes included), close and shutdown; no HTTP or
//!   WebSocket in it, and it never imports `cluster`;
//! - `cluster/`: a cluster of engines (`cluster.enabled`) — heartbeats and who is alive, where
//!   rooms go, taking over a dead node's rooms, the router that sends a call to the room's owner,
//!   mirrors of rooms owned elsewhere for the sockets here, the hand-off at SIGTERM;
//! - `ws/`: the socket session — encodes frames, maps close reasons to close codes;
//! - `http/`: every route in one screen (the table `http/routes.rs`, the router built from it in
//!   `http/mod.rs`), handlers (the node-to-node ones in `http/internal.rs`), extractors, the
//!   OpenAPI document;
//! - `web/`: the embedded web page, a client of the public API like any other;
//! - `error`: the one mapping from every error to an API code, status and body;
//! - `config`: settings, validated once; `metrics`: `/metrics`; `ratelimit`: token buckets;
//! - `auth`: user tokens — the key and the verification of JWTs (docs/auth.md);
//! - `edge`: trusted proxies and allowed origins — who is at the door (docs/api.md);
//! - `app`: wiring, start-up and shutdown order.
//!
//! Arrows run one way: `app` → `http` → `ws` → `room`; `http` → `cluster` → `room`; `http`, `ws`
//! → `error` → `room`; `web` → `error`. docs/architecture.md draws the whole house.

mod app;
mod auth;
mod cluster;
mod config;
mod edge;
mod error;
mod http;
mod metrics;
mod ratelimit;
mod room;
mod thread_name;
mod web;
mod ws;

pub use app::run;
pub use config::{ConfigError, Loaded, LogFormat, Settings};
