//! The engine under test: the test kit's `TestApp` on this package's own `roomstate` binary,
//! which cargo builds before it runs these tests.

pub use roomstate_testkit::app::{eventually, Builder, TestApp, TOKEN};

/// The binary cargo built for these tests.
pub const ENGINE: &str = env!("CARGO_BIN_EXE_roomstate");

/// An engine with the default test settings.
pub fn start() -> TestApp {
    builder().start()
}

/// An engine to configure before it starts.
pub fn builder() -> Builder {
    TestApp::builder(ENGINE)
}
