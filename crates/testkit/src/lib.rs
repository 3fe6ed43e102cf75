//! roomstate-testkit: what roomstate's tests and tools share, so each fact has one home.
//!
//! # Layout
//! - `engine`: the `roomstate` binary as a child process (spawned on port 0, read for its
//!   listening line, killed with its owner);
//! - `app`: `TestApp`, an engine with a data dir of its own and HTTP helpers, for the tests;
//! - `ws`: a WebSocket client that reads JSON frames with deadlines;
//! - `final_record`: checks of a room's final record against what its clients were told;
//! - `mysql`: a MariaDB database of a test's own (feature `mysql`);
//! - Redis of a test's own: `ports` (free loopback ports), `process` (redis-server processes
//!   that die with the test), `redis_admin` (asking servers and sentinels), `redis_server`
//!   (a standalone Redis) and `sentinel_set` (1 primary, 2 replicas, 3 sentinels), each
//!   optionally locked as production is (`redis_security`: passwords, an ACL user, TLS with
//!   certificates from `certs`).
//!
//! Every wait has a deadline and fails saying what it waited for; a missing service is a failure
//! that says what to run, never a skip.

pub mod app;
pub mod certs;
pub mod cluster;
pub mod engine;
pub mod final_record;
pub mod mysql;
pub mod ports;
pub mod process;
pub mod redis_admin;
pub mod redis_security;
pub mod redis_server;
pub mod sentinel_set;
pub mod tcp_proxy;
pub mod ws;

pub use app::eventually;
