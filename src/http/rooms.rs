//! Public room endpoints: create and list rooms, join and leave, votes, messages, the socket.

use actix_web::{web, HttpRequest, HttpResponse};
use roomstate_core::{
    protocol::ErrorCode,
    room::{ChatMessage, Command, IdempotencyKey, RoomId, RoomView, Side, UserName, Via},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    bearer::{self, RoomCreator, UserToken},
    extract::{self, rate_limit, Body},
    origin,
    responses::{
        BadRequest, Conflict, Forbidden, Internal, NotFound, RateLimited, RoomClosed, TooLarge,
        Unauthorized, Unavailable,
    },
    AppState,
};
use crate::{
    error::ApiError,
    room::messages::Applied,
    ws::{self, open_sockets::Full, session::Opening},
};

/// The request header that makes `POST /messages` safe to repeat.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Most messages one listing returns.
const MAX_LISTING: usize = 500;
/// Messages a listing returns when `limit` is not given.
const DEFAULT_LISTING: usize = 100;

/// `POST /rooms`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateRoom {
    /// 1 to 200 characters (Unicode scalar values), not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        // `openapi::NOT_BLANK` (checked there): the macro takes only a literal.
        pattern = "[^\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    title: String,
}

/// `POST /rooms/{id}/join` and `/leave`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserBody {
    user: UserName,
}

/// `PUT /rooms/{id}/votes/{user}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct VoteBody {
    side: Side,
}

/// `POST /rooms/{id}/messages`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SayBody {
    user: UserName,
    /// 1 to 2000 characters (Unicode scalar values), not blank.
    #[schema(
        min_length = 1,
        max_length = 2000,
        // `openapi::NOT_BLANK` (checked there): the macro takes only a literal.
        pattern = "[^\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    text: String,
}

/// Unknown query parameters (cache busters and the like) are ignored.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListingQuery {
    /// Only messages with a higher seq (default 0: from the first); up to 2^64 - 1.
    #[param(minimum = 0, maximum = 18446744073709551615_usize, format = "uint64")]
    after: Option<u64>,
    /// At most this many messages (default 100); outside 1 to 500 is `400 bad_request`.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SocketQuery {
    /// The user the socket joins as; required in open mode, and if given in token mode it must
    /// be the token's `sub`.
    #[param(value_type = Option<UserName>)]
    user: Option<String>,
    /// The user token (token mode), since a browser cannot set headers on a WebSocket; it wins
    /// over an `Authorization` header.
    token: Option<String>,
}

/// The headers of `POST /rooms/{id}/messages` (read in `say`; only the schema uses this).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(super) struct SayHeaders {
    /// Makes the request safe to repeat: a repeat of the key by the same user in the same room
    /// within 10 minutes answers the first message's seq and adds nothing.
    #[param(rename = "Idempotency-Key", value_type = IdempotencyKey, inline, required = false)]
    idempotency_key: Option<String>,
}

/// A room's vote count after a vote or a retraction.
#[derive(Serialize, ToSchema)]
pub(super) struct Tally {
    /// The room's seq after the request (unchanged when it changed nothing).
    seq: u64,
    pro: u32,
    con: u32,
}

/// A posted message's seq.
#[derive(Serialize, ToSchema)]
pub(super) struct Posted {
    /// The message's seq (the first one's, for a repeated `Idempotency-Key`).
    seq: u64,
}

/// The open rooms.
#[derive(Serialize, ToSchema)]
pub(super) struct RoomList {
    rooms: Vec<RoomView>,
}

/// A page of a room's chat messages, oldest first.
#[derive(Serialize, ToSchema)]
pub(super) struct MessageList {
    messages: Vec<ChatMessage>,
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
    Ok(state.router.mutate(&id, command, Via::Http).await?)
}

fn tally(view: &RoomView) -> HttpResponse {
    HttpResponse::Ok().json(Tally {
        seq: view.counters.seq,
        pro: view.counters.pro,
        con: view.counters.con,
    })
}

/// Open a room.
#[utoipa::path(
    post,
    path = "/rooms",
    operation_id = "create_room",
    tag = "rooms",
    description = "Creates a room; `auth.create_rooms` says who may: anyone, a user token \
                   (`users`) or the admin token (`admin`).",
    request_body = CreateRoom,
    security((), ("user_token" = []), ("admin_token" = [])),
    responses(
        (status = 201, description = "The new room", body = RoomView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = TooLarge),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn create(
    _: RoomCreator,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body<CreateRoom>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &req)?;
    let view = state.router.create(body.into_inner().title).await?;
    Ok(HttpResponse::Created().json(view))
}

/// The open rooms.
#[utoipa::path(
    get,
    path = "/rooms",
    operation_id = "list_rooms",
    tag = "rooms",
    responses((status = 200, description = "Every open room", body = RoomList))
)]
pub(super) async fn list(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(RoomList {
        rooms: state.router.views().await,
    })
}

/// One room, open or closed.
#[utoipa::path(
    get,
    path = "/rooms/{id}",
    operation_id = "get_room",
    tag = "rooms",
    params(("id" = RoomId, Path, description = "The room")),
    responses(
        (
            status = 200,
            description = "The room view (a closed room's from the SQL store)",
            body = RoomView
        ),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = extract::room_id(&path)?;
    Ok(HttpResponse::Ok().json(state.router.view(&id).await?))
}

