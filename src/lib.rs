//! roomstate, the engine: live debate chat rooms held in memory by actors, made durable by a
//! journal, written back to SQL when they close, served over HTTP and WebSocket.
//!
//! # Layout
//! The layers below the engine are crates of their own: `roomstate-core` (room rules and wire
//! protocol), `roomstate-journal` (durability log), `roomstate-store` (SQL write-back),
//! `roomstate-sqlite` (how SQLite files are opened). This crate runs them:
//! - `room/`: the room actors and the registry — the commit pipeline, broadcasts, snapshots,
//!   presence lapses, close and shutdown; no HTTP or WebSocket in it;
//! - `ws/`: the socket session — encodes frames, maps close reasons to close codes;
//! - `http/`: every route in one screen (`http/mod.rs`), handlers, extractors;
//! - `web/`: the embedded web page, a client of the public API like any other;
//! - `error`: the one mapping from every error to an API code, status and body;
//! - `config`: settings, validated once; `metrics`: `/metrics`; `ratelimit`: token buckets;
//! - `auth`: user tokens — the key and the verification of JWTs (docs/auth.md);
//! - `edge`: trusted proxies and allowed origins — who is at the door (docs/api.md);
//! - `app`: wiring, start-up and shutdown order.
//!
//! Arrows run one way: `app` → `http` → `ws` → `room`; `http`, `ws` → `error` → `room`;
//! `web` → `error`. docs/architecture.md draws the whole house.

mod app;
mod auth;
mod config;
mod edge;
mod error;
mod http;
mod metrics;
mod ratelimit;
mod room;
mod web;
mod ws;

pub use app::run;
pub use config::{ConfigError, Loaded, LogFormat, Settings};
