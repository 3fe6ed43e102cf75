//! The node-to-node routes of a cluster (`/internal/cluster/...`), served only with
//! `cluster.enabled`: what another node asks of a room this node owns, and hand-offs. Every
//! call must carry `cluster.secret` (`X-Roomstate-Cluster-Secret`), checked before anything
//! else, the body included; a wrong or missing one is `401`. A call for a room this node does
//! not own is `421 Misdirected Request`: the caller reads the owner again and retries there. So
//! is a call whose room left this node while it ran (its actor stopped without closing: another
//! node took it over).
//! Bodies are validated exactly as at the public edge (`cluster::wire`).

use std::{
    future::{ready, Future, Ready},
    sync::Arc,
};

use actix_web::{dev::Payload, http::StatusCode, web, FromRequest, HttpRequest, HttpResponse};
use roomstate_core::{
    protocol::ErrorCode,
    room::{Command, RoomId, RoomView, Via},
};
use roomstate_journal::Epoch;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    extract::{self, Body},
    responses::{BadRequest, Misdirected, NotFound, TooLarge, Unauthorized, Unavailable},
    AppState,
};
use crate::{
    cluster::wire::{
        AdoptCall, AppliedAnswer, AttachCall, CommandCall, CreateCall, MessagesAnswer, RoomsAnswer,
        SyncCall, SECRET_HEADER,
    },
    error::ApiError,
    room::{
        failure::{RegistryFailure, RoomFailure},
        registry::Registry,
    },
};

/// Most messages one internal listing returns (a node asks for at most the public limit).
const MAX_LISTING: usize = 500;

/// A call from another node of the cluster: the secret matched.
pub(super) struct NodeCall;

impl FromRequest for NodeCall {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let secret = req
            .app_data::<web::Data<AppState>>()
            .and_then(|state| state.router.cluster().map(|c| c.secret().to_owned()));
        let Some(secret) = secret else {
            return ready(Err(not_clustered().into()));
        };
        let given = req
            .headers()
            .get(SECRET_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !secret.is_empty() && constant_time_eq(given, secret.as_bytes()) {
            ready(Ok(NodeCall))
        } else {
            ready(Err(ApiError::unauthorized(
                "node-to-node calls need the cluster's secret (X-Roomstate-Cluster-Secret)",
            )
            .into()))
        }
    }
}

/// What an engine outside a cluster answers these routes.
fn not_clustered() -> ApiError {
    ApiError::not_found("this engine is not in a cluster (cluster.enabled = false)")
}

/// Compares without stopping at the first difference, so the time taken says nothing about
/// how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// `421`: this node does not own the room (any more).
fn misdirected(id: &RoomId) -> HttpResponse {
    HttpResponse::build(StatusCode::MISDIRECTED_REQUEST).json(ApiError::new(
        ErrorCode::Unavailable,
        format!("room {id} is not owned by this node"),
    ))
}

/// The room's id, if this node owns it now, or closed it lately (its lease may still name this
/// node while its log is deleted: the registry answers the closed room from the store).
/// (The refusal is boxed: a response is large and this is the rare path.)
fn owned_here(state: &AppState, path: &str) -> Result<RoomId, Box<HttpResponse>> {
    let id = extract::room_id(path).map_err(|e| Box::new(HttpResponse::from_error(e)))?;
    let registry = state.router.registry();
    if registry.get(&id).is_some() || registry.closed_lately(&id) {
        Ok(id)
    } else {
        Err(Box::new(misdirected(&id)))
    }
}

/// Runs `call` on room `path` if this node owns it, and answers what it answers; `421` if the
/// room is not open here, or left this node while `call` ran.
async fn on_owned<F, C>(state: &AppState, path: &str, call: F) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(Arc<Registry>, RoomId) -> C,
    C: Future<Output = Result<HttpResponse, RegistryFailure>>,
{
    let id = match owned_here(state, path) {
        Ok(id) => id,
        Err(response) => return Ok(*response),
    };
    owner_answer(&id, call(state.router.registry().clone(), id.clone()).await)
}

/// What a call on room `id` answers the calling node: `421` for a room that stopped here
/// without closing (it moved; the caller reads its owner again), else the call's answer or
/// refusal.
fn owner_answer(
    id: &RoomId,
    answered: Result<HttpResponse, RegistryFailure>,
) -> Result<HttpResponse, ApiError> {
    match answered {
        Ok(response) => Ok(response),
        Err(RegistryFailure::Room(RoomFailure::Stopped)) => Ok(misdirected(id)),
        Err(failure) => Err(failure.into()),
    }
}

