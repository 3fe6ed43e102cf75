//! Admin endpoints (bearer token): close a room, engine stats.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{
    error::ApiError,
    extract::{self, Admin},
    AppState,
};

pub async fn close(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = extract::room_id(&path)?;
    match state.registry.close(&id).await? {
        Some(view) => Ok(HttpResponse::Ok().json(view)),
        None => Err(ApiError::unknown_room()),
    }
}

pub async fn stats(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    let journal = state.registry.deps().journal.status();
    HttpResponse::Ok().json(json!({
        "open_rooms": state.registry.open_rooms(),
        "connections": state.metrics.ws_connections.get(),
        "journal_lag": state.metrics.journal_pending.get(),
        "last_failover": journal.last_failover.as_ref().map(crate::time::format),
        "failovers": journal.failovers,
        "journal": journal,
        "store": state.registry.deps().store.backend(),
    }))
}
