//! `GET /openapi.json`: the OpenAPI 3.1 document of every route, generated from the code — the
//! handlers' `#[utoipa::path]` annotations, the request and response types (the core's behind
//! its `openapi` feature), the error responses (`responses.rs`), and the route table
//! (`routes.rs`) for the CORS preflights every public API path answers — and fitted to the
//! engine's settings (`document`). tests/all/openapi.rs checks that it lists exactly the routes
//! of the table and that every reference in it resolves; scripts/schemathesis fuzzes a live
//! engine from it.

use actix_web::{web, HttpResponse};
use roomstate_core::room::RoomId;
use utoipa::{
    openapi::{
        header::HeaderBuilder,
        path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn},
        response::ResponseBuilder,
        schema::{ObjectBuilder, Type},
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
        Ref, Required, Server,
    },
    IntoParams, Modify, OpenApi,
};

use super::{
    admin, bearer, internal, ops,
    responses::{
        BadRequest, Conflict, Forbidden, Internal, Misdirected, NotFound, RateLimited, RoomClosed,
        TooLarge, Unauthorized, Unavailable,
    },
    rooms,
    routes::{Kind, ROUTES},
    AppState,
};
use crate::error::ApiError;

/// The pattern a title or message text must match: at least one character that is not white space
/// (Unicode `White_Space`, what Rust's `str::trim` removes). Unanchored: "contains".
#[cfg(test)]
const NOT_BLANK: &str =
    "[^\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "roomstate",
        description = "Live debate chat rooms: the HTTP API of roomstate's engine. The client \
                       contract is docs/api.md in the repository. WebSocket frames: \
                       docs/schemas/client-frames.json and server-frames.json (JSON Schema \
                       2020-12).\n\n\
                       Every 4xx/5xx body is `{\"error\": CODE, \"message\": \"...\"}`; every 401 \
                       carries `WWW-Authenticate`, every 429 and 503 `Retry-After` (seconds). \
                       Unknown paths, and known paths with a method they do not have, are the \
                       JSON `404 not_found`. Every public API path answers CORS preflights \
                       (`OPTIONS`); `/admin` does not. With `http.internal_bind` set, `/metrics` \
                       and `/admin/*` are served only on that internal listener.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        ops::healthz,
        ops::readyz,
        ops::metrics,
        bearer::describe,
        serve,
        rooms::create,
        rooms::list,
        rooms::get,
        rooms::join,
        rooms::leave,
        rooms::vote,
        rooms::retract,
        rooms::say,
        rooms::messages,
        rooms::websocket,
        admin::close,
        admin::stats,
        admin::cluster,
        admin::owner,
        internal::create,
        internal::list,
        internal::get,
        internal::command,
        internal::messages,
        internal::close,
        internal::attach,
        internal::detach,
        internal::sync,
        internal::adopt,
        index_page,
        room_page,
        asset,
    ),
    components(
        schemas(ApiError),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            RoomClosed,
            TooLarge,
            RateLimited,
            Misdirected,
            Internal,
            Unavailable,
        )
    ),
    modifiers(&SecuritySchemes, &Preflights),
    tags(
        (name = "rooms", description = "Rooms, presence, votes, messages, the WebSocket"),
        (name = "auth", description = "User tokens (docs/auth.md)"),
        (name = "ops", description = "Health, readiness, metrics, this document"),
        (name = "admin", description = "Admin token (`admin.token`); not served with \
                                         `admin.enabled = false`"),
        (name = "cluster", description = "Node-to-node calls of a cluster of engines \
                                           (`cluster.enabled`; header \
                                           `X-Roomstate-Cluster-Secret: <cluster.secret>`). \
                                           Not for clients: an engine outside a cluster answers \
                                           them 404"),
        (name = "cors", description = "CORS preflights of the public API paths"),
        (name = "web", description = "The web page (docs/web.md)"),
    )
)]
struct ApiDoc;

/// What in this engine's settings changes what it answers, and so the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    /// `auth.mode = "token"`: user calls prove who they are; a socket's `user` may be left out.
    pub(crate) token_mode: bool,
    /// The admin routes are served (`admin.enabled`).
    pub(crate) admin: bool,
    /// `http.internal_bind` is set: the base URL of that listener, which alone serves
    /// `/metrics` and `/admin`.
    pub(crate) internal: Option<String>,
}

