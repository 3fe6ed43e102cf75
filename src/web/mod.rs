//! The web page: `/` lists the open rooms and creates one, `/r/{id}` is a live room. Both are
//! static files embedded in the binary; everything they show comes from the public API of
//! docs/api.md, called by the page's own JavaScript — the room through the JavaScript client of
//! `clients/js/roomstate.js`, served as `/assets/roomstate.js` — so this module must never reach
//! into rooms, journals or stores.
//!
//! Caching: pages are `no-cache` (revalidated by ETag on every load), while the pages refer to
//! their scripts and styles as `/assets/NAME?v=HASH` with the content hash, and those versioned
//! URLs are cached for a year; a new binary with new assets gives new URLs. The scripts import
//! each other the same way (`import ... from "./i18n.js?v={{i18n.js}}"`): every `{{NAME}}` in a
//! page or an asset is replaced by the version of asset NAME, and an asset's version is the hash
//! of what is served, so a change anywhere gives new URLs up the import chain.

use std::sync::LazyLock;

use actix_web::{
    http::header::{self, HeaderValue},
    web, HttpRequest, HttpResponse,
};
use roomstate_core::room::RoomId;
use serde::Deserialize;

use crate::error::no_route;

/// One embedded file, as written.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// The files under `/assets/`, each after every asset it names (imports): its `{{NAME}}`s are
/// filled in with the versions of those before it.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/app.css"),
    },
    Asset {
        name: "i18n.js",
        content_type: JS,
        body: include_bytes!("assets/i18n.js"),
    },
    Asset {
        name: "roomstate.js",
        content_type: JS,
        body: include_bytes!("../../clients/js/roomstate.js"),
    },
    Asset {
        name: "common.js",
        content_type: JS,
        body: include_bytes!("assets/common.js"),
    },
    Asset {
        name: "index.js",
        content_type: JS,
        body: include_bytes!("assets/index.js"),
    },
    Asset {
        name: "room.js",
        content_type: JS,
        body: include_bytes!("assets/room.js"),
    },
];

const HTML: &str = "text/html; charset=utf-8";
/// Versioned asset URLs never change content.
const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else is revalidated on each use.
const CACHE_REVALIDATE: &str = "no-cache";
/// Scripts, styles and sockets from this origin only; no inline script, no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// FNV-1a: a content hash for ETags and asset versions.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

fn version(body: &[u8]) -> String {
    format!("{:016x}", fnv1a(body))
}

/// An asset as served: its `{{NAME}}`s filled in, and the version of that.
struct Served {
    name: &'static str,
    content_type: &'static str,
    body: String,
    version: String,
}

/// `template` with every `{{NAME}}` of an asset in `served` replaced by its version.
fn fill(template: &str, served: &[Served]) -> String {
    let mut body = template.to_owned();
    for asset in served {
        body = body.replace(&format!("{{{{{}}}}}", asset.name), &asset.version);
    }
    body
}

static SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| {
    let mut served: Vec<Served> = Vec::with_capacity(ASSETS.len());
    for asset in ASSETS {
        let text = std::str::from_utf8(asset.body).expect("embedded assets are UTF-8");
        let body = fill(text, &served);
        let version = version(body.as_bytes());
        served.push(Served {
            name: asset.name,
            content_type: asset.content_type,
            body,
            version,
        });
    }
    served
});

/// A page with every `{{NAME}}` replaced by the version of asset NAME.
struct Page {
    body: String,
    etag: String,
}

impl Page {
    fn render(template: &str) -> Page {
        let body = fill(template, &SERVED);
        let etag = format!("\"{}\"", version(body.as_bytes()));
        Page { body, etag }
    }
}

static INDEX: LazyLock<Page> = LazyLock::new(|| Page::render(include_str!("assets/index.html")));
static ROOM: LazyLock<Page> = LazyLock::new(|| Page::render(include_str!("assets/room.html")));

/// Registers the page routes. None of them is under an API path, and everything else still
/// falls through to the API's JSON 404.
pub(crate) fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(web::get().to(index))
            .default_service(web::to(no_route)),
    )
    .service(
        web::resource("/r/{id}")
            .route(web::get().to(room))
            .default_service(web::to(no_route)),
    )
    .service(
        web::resource("/assets/{name}")
            .route(web::get().to(asset))
            .default_service(web::to(no_route)),
    );
}

