//! Fixtures shared by the integration tests.

pub mod app;
pub mod mysql;
pub mod sentinel;
pub mod ws;
