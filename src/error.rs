//! The one mapping from every error in the engine to what a client sees: an API error code (from
//! the core's vocabulary), the HTTP status the contract gives it, and the body
//! `{"error": CODE, "message": "..."}`. HTTP responses and WebSocket `error` frames both come from
//! an `ApiError`, so a refusal reads the same on either. Every 401 carries the bearer challenge
//! (`WWW-Authenticate`, RFC 6750), whichever route sent it, and every 429 and 503 a
//! `Retry-After` (seconds) by its code.

use actix_web::{
    http::{header, StatusCode},
    HttpRequest, HttpResponse, ResponseError,
};
use roomstate_core::{
    protocol::ErrorCode,
    room::{NameError, RoomError},
};
use roomstate_store::StoreError;
use serde::Serialize;

use crate::room::failure::{RegistryFailure, RoomFailure};

/// Every 4xx and 5xx body: an API error code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error, utoipa::ToSchema)]
#[schema(as = Error)]
#[error("{error:?}: {message}")]
pub(crate) struct ApiError {
    pub(crate) error: ErrorCode,
    /// What went wrong, in words.
    pub(crate) message: String,
    /// A 401 about a token that was given: the `error_description` of the challenge, a few
    /// words with no quotes or backslashes (not in the body: the body has two fields).
    #[serde(skip)]
    pub(crate) invalid_token: Option<&'static str>,
}

/// The realm of every bearer challenge.
const REALM: &str = "roomstate";

/// `Retry-After` of a `429 rate_limited`: a token bucket refills at least one token a second at
/// any rate the settings allow.
pub(crate) const RATE_LIMITED_RETRY_S: u32 = 1;
/// `Retry-After` of a `503 unavailable`: the journal's writes are retried with a backoff that
/// tops out at 1 s, a failover takes a few seconds, and a client that comes back sooner only
/// adds to the load of an engine that is already behind (or full of rooms).
pub(crate) const UNAVAILABLE_RETRY_S: u32 = 5;

impl ApiError {
    pub(crate) fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
            invalid_token: None,
        }
    }

    /// 429: the client is over its rate.
    pub(crate) fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::RateLimited, message)
    }

    /// `Retry-After` for this error: `None` for codes that are no invitation to retry.
    pub(crate) fn retry_after_s(&self) -> Option<u32> {
        match self.error {
            ErrorCode::RateLimited => Some(RATE_LIMITED_RETRY_S),
            ErrorCode::Unavailable => Some(UNAVAILABLE_RETRY_S),
            _ => None,
        }
    }

    /// 401 for a request that brought no credentials.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// 401 for a request whose token is refused; `description` goes into the challenge.
    pub(crate) fn invalid_token(description: &'static str, message: impl Into<String>) -> Self {
        Self {
            invalid_token: Some(description),
            ..Self::unauthorized(message)
        }
    }

    /// 403: a valid token that does not cover this user or room.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub(crate) fn room_closed() -> Self {
        Self::new(ErrorCode::RoomClosed, "the room is closed")
    }

    pub(crate) fn unknown_room() -> Self {
        Self::not_found("no such room")
    }
}

/// The answer to any path or method the API does not have.
pub(crate) async fn no_route(req: HttpRequest) -> HttpResponse {
    ApiError::not_found(format!("no route for {} {}", req.method(), req.path())).error_response()
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status_code());
        if self.error == ErrorCode::Unauthorized {
            builder.insert_header((header::WWW_AUTHENTICATE, self.challenge()));
        }
        if let Some(seconds) = self.retry_after_s() {
            builder.insert_header((header::RETRY_AFTER, seconds));
        }
        let mut response = builder.json(self);
        // For the refusal counter (`http::layer`), whichever way the error came.
        response.extensions_mut().insert(self.error);
        response
    }
}

impl ApiError {
    /// `Bearer realm="roomstate"`, plus the token's fault when one was given (RFC 6750 §3).
    fn challenge(&self) -> String {
        match self.invalid_token {
            None => format!("Bearer realm=\"{REALM}\""),
            Some(description) => format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                description.replace(['"', '\\'], "")
            ),
        }
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
            RoomFailure::Stopped => Self::new(ErrorCode::Unavailable, e.to_string()),
            RoomFailure::Refused { code, message } => Self::new(code, message),
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

impl From<RegistryFailure> for ApiError {
    fn from(e: RegistryFailure) -> Self {
        match e {
            RegistryFailure::Room(e) => e.into(),
            RegistryFailure::Store(e) => e.into(),
            RegistryFailure::UnknownRoom => Self::unknown_room(),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    /// The room's actor stopped before it answered: it closed, it moved to another node of a
    /// cluster, or the engine is stopping. Which of them, the caller cannot tell; a retry finds
    /// out (the room's new owner, or `room_closed` from the store).
    fn from(_: actix::MailboxError) -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "the room stopped before it answered; retry",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_that_stopped_before_answering_is_unavailable_not_closed() {
        let error = ApiError::from(actix::MailboxError::Closed);
        assert_eq!(error.error, ErrorCode::Unavailable);
        assert_eq!(error.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn body_shape() {
        let body = serde_json::to_value(ApiError::room_closed()).unwrap();
        assert_eq!(body["error"], "room_closed");
        assert!(body["message"].is_string());
        assert_eq!(body.as_object().unwrap().len(), 2);
    }

    #[test]
    fn every_401_challenges_and_only_a_401() {
        let header = |e: ApiError| {
            e.error_response()
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            header(ApiError::unauthorized("no token")).as_deref(),
            Some("Bearer realm=\"roomstate\"")
        );
        assert_eq!(
            header(ApiError::invalid_token("token expired", "m")).as_deref(),
            Some(
                "Bearer realm=\"roomstate\", error=\"invalid_token\", \
                 error_description=\"token expired\""
            )
        );
        assert_eq!(header(ApiError::forbidden("other user")), None);
        let body = serde_json::to_value(ApiError::invalid_token("x", "m")).unwrap();
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        assert_eq!(
            ApiError::forbidden("m").status_code(),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn every_429_and_503_says_when_to_retry_and_only_they() {
        let header = |e: ApiError| {
            e.error_response()
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            header(ApiError::rate_limited("slow down")).as_deref(),
            Some("1")
        );
        assert_eq!(
            header(ApiError::new(ErrorCode::Unavailable, "down")).as_deref(),
            Some("5")
        );
        assert_eq!(header(ApiError::room_closed()), None);
        assert_eq!(header(ApiError::bad_request("x")), None);
        let body = serde_json::to_value(ApiError::rate_limited("m")).unwrap();
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    }

    #[test]
    fn status_follows_the_code() {
        let error = ApiError::new(ErrorCode::Unavailable, "down");
        assert_eq!(error.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            ApiError::unknown_room().status_code(),
            StatusCode::NOT_FOUND
        );
    }
}
