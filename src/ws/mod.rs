//! WebSockets: the frame protocol and the per-socket session actor.

pub mod frames;
pub mod session;
