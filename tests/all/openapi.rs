//! The contract in machine-readable form: `GET /openapi.json` is valid OpenAPI 3.1 whose
//! references all resolve and whose operations are exactly the router's routes (the route table
//! `src/http/routes.rs`, which this file includes as it is, and from which the router is built);
//! no route is registered outside that table; the WebSocket frames' JSON Schemas in
//! docs/schemas/ are what the code generates; and the operations side of the HTTP edge — request
//! metrics labelled by route pattern, and `http.internal_bind`, the listener that alone serves
//! `/metrics` and `/admin`.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use awc::Client;
use roomstate_testkit::engine::{DropPolicy, EngineProcess};
use serde_json::Value;

use crate::support::app::{self, TOKEN};

/// The route table the engine's router is built from (plain data, no imports).
#[path = "../../src/http/routes.rs"]
#[allow(dead_code)]
mod routes;

use routes::{Kind, ROUTES};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `(METHOD, path)` the router serves, preflights included (an engine with admin routes).
fn table_operations() -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for route in ROUTES {
        ops.insert((route.method.to_owned(), route.path.to_owned()));
        if route.kind.preflight() {
            ops.insert(("OPTIONS".to_owned(), route.path.to_owned()));
        }
    }
    ops
}

/// Every `(METHOD, path)` the document describes.
fn document_operations(doc: &Value) -> BTreeSet<(String, String)> {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (key, _) in item.as_object().expect("path item") {
            if METHODS.contains(&key.as_str()) {
                ops.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// Every `$ref` in `value`, with where it is.
fn refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    if let Some(target) = v.as_str() {
                        out.push((at.clone(), target));
                    }
                }
                refs(v, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A concrete path for a pattern: `{id}` an unknown but well-formed room, `{user}` a name,
/// `{name}` an asset.
fn concrete(pattern: &str) -> String {
    pattern
        .replace("{id}", "r_probe")
        .replace("{user}", "alice")
        .replace("{name}", "app.css")
}

#[actix_rt::test]
async fn the_document_is_openapi_3_1_and_describes_exactly_the_routes() {
    let app = app::start();
    let client = Client::default();
    let mut resp = client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body = resp.body().limit(16 << 20).await.unwrap();
    let doc: Value = serde_json::from_slice(&body).expect("the document is JSON");

    let version = doc["openapi"].as_str().expect("openapi is a string");
    assert!(version.starts_with("3.1."), "OpenAPI 3.1: {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // Every reference resolves inside the document.
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(
        found.len() > 50,
        "the document uses references: {}",
        found.len()
    );
    let broken: Vec<_> = found
        .iter()
        .filter(|(_, target)| {
            target
                .strip_prefix('#')
                .and_then(|pointer| doc.pointer(pointer))
                .is_none()
        })
        .collect();
    assert!(broken.is_empty(), "unresolved $refs: {broken:?}");

    // Exactly the router's routes, both ways.
    let documented = document_operations(&doc);
    let table = table_operations();
    let missing: Vec<_> = table.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes the document lacks: {missing:?}; operations no route serves: {extra:?}"
    );

    // Operation ids are unique; every operation answers something documented, and every error
    // response is the error body.
    let mut ids = BTreeSet::new();
    for (method, path) in &documented {
        let op = &doc["paths"][path][method.to_lowercase()];
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: id"));
        assert!(ids.insert(id.to_owned()), "operationId {id} twice");
        let responses = op["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{method} {path}");
        for (status, response) in responses {
            let code: u16 = status.parse().unwrap_or_else(|_| panic!("{status}"));
            assert!((100..600).contains(&code), "{method} {path}: {status}");
            if code >= 400 {
                let response = match response["$ref"].as_str() {
                    Some(target) => doc.pointer(&target[1..]).unwrap(),
                    None => response,
                };
                let schema = &response["content"]["application/json"]["schema"];
                let text = schema.to_string();
                assert!(
                    text.contains("#/components/schemas/Error")
                        || text.contains("#/components/schemas/NotReady"),
                    "{method} {path} {status}: the error body: {schema}"
                );
            }
        }
    }
    // The error codes are the core's.
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    for code in [
        "bad_request",
        "unauthorized",
        "forbidden",
        "not_found",
        "not_joined",
        "room_closed",
        "too_large",
        "rate_limited",
        "unavailable",
        "internal",
    ] {
        assert!(
            codes.as_array().unwrap().contains(&Value::from(code)),
            "{code}"
        );
    }
    assert!(doc["components"]["securitySchemes"]["admin_token"].is_object());
    for (method, path) in [("post", "/admin/rooms/{id}/close"), ("get", "/admin/stats")] {
        assert_eq!(
            doc["paths"][path][method]["security"][0]["admin_token"],
            serde_json::json!([]),
            "{path}"
        );
    }
}

/// Each route of the table is really served: none answers the router's own "no route" 404.
#[actix_rt::test]
async fn every_route_of_the_table_is_served() {
    let app = app::start();
    let client = Client::default();
    for (method, path) in table_operations() {
        let url = app.url(&concrete(&path));
        let mut req = client
            .request(
                awc::http::Method::from_bytes(method.as_bytes()).unwrap(),
                url,
            )
            .insert_header(("Authorization", format!("Bearer {TOKEN}")));
        if method == "OPTIONS" {
            // A preflight from the engine's own page.
            let host = app.base.trim_start_matches("http://").to_owned();
            req = req
                .insert_header(("Origin", app.base.clone()))
                .insert_header(("Host", host))
                .insert_header(("Access-Control-Request-Method", "GET"));
        }
        let mut resp = req.send().await.unwrap();
        let body = resp.body().limit(1 << 20).await.unwrap();
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let message = json["message"].as_str().unwrap_or("");
        assert!(
            !message.starts_with("no route for"),
            "{method} {path} is in the table but not served: {} {json}",
            resp.status()
        );
    }
    // The probe tells: a method no route has is "no route".
    let (status, body) = app.request("PATCH", "/rooms", None, None).await;
    assert_eq!(status, 404);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("no route for"));
}

/// The route table is the only way a route gets in: no file of the engine registers a path
/// itself, but the web page's module, whose paths are the table's `Page` rows (and the router,
/// which serves the table's rows under a few of their prefixes as scopes).
#[test]
fn no_route_is_registered_outside_the_table() {
    let mut stack = vec![root().join("src")];
    let mut literal_paths = BTreeSet::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "tests") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let rel = path.strip_prefix(root()).unwrap().to_owned();
            for marker in [
                "web::scope(",
                ".route(\"",
                "#[get(",
                "#[post(",
                "#[put(",
                "#[delete(",
                "#[route(",
                "Resource::new(",
            ] {
                // The router groups the table's own rows under scopes (src/http/mod.rs `SCOPES`).
                if marker == "web::scope(" && rel == Path::new("src/http/mod.rs") {
                    continue;
                }
                assert!(
                    !source.contains(marker),
                    "{}: registers a route with `{marker}`; add a row to src/http/routes.rs",
                    rel.display()
                );
            }
            for (at, _) in source.match_indices("web::resource(\"") {
                let rest = &source[at + "web::resource(\"".len()..];
                let literal = &rest[..rest.find('"').unwrap()];
                assert_eq!(
                    rel,
                    Path::new("src/web/mod.rs"),
                    "{}: registers {literal:?} outside the route table",
                    rel.display()
                );
                literal_paths.insert(literal.to_owned());
            }
        }
    }
    let pages: BTreeSet<String> = ROUTES
        .iter()
        .filter(|r| r.kind == Kind::Page)
        .map(|r| r.path.to_owned())
        .collect();
    assert_eq!(
        literal_paths, pages,
        "the web page's routes (src/web/mod.rs) are the table's Page rows"
    );
}

