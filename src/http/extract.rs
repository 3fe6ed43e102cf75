//! Turning requests into typed input: JSON, path and query settings whose errors are API errors,
//! the admin bearer check, and the per-address rate limit.

use actix_web::{
    dev::Payload, error::JsonPayloadError, http::header, web, FromRequest, HttpRequest,
};
use futures_util::future::{ready, Ready};
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

/// Proof that the request carries the admin bearer token.
pub(crate) struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let expected = req
            .app_data::<web::Data<AppState>>()
            .and_then(|s| s.admin_token.clone());
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        ready(match (expected, given) {
            (Some(expected), Some(given))
                if constant_time_eq(expected.as_bytes(), given.as_bytes()) =>
            {
                Ok(Admin)
            }
            (_, None) => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "missing 'Authorization: Bearer <admin token>'",
            )),
            _ => Err(ApiError::new(ErrorCode::Unauthorized, "wrong admin token")),
        })
    }
}

/// Compares without leaking, through timing, how long a matching prefix is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
