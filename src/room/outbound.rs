//! What a room tells its sockets, as typed protocol values: the room never builds a WebSocket
//! frame or picks a close code. The socket session encodes each value and maps each
//! `CloseReason` to a code.
//!
//! A value that goes to every socket of a room is wrapped in [`Shared`]: the first session that
//! needs its text encodes it, and the other sessions reuse that text, so a broadcast is encoded
//! once per room, not once per socket.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, OnceLock,
};

use roomstate_core::{
    protocol::CloseReason,
    room::{ChatMessage, RoomView},
};

use super::failure::Reply;

/// Identifies one WebSocket session of a node, across its runs in a cluster
/// (`first_session_of_run`).
pub(crate) type SessionId = u64;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// A new session's id.
pub(crate) fn next_session_id() -> SessionId {
    NEXT_SESSION.fetch_add(1, Ordering::Relaxed)
}

/// This process is the run of its node that started at `started_ms`: session ids count up from
/// its first (a cluster node; a single engine's ids need only differ within the process).
pub(crate) fn start_run(started_ms: u64) {
    NEXT_SESSION.fetch_max(first_session_of_run(started_ms), Ordering::Relaxed);
}

/// The first session id of a run of the engine started at `started_ms` (Unix milliseconds): a
/// run's ids count up from it, so two runs of one node never give out the same id (a run would
/// have to open 65 536 sockets for each millisecond between the two starts), and a room's owner
/// can tell the sockets of a restarted node's earlier runs from those of its new one.
pub(crate) fn first_session_of_run(started_ms: u64) -> SessionId {
    started_ms << 16
}

/// A value sent to many sockets, with its encoding once someone made it.
pub(crate) struct Shared<T> {
    value: T,
    text: OnceLock<String>,
}

impl<T> Shared<T> {
    pub(crate) fn new(value: T) -> Arc<Self> {
        Arc::new(Self {
            value,
            text: OnceLock::new(),
        })
    }

    /// The encoded text: made by `encode` the first time, shared after that.
    pub(crate) fn text(&self, encode: impl FnOnce(&T) -> String) -> &str {
        self.text.get_or_init(|| encode(&self.value))
    }
}

/// What a room sends a socket.
#[derive(Clone)]
pub(crate) enum Outbound {
    /// The room's newest durable state.
    State(Arc<Shared<RoomView>>),
    /// A durable chat message (every one, in seq order).
    Message(Arc<Shared<ChatMessage>>),
    /// The room closed; this is its final view. The socket ends after it.
    Closed(Arc<Shared<RoomView>>),
    /// End the socket.
    End(CloseReason),
    /// The answer to the socket's request `tag` (`SocketMutate`): the seq that answers it, or
    /// why not. It travels with the frames the room sends the socket, in order.
    Answer { tag: u64, outcome: Reply<u64> },
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn a_shared_value_is_encoded_once() {
        let shared = Shared::new(7u32);
        let calls = Cell::new(0);
        let encode = |v: &u32| {
            calls.set(calls.get() + 1);
            format!("n={v}")
        };
        assert_eq!(shared.text(encode), "n=7");
        assert_eq!(shared.text(encode), "n=7");
        assert_eq!(calls.get(), 1);
    }
}
