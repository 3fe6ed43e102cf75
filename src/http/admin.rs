//! Admin endpoints (bearer token): close a room, engine stats.

use actix_web::{web, HttpResponse};
use roomstate_core::time;
use serde_json::json;

use super::{bearer::Admin, extract, AppState};
use crate::error::ApiError;

pub(super) async fn close(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = extract::room_id(&path)?;
    Ok(HttpResponse::Ok().json(state.registry.close(&id).await?))
}

pub(super) async fn stats(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    let journal = state.registry.journal_status();
    HttpResponse::Ok().json(json!({
        "open_rooms": state.registry.open_rooms(),
        "connections": state.metrics.ws_connections.get(),
        "journal_lag": state.metrics.journal_pending.get(),
        "last_failover": journal.last_failover.as_ref().map(time::format),
        "failovers": journal.failovers,
        "journal": journal,
        "store": state.registry.store_backend(),
    }))
}
