//! WebSockets: where a socket leaves the HTTP dispatcher (`upgrade`), the per-socket session
//! actor, and the socket's two sides (`incoming`, `outgoing`). The frames themselves are the
//! core's protocol (`roomstate_core::protocol::frames`); this is where they are encoded and
//! sent.

mod incoming;
pub(crate) mod open_sockets;
mod outgoing;
pub(crate) mod session;
pub(crate) mod upgrade;

pub(crate) use outgoing::LINGER;
