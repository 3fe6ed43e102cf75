//! The HTTP API of docs/api.md: the router, built from the route table (`routes.rs`, every route in
//! one screen), the shared application state, and the extractor settings that turn bad input
//! into API errors. Every public API route also answers CORS preflights (`OPTIONS`,
//! `origin.rs`); `/admin` does not. `GET /openapi.json` describes it all (`openapi.rs`), and
//! every request passes one middleware (`layer.rs`: timing and counting by route pattern,
//! refusals by code, CORS headers).

mod admin;
mod bearer;
mod extract;
mod internal;
mod layer;
mod measure;
mod openapi;
mod ops;
mod origin;
mod responses;
mod rooms;
mod routes;
mod server;
mod watchdog;

pub(crate) use openapi::{document as openapi_document, Scope as DocumentScope};
pub(crate) use server::{serve, Bind};

use std::sync::Arc;

use actix_web::{http::Method, web};
use routes::{Endpoint, Kind, Route, ROUTES};

use crate::{
    auth::Policy,
    cluster::router::Router,
    edge::EdgePolicy,
    error::no_route,
    metrics::Metrics,
    ratelimit::AddressLimiter,
    room::registry::Registry,
    ws::{open_sockets::OpenSockets, session::SessionSettings},
};

/// What every handler can reach (`web::Data<AppState>`).
pub(crate) struct AppState {
    /// The rooms open on this node (stats, readiness).
    pub(crate) registry: Arc<Registry>,
    /// Rooms wherever they are: this node's, or (in a cluster) another node's.
    pub(crate) router: Router,
    pub(crate) metrics: Metrics,
    /// `None` when the admin routes are off.
    pub(crate) admin_token: Option<String>,
    /// Open mode, or the user tokens' key; who may create rooms.
    pub(crate) auth: Policy,
    /// Per client address: HTTP mutations and WebSocket upgrades.
    pub(crate) http_limiter: AddressLimiter,
    pub(crate) sessions: SessionSettings,
    /// Every socket's connection until it ends (shutdown waits for them).
    pub(crate) sockets: OpenSockets,
    pub(crate) max_body_bytes: usize,
    /// Whose `X-Forwarded-For` is believed; which pages may use the engine from a browser.
    pub(crate) edge: EdgePolicy,
    /// `GET /openapi.json`, made for these settings (`openapi::document`).
    pub(crate) openapi: web::Bytes,
    /// This engine's node id and where it is reached (`/admin/cluster` of a single engine).
    pub(crate) node_id: String,
    pub(crate) node_url: String,
}

/// Which routes a listener serves (`http.internal_bind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    /// The only listener: every route.
    All,
    /// The public listener next to an internal one: everything but `/metrics` and `/admin`.
    Public,
    /// The internal listener: only `/metrics` and `/admin`.
    Internal,
}

impl Listener {
    fn serves(self, kind: Kind) -> bool {
        match self {
            Listener::All => true,
            Listener::Public => !kind.internal(),
            Listener::Internal => kind.internal(),
        }
    }
}

/// Registers every route of the table that `listener` serves (admin routes only with an admin
/// token), then the web page's, then the JSON 404 for everything else.
pub(crate) fn config(cfg: &mut web::ServiceConfig, state: web::Data<AppState>, listener: Listener) {
    let admin_enabled = state.admin_token.is_some();
    let max_body = state.max_body_bytes;
    cfg.app_data(state)
        .app_data(extract::json_config(max_body))
        .app_data(extract::path_config())
        .app_data(extract::query_config())
        .app_data(web::PayloadConfig::new(max_body));
    let served = |kind: Kind| listener.serves(kind) && (kind != Kind::Admin || admin_enabled);
    let mut paths: Vec<&'static str> = Vec::new();
    for route in ROUTES {
        if route.kind != Kind::Page && served(route.kind) && !paths.contains(&route.path) {
            paths.push(route.path);
        }
    }
    // The scopes first: they carry the traffic, and no other path falls under their prefixes,
    // so the order changes only how many patterns a request is tried against.
    for prefix in SCOPES {
        let inside: Vec<_> = paths
            .iter()
            .filter_map(|path| Some((*path, under(prefix, path)?)))
            .collect();
        if !inside.is_empty() {
            cfg.service(
                inside
                    .into_iter()
                    .fold(web::scope(prefix), |scope, (path, rest)| {
                        scope.service(route_resource(path, rest))
                    }),
            );
        }
    }
    for path in paths {
        if SCOPES.iter().all(|prefix| under(prefix, path).is_none()) {
            cfg.service(route_resource(path, path));
        }
    }
    if served(Kind::Page) {
        cfg.configure(crate::web::config);
    }
    cfg.default_service(web::to(no_route));
}

