//! The messages a `RoomActor` answers, one struct each, and what they reply.

use std::sync::Arc;

use actix::prelude::*;
use roomstate_core::room::{ChatMessage, Command, RoomView, UserName, Via};
use roomstate_journal::Epoch;
use tokio::sync::oneshot;

use super::{
    failure::Reply,
    outbound::{SessionId, Shared},
    outlet::{AnswerTo, Outlet},
};

/// What a mutation answers, once it is durable.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    /// The seq that answers the request: its event's; for a repeated idempotency key, the first
    /// message's; for a command that changed nothing, the room's seq as of the answer.
    pub(crate) seq: u64,
    /// The room view as of the answer.
    pub(crate) view: RoomView,
}

/// Apply a client's command; `reply` is answered once its outcome is durable. Sent with
/// `do_send`: the room keeps `reply` with the command until then, and no task waits on the
/// room's thread for the answer. A room that stopped before it took the command drops it
/// unanswered (the caller's receiver sees the channel closed); a command whose caller gave up
/// before the room took it (the receiver dropped) is not applied.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Mutate {
    pub(crate) command: Command,
    /// How the command came: over HTTP it also refreshes the user's HTTP presence (see the idle
    /// lapse); from a socket it does not.
    pub(crate) via: Via,
    pub(crate) reply: oneshot::Sender<Reply<Applied>>,
}

/// A socket's command: answered through the socket's worker (`answer`) once its outcome is
/// durable — by a room, in order with the frames it sends the socket; by a mirror, when the
/// room's owner answers.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SocketMutate {
    pub(crate) command: Command,
    /// The socket it came from (a mirror tells the room's owner which socket asks).
    pub(crate) session: SessionId,
    pub(crate) answer: AnswerTo,
}

/// The room view as of the last durable event.
#[derive(Message)]
#[rtype(result = "RoomView")]
pub(crate) struct GetView;

/// Durable chat messages with `seq > after`, oldest first, at most `limit` — from memory, or
/// from the journal for those the room no longer holds.
#[derive(Message)]
#[rtype(result = "Reply<Vec<ChatMessage>>")]
pub(crate) struct GetMessages {
    pub(crate) after: u64,
    pub(crate) limit: usize,
}

/// A socket of `user` opened: joins the user. Answers, once the join is durable, with the
/// session's first state; every broadcast after that goes to `session`.
#[derive(Message)]
#[rtype(result = "Reply<Arc<Shared<RoomView>>>")]
pub(crate) struct Connect {
    pub(crate) id: SessionId,
    pub(crate) user: UserName,
    pub(crate) session: Outlet,
}

/// A socket closed (or was dropped): leaves its user if it was their last one.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Disconnect {
    pub(crate) id: SessionId,
}

/// Close the room for good: waits until every pending event is durable, writes the final record
/// to the store, tells every socket, deletes the journal's log. Answers the final view.
#[derive(Message)]
#[rtype(result = "Reply<RoomView>")]
pub(crate) struct Close;

/// Engine shutdown: answer once every pending event is durable, then end every socket and stop.
/// Answers the epoch the room was held under (a cluster node hands the room over with it).
#[derive(Message)]
#[rtype(result = "Epoch")]
pub(crate) struct Shutdown;

/// The lease epoch the room is held under.
#[derive(Message)]
#[rtype(result = "Epoch")]
pub(crate) struct GetEpoch;

/// The journal says the room is at `epoch` now: an actor holding another epoch lost the room
/// (taken over while this node was paused or cut off) and stops.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Fence {
    pub(crate) epoch: Epoch,
}

/// A socket of `user` on another node of the cluster opened (that node mirrors the room): the
/// user joins. Answers once the join is durable (a socket recorded already: at once).
#[derive(Message)]
#[rtype(result = "Reply<Applied>")]
pub(crate) struct AttachRemote {
    pub(crate) node: String,
    pub(crate) session: SessionId,
    pub(crate) user: UserName,
}

/// A socket on another node closed: its user leaves if it was their last one.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct DetachRemote {
    pub(crate) node: String,
    pub(crate) session: SessionId,
}

/// `node` holds exactly these sockets of the room (sent now and then, and after an owner change,
/// so a lost attach or detach does not stay wrong).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SyncRemote {
    pub(crate) node: String,
    pub(crate) sessions: Vec<(SessionId, UserName)>,
}

/// `node` left the cluster or died: its sockets are gone; or, with `before`, it restarted: the
/// sockets of its earlier runs (session ids below `before`) are gone.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ForgetNode {
    pub(crate) node: String,
    pub(crate) before: Option<SessionId>,
}

/// A command from a socket on another node: like `Mutate` from a socket, and the socket is
/// recorded (its user joins) first if it is not yet — after an owner change, the new owner
/// learns of a socket from its first request.
#[derive(Message)]
#[rtype(result = "Reply<Applied>")]
pub(crate) struct RemoteMutate {
    pub(crate) node: String,
    pub(crate) session: SessionId,
    pub(crate) command: Command,
}

/// Engine shutdown past its drain deadline: answer every request still waiting for the journal
/// with `unavailable` (it was not made durable), end every socket, and stop now.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Abandon;
