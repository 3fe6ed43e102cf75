//! WebSockets: the per-socket session actor. The frames themselves are the core's protocol
//! (`roomstate_core::protocol::frames`); this is where they are encoded and sent.

pub(crate) mod session;
