//! roomstate: live debate chat rooms held in memory, made durable by a journal, written back to
//! SQL when they close. See `docs/architecture.md` for the map.

pub mod app;
pub mod config;
pub mod http;
pub mod journal;
pub mod metrics;
pub mod ratelimit;
pub mod room;
pub mod store;
pub mod time;
pub mod web;
pub mod ws;