async fn index(req: HttpRequest) -> HttpResponse {
    page(&req, &INDEX)
}

async fn room(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    // A path that cannot name a room is an unknown path; a well-formed id that names no room
    // gets the page, which says so after asking the API.
    if RoomId::parse(&path).is_err() {
        return no_route(req).await;
    }
    page(&req, &ROOM)
}

#[derive(Deserialize)]
struct AssetQuery {
    v: Option<String>,
}

async fn asset(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<AssetQuery>,
) -> HttpResponse {
    let Some(asset) = SERVED.iter().find(|a| a.name == path.as_str()) else {
        return no_route(req).await;
    };
    let current = &asset.version;
    let cache = if query.v.as_deref() == Some(current.as_str()) {
        CACHE_IMMUTABLE
    } else {
        CACHE_REVALIDATE
    };
    respond(
        &req,
        asset.content_type,
        &format!("\"{current}\""),
        cache,
        asset.body.as_bytes(),
    )
}

fn page(req: &HttpRequest, page: &'static Page) -> HttpResponse {
    let mut response = respond(
        req,
        HTML,
        &page.etag,
        CACHE_REVALIDATE,
        page.body.as_bytes(),
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// 200 with the body, or 304 when the client already holds this version.
fn respond(
    req: &HttpRequest,
    content_type: &'static str,
    etag: &str,
    cache: &'static str,
    body: &'static [u8],
) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut builder = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    builder
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, etag))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if fresh {
        builder.finish()
    } else {
        builder.content_type(content_type).body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `/assets/NAME?v=` in `text`, with what follows `v=`.
    fn references(text: &str) -> Vec<(&str, &str)> {
        text.match_indices("/assets/")
            .chain(text.match_indices("\"./"))
            .filter_map(|(i, m)| {
                let rest = &text[i + m.len()..];
                let (name, after) = rest.split_once("?v=")?;
                (!name.contains(['"', ' ', '\n'])).then_some((name, after))
            })
            .collect()
    }

    #[test]
    fn pages_and_assets_refer_to_versioned_assets_that_exist() {
        let texts = [&INDEX.body, &ROOM.body]
            .into_iter()
            .chain(SERVED.iter().map(|a| &a.body));
        for text in texts {
            assert!(!text.contains("{{"), "an unreplaced placeholder");
            for (name, after) in references(text) {
                let asset = SERVED.iter().find(|a| a.name == name);
                let asset = asset.unwrap_or_else(|| panic!("no asset {name}"));
                assert!(after.starts_with(&asset.version), "{name}?v={after:.40}");
            }
        }
        // Every import is versioned: two URLs of one module would be two modules, each with its
        // own state (the language, say).
        for asset in SERVED.iter() {
            for (i, _) in asset.body.match_indices(" from \"") {
                let rest = &asset.body[i + " from \"".len()..];
                let spec = &rest[..rest.find('"').unwrap_or(rest.len())];
                assert!(
                    spec.contains("?v="),
                    "{}: unversioned import {spec}",
                    asset.name
                );
            }
        }
        // Each page loads its script and the modules it imports, versioned.
        for (page, script) in [(&*INDEX, "index.js"), (&*ROOM, "room.js")] {
            assert!(references(&page.body).iter().any(|(n, _)| *n == script));
        }
        let room = SERVED.iter().find(|a| a.name == "room.js").unwrap();
        let imported: Vec<_> = references(&room.body).iter().map(|(n, _)| *n).collect();
        for name in ["roomstate.js", "common.js", "i18n.js"] {
            assert!(imported.contains(&name), "room.js imports {name}");
        }
    }

    #[test]
    fn the_client_is_served_as_written_in_clients_js() {
        let client = SERVED.iter().find(|a| a.name == "roomstate.js").unwrap();
        assert_eq!(
            client.body.as_bytes(),
            include_bytes!("../../clients/js/roomstate.js")
        );
        assert!(client.body.contains("export class RoomClient"));
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