/// Prefixes whose routes are served from one scope each. actix tries a request against every
/// resource in turn, and matches a path with dynamic segments by running a regex:
/// `PUT /rooms/{id}/votes/{user}` was tried against ten resources, four of them by regex. In a
/// scope the room's segment is matched once and the rest of the path mostly by plain comparison
/// (measured: docs/benchmarks.md, "The router"). The pattern a request matched is still the
/// table's (`match_pattern` joins the scope's and the resource's).
const SCOPES: [&str; 2] = ["/rooms/{id}", "/internal/cluster/rooms/{id}"];

/// What follows `prefix` in `path`, when `path` is `prefix` or lies under it.
fn under(prefix: &str, path: &'static str) -> Option<&'static str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The resource serving the table's `path`, registered as `at` (the path itself, or what follows
/// its scope's prefix): every method the table gives it, and preflights where its kind has them.
fn route_resource(path: &'static str, at: &'static str) -> actix_web::Resource {
    let mut resource = resource(at);
    // Node-to-node lists (a node's sockets in a room, a leaving node's rooms) grow with the
    // cluster, not with what one client may send: `limits.max_body_bytes` would refuse the
    // sockets of a room watched by some thousand clients on one node.
    let lists = |r: &&Route| matches!(r.endpoint, Endpoint::NodeSync | Endpoint::NodeAdopt);
    if ROUTES.iter().filter(|r| r.path == path).any(|r| lists(&r)) {
        resource = resource.app_data(extract::json_config(extract::NODE_LIST_BODY_LIMIT));
    }
    if ROUTES.iter().any(|r| r.path == path && r.kind.preflight()) {
        resource = resource.route(web::method(Method::OPTIONS).to(origin::preflight));
    }
    for row in ROUTES.iter().filter(|r| r.path == path) {
        resource = resource.route(handler(row.endpoint, web::method(method(row.method))));
    }
    resource
}

/// A route table method as actix's.
fn method(name: &'static str) -> Method {
    Method::from_bytes(name.as_bytes())
        .unwrap_or_else(|_| panic!("route table method {name:?} is not an HTTP method"))
}

/// `route` (method guard set) answered by `endpoint`'s handler.
fn handler(endpoint: Endpoint, route: actix_web::Route) -> actix_web::Route {
    match endpoint {
        Endpoint::Healthz => route.to(ops::healthz),
        Endpoint::Readyz => route.to(ops::readyz),
        Endpoint::Metrics => route.to(ops::metrics),
        Endpoint::Auth => route.to(bearer::describe),
        Endpoint::OpenApi => route.to(openapi::serve),
        Endpoint::CreateRoom => route.to(rooms::create),
        Endpoint::ListRooms => route.to(rooms::list),
        Endpoint::GetRoom => route.to(rooms::get),
        Endpoint::Join => route.to(rooms::join),
        Endpoint::Leave => route.to(rooms::leave),
        Endpoint::Vote => route.to(rooms::vote),
        Endpoint::Retract => route.to(rooms::retract),
        Endpoint::Say => route.to(rooms::say),
        Endpoint::Messages => route.to(rooms::messages),
        Endpoint::Socket => route.to(rooms::websocket),
        Endpoint::CloseRoom => route.to(admin::close),
        Endpoint::Stats => route.to(admin::stats),
        Endpoint::ClusterInfo => route.to(admin::cluster),
        Endpoint::RoomOwner => route.to(admin::owner),
        Endpoint::NodeCreate => route.to(internal::create),
        Endpoint::NodeRooms => route.to(internal::list),
        Endpoint::NodeRoom => route.to(internal::get),
        Endpoint::NodeCommand => route.to(internal::command),
        Endpoint::NodeMessages => route.to(internal::messages),
        Endpoint::NodeClose => route.to(internal::close),
        Endpoint::NodeAttach => route.to(internal::attach),
        Endpoint::NodeDetach => route.to(internal::detach),
        Endpoint::NodeSync => route.to(internal::sync),
        Endpoint::NodeAdopt => route.to(internal::adopt),
        // Registered by `crate::web::config`; never asked for (`config` skips page rows).
        Endpoint::Page => route.to(no_route),
    }
}

/// A resource whose unmatched methods answer like an unknown route.
fn resource(path: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(no_route))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_is_well_formed() {
        for (i, route) in ROUTES.iter().enumerate() {
            method(route.method);
            assert!(route.path.starts_with('/'), "{route:?}");
            for other in &ROUTES[..i] {
                assert!(
                    (other.method, other.path) != (route.method, route.path),
                    "{route:?} twice"
                );
                if other.path == route.path {
                    assert_eq!(other.kind, route.kind, "one kind per path: {route:?}");
                }
            }
        }
    }

    #[test]
    fn listeners_split_the_routes() {
        for route in ROUTES {
            assert!(Listener::All.serves(route.kind));
            assert_ne!(
                Listener::Public.serves(route.kind),
                Listener::Internal.serves(route.kind),
                "{route:?} is served by exactly one of two listeners"
            );
            let internal = route.path == "/metrics" || route.path.starts_with("/admin/");
            assert_eq!(Listener::Internal.serves(route.kind), internal, "{route:?}");
        }
    }
}
