//! Operations endpoints: liveness, readiness (journal and store both take writes), metrics.

use actix_web::{http::header, web, HttpResponse};
use roomstate_core::protocol::ErrorCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::error::UNAVAILABLE_RETRY_S;

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    /// Always `ok`.
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
}

/// Whether a part takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum Probe {
    Up,
    Down,
}

impl Probe {
    fn of(down: &Option<String>) -> Self {
        if down.is_some() {
            Probe::Down
        } else {
            Probe::Up
        }
    }
}

/// `GET /readyz` when both parts take writes.
#[derive(Serialize, ToSchema)]
pub(super) struct Ready {
    /// Always `up` here.
    journal: Probe,
    /// Always `up` here.
    store: Probe,
    /// With `cluster.enabled`: whether this node is in the cluster (always `up` here).
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<Probe>,
}

/// `GET /readyz` when a part cannot take writes: the error body plus which part is down.
#[derive(Serialize, ToSchema)]
pub(super) struct NotReady {
    /// Always `unavailable`.
    error: ErrorCode,
    /// Which part is down and why.
    message: String,
    journal: Probe,
    store: Probe,
    /// With `cluster.enabled`: whether this node is in the cluster (its heartbeats reach Redis
    /// within `cluster.lease_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<Probe>,
}

/// Liveness.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "ops",
    responses((status = 200, description = "The process serves", body = Health))
)]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness: whether the durability log and the SQL store both take writes.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Both take writes", body = Ready),
        (
            status = 503, description = "One of them (or both) cannot take writes", body = NotReady,
            headers(("Retry-After" = u32, description = "Seconds to wait before asking again"))
        ),
    )
)]
pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let ready = state.registry.readiness().await;
    let (journal, store) = (ready.journal, ready.store);
    let cluster = state.router.cluster().map(|c| c.not_ready());
    if journal.is_none() && store.is_none() && cluster.as_ref().is_none_or(Option::is_none) {
        return HttpResponse::Ok().json(Ready {
            journal: Probe::Up,
            store: Probe::Up,
            cluster: cluster.map(|_| Probe::Up),
        });
    }
    let out_of_cluster = cluster.clone().flatten();
    let message = [
        ("journal", &journal),
        ("store", &store),
        ("cluster", &out_of_cluster),
    ]
    .iter()
    .filter_map(|(name, down)| down.as_ref().map(|why| format!("{name} down: {why}")))
    .collect::<Vec<_>>()
    .join("; ");
    // Like every 503 (error.rs): when a load balancer or a client may ask again.
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, UNAVAILABLE_RETRY_S))
        .json(NotReady {
            error: ErrorCode::Unavailable,
            message,
            journal: Probe::of(&journal),
            store: Probe::of(&store),
            cluster: cluster.as_ref().map(Probe::of),
        })
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "ops",
    description = "Served only on `http.internal_bind` when that is set.",
    responses(
        (
            status = 200,
            description = "Prometheus text format 0.0.4",
            body = String,
            content_type = "text/plain"
        ),
    )
)]
pub(super) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Some(cluster) = state.router.cluster() {
        cluster.refresh_gauges();
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
