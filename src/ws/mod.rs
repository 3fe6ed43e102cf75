//! WebSockets: where a socket leaves the HTTP dispatcher (`upgrade`), the per-socket session
//! task, the socket's two sides (`incoming`, `outgoing`), the worker's hub that hands the
//! sockets what their rooms send (`hub`), and the worker's flush tick that sends broadcasts
//! (`flush`). The frames themselves are the
//! core's protocol (`roomstate_core::protocol::frames`); this is where they are encoded and
//! sent.

mod flush;
mod hub;
mod incoming;
pub(crate) mod open_sockets;
mod outgoing;
pub(crate) mod session;
pub(crate) mod upgrade;

pub(crate) use outgoing::LINGER;