/// docs/schemas/*.json are what the core's frame types generate. To update them after a change
/// of the frames: `ROOMSTATE_WRITE_SCHEMAS=1 cargo nextest run -E 'test(frame_schemas)'`.
#[test]
fn websocket_frame_schemas_are_the_committed_files() {
    let write = std::env::var_os("ROOMSTATE_WRITE_SCHEMAS").is_some();
    let dir = root().join("docs/schemas");
    let mut stale = Vec::new();
    for (name, schema) in roomstate_core::protocol::frames::json_schemas() {
        let path = dir.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
        // Each frame kind is one branch, told apart by its `type`.
        let kinds: BTreeSet<&str> = schema["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: oneOf"))
            .iter()
            .map(|branch| branch["properties"]["type"]["const"].as_str().unwrap())
            .collect();
        let want: BTreeSet<&str> = match name {
            "client-frames" => ["vote", "retract", "say"].into(),
            "server-frames" => ["state", "message", "ack", "error", "closed"].into(),
            other => panic!("unknown schema {other}"),
        };
        assert_eq!(kinds, want, "{name}");
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what the code generates; regenerate them with \
         `ROOMSTATE_WRITE_SCHEMAS=1 cargo nextest run -E 'test(frame_schemas)'` and commit them"
    );
}

/// The line the engine prints for its internal listener (`src/app.rs`).
const INTERNAL_LINE: &str = "roomstate internal listener (/metrics, /admin) on ";

