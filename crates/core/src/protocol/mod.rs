//! The wire vocabulary of the client contract, shared by the HTTP routes and the WebSocket
//! sessions: error codes (`error_code`), WebSocket frames (`frames`) and the reasons a socket is
//! closed (`close`). How these map onto HTTP statuses or WebSocket close codes is the engine's
//! edge; here they are only names and shapes.

pub mod close;
pub mod error_code;
pub mod frames;

pub use close::CloseReason;
pub use error_code::ErrorCode;
pub use frames::{BadFrame, ClientFrame};
