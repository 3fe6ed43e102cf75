//! Why the server ends a WebSocket. The engine's socket edge turns each reason into a WebSocket
//! close code (docs/api.md lists them); rooms and rules only ever name the reason.

/// Why a socket is closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// An admin closed the room; the `closed` frame went first. A normal closure.
    RoomClosed,
    /// The engine is stopping, after every pending event became durable.
    ServerShutdown,
    /// The client sent a frame over the size limit.
    FrameTooLarge,
    /// The client kept sending past its rate after being told to slow down.
    Flooding,
    /// The client broke the WebSocket protocol.
    ProtocolError,
    /// The socket's join was refused for now (the durability log is backed up or down); the
    /// client may reconnect later.
    TryAgainLater,
    /// The socket's join was refused for good (e.g. the room closed meanwhile).
    Refused,
    /// The user token the socket was opened with expired (an `unauthorized` error frame went
    /// first); the client reconnects with a fresh token.
    TokenExpired,
}

impl CloseReason {
    /// A short reason for the close frame, when the refusal has no message of its own.
    pub fn describe(self) -> &'static str {
        match self {
            CloseReason::RoomClosed => "room closed",
            CloseReason::ServerShutdown => "server shutting down",
            CloseReason::FrameTooLarge => "frame too large",
            CloseReason::Flooding => "rate limit exceeded",
            CloseReason::ProtocolError => "protocol error",
            CloseReason::TryAgainLater => "try again later",
            CloseReason::Refused => "refused",
            CloseReason::TokenExpired => "token expired",
        }
    }
}
