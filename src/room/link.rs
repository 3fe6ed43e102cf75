//! `RoomLink`: what a socket session talks to — the room's actor when this node owns the room,
//! or the node's mirror of it when another node does (a cluster). Both answer the same three
//! messages, so a session never knows which it has.

use actix::prelude::*;

use super::messages::{Connect, Disconnect, SocketMutate};

/// Where a socket's joins, requests and departures go.
#[derive(Clone)]
pub(crate) struct RoomLink {
    pub(crate) connect: Recipient<Connect>,
    pub(crate) mutate: Recipient<SocketMutate>,
    pub(crate) disconnect: Recipient<Disconnect>,
}

impl RoomLink {
    pub(crate) fn to<A>(addr: &Addr<A>) -> Self
    where
        A: Actor + Handler<Connect> + Handler<SocketMutate> + Handler<Disconnect>,
        A::Context: actix::dev::ToEnvelope<A, Connect>
            + actix::dev::ToEnvelope<A, SocketMutate>
            + actix::dev::ToEnvelope<A, Disconnect>,
    {
        Self {
            connect: addr.clone().recipient(),
            mutate: addr.clone().recipient(),
            disconnect: addr.clone().recipient(),
        }
    }
}
