//! Operations endpoints: liveness, readiness (journal and store both take writes), metrics.

use actix_web::{http::header, web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::error::UNAVAILABLE_RETRY_S;

pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let ready = state.registry.readiness().await;
    let (journal, store) = (ready.journal, ready.store);
    let word = |down: &Option<String>| if down.is_some() { "down" } else { "up" };
    if journal.is_none() && store.is_none() {
        return HttpResponse::Ok().json(json!({"journal": "up", "store": "up"}));
    }
    let message = [("journal", &journal), ("store", &store)]
        .iter()
        .filter_map(|(name, down)| down.as_ref().map(|why| format!("{name} down: {why}")))
        .collect::<Vec<_>>()
        .join("; ");
    // Like every 503 (error.rs): when a load balancer or a client may ask again.
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, UNAVAILABLE_RETRY_S))
        .json(json!({
            "error": "unavailable",
            "message": message,
            "journal": word(&journal),
            "store": word(&store),
        }))
}

pub(super) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