/// The document of an engine with these settings, as served (JSON): the routes it does not
/// serve left out, and each route described as it answers there.
pub(crate) fn document(scope: &Scope) -> web::Bytes {
    let mut doc = ApiDoc::openapi();
    if !scope.admin {
        for route in ROUTES.iter().filter(|r| r.kind == Kind::Admin) {
            doc.paths.paths.remove(route.path);
        }
        if let Some(tags) = &mut doc.tags {
            tags.retain(|t| t.name != "admin");
        }
    }
    if !scope.token_mode {
        // Open mode: nothing else names the socket's user.
        let socket = doc.paths.paths.get_mut("/rooms/{id}/ws");
        let params = socket.and_then(|item| item.get.as_mut()?.parameters.as_mut());
        for param in params.into_iter().flatten() {
            if param.name == "user" {
                param.required = Required::True;
            }
        }
    }
    if let Some(url) = &scope.internal {
        for route in ROUTES.iter().filter(|r| r.kind.internal()) {
            if let Some(item) = doc.paths.paths.get_mut(route.path) {
                item.servers = Some(vec![Server::builder()
                    .url(url)
                    .description(Some(
                        "The internal listener (http.internal_bind): the public one does not \
                         serve this path",
                    ))
                    .build()]);
            }
        }
    }
    let json = doc
        .to_json()
        .unwrap_or_else(|e| panic!("the OpenAPI document does not serialize: {e}"));
    web::Bytes::from(json)
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    operation_id = "openapi",
    responses((
        status = 200,
        description = "The OpenAPI 3.1 document of every HTTP route, generated from the code",
        body = Object,
        content_type = "application/json"
    ))
)]
pub(super) async fn serve(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}

/// The bearer schemes: the admin token and user tokens (JWTs, token mode only).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <admin.token>`: every `/admin` call; also \
                         `POST /rooms` with `auth.create_rooms = \"admin\"`. Missing or wrong: \
                         `401 unauthorized`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "user_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "Token mode (`auth.mode = \"token\"`) only: a JWT whose `sub` is the \
                         user (docs/auth.md). Missing, expired or badly signed: `401`; for \
                         another user or room: `403`. Ignored in open mode.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cluster_secret",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Roomstate-Cluster-Secret",
                "`cluster.secret`, on every node-to-node call. Missing or wrong: `401`.",
            ))),
        );
    }
}

/// `OPTIONS` on every path whose routes answer CORS preflights (the route table says which).
struct Preflights;

impl Modify for Preflights {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut done = Vec::new();
        for route in ROUTES.iter().filter(|r| r.kind.preflight()) {
            if done.contains(&route.path) {
                continue;
            }
            done.push(route.path);
            let id = format!(
                "preflight_{}",
                route
                    .path
                    .trim_matches('/')
                    .replace(['/', '.'], "_")
                    .replace(['{', '}'], "")
            );
            let header_param = |name: &str, description: &str| {
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(description))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build()
            };
            let string = |description: &str| {
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some(description))
                    .build()
            };
            let mut path_params = Vec::new();
            for name in route
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            {
                path_params.push(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build(),
                );
            }
            let allowed = ResponseBuilder::new()
                .description("The origin may make the request")
                .header(
                    "Access-Control-Allow-Origin",
                    string("The request's `Origin`"),
                )
                .header(
                    "Access-Control-Allow-Methods",
                    string("`GET, POST, PUT, DELETE`"),
                )
                .header(
                    "Access-Control-Allow-Headers",
                    string("`Authorization, Content-Type, Idempotency-Key`"),
                )
                .header("Access-Control-Max-Age", string("`600` (seconds)"))
                .header("Vary", string("`Origin`"))
                .build();
            let operation = OperationBuilder::new()
                .tag("cors")
                .operation_id(Some(id))
                .summary(Some("CORS preflight"))
                .description(Some(
                    "A preflight (`Origin` and `Access-Control-Request-Method` both given) from \
                     an origin `http.allowed_origins` allows (or the engine's own) is `204`, \
                     from any other `403`; an `OPTIONS` that is no preflight is `404`.",
                ))
                .parameters(Some(path_params))
                .parameter(header_param("Origin", "The page's origin"))
                .parameter(header_param(
                    "Access-Control-Request-Method",
                    "The method of the request to come",
                ))
                .response("204", allowed)
                .response("403", Ref::from_response_name("Forbidden"))
                .response("404", Ref::from_response_name("NotFound"))
                .build();
            let item = openapi
                .paths
                .paths
                .entry(route.path.to_owned())
                .or_default();
            item.merge_operations(utoipa::openapi::PathItem::new(
                HttpMethod::Options,
                operation,
            ));
        }
    }
}

/// The request headers of the web page's routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Only its schema is used: the handlers are `crate::web`'s.
struct Conditional {
    /// An `ETag` this file had: `304` if it is still current.
    #[param(rename = "If-None-Match")]
    if_none_match: Option<String>,
}

// The web page's routes are registered by `crate::web`; these stubs only carry their
// descriptions.

/// The web page: the open rooms, and a form to create one.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "index_page",
    tag = "web",
    params(Conditional),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = 304, description = "Not modified: the client's copy is current"),
    )
)]
#[allow(dead_code)]
fn index_page() {}

/// The web page of a live room.
#[utoipa::path(
    get,
    path = "/r/{id}",
    operation_id = "room_page",
    tag = "web",
    description = "The page of any well-formed room id (it asks the API about the room); an id \
                   that cannot be one is the JSON 404.",
    params(
        ("id" = RoomId, Path, description = "The room"),
        Conditional,
    ),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = 304, description = "Not modified: the client's copy is current"),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
    )
)]
#[allow(dead_code)]
fn room_page() {}

