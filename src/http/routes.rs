//! The route table: every method and path the engine serves, in one list. The router is built
//! from it (`super::config`: one resource per path, the paths under a room's prefix gathered in
//! one scope, one route per row, each row's handler by an exhaustive match on its `Endpoint`), and tests/all/openapi.rs reads this very file to check
//! that `GET /openapi.json` describes every row and nothing else. A route that is not a row here
//! is not served, so the table and the router cannot disagree.
//!
//! Plain data with no imports, so the test can include the file as it is.

/// What a row serves: which handler, and so how it is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Healthz,
    Readyz,
    Metrics,
    Auth,
    OpenApi,
    CreateRoom,
    ListRooms,
    GetRoom,
    Join,
    Leave,
    Vote,
    Retract,
    Say,
    Messages,
    Socket,
    CloseRoom,
    Stats,
    ClusterInfo,
    RoomOwner,
    /// Node-to-node calls of a cluster (`internal.rs`).
    NodeCreate,
    NodeRooms,
    NodeRoom,
    NodeCommand,
    NodeMessages,
    NodeClose,
    NodeAttach,
    NodeDetach,
    NodeSync,
    NodeAdopt,
    /// The web page and its files, registered by `crate::web::config` (docs/web.md).
    Page,
}

/// How a route is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A public API route; its path also answers CORS preflights (`OPTIONS`).
    Api,
    /// The WebSocket upgrade: public, without preflight (browsers open sockets without CORS;
    /// the upgrade checks `Origin` itself).
    Socket,
    /// An operations route (`/metrics`) that answers preflights like an API route but is served
    /// only on the internal listener when `http.internal_bind` is set.
    Internal,
    /// `/admin/*`: the admin token; not served with `admin.enabled = false`; only on the
    /// internal listener when `http.internal_bind` is set.
    Admin,
    /// The web page (HTML, scripts, styles).
    Page,
    /// A node-to-node call of a cluster (`cluster.secret`): on the listener other nodes reach
    /// (`cluster.advertise_url`, `http.bind` by default), without preflight (no browser calls it).
    Node,
}

impl Kind {
    /// Whether the path answers CORS preflights.
    pub fn preflight(self) -> bool {
        matches!(self, Kind::Api | Kind::Internal)
    }

    /// Whether the route moves to the internal listener when there is one.
    pub fn internal(self) -> bool {
        matches!(self, Kind::Internal | Kind::Admin)
    }
}

/// One method on one path.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// Upper case, as on the wire.
    pub method: &'static str,
    /// The pattern, with `{name}` for a path segment.
    pub path: &'static str,
    pub endpoint: Endpoint,
    pub kind: Kind,
}

const fn row(method: &'static str, path: &'static str, endpoint: Endpoint, kind: Kind) -> Route {
    Route {
        method,
        path,
        endpoint,
        kind,
    }
}

/// Every route (rows of one path side by side). The router tries them in this order, but for
/// the paths under `super::SCOPES`, which it tries first.
pub const ROUTES: &[Route] = &[
    row("GET", "/healthz", Endpoint::Healthz, Kind::Api),
    row("GET", "/readyz", Endpoint::Readyz, Kind::Api),
    row("GET", "/metrics", Endpoint::Metrics, Kind::Internal),
    row("GET", "/auth", Endpoint::Auth, Kind::Api),
    row("GET", "/openapi.json", Endpoint::OpenApi, Kind::Api),
    row("POST", "/rooms", Endpoint::CreateRoom, Kind::Api),
    row("GET", "/rooms", Endpoint::ListRooms, Kind::Api),
    row("GET", "/rooms/{id}", Endpoint::GetRoom, Kind::Api),
    row("POST", "/rooms/{id}/join", Endpoint::Join, Kind::Api),
    row("POST", "/rooms/{id}/leave", Endpoint::Leave, Kind::Api),
    row("PUT", "/rooms/{id}/votes/{user}", Endpoint::Vote, Kind::Api),
    row(
        "DELETE",
        "/rooms/{id}/votes/{user}",
        Endpoint::Retract,
        Kind::Api,
    ),
    row("POST", "/rooms/{id}/messages", Endpoint::Say, Kind::Api),
    row("GET", "/rooms/{id}/messages", Endpoint::Messages, Kind::Api),
    row("GET", "/rooms/{id}/ws", Endpoint::Socket, Kind::Socket),
    row(
        "POST",
        "/admin/rooms/{id}/close",
        Endpoint::CloseRoom,
        Kind::Admin,
    ),
    row("GET", "/admin/stats", Endpoint::Stats, Kind::Admin),
    row("GET", "/admin/cluster", Endpoint::ClusterInfo, Kind::Admin),
    row(
        "GET",
        "/admin/rooms/{id}/owner",
        Endpoint::RoomOwner,
        Kind::Admin,
    ),
    row(
        "POST",
        "/internal/cluster/rooms",
        Endpoint::NodeCreate,
        Kind::Node,
    ),
    row(
        "GET",
        "/internal/cluster/rooms",
        Endpoint::NodeRooms,
        Kind::Node,
    ),
    row(
        "GET",
        "/internal/cluster/rooms/{id}",
        Endpoint::NodeRoom,
        Kind::Node,
    ),
    row(
        "POST",
        "/internal/cluster/rooms/{id}/commands",
        Endpoint::NodeCommand,
        Kind::Node,
    ),
    row(
        "GET",
        "/internal/cluster/rooms/{id}/messages",
        Endpoint::NodeMessages,
        Kind::Node,
    ),
    row(
        "POST",
        "/internal/cluster/rooms/{id}/close",
        Endpoint::NodeClose,
        Kind::Node,
    ),
    row(
        "POST",
        "/internal/cluster/rooms/{id}/sockets",
        Endpoint::NodeAttach,
        Kind::Node,
    ),
    row(
        "DELETE",
        "/internal/cluster/rooms/{id}/sockets/{node}/{session}",
        Endpoint::NodeDetach,
        Kind::Node,
    ),
    row(
        "PUT",
        "/internal/cluster/rooms/{id}/sockets/{node}",
        Endpoint::NodeSync,
        Kind::Node,
    ),
    row(
        "POST",
        "/internal/cluster/adopt",
        Endpoint::NodeAdopt,
        Kind::Node,
    ),
    row("GET", "/", Endpoint::Page, Kind::Page),
    row("GET", "/r/{id}", Endpoint::Page, Kind::Page),
    row("GET", "/assets/{name}", Endpoint::Page, Kind::Page),
];
