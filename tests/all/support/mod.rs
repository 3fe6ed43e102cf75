//! Fixtures of the engine's integration tests: most come from `roomstate-testkit` (shared with
//! the store's tests and the tools); the load of voters and the browser driver are the engine's.

pub mod app;
pub mod auth;
pub mod browser;
pub mod load;
pub use roomstate_testkit::{mysql, ws};

/// Redis of a test's own: a sentinel set, or a standalone server.
pub mod sentinel {
    pub use roomstate_testkit::{redis_server::RedisServer, sentinel_set::SentinelSet};
}
