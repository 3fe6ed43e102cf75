//! WebSockets: the per-socket session actor and its outgoing buffer. The frames themselves are
//! the core's protocol (`roomstate_core::protocol::frames`); this is where they are encoded and
//! sent.

mod outgoing;
pub(crate) mod session;
