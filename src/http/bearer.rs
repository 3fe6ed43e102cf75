//! Who a request is, at the HTTP edge: the admin bearer token, user tokens (JWTs, in token mode),
//! who may create rooms, and `GET /auth`, which tells a client (the web page) the mode and what
//! the engine makes of its token.
//!
//! The extractors run before the body is read, so a request without valid credentials is a 401
//! whatever its body holds. The 403 checks (the token's `sub` against the user in the path or
//! body, its `rooms` against the room) need the request's own values and are `check`, called by
//! the handlers. In open mode every user check passes: the contract's default is unchanged.

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest, HttpResponse};
use futures_util::future::{ready, Ready};
use roomstate_core::{protocol::ErrorCode, room::UserName, time};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::{
    auth::{Claims, CreateRooms, Policy, TokenError},
    error::ApiError,
};

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

fn app_state(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "no application state"))
}

/// Refuses anything but the admin token.
fn admin_only(state: &AppState, given: Option<&str>) -> Result<(), ApiError> {
    match (&state.admin_token, given) {
        (Some(expected), Some(given))
            if constant_time_eq(expected.as_bytes(), given.as_bytes()) =>
        {
            Ok(())
        }
        (_, None) => Err(ApiError::unauthorized(
            "missing 'Authorization: Bearer <admin token>'",
        )),
        _ => Err(ApiError::invalid_token(
            "wrong admin token",
            "wrong admin token",
        )),
    }
}

/// Compares without leaking, through timing, how long a matching prefix is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies a user token under `policy`: `Ok(None)` in open mode (nothing to verify).
pub(crate) fn verify(policy: &Policy, token: Option<&str>) -> Result<Option<Claims>, ApiError> {
    let Some(verifier) = &policy.verifier else {
        return Ok(None);
    };
    let token = token.ok_or(TokenError::Missing);
    match token.and_then(|t| verifier.verify(t)) {
        Ok(claims) => Ok(Some(claims)),
        Err(TokenError::Missing) => Err(ApiError::unauthorized(
            "this call needs a user token: 'Authorization: Bearer <jwt>' (or ?token=<jwt> on the \
             WebSocket)",
        )),
        Err(TokenError::Invalid(why)) => Err(ApiError::invalid_token(
            why,
            format!("user token refused: {why}"),
        )),
    }
}

/// A WebSocket's credentials: `?token=` (browsers cannot set headers on a WebSocket), else the
/// `Authorization` header.
pub(crate) fn socket_token(
    state: &AppState,
    req: &HttpRequest,
    query_token: Option<&str>,
) -> Result<Option<Claims>, ApiError> {
    verify(&state.auth, query_token.or_else(|| bearer(req)))
}

/// 403 unless the token speaks for `user` and is good for room `room`.
pub(crate) fn check(claims: &Claims, room: &str, user: &UserName) -> Result<(), ApiError> {
    if claims.user != *user {
        return Err(ApiError::forbidden(format!(
            "the token is for user {:?}, not {:?}",
            claims.user.as_str(),
            user.as_str()
        )));
    }
    if !claims.allows_room(room) {
        return Err(ApiError::forbidden(format!(
            "the token is not good for room {room:?}"
        )));
    }
    Ok(())
}

/// Proof that the request carries the admin bearer token.
pub(crate) struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(app_state(req).and_then(|state| admin_only(state, bearer(req)).map(|()| Admin)))
    }
}

/// A user call's credentials: the verified claims in token mode, nothing in open mode.
pub(crate) struct UserToken(Option<Claims>);

impl UserToken {
    /// 403 unless the token covers `user` in room `room` (always fine in open mode).
    pub(crate) fn check(&self, room: &str, user: &UserName) -> Result<(), ApiError> {
        match &self.0 {
            None => Ok(()),
            Some(claims) => check(claims, room, user),
        }
    }
}

impl FromRequest for UserToken {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(app_state(req).and_then(|state| verify(&state.auth, bearer(req)).map(UserToken)))
    }
}

/// Proof that the request may create a room (`auth.create_rooms`).
pub(crate) struct RoomCreator;

impl FromRequest for RoomCreator {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let allowed = app_state(req).and_then(|state| match state.auth.create_rooms {
            CreateRooms::Anyone => Ok(()),
            // Any valid user token, whatever its `rooms` (the room does not exist yet).
            CreateRooms::Users => verify(&state.auth, bearer(req)).map(drop),
            CreateRooms::Admin => admin_only(state, bearer(req)),
        });
        ready(allowed.map(|()| RoomCreator))
    }
}

/// Unknown query parameters are ignored.
#[derive(Deserialize)]
pub(super) struct AuthQuery {
    room: Option<String>,
}

/// `GET /auth`: the mode, and in token mode what the engine makes of the request's token
/// (401/403 exactly as a user call would get them). Public and side-effect free.
pub(super) async fn describe(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<AuthQuery>,
) -> Result<HttpResponse, ApiError> {
    let policy = &state.auth;
    let mut body = json!({
        "mode": policy.mode(),
        "create_rooms": policy.create_rooms.as_str(),
    });
    if let Some(verifier) = &policy.verifier {
        body["algorithm"] = json!(verifier.algorithm_name());
    }
    if let Some(token) = bearer(&req).filter(|_| policy.verifier.is_some()) {
        if let Some(claims) = verify(policy, Some(token))? {
            if let Some(room) = &query.room {
                if !claims.allows_room(room) {
                    return Err(ApiError::forbidden(format!(
                        "the token is not good for room {room:?}"
                    )));
                }
            }
            let expires_at = i64::try_from(claims.exp)
                .ok()
                .and_then(|s| time::Timestamp::from_timestamp(s, 0))
                .map(|t| time::format(&t));
            body["user"] = json!(claims.user.as_str());
            body["expires_at"] = json!(expires_at);
            body["rooms"] = json!(claims.rooms);
        }
    }
    Ok(HttpResponse::Ok().json(body))
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