/// Open a room on this node.
#[utoipa::path(
    post,
    path = "/internal/cluster/rooms",
    operation_id = "cluster_create_room",
    tag = "cluster",
    request_body(content = inline(serde_json::Value), description = "`{\"title\": ..., \"id\": ...}` (`id` optional: the room's id, chosen by the calling node)"),
    security(("cluster_secret" = [])),
    responses(
        (status = 201, description = "The new room's view", body = RoomView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn create(
    _: NodeCall,
    state: web::Data<AppState>,
    body: Body<CreateCall>,
) -> Result<HttpResponse, ApiError> {
    let Some(cluster) = state.router.cluster() else {
        return Err(not_clustered());
    };
    let CreateCall { title, id } = body.into_inner();
    let id = id.unwrap_or_else(RoomId::generate);
    let view = state.router.create_here(cluster, id, title).await?;
    Ok(HttpResponse::Created().json(view))
}

/// The open rooms this node owns.
#[utoipa::path(
    get,
    path = "/internal/cluster/rooms",
    operation_id = "cluster_list_rooms",
    tag = "cluster",
    security(("cluster_secret" = [])),
    responses(
        (status = 200, description = "`{\"rooms\": [room view, ...]}`", body = inline(serde_json::Value)),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub(super) async fn list(_: NodeCall, state: web::Data<AppState>) -> HttpResponse {
    let rooms = state.router.registry().views().await;
    HttpResponse::Ok().json(RoomsAnswer { rooms })
}

/// A room this node owns.
#[utoipa::path(
    get,
    path = "/internal/cluster/rooms/{id}",
    operation_id = "cluster_get_room",
    tag = "cluster",
    params(("id" = RoomId, Path, description = "The room")),
    security(("cluster_secret" = [])),
    responses(
        (status = 200, description = "The room view", body = RoomView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 421, response = Misdirected),
    )
)]
pub(super) async fn get(
    _: NodeCall,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    on_owned(&state, &path, |registry, id| async move {
        Ok(HttpResponse::Ok().json(registry.view(&id).await?))
    })
    .await
}

/// Apply a command to a room this node owns (from a client of the calling node, over HTTP or
/// one of its sockets).
#[utoipa::path(
    post,
    path = "/internal/cluster/rooms/{id}/commands",
    operation_id = "cluster_command",
    tag = "cluster",
    params(("id" = RoomId, Path, description = "The room")),
    request_body(content = inline(serde_json::Value), description = "`{\"command\": {\"type\": ...}, \"socket\": {\"node\", \"session\"}?}`"),
    security(("cluster_secret" = [])),
    responses(
        (status = 200, description = "`{\"seq\", \"view\"}` once durable", body = inline(serde_json::Value)),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge),
        (status = 421, response = Misdirected),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn command(
    _: NodeCall,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Body<CommandCall>,
) -> Result<HttpResponse, ApiError> {
    let CommandCall { command, socket } = body.into_inner();
    let command = Command::from(command);
    on_owned(&state, &path, |registry, id| async move {
        let applied = match socket {
            Some(socket) => {
                registry
                    .remote_mutate(&id, socket.node, socket.session, command)
                    .await?
            }
            None => registry.mutate(&id, command, Via::Http).await?,
        };
        Ok(HttpResponse::Ok().json(AppliedAnswer {
            seq: applied.seq,
            view: applied.view,
        }))
    })
    .await
}

/// `?after=SEQ&limit=N`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Listing {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<usize>,
}

/// Messages of a room this node owns.
#[utoipa::path(
    get,
    path = "/internal/cluster/rooms/{id}/messages",
    operation_id = "cluster_messages",
    tag = "cluster",
    params(("id" = RoomId, Path, description = "The room"), Listing),
    security(("cluster_secret" = [])),
    responses(
        (status = 200, description = "`{\"messages\": [...]}`", body = inline(serde_json::Value)),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 421, response = Misdirected),
    )
)]
pub(super) async fn messages(
    _: NodeCall,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<Listing>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(MAX_LISTING).min(MAX_LISTING);
    on_owned(&state, &path, |registry, id| async move {
        let messages = registry.messages(&id, query.after, limit).await?;
        Ok(HttpResponse::Ok().json(MessagesAnswer { messages }))
    })
    .await
}

