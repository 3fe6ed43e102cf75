//! Operations endpoints: liveness, readiness (journal and store both take writes), metrics.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

/// How long a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let deps = state.registry.deps();
    let journal = tokio::time::timeout(PROBE_TIMEOUT, deps.journal.check());
    let store = tokio::time::timeout(PROBE_TIMEOUT, deps.store.check());
    let (journal, store) = futures_util::future::join(journal, store).await;
    let journal = match journal {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer within 2 s".to_owned()),
    };
    let store = match store {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer within 2 s".to_owned()),
    };
    let word = |down: &Option<String>| if down.is_some() { "down" } else { "up" };
    if journal.is_none() && store.is_none() {
        return HttpResponse::Ok().json(json!({"journal": "up", "store": "up"}));
    }
    let message = [("journal", &journal), ("store", &store)]
        .iter()
        .filter_map(|(name, down)| down.as_ref().map(|why| format!("{name} down: {why}")))
        .collect::<Vec<_>>()
        .join("; ");
    HttpResponse::ServiceUnavailable().json(json!({
        "error": "unavailable",
        "message": message,
        "journal": word(&journal),
        "store": word(&store),
    }))
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
