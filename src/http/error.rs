//! The one mapping from every error in the engine to an API error code, HTTP status and body
//! (`{"error": CODE, "message": "..."}`), for HTTP responses and WebSocket error frames alike.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde::Serialize;

use crate::{
    room::{messages::RoomFailure, registry::ApiFailure, NameError, RoomError},
    store::StoreError,
};

/// The error codes of API.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    NotFound,
    NotJoined,
    RoomClosed,
    TooLarge,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::NotJoined | ErrorCode::RoomClosed => StatusCode::CONFLICT,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::RoomClosed => "room_closed",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// An error as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{error:?}: {message}")]
pub struct ApiError {
    pub error: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn room_closed() -> Self {
        Self::new(ErrorCode::RoomClosed, "the room is closed")
    }

    pub fn unknown_room() -> Self {
        Self::not_found("no such room")
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.error.status()
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(self)
    }
}

impl From<RoomError> for ApiError {
    fn from(e: RoomError) -> Self {
        let code = match e {
            RoomError::Invalid(_) => ErrorCode::BadRequest,
            RoomError::NotJoined(_) => ErrorCode::NotJoined,
            RoomError::Closed => ErrorCode::RoomClosed,
        };
        Self::new(code, e.to_string())
    }
}

impl From<RoomFailure> for ApiError {
    fn from(e: RoomFailure) -> Self {
        match e {
            RoomFailure::Rule(e) => e.into(),
            RoomFailure::Unavailable(m) => Self::new(ErrorCode::Unavailable, m),
        }
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::new(ErrorCode::Unavailable, e.to_string()),
            StoreError::Config(_) | StoreError::Corrupt(_) => {
                tracing::error!(error = %e, "SQL store failure");
                Self::new(
                    ErrorCode::Internal,
                    "the SQL store failed; see the server log",
                )
            }
        }
    }
}

impl From<ApiFailure> for ApiError {
    fn from(e: ApiFailure) -> Self {
        match e {
            ApiFailure::Room(e) => e.into(),
            ApiFailure::Store(e) => e.into(),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    /// A room actor only stops once it is closed (or the engine is stopping).
    fn from(_: actix::MailboxError) -> Self {
        Self::room_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_status_and_name() {
        let all = [
            (ErrorCode::BadRequest, 400),
            (ErrorCode::Unauthorized, 401),
            (ErrorCode::NotFound, 404),
            (ErrorCode::NotJoined, 409),
            (ErrorCode::RoomClosed, 409),
            (ErrorCode::TooLarge, 413),
            (ErrorCode::RateLimited, 429),
            (ErrorCode::Unavailable, 503),
            (ErrorCode::Internal, 500),
        ];
        for (code, status) in all {
            assert_eq!(code.status().as_u16(), status);
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str());
        }
    }

    #[test]
    fn body_shape() {
        let body = serde_json::to_value(ApiError::room_closed()).unwrap();
        assert_eq!(body["error"], "room_closed");
        assert!(body["message"].is_string());
        assert_eq!(body.as_object().unwrap().len(), 2);
    }
}
