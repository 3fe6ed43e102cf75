//! Fixtures shared by the integration tests.

pub mod app;
pub mod load;
pub mod mysql;
pub mod sentinel;
pub mod ws;