/// How long the engine may take to start.
const START: Duration = Duration::from_secs(60);

#[actix_rt::test]
async fn an_internal_listener_alone_serves_metrics_and_admin() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        (
            "ROOMSTATE__DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("ROOMSTATE__ADMIN__TOKEN", TOKEN.to_owned()),
        ("ROOMSTATE__HTTP__INTERNAL_BIND", "127.0.0.1:0".to_owned()),
        ("ROOMSTATE__HTTP__WORKERS", "2".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let engine = EngineProcess::spawn(
        Path::new(app::ENGINE),
        &env,
        &dir.path().join("engine.log"),
        START,
        DropPolicy::Kill,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let public = engine.base.clone();
    let line = engine
        .stdout
        .recv_timeout(START)
        .unwrap_or_else(|e| panic!("no line after the listening line: {e}"));
    let internal = line
        .strip_prefix(INTERNAL_LINE)
        .unwrap_or_else(|| panic!("the second line names the internal listener: {line:?}"))
        .to_owned();
    assert_ne!(public, internal);

    let client = Client::default();
    let get = |base: &str, path: &str, token: bool| {
        let mut req = client.get(format!("{base}{path}"));
        if token {
            req = req.insert_header(("Authorization", format!("Bearer {TOKEN}")));
        }
        async move {
            let mut resp = req.send().await.unwrap();
            let body = resp.body().limit(16 << 20).await.unwrap();
            (
                resp.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
    };
    // The public listener: the API, not metrics or admin (the JSON 404 of an unknown route);
    // its document sends clients of those to the internal listener.
    assert_eq!(get(&public, "/healthz", false).await.0, 200);
    let (status, doc) = get(&public, "/openapi.json", false).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    for path in ["/metrics", "/admin/stats", "/admin/rooms/{id}/close"] {
        assert_eq!(
            doc["paths"][path]["servers"][0]["url"],
            internal.as_str(),
            "{path}"
        );
    }
    assert!(doc["paths"]["/rooms"].get("servers").is_none());
    for path in ["/metrics", "/admin/stats"] {
        let (status, body) = get(&public, path, true).await;
        assert_eq!(status, 404, "{path} on the public listener: {body}");
        assert!(body.contains("\"not_found\""), "{body}");
    }
    let (status, body) = client
        .post(format!("{public}/admin/rooms/r_x/close"))
        .insert_header(("Authorization", format!("Bearer {TOKEN}")))
        .send()
        .await
        .map(|mut r| (r.status().as_u16(), r.body()))
        .unwrap();
    assert_eq!(status, 404);
    let body = body.await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("no route for"));
    // A room, and a request whose path names it.
    let mut resp = client
        .post(format!("{public}/rooms"))
        .send_json(&serde_json::json!({"title": "internal"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let room: Value = resp.json().await.unwrap();
    let id = room["id"].as_str().unwrap().to_owned();
    assert_eq!(get(&public, &format!("/rooms/{id}"), false).await.0, 200);
    assert_eq!(get(&public, "/rooms/r_nothing_here", false).await.0, 404);

    // The internal listener: metrics and admin, nothing else.
    let (status, stats) = get(&internal, "/admin/stats", true).await;
    assert_eq!(status, 200, "{stats}");
    assert!(stats.contains("\"open_rooms\":1"), "{stats}");
    assert_eq!(get(&internal, "/admin/stats", false).await.0, 401);
    for path in ["/healthz", "/rooms", "/openapi.json", "/"] {
        assert_eq!(
            get(&internal, path, false).await.0,
            404,
            "{path} internally"
        );
    }
    let (status, metrics) = get(&internal, "/metrics", false).await;
    assert_eq!(status, 200);
    // Requests by route pattern, never by path: the room's id is in no label.
    let sample = |line: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("no {line} in:\n{metrics}"))
            .to_owned()
    };
    sample(r#"roomstate_http_requests_total{method="GET",route="/rooms/{id}",status="200"} "#);
    sample(r#"roomstate_http_requests_total{method="GET",route="/rooms/{id}",status="404"} "#);
    sample(r#"roomstate_http_requests_total{method="POST",route="/rooms",status="201"} "#);
    sample(r#"roomstate_http_requests_total{method="GET",route="unmatched",status="404"} "#);
    sample(r#"roomstate_http_request_seconds_count{method="GET",route="/rooms/{id}"} "#);
    sample(r#"roomstate_http_requests_total{method="GET",route="/admin/stats",status="401"} "#);
    assert!(!metrics.contains(&id), "no room id in any label");
    assert!(!metrics.contains("r_nothing_here"), "no path in any label");
}
