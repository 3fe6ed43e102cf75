//! Public room endpoints: create and list rooms, join and leave, votes, messages, the socket.

use actix_web::{web, HttpRequest, HttpResponse};
use roomstate_core::room::{Command, IdempotencyKey, RoomView, Side, UserName, Via};
use serde::Deserialize;
use serde_json::json;

use super::{
    bearer::{self, RoomCreator, UserToken},
    extract::{self, rate_limit},
    origin, AppState,
};
use crate::{
    error::ApiError,
    room::messages::Applied,
    ws::{self, session::Opening},
};

/// The request header that makes `POST /messages` safe to repeat.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Most messages one listing returns.
const MAX_LISTING: usize = 500;
/// Messages a listing returns when `limit` is not given.
const DEFAULT_LISTING: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateRoom {
    title: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserBody {
    user: UserName,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VoteBody {
    side: Side,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SayBody {
    user: UserName,
    text: String,
}

/// Unknown query parameters (cache busters and the like) are ignored.
#[derive(Deserialize)]
pub(super) struct ListingQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
pub(super) struct SocketQuery {
    user: Option<String>,
    /// The user token (token mode), since a browser cannot set headers on a WebSocket.
    token: Option<String>,
}

/// Applies `command` to an open room over HTTP; answers once it is durable.
async fn mutate(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
    command: Command,
) -> Result<Applied, ApiError> {
    rate_limit(state, req)?;
    let id = extract::room_id(id)?;
    Ok(state.registry.mutate(&id, command, Via::Http).await?)
}

fn tally(view: &RoomView) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "seq": view.counters.seq,
        "pro": view.counters.pro,
        "con": view.counters.con,
    }))
}

pub(super) async fn create(
    _: RoomCreator,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<CreateRoom>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &req)?;
    let view = state.registry.create(body.into_inner().title).await?;
    Ok(HttpResponse::Created().json(view))
}

pub(super) async fn list(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "rooms": state.registry.views().await }))
}

pub(super) async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = extract::room_id(&path)?;
    Ok(HttpResponse::Ok().json(state.registry.view(&id).await?))
}

pub(super) async fn join(
    token: UserToken,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<UserBody>,
) -> Result<HttpResponse, ApiError> {
    let user = body.into_inner().user;
    token.check(&path, &user)?;
    presence(
        &state,
        &req,
        &path,
        Command::Join {
            user,
            via: Via::Http,
        },
    )
    .await
}

pub(super) async fn leave(
    token: UserToken,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<UserBody>,
) -> Result<HttpResponse, ApiError> {
    let user = body.into_inner().user;
    token.check(&path, &user)?;
    presence(
        &state,
        &req,
        &path,
        Command::Leave {
            user,
            via: Via::Http,
        },
    )
    .await
}

/// A join or leave over HTTP: answered with the room view.
async fn presence(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
    command: Command,
) -> Result<HttpResponse, ApiError> {
    let applied = mutate(state, req, id, command).await?;
    Ok(HttpResponse::Ok().json(applied.view))
}

pub(super) async fn vote(
    token: UserToken,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<VoteBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, user) = path.into_inner();
    let user = extract::user(&user)?;
    token.check(&id, &user)?;
    let command = Command::Vote {
        user,
        side: body.side,
    };
    Ok(tally(&mutate(&state, &req, &id, command).await?.view))
}

pub(super) async fn retract(
    token: UserToken,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, user) = path.into_inner();
    let user = extract::user(&user)?;
    token.check(&id, &user)?;
    let command = Command::Retract { user };
    Ok(tally(&mutate(&state, &req, &id, command).await?.view))
}

pub(super) async fn say(
    token: UserToken,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<SayBody>,
) -> Result<HttpResponse, ApiError> {
    token.check(&path, &body.user)?;
    let key = match req.headers().get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::bad_request(format!("{IDEMPOTENCY_KEY} must be printable ASCII"))
            })?;
            Some(
                IdempotencyKey::parse(text)
                    .map_err(|e| ApiError::bad_request(format!("{IDEMPOTENCY_KEY}: {e}")))?,
            )
        }
    };
    let SayBody { user, text } = body.into_inner();
    let command = Command::Say { user, text, key };
    let applied = mutate(&state, &req, &path, command).await?;
    Ok(HttpResponse::Created().json(json!({ "seq": applied.seq })))
}

pub(super) async fn messages(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ListingQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = extract::room_id(&path)?;
    let after = query.after.unwrap_or(0);
    let limit = query.limit.unwrap_or(DEFAULT_LISTING);
    if !(1..=MAX_LISTING).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_LISTING}"
        )));
    }
    let messages = state.registry.messages(&id, after, limit).await?;
    Ok(HttpResponse::Ok().json(json!({ "messages": messages })))
}

pub(super) async fn websocket(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<SocketQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    // A page that may not open sockets here learns nothing else about the request.
    origin::check_socket(&state, &req)?;
    // Then credentials: a refused token is a 401 whatever else the request holds.
    let claims = bearer::socket_token(&state, &req, query.token.as_deref())?;
    let id = extract::room_id(&path)?;
    let user = match (&query.user, &claims) {
        (Some(user), _) => extract::user(user)?,
        // Token mode: the token names the user.
        (None, Some(claims)) => claims.user.clone(),
        (None, None) => return Err(ApiError::bad_request("missing ?user=NAME").into()),
    };
    if let Some(claims) = &claims {
        bearer::check(claims, id.as_str(), &user)?;
    }
    // An upgrade costs what a mutation costs: a flood of sockets is a flood.
    let client = rate_limit(&state, &req)?;
    let room = state
        .registry
        .room_for_socket(&id)
        .await
        .map_err(ApiError::from)?;
    let opening = Opening {
        user,
        room_id: id,
        room,
        token_ttl: claims.map(|c| c.remaining()),
        client,
    };
    ws::session::start(
        &req,
        payload,
        opening,
        state.sessions.clone(),
        state.metrics.clone(),
    )
}
