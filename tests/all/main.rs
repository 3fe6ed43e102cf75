//! Integration tests: one binary, organised by domain. Every engine test starts its own engine
//! (the real binary) on a free port with its own data dir; MariaDB tests get their own database.

mod architecture;
mod auth;
mod bad_input;
mod browser;
mod cli;
mod close;
mod cluster;
mod docs;
mod edges;
mod failover;
mod idempotency;
mod openapi;
mod ops;
mod redis_auth;
mod redis_plain;
mod redis_snapshots;
mod restart;
mod rooms;
mod shutdown;
mod store_outage;
mod support;
mod transcript;
mod ws;
