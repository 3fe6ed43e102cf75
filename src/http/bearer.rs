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
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    responses::{BadRequest, Forbidden, Unauthorized},
    AppState,
};
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
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuthQuery {
    /// Token mode, with a token: also check that the token is good for this room (`403` if not).
    room: Option<String>,
}

/// What `GET /auth` answers.
#[derive(Serialize, ToSchema)]
pub(super) struct AuthInfo {
    /// `open`: clients name their user and are believed; `token`: user calls carry a JWT.
    #[schema(value_type = AuthMode)]
    mode: &'static str,
    /// Who may create rooms (`auth.create_rooms`).
    #[schema(value_type = CreateRoomsBy)]
    create_rooms: &'static str,
    /// Token mode only: the one algorithm user tokens are signed with.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TokenAlgorithm>)]
    algorithm: Option<&'static str>,
    /// Token mode, with a valid token in `Authorization`: its `sub` (with `expires_at` and
    /// `rooms`, which come with it).
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserName>,
    /// With `user`: when the token expires (`exp`, RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Option<String>>,
    /// With `user`: the rooms the token is good for, or null for every room.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    rooms: Option<Option<Vec<String>>>,
}

/// `auth.mode` (only its schema is used: the value is `Policy::mode`).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum AuthMode {
    Open,
    Token,
}

/// `auth.create_rooms` (only its schema is used: the value is `CreateRooms::as_str`).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum CreateRoomsBy {
    Anyone,
    Users,
    Admin,
}

/// The user tokens' algorithm (only its schema is used: the value is the verifier's).
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
#[allow(dead_code)]
pub(super) enum TokenAlgorithm {
    Hs256,
    Rs256,
    Es256,
}

/// `GET /auth`: the mode, and in token mode what the engine makes of the request's token
/// (401/403 exactly as a user call would get them). Public and side-effect free.
#[utoipa::path(
    get,
    path = "/auth",
    tag = "auth",
    operation_id = "get_auth",
    description = "The auth mode and who may create rooms; in token mode, with \
                   `Authorization: Bearer <jwt>`, the token judged exactly as a user call would \
                   judge it (in open mode a token is ignored).",
    params(AuthQuery),
    security((), ("user_token" = [])),
    responses(
        (
            status = 200,
            description = "The mode, and the token's user, expiry and rooms",
            body = AuthInfo
        ),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    )
)]
pub(super) async fn describe(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<AuthQuery>,
) -> Result<HttpResponse, ApiError> {
    let policy = &state.auth;
    let mut body = AuthInfo {
        mode: policy.mode(),
        create_rooms: policy.create_rooms.as_str(),
        algorithm: policy.verifier.as_ref().map(|v| v.algorithm_name()),
        user: None,
        expires_at: None,
        rooms: None,
    };
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
            body.user = Some(claims.user);
            body.expires_at = Some(expires_at);
            body.rooms = Some(claims.rooms);
        }
    }
    Ok(HttpResponse::Ok().json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema's enums name every value `GET /auth` can show.
    #[test]
    fn auth_info_enums_name_every_value() {
        use utoipa::PartialSchema;
        let values = |schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>| {
            let schema = serde_json::to_value(schema).unwrap();
            serde_json::from_value::<Vec<String>>(schema["enum"].clone()).unwrap()
        };
        let modes = values(AuthMode::schema());
        assert_eq!(modes, ["open", "token"]);
        let open = Policy::open(CreateRooms::Anyone, false);
        assert!(modes.contains(&open.mode().to_owned()));
        let create = values(CreateRoomsBy::schema());
        for by in [CreateRooms::Anyone, CreateRooms::Users, CreateRooms::Admin] {
            assert!(create.contains(&by.as_str().to_owned()), "{by:?}");
        }
        assert_eq!(
            values(TokenAlgorithm::schema()),
            ["HS256", "RS256", "ES256"]
        );
        let verifier = crate::auth::Verifier::hs256(&"s".repeat(32)).unwrap();
        assert_eq!(verifier.algorithm_name(), "HS256");
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
