//! Admin endpoints (bearer token): close a room, engine stats.

use actix_web::{web, HttpResponse};
use roomstate_core::{
    room::{RoomId, RoomView},
    time,
};
use roomstate_journal::JournalStatus;
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    bearer::Admin,
    extract,
    responses::{Internal, NotFound, Unauthorized, Unavailable},
    AppState,
};
use crate::error::ApiError;

/// What `GET /admin/stats` answers.
#[derive(Serialize, ToSchema)]
pub(super) struct Stats {
    /// Rooms open in this engine.
    open_rooms: usize,
    /// Open WebSockets.
    connections: i64,
    /// Events applied in memory and not yet durable.
    journal_lag: i64,
    /// When the journal last switched to a new primary (RFC 3339), or null.
    #[schema(value_type = Option<String>, format = DateTime)]
    last_failover: Option<String>,
    /// Times the journal switched to a new primary.
    failovers: u64,
    #[schema(value_type = JournalInfo)]
    journal: JournalStatus,
    /// The SQL store's backend (`sqlite` or `mysql`).
    store: &'static str,
}

/// The durability log (`roomstate_journal::JournalStatus`, as it serializes).
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used: it describes `JournalStatus`.
pub(super) struct JournalInfo {
    /// `local`, `redis` or `memory`.
    kind: String,
    /// Where it writes: a file path or the current primary's address (credentials redacted).
    target: String,
    /// Times the journal switched to a new primary.
    failovers: u64,
    /// When it last did (RFC 3339), or null.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    last_failover: Option<String>,
}

/// Close a room.
#[utoipa::path(
    post,
    path = "/admin/rooms/{id}/close",
    operation_id = "close_room",
    tag = "admin",
    description = "No more mutations are accepted; once every acknowledged mutation is in the \
                   final record (written to the SQL store in one transaction), every socket gets \
                   `closed` and the answer is the final view. Closing a closed room answers the \
                   same final view again.",
    params(("id" = RoomId, Path, description = "The room")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The final room view (`status: closed`)", body = RoomView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn close(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = extract::room_id(&path)?;
    Ok(HttpResponse::Ok().json(state.router.close(&id).await?))
}

/// Engine stats.
#[utoipa::path(
    get,
    path = "/admin/stats",
    operation_id = "stats",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Counts of this engine", body = Stats),
        (status = 401, response = Unauthorized),
    )
)]
pub(super) async fn stats(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    let journal = state.registry.journal_status();
    HttpResponse::Ok().json(Stats {
        open_rooms: state.registry.open_rooms(),
        connections: state.metrics.ws_connections.get(),
        journal_lag: state.metrics.journal_pending.get(),
        last_failover: journal.last_failover.as_ref().map(time::format),
        failovers: journal.failovers,
        journal,
        store: state.registry.store_backend(),
    })
}

/// `GET /admin/rooms/{id}/owner`.
#[derive(Serialize, ToSchema)]
pub(super) struct RoomOwner {
    room: RoomId,
    /// The node that owns the room (`cluster.node_id`; a single engine's own id).
    node: String,
    /// The lease epoch it holds the room under (grows with every change of owner).
    epoch: u64,
}

/// `GET /admin/cluster`.
#[derive(Serialize, ToSchema)]
pub(super) struct ClusterInfo {
    /// This node's id.
    #[serde(rename = "self")]
    me: String,
    nodes: Vec<NodeInfo>,
}

/// One node of the cluster.
#[derive(Serialize, ToSchema)]
pub(super) struct NodeInfo {
    id: String,
    advertise_url: String,
    /// Its heartbeats keep reaching Redis (as this node sees it).
    alive: bool,
    /// Rooms it owned at its last heartbeat.
    rooms: u64,
}

/// The nodes of the cluster.
#[utoipa::path(
    get,
    path = "/admin/cluster",
    operation_id = "cluster",
    tag = "admin",
    description = "Every node this one knows, with whether it is alive and how many rooms it \
                   owns. An engine outside a cluster is a cluster of one.",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The nodes", body = ClusterInfo),
        (status = 401, response = Unauthorized),
    )
)]
pub(super) async fn cluster(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    let info = match state.router.cluster() {
        Some(cluster) => {
            let view = cluster.view();
            ClusterInfo {
                me: view.me,
                nodes: view
                    .nodes
                    .into_iter()
                    .map(|n| NodeInfo {
                        id: n.id,
                        advertise_url: n.advertise_url,
                        alive: n.alive,
                        rooms: n.rooms,
                    })
                    .collect(),
            }
        }
        None => ClusterInfo {
            me: state.node_id.clone(),
            nodes: vec![NodeInfo {
                id: state.node_id.clone(),
                advertise_url: state.node_url.clone(),
                alive: true,
                rooms: state.registry.open_rooms() as u64,
            }],
        },
    };
    HttpResponse::Ok().json(info)
}

/// Who owns an open room.
#[utoipa::path(
    get,
    path = "/admin/rooms/{id}/owner",
    operation_id = "room_owner",
    tag = "admin",
    params(("id" = RoomId, Path, description = "The room")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The owner and its lease epoch", body = RoomOwner),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn owner(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = extract::room_id(&path)?;
    let owner = match state.router.cluster() {
        Some(cluster) => cluster
            .owner_now(&id)
            .await?
            .filter(|owner| !owner.node.is_empty())
            .map(|owner| (owner.node, owner.epoch.0)),
        None => state
            .registry
            .epoch_of(&id)
            .await
            .map(|epoch| (state.node_id.clone(), epoch.0)),
    };
    match owner {
        Some((node, epoch)) => Ok(HttpResponse::Ok().json(RoomOwner {
            room: id,
            node,
            epoch,
        })),
        None => Err(ApiError::not_found(
            "no open room with this id has an owner (unknown, closed, or between owners)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use utoipa::PartialSchema;

    use super::*;

    /// The property names of a schema object.
    fn properties<T: PartialSchema>() -> BTreeSet<String> {
        let schema = serde_json::to_value(T::schema()).unwrap();
        schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn the_journal_schema_names_what_the_journal_status_holds() {
        use roomstate_journal::{memory::MemoryJournal, Journal};
        let status = MemoryJournal::new().status();
        let value = serde_json::to_value(&status).unwrap();
        let keys: BTreeSet<String> = value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, properties::<JournalInfo>());
    }
}