/// Join a room over HTTP.
#[utoipa::path(
    post,
    path = "/rooms/{id}/join",
    operation_id = "join",
    tag = "rooms",
    description = "Makes the user present; an HTTP join lapses after `presence.http_ttl_s` without \
                   a request of that user in that room. Joining when present takes no new seq.",
    params(("id" = RoomId, Path, description = "The room")),
    request_body = UserBody,
    security((), ("user_token" = [])),
    responses(
        (status = 200, description = "The room view", body = RoomView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = RoomClosed),
        (status = 413, response = TooLarge),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn join(
    token: UserToken,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body<UserBody>,
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

/// Leave a room over HTTP.
#[utoipa::path(
    post,
    path = "/rooms/{id}/leave",
    operation_id = "leave",
    tag = "rooms",
    description = "Ends the user's HTTP presence (a user with an open socket stays present); \
                   leaving when not present is 200 and takes no new seq.",
    params(("id" = RoomId, Path, description = "The room")),
    request_body = UserBody,
    security((), ("user_token" = [])),
    responses(
        (status = 200, description = "The room view", body = RoomView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = RoomClosed),
        (status = 413, response = TooLarge),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn leave(
    token: UserToken,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body<UserBody>,
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

/// Vote, or move a vote.
#[utoipa::path(
    put,
    path = "/rooms/{id}/votes/{user}",
    operation_id = "vote",
    tag = "rooms",
    description = "The user must be present. The same side again changes nothing (no new seq).",
    params(
        ("id" = RoomId, Path, description = "The room"),
        ("user" = UserName, Path, description = "The voter"),
    ),
    request_body = VoteBody,
    security((), ("user_token" = [])),
    responses(
        (status = 200, description = "The tally after the vote", body = Tally),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn vote(
    token: UserToken,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: Body<VoteBody>,
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

/// Take a vote back.
#[utoipa::path(
    delete,
    path = "/rooms/{id}/votes/{user}",
    operation_id = "retract_vote",
    tag = "rooms",
    description = "The user must be present. Without a vote: 200, no new seq.",
    params(
        ("id" = RoomId, Path, description = "The room"),
        ("user" = UserName, Path, description = "The voter"),
    ),
    security((), ("user_token" = [])),
    responses(
        (status = 200, description = "The tally after the retraction", body = Tally),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
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

/// Post a chat message.
#[utoipa::path(
    post,
    path = "/rooms/{id}/messages",
    operation_id = "post_message",
    tag = "rooms",
    description = "The user must be present, unless the request repeats an `Idempotency-Key`: a \
                   repeat by the same user in the same room within 10 minutes answers the first \
                   message's seq and adds nothing.",
    params(
        ("id" = RoomId, Path, description = "The room"),
        SayHeaders,
    ),
    request_body = SayBody,
    security((), ("user_token" = [])),
    responses(
        (status = 201, description = "The message is durable", body = Posted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn say(
    token: UserToken,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body<SayBody>,
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
    Ok(HttpResponse::Created().json(Posted { seq: applied.seq }))
}

/// A room's chat messages, oldest first.
#[utoipa::path(
    get,
    path = "/rooms/{id}/messages",
    operation_id = "list_messages",
    tag = "rooms",
    description = "Open or closed rooms; every message of the room, paged by `after` and `limit`.",
    params(("id" = RoomId, Path, description = "The room"), ListingQuery),
    responses(
        (
            status = 200,
            description = "The messages with seq > `after`, at most `limit`",
            body = MessageList
        ),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
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
    let messages = state.router.messages(&id, after, limit).await?;
    Ok(HttpResponse::Ok().json(MessageList { messages }))
}

/// Open a WebSocket to a room.
#[utoipa::path(
    get,
    path = "/rooms/{id}/ws",
    operation_id = "open_socket",
    tag = "rooms",
    description = "Upgrades to a WebSocket (`Connection: Upgrade`, `Upgrade: websocket`); opening \
                   it joins the user, closing their last socket leaves. The frames are described \
                   by the JSON Schemas docs/schemas/client-frames.json and server-frames.json. \
                   Every refusal comes before the upgrade: a page of a foreign `Origin` (403), \
                   credentials (401), the request (400: not an upgrade, no `user`), the token's \
                   user or rooms (403), the rate (429), the room (404, 409).",
    params(("id" = RoomId, Path, description = "The room"), SocketQuery),
    security((), ("user_token" = [])),
    responses(
        (status = 101, description = "Switching protocols: the socket is open"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = RoomClosed),
        (status = 429, response = RateLimited),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn websocket(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    // A page that may not open sockets here learns nothing else about the request.
    origin::check_socket(&state, &req)?;
    // The query is read here, not by an extractor, which would answer a malformed one (a key
    // given twice) before the origin and the credentials.
    let query = web::Query::<SocketQuery>::from_query(req.query_string());
    // Then credentials: a refused token is a 401 whatever else the request holds (with a
    // malformed query, only the `Authorization` header's: its `token` cannot be read).
    let token = query.as_ref().ok().and_then(|q| q.token.as_deref());
    let claims = bearer::socket_token(&state, &req, token)?;
    // A path id that cannot be a room comes before a malformed query, as docs/api.md orders them.
    let id = extract::room_id(&path)?;
    let query = query.map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
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
    // A place among the open sockets, given back if the upgrade is refused below.
    let counted = state.sockets.open_for(client).map_err(|full| match full {
        Full::Client(most) => ApiError::rate_limited(format!(
            "this client holds its maximum of {most} open sockets"
        )),
        Full::Engine(most) => ApiError::new(
            ErrorCode::Unavailable,
            format!("this engine holds its maximum of {most} open sockets"),
        ),
    })?;
    let room = state
        .router
        .socket_link(&id)
        .await
        .map_err(ApiError::from)?;
    let opening = Opening {
        user,
        room_id: id,
        room,
        token_ttl: claims.map(|c| c.remaining()),
        client,
    };
    Ok(ws::session::accept(
        &req,
        opening,
        state.sessions.clone(),
        state.metrics.clone(),
        counted,
    )?)
}
