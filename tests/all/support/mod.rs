//! Fixtures shared by the integration tests.

pub mod app;
pub mod browser;
pub mod load;
pub mod mysql;
pub mod sentinel;
pub mod ws;