/// Close a room this node owns.
#[utoipa::path(
    post,
    path = "/internal/cluster/rooms/{id}/close",
    operation_id = "cluster_close_room",
    tag = "cluster",
    params(("id" = RoomId, Path, description = "The room")),
    security(("cluster_secret" = [])),
    responses(
        (status = 200, description = "The final view", body = RoomView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 421, response = Misdirected),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn close(
    _: NodeCall,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    on_owned(&state, &path, |registry, id| async move {
        Ok(HttpResponse::Ok().json(registry.close(&id).await?))
    })
    .await
}

/// A socket of the calling node opened for a room this node owns: its user joins.
#[utoipa::path(
    post,
    path = "/internal/cluster/rooms/{id}/sockets",
    operation_id = "cluster_attach_socket",
    tag = "cluster",
    params(("id" = RoomId, Path, description = "The room")),
    request_body(content = inline(serde_json::Value), description = "`{\"node\", \"session\", \"user\"}`"),
    security(("cluster_secret" = [])),
    responses(
        (status = 200, description = "`{\"seq\", \"view\"}` once the join is durable", body = inline(serde_json::Value)),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge),
        (status = 421, response = Misdirected),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn attach(
    _: NodeCall,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Body<AttachCall>,
) -> Result<HttpResponse, ApiError> {
    let AttachCall {
        node,
        session,
        user,
    } = body.into_inner();
    on_owned(&state, &path, |registry, id| async move {
        let applied = registry.attach_remote(&id, node, session, user).await?;
        Ok(HttpResponse::Ok().json(AppliedAnswer {
            seq: applied.seq,
            view: applied.view,
        }))
    })
    .await
}

/// A socket of the calling node closed.
#[utoipa::path(
    delete,
    path = "/internal/cluster/rooms/{id}/sockets/{node}/{session}",
    operation_id = "cluster_detach_socket",
    tag = "cluster",
    params(
        ("id" = RoomId, Path, description = "The room"),
        ("node" = String, Path, description = "The calling node"),
        ("session" = u64, Path, description = "The socket's session on that node"),
    ),
    security(("cluster_secret" = [])),
    responses(
        (status = 204, description = "Noted"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 421, response = Misdirected),
    )
)]
pub(super) async fn detach(
    _: NodeCall,
    state: web::Data<AppState>,
    path: web::Path<(String, String, u64)>,
) -> HttpResponse {
    let (id, node, session) = path.into_inner();
    let id = match owned_here(&state, &id) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    state.router.registry().detach_remote(&id, node, session);
    HttpResponse::NoContent().finish()
}

/// Every socket the calling node holds of a room this node owns.
#[utoipa::path(
    put,
    path = "/internal/cluster/rooms/{id}/sockets/{node}",
    operation_id = "cluster_sync_sockets",
    tag = "cluster",
    params(
        ("id" = RoomId, Path, description = "The room"),
        ("node" = String, Path, description = "The calling node"),
    ),
    request_body(content = inline(serde_json::Value), description = "`{\"sockets\": [{\"session\", \"user\"}, ...]}`"),
    security(("cluster_secret" = [])),
    responses(
        (status = 204, description = "Noted"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge),
        (status = 421, response = Misdirected),
    )
)]
pub(super) async fn sync(
    _: NodeCall,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Body<SyncCall>,
) -> Result<HttpResponse, ApiError> {
    let (id, node) = path.into_inner();
    let sockets = body
        .into_inner()
        .sockets
        .into_iter()
        .map(|s| (s.session, s.user))
        .collect();
    on_owned(&state, &id, |registry, id| async move {
        registry.sync_remote(&id, node, sockets)?;
        Ok(HttpResponse::NoContent().finish())
    })
    .await
}

/// Rooms handed to this node by one that is leaving: take them now.
#[utoipa::path(
    post,
    path = "/internal/cluster/adopt",
    operation_id = "cluster_adopt",
    tag = "cluster",
    request_body(content = inline(serde_json::Value), description = "`{\"rooms\": [{\"room\", \"epoch\"}, ...]}`"),
    security(("cluster_secret" = [])),
    responses(
        (status = 202, description = "Being taken over"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge),
    )
)]
pub(super) async fn adopt(
    _: NodeCall,
    state: web::Data<AppState>,
    body: Body<AdoptCall>,
) -> Result<HttpResponse, ApiError> {
    let Some(cluster) = state.router.cluster() else {
        return Err(not_clustered());
    };
    let rooms = body
        .into_inner()
        .rooms
        .into_iter()
        .map(|r| (r.room, Epoch(r.epoch)))
        .collect();
    cluster.adopt_soon(rooms);
    Ok(HttpResponse::Accepted().finish())
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError as _;
    use roomstate_core::room::RoomError;

    use super::*;

    #[test]
    fn a_room_that_left_during_the_call_is_misdirected_and_other_refusals_keep_their_code() {
        let id = RoomId::generate();
        let status = |answered| match owner_answer(&id, answered) {
            Ok(response) => response.status(),
            Err(error) => error.status_code(),
        };
        assert_eq!(
            status(Err(RoomFailure::Stopped.into())),
            StatusCode::MISDIRECTED_REQUEST
        );
        assert_eq!(
            status(Err(RoomFailure::Unavailable("journal down".into()).into())),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(Err(RoomFailure::Rule(RoomError::Closed).into())),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(Err(RegistryFailure::UnknownRoom)),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(Ok(HttpResponse::NoContent().finish())),
            StatusCode::NO_CONTENT
        );
    }
}
