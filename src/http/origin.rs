//! `Origin` at the HTTP edge (`http.allowed_origins`, `edge::AllowedOrigins`): the web page a
//! browser request comes from.
//!
//! - A WebSocket upgrade from a page that is not allowed is `403 forbidden` before it upgrades.
//!   Browsers let any page open a socket to any host (no CORS for WebSockets) with the user's
//!   cookies and network position; `Origin` is the only thing that tells the server, so it is
//!   checked first, before anything else of the request.
//! - CORS: a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) of a public
//!   route is answered `204` with the allowed methods and headers for an allowed origin, `403`
//!   for any other; responses to allowed origins carry `Access-Control-Allow-Origin` (the origin
//!   itself) and `Vary: Origin`. Never for `/admin`, whose routes have no preflight either: an
//!   admin tool is no web page of somebody else's.
//!
//! A request without `Origin` is no browser's (curl, the test suite, native clients) and is
//! never refused for it.

use actix_web::{
    dev::ServiceRequest,
    http::header::{self, HeaderMap, HeaderValue},
    web, HttpRequest, HttpResponse,
};

use super::AppState;
use crate::error::{no_route, ApiError};

/// The methods of the public routes.
const ALLOW_METHODS: &str = "GET, POST, PUT, DELETE";
/// The request headers a client of the API sets.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Idempotency-Key";
/// Response headers a page may read besides the simple ones: when to retry, why a token failed.
const EXPOSE_HEADERS: &str = "Retry-After, WWW-Authenticate";
/// How long a browser may reuse a preflight's answer.
const MAX_AGE_S: &str = "600";

/// Where `/admin` starts: never any CORS there.
const ADMIN: &str = "/admin";

/// Whether `headers` say they come from a page `state` allows: `None` without `Origin`.
fn allowed_origin<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<(&'a HeaderValue, bool)> {
    let origin = headers.get(header::ORIGIN)?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let allowed = origin
        .to_str()
        .is_ok_and(|o| state.edge.origins.allows(o, host));
    Some((origin, allowed))
}

/// 403 for a WebSocket upgrade from a page that may not open sockets here.
pub(super) fn check_socket(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    match allowed_origin(state, req.headers()) {
        None | Some((_, true)) => Ok(()),
        Some((origin, false)) => {
            tracing::debug!(origin = ?origin, "WebSocket upgrade from a foreign origin refused");
            Err(ApiError::forbidden(format!(
                "WebSockets from the origin {origin:?} are not allowed (http.allowed_origins)"
            )))
        }
    }
}

fn is_admin(path: &str) -> bool {
    path == ADMIN || path.starts_with("/admin/")
}

/// `OPTIONS` of a public route: a CORS preflight. Anything else sent with `OPTIONS` is no route.
pub(super) async fn preflight(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let asks = req
        .headers()
        .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    match allowed_origin(&state, req.headers()) {
        Some((origin, true)) if asks => HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE_S))
            .insert_header((header::VARY, "Origin"))
            .finish(),
        Some((origin, false)) if asks => {
            actix_web::ResponseError::error_response(&ApiError::forbidden(format!(
                "requests from the origin {origin:?} are not allowed (http.allowed_origins)"
            )))
        }
        _ => no_route(req).await,
    }
}

/// The origin an answer names in its CORS headers: an allowed page's, outside `/admin` (unknown
/// paths included: a page should be able to read the JSON 404). `None` for anyone else.
pub(super) fn answer_origin(state: &AppState, req: &ServiceRequest) -> Option<HeaderValue> {
    // The path as routed (percent-decoded): `/%61dmin/stats` is served by `/admin/stats`.
    if is_admin(req.match_info().as_str()) {
        return None;
    }
    match allowed_origin(state, req.headers()) {
        Some((origin, true)) => Some(origin.clone()),
        _ => None,
    }
}

/// `Access-Control-Allow-Origin` (and what goes with it) on an answer to an allowed origin,
/// unless the handler set it already (a preflight).
pub(super) fn mark(headers: &mut HeaderMap, origin: HeaderValue) {
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_paths() {
        assert!(is_admin("/admin") && is_admin("/admin/stats"));
        assert!(!is_admin("/administrators") && !is_admin("/rooms"));
    }
}
