//! Turning requests into typed input: JSON, path and query settings whose errors are API errors,
//! and the per-address rate limit. (Credentials are `bearer.rs`.)

use actix_web::{error::JsonPayloadError, web, HttpRequest};
use roomstate_core::{
    protocol::ErrorCode,
    room::{RoomId, UserName},
};

use super::AppState;
use crate::error::ApiError;

pub(crate) fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(|err, _| {
            let api = match &err {
                JsonPayloadError::Overflow { limit } => {
                    ApiError::new(ErrorCode::TooLarge, format!("body over {limit} bytes"))
                }
                JsonPayloadError::OverflowKnownLength { limit, .. } => {
                    ApiError::new(ErrorCode::TooLarge, format!("body over {limit} bytes"))
                }
                other => ApiError::bad_request(format!("bad JSON body: {other}")),
            };
            api.into()
        })
}

pub(crate) fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _| ApiError::bad_request(err.to_string()).into())
}

pub(crate) fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| ApiError::bad_request(format!("bad query: {err}")).into())
}

/// A room id from the path; one that cannot exist is simply not found.
pub(crate) fn room_id(text: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(text).map_err(|_| ApiError::unknown_room())
}

pub(crate) fn user(text: &str) -> Result<UserName, ApiError> {
    Ok(UserName::parse(text)?)
}

/// Refuses a client over its HTTP mutation rate.
pub(crate) fn rate_limit(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let addr = req.peer_addr().map(|a| a.ip());
    if state.http_limiter.check(addr) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many requests; slow down",
        ))
    }
}
