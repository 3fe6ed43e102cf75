//! The HTTP API of API.md: every route in one screen, the shared application state, and the
//! extractor settings that turn bad input into API errors. Every public API route also answers
//! CORS preflights (`OPTIONS`, `origin.rs`); `/admin` does not.

mod admin;
mod bearer;
mod extract;
mod ops;
mod origin;
mod rooms;

pub(crate) use origin::allow_origin;

use std::sync::Arc;

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};
use roomstate_core::protocol::ErrorCode;

use crate::{
    auth::Policy, edge::EdgePolicy, error::no_route, metrics::Metrics, ratelimit::AddressLimiter,
    room::registry::Registry, ws::session::SessionSettings,
};

/// What every handler can reach (`web::Data<AppState>`).
pub(crate) struct AppState {
    pub(crate) registry: Arc<Registry>,
    pub(crate) metrics: Metrics,
    /// `None` when the admin routes are off.
    pub(crate) admin_token: Option<String>,
    /// Open mode, or the user tokens' key; who may create rooms.
    pub(crate) auth: Policy,
    /// Per client address: HTTP mutations and WebSocket upgrades.
    pub(crate) http_limiter: AddressLimiter,
    pub(crate) sessions: SessionSettings,
    pub(crate) max_body_bytes: usize,
    /// Whose `X-Forwarded-For` is believed; which pages may use the engine from a browser.
    pub(crate) edge: EdgePolicy,
}

/// Registers every route.
pub(crate) fn config(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    let admin_enabled = state.admin_token.is_some();
    let max_body = state.max_body_bytes;
    cfg.app_data(state)
        .app_data(extract::json_config(max_body))
        .app_data(extract::path_config())
        .app_data(extract::query_config())
        .app_data(web::PayloadConfig::new(max_body))
        .service(public("/healthz").route(web::get().to(ops::healthz)))
        .service(public("/readyz").route(web::get().to(ops::readyz)))
        .service(public("/metrics").route(web::get().to(ops::metrics)))
        .service(public("/auth").route(web::get().to(bearer::describe)))
        .service(
            public("/rooms")
                .route(web::post().to(rooms::create))
                .route(web::get().to(rooms::list)),
        )
        .service(public("/rooms/{id}").route(web::get().to(rooms::get)))
        .service(public("/rooms/{id}/join").route(web::post().to(rooms::join)))
        .service(public("/rooms/{id}/leave").route(web::post().to(rooms::leave)))
        .service(
            public("/rooms/{id}/votes/{user}")
                .route(web::put().to(rooms::vote))
                .route(web::delete().to(rooms::retract)),
        )
        .service(
            public("/rooms/{id}/messages")
                .route(web::post().to(rooms::say))
                .route(web::get().to(rooms::messages)),
        )
        // No preflight: browsers open WebSockets without CORS (the upgrade checks `Origin`).
        .service(resource("/rooms/{id}/ws").route(web::get().to(rooms::websocket)));
    if admin_enabled {
        cfg.service(resource("/admin/rooms/{id}/close").route(web::post().to(admin::close)))
            .service(resource("/admin/stats").route(web::get().to(admin::stats)));
    }
    cfg.configure(crate::web::config)
        .default_service(web::to(no_route));
}

/// Counts every HTTP error answer in `roomstate_refusals_total` by its API code (sockets count
/// their `error` frames themselves), so each refusal is counted once, where the client gets it.
pub(crate) async fn count_refusals(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let response = next.call(req).await?;
    if let (Some(metrics), Some(code)) =
        (metrics, response.response().extensions().get::<ErrorCode>())
    {
        metrics.refused(code.as_str());
    }
    Ok(response)
}

/// A resource whose unmatched methods answer like an unknown route.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(no_route))
}

/// A public API resource: it also answers CORS preflights.
fn public(path: &str) -> actix_web::Resource {
    resource(path).route(web::method(actix_web::http::Method::OPTIONS).to(origin::preflight))
}