/// A script or style of the web page.
#[utoipa::path(
    get,
    path = "/assets/{name}",
    operation_id = "asset",
    tag = "web",
    description = "`app.css`, `i18n.js`, `roomstate.js`, `common.js`, `index.js`, `room.js`; \
                   with `?v=` equal to the current version it may be cached for a year.",
    params(
        ("name" = String, Path, description = "The file"),
        ("v" = Option<String>, Query, description = "The file's version (its content hash)"),
        Conditional,
    ),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"),
            (String = "text/css"),
        )),
        (status = 304, description = "Not modified: the client's copy is current"),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
    )
)]
#[allow(dead_code)]
fn asset() {}

#[cfg(test)]
mod tests {
    use roomstate_core::room::{
        id::MAX_NAME_LEN,
        state::{MAX_TEXT_CHARS, MAX_TITLE_CHARS},
    };

    use super::*;

    fn parsed(scope: &Scope) -> serde_json::Value {
        serde_json::from_slice(&document(scope)).unwrap()
    }

    /// Every route served, with an internal listener.
    fn full() -> Scope {
        Scope {
            token_mode: true,
            admin: true,
            internal: None,
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_table_route() {
        let doc = parsed(&full());
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.method.to_lowercase()];
            assert!(op.is_object(), "{route:?} is in the document");
        }
    }

    #[test]
    fn the_document_follows_the_settings() {
        let socket_user = |doc: &serde_json::Value| {
            let params = doc["paths"]["/rooms/{id}/ws"]["get"]["parameters"].clone();
            let params: Vec<serde_json::Value> = serde_json::from_value(params).unwrap();
            params.into_iter().find(|p| p["name"] == "user").unwrap()["required"].clone()
        };
        let doc = parsed(&full());
        assert_eq!(socket_user(&doc), false);
        assert!(doc["paths"]["/metrics"].get("servers").is_none());
        let doc = parsed(&Scope {
            token_mode: false,
            admin: false,
            internal: Some("http://127.0.0.1:9090".into()),
        });
        assert_eq!(
            socket_user(&doc),
            true,
            "open mode names the user in the query"
        );
        for route in ROUTES {
            let listed = doc["paths"][route.path][route.method.to_lowercase()].is_object();
            assert_eq!(listed, route.kind != Kind::Admin, "{route:?}");
        }
        assert_eq!(
            doc["paths"]["/metrics"]["servers"][0]["url"],
            "http://127.0.0.1:9090"
        );
        assert!(doc["paths"]["/healthz"].get("servers").is_none());
    }

    #[test]
    fn limits_in_the_schemas_are_the_engine_s() {
        let doc = parsed(&full());
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["CreateRoom"]["properties"]["title"]["maxLength"],
            MAX_TITLE_CHARS
        );
        assert_eq!(
            schemas["SayBody"]["properties"]["text"]["maxLength"],
            MAX_TEXT_CHARS
        );
        assert_eq!(schemas["UserName"]["maxLength"], MAX_NAME_LEN);
        assert_eq!(
            schemas["CreateRoom"]["properties"]["title"]["pattern"],
            NOT_BLANK
        );
        assert_eq!(
            schemas["SayBody"]["properties"]["text"]["pattern"],
            NOT_BLANK
        );
        let limit = doc["paths"]["/rooms/{id}/messages"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(limit["schema"]["maximum"], 500);
    }

    #[test]
    fn not_blank_is_what_the_core_calls_blank() {
        // Every character Rust's `trim` removes is in the pattern's class, and no other below
        // U+3001 (the class's last member).
        let class = NOT_BLANK
            .strip_prefix("[^")
            .and_then(|c| c.strip_suffix(']'))
            .unwrap();
        let mut listed = Vec::new();
        let mut rest = class;
        let unescape = |s: &str| -> (char, usize) {
            match s.strip_prefix('\\') {
                Some(r) if r.starts_with('u') => (
                    char::from_u32(u32::from_str_radix(&r[1..5], 16).unwrap()).unwrap(),
                    6,
                ),
                Some(r) => (
                    match &r[..1] {
                        "t" => '\t',
                        "n" => '\n',
                        "f" => '\u{c}',
                        "r" => '\r',
                        other => panic!("escape {other}"),
                    },
                    2,
                ),
                None => (s.chars().next().unwrap(), 1),
            }
        };
        while !rest.is_empty() {
            let (first, used) = unescape(rest);
            rest = &rest[used..];
            if let Some(range) = rest.strip_prefix('-') {
                let (last, used) = unescape(range);
                rest = &range[used..];
                listed.extend(first..=last);
            } else {
                listed.push(first);
            }
        }
        for c in '\0'..='\u{3001}' {
            assert_eq!(
                listed.contains(&c),
                c.is_whitespace(),
                "{c:?} (U+{:04X})",
                c as u32
            );
        }
    }
}
