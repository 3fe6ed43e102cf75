//! The hardened edges: no client can hurt the engine or the others. Every `429` and `503` says
//! when to retry; a flood of socket upgrades is rate limited like any flood; `X-Forwarded-For`
//! counts only from a trusted proxy; sockets from foreign web pages are refused before they
//! upgrade, and CORS answers only allowed origins; a script cannot open rooms past the cap; a
//! client that stops reading is dropped before what it does not read piles up; bad settings of
//! all this are refused at start.

use std::{
    cell::{Cell, RefCell},
    path::Path,
    rc::Rc,
    time::{Duration, Instant},
};

use awc::http::{header::HeaderMap, Method};
use futures_util::future::join_all;
use roomstate_testkit::engine::run_to_exit;
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::support::{
    app::{self, eventually, TestApp, TOKEN},
    sentinel::RedisServer,
    ws::{Incoming, WsClient},
};

/// How long one step of a test may take before it fails.
const STEP: Duration = Duration::from_secs(30);

/// An HTTP answer with its headers.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("<no error code>")
    }
}

/// A request with extra headers (and a JSON body), answered with its headers.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    send_within(app, method, path, headers, body, STEP)
        .await
        .unwrap_or_else(|| panic!("{path}: no answer within {STEP:?}"))
}

/// `send`, giving up after `timeout` (`None`: no answer by then).
async fn send_within(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
    timeout: Duration,
) -> Option<Answer> {
    let client = awc::Client::builder().timeout(timeout).finish();
    let mut req = client.request(method, app.url(path));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let sent = match body {
        Some(body) => req.send_json(&body).await,
        None => req.send().await,
    };
    let mut resp = match sent {
        Ok(resp) => resp,
        Err(awc::error::SendRequestError::Timeout) => return None,
        Err(e) => panic!("{path}: {e}"),
    };
    let bytes = resp.body().limit(1 << 20).await.expect("response body");
    Some(Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}

/// `host:port` of the engine.
fn authority(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// A WebSocket upgrade made by hand, to see the answer's status and headers and to control
/// reading (a client that never reads).
struct Upgrade {
    status: u16,
    /// The answer's head, header names lower-cased.
    head: String,
    /// The answer's body (for a refusal) or the first frame bytes (after a `101`).
    rest: Vec<u8>,
    stream: TcpStream,
}

impl Upgrade {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key == name).then(|| value.trim())
        })
    }

    fn body(&self) -> Value {
        serde_json::from_slice(&self.rest).unwrap_or(Value::Null)
    }
}

/// Upgrades `path` on a connection of its own whose receive buffer is tiny (4 KiB): a client
/// that, not reading, soon leaves the engine's bytes with the engine.
async fn upgrade_reading_little(app: &TestApp, path: &str) -> Upgrade {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(authority(app).parse().unwrap())
        .await
        .unwrap();
    upgrade_on(stream, app, path, &[]).await
}

/// Upgrades `path` with `headers` added, on a connection of its own.
async fn upgrade(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Upgrade {
    let stream = TcpStream::connect(authority(app)).await.expect("connect");
    upgrade_on(stream, app, path, headers).await
}

async fn upgrade_on(
    stream: TcpStream,
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
) -> Upgrade {
    let request = upgrade_request(app, path, headers);
    upgrade_after(stream, path, request.as_bytes()).await
}

/// A WebSocket upgrade request for `path`, with `headers` added.
fn upgrade_request(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> String {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        authority(app)
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// Writes `sent` (an upgrade request for `path`, and whatever follows it), then reads the
/// answer.
async fn upgrade_after(mut stream: TcpStream, path: &str, sent: &[u8]) -> Upgrade {
    stream.write_all(sent).await.expect("write");
    let mut bytes = Vec::new();
    let end = Instant::now() + STEP;
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let left = end.saturating_duration_since(Instant::now());
        let n = match actix_rt::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            other => panic!("no upgrade answer for {path}: {other:?} after {bytes:?}"),
        };
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_string();
    let mut rest = bytes[head_end + 4..].to_vec();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let head: String = head
        .lines()
        .map(|line| match line.split_once(':') {
            Some((name, value)) => format!("{}:{value}\n", name.to_ascii_lowercase()),
            None => format!("{line}\n"),
        })
        .collect();
    let mut upgrade = Upgrade {
        status,
        head,
        rest: Vec::new(),
        stream,
    };
    // A refusal: read its body too.
    if status != 101 {
        let length: usize = upgrade
            .header("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        while rest.len() < length {
            let mut chunk = [0u8; 4096];
            let left = end.saturating_duration_since(Instant::now());
            match actix_rt::time::timeout(left, upgrade.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => rest.extend_from_slice(&chunk[..n]),
                other => panic!("refusal body cut short: {other:?}"),
            }
        }
    }
    upgrade.rest = rest;
    upgrade
}

/// One sample of `/metrics` (0 when not shown).
async fn metric(app: &TestApp, sample: &str) -> f64 {
    let (_, text) = app.get("/metrics").await;
    text.as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn participants(app: &TestApp, room: &str) -> u64 {
    app.room(room).await["participants"].as_u64().unwrap_or(0)
}

#[actix_rt::test]
async fn every_429_and_503_says_when_to_retry() {
    let app = app::builder()
        .setting("LIMITS__HTTP_RATE_PER_S", 1)
        .setting("LIMITS__HTTP_BURST", 3)
        .setting("LIMITS__MAX_OPEN_ROOMS", 1)
        .start();
    let room = app.create_room("retry").await;
    let full = send(
        &app,
        Method::POST,
        "/rooms",
        &[],
        Some(json!({"title": "one too many"})),
    )
    .await;
    assert_eq!(
        (full.status, full.code()),
        (503, "unavailable"),
        "{}",
        full.body
    );
    assert_eq!(full.header("retry-after"), Some("5"));
    let join = format!("/rooms/{room}/join");
    let mut limited = None;
    for i in 0..20 {
        let answer = send(
            &app,
            Method::POST,
            &join,
            &[],
            Some(json!({"user": format!("u{i}")})),
        )
        .await;
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.expect("20 joins at once pass a burst of 3");
    assert_eq!(limited.code(), "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("1"));
    // Other answers say nothing of retrying.
    let missing = send(&app, Method::GET, "/rooms/r_none", &[], None).await;
    assert_eq!((missing.status, missing.header("retry-after")), (404, None));
}

#[actix_rt::test]
async fn readyz_says_when_to_retry_while_the_journal_is_down() {
    let mut redis = RedisServer::start().await;
    let app = app::builder()
        .setting("JOURNAL__KIND", "redis")
        .setting("REDIS__URL", redis.url())
        .start();
    let room = app.create_room("outage").await;
    redis.kill();
    let ready = eventually("/readyz to say 503", STEP, || async {
        let answer = send(&app, Method::GET, "/readyz", &[], None).await;
        (answer.status == 503).then_some(answer)
    })
    .await;
    assert_eq!(ready.body["journal"], "down", "{}", ready.body);
    assert_eq!(ready.header("retry-after"), Some("5"));
    // Requests in flight wait for the journal; new ones are refused once it has been down for
    // longer than a failover takes.
    let refused = eventually("a mutation to get 503", STEP, || async {
        let answer = send_within(
            &app,
            Method::POST,
            &format!("/rooms/{room}/join"),
            &[],
            Some(json!({"user": "alice"})),
            Duration::from_secs(1),
        )
        .await?;
        (answer.status == 503).then_some(answer)
    })
    .await;
    assert_eq!(refused.code(), "unavailable");
    assert_eq!(refused.header("retry-after"), Some("5"));
}

#[actix_rt::test]
async fn a_flood_of_socket_upgrades_from_one_address_is_limited_before_the_upgrade() {
    let app = app::builder()
        .setting("LIMITS__HTTP_RATE_PER_S", 1)
        .setting("LIMITS__HTTP_BURST", 5)
        .start();
    let room = app.create_room("upgrade flood").await;
    let mut open = Vec::new();
    let mut refused = None;
    for i in 0..30 {
        let socket = upgrade(&app, &format!("/rooms/{room}/ws?user=u{i}"), &[]).await;
        if socket.status == 101 {
            open.push(socket);
        } else {
            refused = Some(socket);
            break;
        }
    }
    let refused = refused.expect("30 upgrades at once pass a burst of 5");
    assert!(!open.is_empty(), "the first upgrades are taken");
    assert_eq!(refused.status, 429, "{}", refused.head);
    assert_eq!(refused.body()["error"], "rate_limited");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(
        refused.header("upgrade"),
        None,
        "refused before the upgrade"
    );
    let taken = open.len() as u64;
    eventually("the taken sockets to be present", STEP, || async {
        (participants(&app, &room).await == taken).then_some(())
    })
    .await;
    // The limit lifts, and the room serves sockets as before.
    let mut ws = eventually("the limit to lift", STEP, || async {
        WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=later")))
            .await
            .ok()
    })
    .await;
    assert_eq!(ws.next_of("state").await["participants"], taken + 1);
}

/// The mutations from two forwarded addresses that get through when each sends twice the burst
/// at once, one after the other.
async fn budgets(app: &TestApp, room: &str) -> (usize, usize, Duration) {
    let started = Instant::now();
    let join = format!("/rooms/{room}/join");
    let mut passed = Vec::new();
    for address in ["203.0.113.1", "203.0.113.2"] {
        let answers = join_all((0..10).map(|i| {
            let join = join.clone();
            async move {
                let body = json!({"user": format!("u{i}")});
                let headers = [("X-Forwarded-For", address)];
                send(app, Method::POST, &join, &headers, Some(body)).await
            }
        }))
        .await;
        for answer in &answers {
            assert!(
                answer.status == 200 || (answer.status, answer.code()) == (429, "rate_limited"),
                "{} {}",
                answer.status,
                answer.body
            );
        }
        passed.push(answers.iter().filter(|a| a.status == 200).count());
    }
    (passed[0], passed[1], started.elapsed())
}

#[actix_rt::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    // The test's own requests come from 127.0.0.1: a trusted proxy here.
    let behind = app::builder()
        .setting("HTTP__TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1/32")
        .setting("LIMITS__HTTP_RATE_PER_S", 1)
        .setting("LIMITS__HTTP_BURST", 5)
        .start();
    let room = behind.create_room("proxied").await;
    let (first, second, _) = budgets(&behind, &room).await;
    assert!(
        first >= 5 && second >= 5,
        "each forwarded address has a budget of its own: {first}, {second}"
    );
    // The client is the right-most address that is no trusted proxy: what it wrote to the left
    // of it proves nothing, and its budget is spent.
    let chain = send(
        &behind,
        Method::POST,
        &format!("/rooms/{room}/join"),
        &[("X-Forwarded-For", "198.51.100.7, 203.0.113.2, 10.1.2.3")],
        Some(json!({"user": "chain"})),
    )
    .await;
    assert_eq!((chain.status, chain.code()), (429, "rate_limited"));

    let direct = app::builder()
        .setting("LIMITS__HTTP_RATE_PER_S", 1)
        .setting("LIMITS__HTTP_BURST", 5)
        .start();
    let room = direct.create_room("not proxied").await;
    let (first, second, took) = budgets(&direct, &room).await;
    let refilled = took.as_secs() as usize + 1;
    assert!(
        first <= 5 && second <= refilled,
        "without trusted proxies the header is ignored and one budget is shared: {first}, \
         {second} in {took:?}"
    );
}

#[actix_rt::test]
async fn a_socket_from_a_foreign_page_is_refused_before_the_upgrade() {
    let app = app::start();
    let room = app.create_room("origins").await;
    let path = format!("/rooms/{room}/ws?user=alice");
    let foreign = upgrade(&app, &path, &[("Origin", "http://evil.example")]).await;
    assert_eq!(foreign.status, 403, "{}", foreign.head);
    assert_eq!(foreign.body()["error"], "forbidden");
    assert_eq!(foreign.header("upgrade"), None);
    // The origin comes first, also before a malformed query (a key given twice: 400 otherwise).
    let twice = format!("{path}&user=alice");
    let foreign = upgrade(&app, &twice, &[("Origin", "http://evil.example")]).await;
    assert_eq!(foreign.status, 403, "{}", foreign.head);
    let plain = upgrade(&app, &twice, &[]).await;
    assert_eq!(
        (plain.status, plain.body()["error"].as_str()),
        (400, Some("bad_request")),
        "{}",
        plain.head
    );
    let port = app.base.rsplit(':').next().unwrap_or_default().to_owned();
    let other_port = format!("http://127.0.0.1:{}", port.parse::<u32>().unwrap_or(1) + 1);
    let next_door = upgrade(&app, &path, &[("Origin", &other_port)]).await;
    assert_eq!(next_door.status, 403, "another port is another origin");
    assert_eq!(participants(&app, &room).await, 0, "nobody joined");

    let same = upgrade(&app, &path, &[("Origin", &app.base)]).await;
    assert_eq!(same.status, 101, "the engine's own pages: {}", same.head);
    let none = upgrade(&app, &format!("/rooms/{room}/ws?user=bob"), &[]).await;
    assert_eq!(none.status, 101, "no Origin: no browser");
    eventually("both sockets to be present", STEP, || async {
        (participants(&app, &room).await == 2).then_some(())
    })
    .await;

    // By default no other page gets CORS answers either.
    let preflight = send(
        &app,
        Method::OPTIONS,
        "/rooms",
        &[
            ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    )
    .await;
    assert_eq!(preflight.header("access-control-allow-origin"), None);
}

#[actix_rt::test]
async fn cors_answers_allowed_origins_and_never_for_admin() {
    let app = app::builder()
        .setting("HTTP__ALLOWED_ORIGINS", "https://app.example")
        .start();
    let room = app.create_room("cors").await;
    let app_page = ("Origin", "https://app.example");
    let evil_page = ("Origin", "https://evil.example");
    let asks = ("Access-Control-Request-Method", "POST");
    let asks_headers = (
        "Access-Control-Request-Headers",
        "authorization, content-type, idempotency-key",
    );

    for path in [
        "/rooms".to_owned(),
        format!("/rooms/{room}/messages"),
        format!("/rooms/{room}/votes/alice"),
    ] {
        let ok = send(
            &app,
            Method::OPTIONS,
            &path,
            &[app_page, asks, asks_headers],
            None,
        )
        .await;
        assert_eq!(ok.status, 204, "{path}: {}", ok.body);
        assert_eq!(
            ok.header("access-control-allow-origin"),
            Some("https://app.example")
        );
        let methods = ok
            .header("access-control-allow-methods")
            .unwrap_or_default();
        assert!(
            methods.contains("POST") && methods.contains("PUT"),
            "{methods}"
        );
        let headers = ok
            .header("access-control-allow-headers")
            .unwrap_or_default();
        for name in ["Authorization", "Content-Type", "Idempotency-Key"] {
            assert!(headers.contains(name), "{name} in {headers}");
        }
        assert!(ok.header("vary").unwrap_or_default().contains("Origin"));
        let refused = send(&app, Method::OPTIONS, &path, &[evil_page, asks], None).await;
        assert_eq!(
            refused.header("access-control-allow-origin"),
            None,
            "{path}"
        );
        assert_ne!(refused.status, 204);
    }

    // Actual answers carry the header for the allowed page only (errors too).
    let listed = send(&app, Method::GET, "/rooms", &[app_page], None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(listed.header("vary").unwrap_or_default().contains("Origin"));
    let missing = send(&app, Method::GET, "/rooms/r_none", &[app_page], None).await;
    assert_eq!(missing.status, 404);
    assert!(missing.header("access-control-allow-origin").is_some());
    let foreign = send(&app, Method::GET, "/rooms", &[evil_page], None).await;
    assert_eq!(foreign.status, 200);
    assert_eq!(foreign.header("access-control-allow-origin"), None);

    // Never for /admin: no preflight, no header.
    let bearer = format!("Bearer {TOKEN}");
    let stats = send(
        &app,
        Method::GET,
        "/admin/stats",
        &[app_page, ("Authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(stats.status, 200);
    assert_eq!(stats.header("access-control-allow-origin"), None);
    // Nor for a path spelled with escapes that is routed to /admin all the same.
    let escaped = send(
        &app,
        Method::GET,
        "/%61dmin/stats",
        &[app_page, ("Authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(escaped.status, 200, "routed to /admin/stats");
    assert_eq!(escaped.header("access-control-allow-origin"), None);
    let admin_preflight = send(
        &app,
        Method::OPTIONS,
        "/admin/stats",
        &[app_page, asks],
        None,
    )
    .await;
    assert_eq!(
        (admin_preflight.status, admin_preflight.code()),
        (404, "not_found")
    );
    assert_eq!(admin_preflight.header("access-control-allow-origin"), None);
    // Unknown paths stay the JSON 404, and a plain OPTIONS is no preflight.
    let unknown = send(&app, Method::OPTIONS, "/nope", &[app_page, asks], None).await;
    assert_eq!((unknown.status, unknown.code()), (404, "not_found"));
    let plain = send(&app, Method::OPTIONS, "/rooms", &[app_page], None).await;
    assert_eq!((plain.status, plain.code()), (404, "not_found"));

    // The allowed page may open sockets; another may not.
    let path = format!("/rooms/{room}/ws?user=alice");
    assert_eq!(upgrade(&app, &path, &[app_page]).await.status, 101);
    assert_eq!(upgrade(&app, &path, &[evil_page]).await.status, 403);
}

#[actix_rt::test]
async fn the_open_room_cap_holds_under_a_script_that_tries_to_pass_it() {
    let app = app::builder().setting("LIMITS__MAX_OPEN_ROOMS", 5).start();
    let busy = app.create_room("busy").await;
    app.join(&busy, "alice").await;
    let mut bob = WsClient::connect(&app.ws_url(&format!("/rooms/{busy}/ws?user=bob")))
        .await
        .unwrap();
    bob.next_of("state").await;
    app.create_room("second").await;

    let attempts = join_all((0..40).map(|i| {
        let app = &app;
        async move {
            let body = json!({"title": format!("script {i}")});
            send(app, Method::POST, "/rooms", &[], Some(body)).await
        }
    }))
    .await;
    let created = attempts.iter().filter(|a| a.status == 201).count();
    assert_eq!(created, 3, "exactly up to the cap");
    for refused in attempts.iter().filter(|a| a.status != 201) {
        assert_eq!((refused.status, refused.code()), (503, "unavailable"));
        assert_eq!(refused.header("retry-after"), Some("5"));
        let message = refused.body["message"].as_str().unwrap_or_default();
        assert!(message.contains("limits.max_open_rooms"), "{message}");
    }
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200);
    let (_, listed) = app.get("/rooms").await;
    assert_eq!(listed["rooms"].as_array().map(Vec::len), Some(5));
    // The rooms that are open work as before.
    let (status, tally) = app.vote(&busy, "alice", "pro").await;
    assert_eq!(status, 200, "{tally}");
    bob.state_where(|s| s["pro"] == 1).await;
    // A close frees a place.
    let (status, _) = app.close_room(&busy).await;
    assert_eq!(status, 200);
    app.create_room("in its place").await;
    let (status, _) = app.post("/rooms", json!({"title": "again too many"})).await;
    assert_eq!(status, 503);
}

#[actix_rt::test]
async fn rooms_recovered_past_the_cap_are_all_kept() {
    let mut before = app::builder().setting("LIMITS__MAX_OPEN_ROOMS", 3).start();
    for i in 0..3 {
        before.create_room(&format!("kept {i}")).await;
    }
    assert!(before.stop().success());
    let after = app::builder()
        .setting("DATA_DIR", before.data_dir().display())
        .setting("LIMITS__MAX_OPEN_ROOMS", 1)
        .start();
    let (_, listed) = after.get("/rooms").await;
    assert_eq!(
        listed["rooms"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    assert!(
        after
            .log()
            .contains("more open rooms than limits.max_open_rooms"),
        "{}",
        after.log()
    );
    let (status, refused) = after.post("/rooms", json!({"title": "no room"})).await;
    assert_eq!(
        (status.as_u16(), refused["error"].as_str()),
        (503, Some("unavailable"))
    );
}

/// A server frame: opcode and payload.
type Frame = (u8, Vec<u8>);

/// Splits what a server sent into frames (unmasked, as a server sends them).
fn frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, at) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&bytes[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            n => (n as usize, 2),
        };
        assert!(bytes.len() >= at + len, "a frame cut short");
        out.push((opcode, bytes[at..at + len].to_vec()));
        bytes = &bytes[at + len..];
    }
    assert!(bytes.is_empty(), "bytes after the last frame");
    out
}

/// Reads `stream` to its end (within `STEP`).
async fn read_to_end(stream: &mut TcpStream, mut bytes: Vec<u8>) -> Vec<u8> {
    let end = Instant::now() + STEP;
    loop {
        let mut chunk = vec![0u8; 1 << 16];
        let left = end.saturating_duration_since(Instant::now());
        match actix_rt::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return bytes,
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("the connection did not end within {STEP:?}"),
        }
    }
}

/// A client's text frame: masked, as RFC 6455 §5.3 requires (with a zero mask, which leaves
/// the payload as it is).
fn client_text_frame(text: &str) -> Vec<u8> {
    assert!(text.len() < 126, "a short frame");
    let mut frame = vec![0x81, 0x80 | text.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(text.as_bytes());
    frame
}

#[actix_rt::test]
async fn frames_sent_with_the_upgrade_request_are_served_after_the_first_state() {
    let app = app::start();
    let room = app.create_room("eager client").await;
    let path = format!("/rooms/{room}/ws?user=eager");
    // The request and a vote in one write: the vote reaches the engine with the request.
    let mut sent = upgrade_request(&app, &path, &[]).into_bytes();
    sent.extend(client_text_frame(
        r#"{"type":"vote","side":"pro","req":"v1"}"#,
    ));
    sent.extend(client_text_frame(
        r#"{"type":"vote","side":"con","req":"v2"}"#,
    ));
    let stream = TcpStream::connect(authority(&app)).await.expect("connect");
    let mut socket = upgrade_after(stream, &path, &sent).await;
    assert_eq!(socket.status, 101, "{}", socket.head);
    let mut bytes = std::mem::take(&mut socket.rest);
    let texts = |bytes: &[u8]| -> Vec<Value> {
        let whole = bytes.len() - partial_tail(bytes);
        frames(&bytes[..whole])
            .into_iter()
            .filter(|(opcode, _)| *opcode == 0x1)
            .map(|(_, payload)| serde_json::from_slice(&payload).unwrap())
            .collect()
    };
    let end = Instant::now() + STEP;
    let seen = loop {
        let seen = texts(&bytes);
        let acks = seen.iter().filter(|f| f["type"] == "ack").count();
        if acks == 2 {
            break seen;
        }
        let mut chunk = [0u8; 4096];
        let left = end.saturating_duration_since(Instant::now());
        match actix_rt::time::timeout(left, socket.stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => bytes.extend_from_slice(&chunk[..n]),
            other => panic!("no two acks: {other:?} after {seen:?}"),
        }
    };
    assert_eq!(
        seen[0]["type"], "state",
        "the room's state comes first: {seen:?}"
    );
    let acks: Vec<_> = seen.iter().filter(|f| f["type"] == "ack").collect();
    assert_eq!(
        (acks[0]["req"].as_str(), acks[1]["req"].as_str()),
        (Some("v1"), Some("v2"))
    );
    let view = app.room(&room).await;
    assert_eq!(
        (&view["pro"], &view["con"]),
        (&json!(0), &json!(1)),
        "{view}"
    );
}

/// How many bytes at the end of `bytes` are a frame not yet whole.
fn partial_tail(bytes: &[u8]) -> usize {
    let mut at = 0;
    while bytes.len() - at >= 2 {
        let (len, header) = match bytes[at + 1] & 0x7f {
            126 if bytes.len() - at >= 4 => (
                u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize,
                4,
            ),
            126 | 127 => return bytes.len() - at,
            n => (n as usize, 2),
        };
        if bytes.len() - at < header + len {
            break;
        }
        at += header + len;
    }
    bytes.len() - at
}

#[actix_rt::test]
async fn an_upgrade_request_to_a_route_that_is_no_socket_gets_its_answer_then_the_end() {
    let app = app::start();
    let room = app.create_room("no socket here").await;
    // A route that serves no socket answers as it always does, and the connection ends: it was
    // asked to become something else.
    let mut health = upgrade(&app, "/healthz", &[]).await;
    assert_eq!(health.status, 200, "{}", health.head);
    assert_eq!(health.header("connection"), Some("close"));
    assert_eq!(health.header("upgrade"), None);
    let rest = std::mem::take(&mut health.rest);
    assert!(read_to_end(&mut health.stream, rest).await.len() <= 64);
    // A refused socket: the contract's error body, then the end.
    let mut refused = upgrade(&app, &format!("/rooms/{room}/ws?user=bad%20name"), &[]).await;
    assert_eq!(refused.status, 400, "{}", refused.head);
    assert_eq!(refused.body()["error"], "bad_request");
    assert!(refused.body()["message"].as_str().is_some());
    assert_eq!(refused.header("connection"), Some("close"));
    let rest = std::mem::take(&mut refused.rest);
    read_to_end(&mut refused.stream, rest).await;
    // A refusal arrives whole even when the client sent more than the engine read with the
    // request: what is left is read away before the connection ends (no reset to lose it).
    let path = format!("/rooms/{room}/ws?user=bad%20name");
    let mut sent = upgrade_request(&app, &path, &[]).into_bytes();
    sent.extend(std::iter::repeat_n(b'z', 64 * 1024));
    let stream = TcpStream::connect(authority(&app)).await.expect("connect");
    let mut eager = upgrade_after(stream, &path, &sent).await;
    assert_eq!(eager.status, 400, "{}", eager.head);
    assert_eq!(eager.body()["error"], "bad_request");
    let rest = std::mem::take(&mut eager.rest);
    read_to_end(&mut eager.stream, rest).await;
    // An upgrade request with a body (chunked) is not one: actix-http keeps it in its HTTP
    // dispatcher, where no socket can open.
    let path = format!("/rooms/{room}/ws?user=chunky");
    let mut request = upgrade_request(&app, &path, &[("Transfer-Encoding", "chunked")]);
    request.push_str("0\r\n\r\n");
    let stream = TcpStream::connect(authority(&app)).await.expect("connect");
    let chunked = upgrade_after(stream, &path, request.as_bytes()).await;
    assert_eq!(chunked.status, 400, "{}", chunked.head);
    assert_eq!(chunked.body()["error"], "bad_request");
    assert_eq!(participants(&app, &room).await, 0, "nobody joined");
    // Both were counted like any request.
    for (route, status, count) in [("/healthz", 200, 1.0), ("/rooms/{id}/ws", 400, 3.0)] {
        let sample = format!(
            r#"roomstate_http_requests_total{{method="GET",route="{route}",status="{status}"}}"#
        );
        assert_eq!(metric(&app, &sample).await, count, "{sample}");
    }
}

#[actix_rt::test]
async fn a_client_that_pings_and_never_reads_gets_no_pongs_past_its_bound() {
    const BOUND: usize = 16 * 1024;
    let app = app::builder()
        .setting("LIMITS__WS_SEND_BUFFER_BYTES", BOUND)
        // (The bound must hold an answer to the largest frame: 8 KiB + its envelope.)
        .setting("LIMITS__MAX_FRAME_BYTES", 8 * 1024)
        .setting("PRESENCE__WS_TIMEOUT_S", 600)
        .start();
    let room = app.create_room("ping flood").await;
    let mut pinger = upgrade_reading_little(&app, &format!("/rooms/{room}/ws?user=pinger")).await;
    assert_eq!(pinger.status, 101, "{}", pinger.head);
    // 125-byte pings (masked with a zero mask), far more pongs than the kernels' buffers hold.
    let mut ping = vec![0x89, 0x80 | 125, 0, 0, 0, 0];
    ping.extend_from_slice(&[b'p'; 125]);
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 1000)
        .collect();
    for _ in 0..100 {
        pinger
            .stream
            .write_all(&burst)
            .await
            .expect("the engine reads pings");
    }
    // The engine read every ping (a vote after them is answered)...
    let vote = client_text_frame(r#"{"type":"vote","side":"pro","req":"after"}"#);
    pinger.stream.write_all(&vote).await.unwrap();
    eventually("the vote after the pings", STEP, || async {
        (app.room(&room).await["pro"] == 1).then_some(())
    })
    .await;
    // ...and held no more for the socket than its bound.
    let held = metric(&app, "roomstate_ws_send_buffer_bytes").await;
    assert!(
        held <= BOUND as f64,
        "held {held} bytes for a socket bounded at {BOUND}"
    );
    assert_eq!(app.get("/healthz").await.0, 200);
}

#[actix_rt::test]
async fn a_silent_client_that_never_reads_loses_its_connection_and_its_bytes() {
    let app = app::builder()
        .setting("PRESENCE__WS_TIMEOUT_S", 2)
        .setting("LIMITS__MAX_BODY_BYTES", 1 << 20)
        .setting("LIMITS__HTTP_RATE_PER_S", 0)
        .start();
    let room = app.create_room("gone quiet").await;
    app.join(&room, "talker").await;
    let mut quiet = upgrade_reading_little(&app, &format!("/rooms/{room}/ws?user=quiet")).await;
    assert_eq!(quiet.status, 101, "{}", quiet.head);
    // Messages until the engine holds bytes the client does not take; meanwhile the client
    // pings (it writes, it does not read), so it is not silent yet.
    let say = format!("/rooms/{room}/messages");
    let ping = [0x89, 0x80, 0, 0, 0, 0];
    eventually("bytes held for the quiet client", STEP, || async {
        // Six bytes into an empty send buffer: taken at once.
        assert_eq!(quiet.stream.try_write(&ping).ok(), Some(ping.len()));
        let batch = (0..16).map(|_| {
            let body = json!({"user": "talker", "text": "🗣".repeat(2000)});
            send(&app, Method::POST, &say, &[], Some(body))
        });
        for answer in join_all(batch).await {
            assert_eq!(answer.status, 201, "{}", answer.body);
        }
        (metric(&app, "roomstate_ws_send_buffer_bytes").await > 0.0).then_some(())
    })
    .await;
    // It said nothing for its timeout: it leaves the room, and after as long again to take
    // its bytes, the engine lets go of them and of the connection.
    eventually("the quiet client to leave", STEP, || async {
        (participants(&app, &room).await == 1).then_some(())
    })
    .await;
    eventually("the held bytes to go", STEP, || async {
        (metric(&app, "roomstate_ws_send_buffer_bytes").await == 0.0).then_some(())
    })
    .await;
    let rest = std::mem::take(&mut quiet.rest);
    read_to_end(&mut quiet.stream, rest).await;
}

#[actix_rt::test]
async fn a_client_that_does_not_read_is_dropped_and_nobody_else_is_harmed() {
    const BOUND: usize = 128 * 1024;
    let app = app::builder()
        .setting("LIMITS__WS_SEND_BUFFER_BYTES", BOUND)
        .setting("LIMITS__MAX_BODY_BYTES", 1 << 20)
        .setting("LIMITS__HTTP_RATE_PER_S", 0)
        // The slow client must be dropped for not reading, not for its silence.
        .setting("PRESENCE__WS_TIMEOUT_S", 600)
        .start();
    let room = app.create_room("slow reader").await;
    app.join(&room, "talker").await;

    // A reader that takes everything, on a task of its own: its message seqs, in order.
    let mut reader = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user=reader")))
        .await
        .unwrap();
    reader.next_of("state").await;
    let seen = Rc::new(RefCell::new(Vec::<u64>::new()));
    let stop = Rc::new(Cell::new(false));
    let reading = {
        let (seen, stop) = (seen.clone(), stop.clone());
        actix_rt::spawn(async move {
            while !stop.get() {
                match reader
                    .next_before(Instant::now() + Duration::from_millis(200))
                    .await
                {
                    Some(Incoming::Json(frame)) if frame["type"] == "message" => {
                        seen.borrow_mut().push(frame["seq"].as_u64().unwrap_or(0));
                    }
                    Some(Incoming::Closed(code)) => return Err(code),
                    _ => {}
                }
            }
            Ok(reader)
        })
    };

    // The slow client: a tiny receive buffer, an upgrade, then not another byte read.
    let mut slow = upgrade_reading_little(&app, &format!("/rooms/{room}/ws?user=slow")).await;
    assert_eq!(slow.status, 101, "{}", slow.head);
    eventually("the slow client to be present", STEP, || async {
        (participants(&app, &room).await == 3).then_some(())
    })
    .await;

    // The room broadcasts large messages until the engine gives up on the slow client.
    let text = "🗣".repeat(2000);
    let say = format!("/rooms/{room}/messages");
    let mut acked = Vec::new();
    let mut most_held = 0.0f64;
    let started = Instant::now();
    let say_batch = |n: usize| {
        join_all((0..n).map(|_| {
            let body = json!({"user": "talker", "text": text});
            send(&app, Method::POST, &say, &[], Some(body))
        }))
    };
    while metric(&app, "roomstate_ws_slow_clients_total").await < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the slow client was not dropped after {} messages of {} bytes",
            acked.len(),
            text.len()
        );
        // A few at a time: a room sends what one journal batch made durable at once, and a
        // reader that takes everything must not see a burst over its bound.
        for answer in say_batch(4).await {
            assert_eq!(answer.status, 201, "{}", answer.body);
            acked.push(answer.body["seq"].as_u64().unwrap());
        }
        most_held = most_held.max(metric(&app, "roomstate_ws_send_buffer_bytes").await);
    }
    // What the engine held for the sockets never passed their bounds (the slow one's and the
    // reader's, plus at most one frame over each while it was being checked).
    assert!(
        most_held <= (2 * BOUND + 64 * 1024) as f64,
        "held {most_held} bytes for two sockets bounded at {BOUND}"
    );
    eventually("the slow client to leave the room", STEP, || async {
        (participants(&app, &room).await == 2).then_some(())
    })
    .await;
    assert!(
        app.log()
            .contains("dropping a socket whose client does not take what it is sent"),
        "the drop is logged"
    );

    // The room goes on: more messages, and the reader has every one, in order, none skipped.
    for _ in 0..8 {
        for answer in say_batch(4).await {
            assert_eq!(answer.status, 201, "{}", answer.body);
            acked.push(answer.body["seq"].as_u64().unwrap());
        }
    }
    let last = *acked.iter().max().unwrap();
    eventually("the reader to see the last message", STEP, || async {
        seen.borrow().contains(&last).then_some(())
    })
    .await;
    stop.set(true);
    let reader = reading
        .await
        .unwrap()
        .expect("the reader's socket stays open");
    drop(reader);
    let seen = seen.borrow().clone();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in seq order");
    acked.sort_unstable();
    let from_first = seen.iter().position(|s| *s == acked[0]).unwrap();
    assert_eq!(seen[from_first..], acked[..], "every message, none skipped");
    assert_eq!(metric(&app, "roomstate_ws_slow_clients_total").await, 1.0);
    // Nothing more is held for the slow client than its close frame, after the rest of the one
    // frame the kernel had taken part of (kept whole, so the client never sees a cut frame).
    let one_frame = (text.len() + 1024) as f64;
    eventually("the held bytes to drain", STEP, || async {
        (metric(&app, "roomstate_ws_send_buffer_bytes").await < one_frame).then_some(())
    })
    .await;

    // When the slow client reads at last, it gets whole frames, then the close (1008), then
    // the end of the connection.
    let rest = std::mem::take(&mut slow.rest);
    let bytes = read_to_end(&mut slow.stream, rest).await;
    let frames = frames(&bytes);
    let (opcode, payload) = frames.last().expect("frames");
    assert_eq!(*opcode, 0x8, "the last frame is a close");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1008);
    assert!(String::from_utf8_lossy(&payload[2..]).contains("too slow"));
    assert!(frames.len() > 2, "what the kernel held came first");
}

#[test]
fn bad_edge_settings_are_refused_at_start() {
    for (key, value, names) in [
        (
            "ROOMSTATE__HTTP__TRUSTED_PROXIES",
            "10.0.0.0/8,10.0.0.0/33",
            &["http.trusted_proxies", "10.0.0.0/33"][..],
        ),
        (
            "ROOMSTATE__HTTP__TRUSTED_PROXIES",
            "proxy.internal",
            &["http.trusted_proxies", "proxy.internal"][..],
        ),
        (
            "ROOMSTATE__HTTP__ALLOWED_ORIGINS",
            "app.example",
            &["http.allowed_origins", "app.example"][..],
        ),
        (
            "ROOMSTATE__HTTP__ALLOWED_ORIGINS",
            "https://app.example/",
            &["http.allowed_origins", "https://app.example/"][..],
        ),
        (
            "ROOMSTATE__LIMITS__MAX_OPEN_ROOMS",
            "0",
            &["limits.max_open_rooms"][..],
        ),
        (
            "ROOMSTATE__LIMITS__WS_SEND_BUFFER_BYTES",
            "100",
            &["limits.ws_send_buffer_bytes"][..],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let env = [
            (
                "ROOMSTATE__DATA_DIR".to_owned(),
                dir.path().join("data").display().to_string(),
            ),
            (key.to_owned(), value.to_owned()),
        ];
        let run =
            run_to_exit(Path::new(app::ENGINE), &[], &env, STEP).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(run.status.code(), Some(2), "{key}={value}: {run:?}");
        assert!(run.stdout.is_empty(), "it never listened: {run:?}");
        for name in names {
            assert!(
                run.stderr.contains(name),
                "{key}={value}: the refusal names {name}: {}",
                run.stderr
            );
        }
    }
}

/// A body that stops arriving (its head and part of it sent, then nothing): `400 bad_request`
/// once 10 s passed, and the connection closed, so a client cannot hold connections open by
/// sending bodies slowly.
#[actix_rt::test]
async fn a_body_that_stops_arriving_is_refused_and_its_connection_closed() {
    let app = app::start();
    let mut stream = TcpStream::connect(authority(&app)).await.expect("connect");
    let request = format!(
        "POST /rooms HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"title\":",
        authority(&app)
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    let answer = read_to_end(&mut stream, Vec::new()).await;
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        text.contains("the body did not arrive within 10 s"),
        "{text}"
    );
    assert!(
        waited >= Duration::from_secs(9),
        "refused after {waited:?}, before the body's 10 s"
    );
    let (_, listed) = app.get("/rooms").await;
    assert_eq!(listed["rooms"], json!([]), "nothing was created");
}

/// A connection's first request head that stops arriving: `408` once 5 s passed, and the
/// connection closed.
#[actix_rt::test]
async fn a_first_request_head_that_stops_arriving_is_answered_408_and_closed() {
    let app = app::start();
    let mut stream = TcpStream::connect(authority(&app)).await.expect("connect");
    stream
        .write_all(b"GET /rooms HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_to_end(&mut stream, Vec::new()).await;
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // actix-http counts the 5 s from a clock it refreshes every 500 ms, so from up to half a
    // second (more on a loaded machine) before the head's first bytes.
    assert!(
        waited >= Duration::from_millis(3500),
        "answered after {waited:?}, well before the head's 5 s"
    );
}

/// A kept-alive connection's second request whose head stops arriving (actix-http times only a
/// connection's first head): the connection is closed once nothing moved on it for 10 s (found
/// within 20), so a client cannot hold connections open that way; the engine serves on.
#[actix_rt::test]
async fn a_later_request_head_that_stops_arriving_has_its_connection_closed() {
    let app = app::start();
    let mut stream = TcpStream::connect(authority(&app)).await.expect("connect");
    let first = format!("GET /rooms HTTP/1.1\r\nHost: {}\r\n\r\n", authority(&app));
    stream.write_all(first.as_bytes()).await.unwrap();
    // The first answer, whole: its head, then as many body bytes as it says.
    let mut answer = Vec::new();
    let complete = |answer: &[u8]| {
        let text = String::from_utf8_lossy(answer);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let length = head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })?;
        (body.len() >= length).then(|| head.to_owned())
    };
    let head = loop {
        if let Some(head) = complete(&answer) {
            break head;
        }
        let mut chunk = vec![0u8; 1 << 16];
        let n = actix_rt::time::timeout(STEP, stream.read(&mut chunk))
            .await
            .expect("the first answer within the step")
            .expect("reading the first answer");
        assert!(
            n > 0,
            "closed before the first answer was whole: {answer:?}"
        );
        answer.extend_from_slice(&chunk[..n]);
    };
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    stream
        .write_all(b"GET /rooms HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let started = Instant::now();
    let rest = read_to_end(&mut stream, Vec::new()).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9),
        "closed after {waited:?}, before 10 s without a byte: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains("HTTP/1.1 200"),
        "the stalled request was answered: {:?}",
        String::from_utf8_lossy(&rest)
    );
    let (status, _) = app.get("/rooms").await;
    assert_eq!(status, 200, "the engine serves on");
}

/// Open sockets are bounded per client and in all, before the upgrade: past a client's
/// `limits.max_sockets_per_client` its next upgrade is `429 rate_limited`, past the engine's
/// `limits.max_sockets` anyone's is `503 unavailable`; a socket that ends gives its place back.
/// (Clients told apart by a trusted proxy's `X-Forwarded-For`.)
#[actix_rt::test]
async fn open_sockets_are_bounded_per_client_and_in_all() {
    let app = app::builder()
        .setting("HTTP__TRUSTED_PROXIES", "127.0.0.1/32")
        .setting("LIMITS__MAX_SOCKETS", 3)
        .setting("LIMITS__MAX_SOCKETS_PER_CLIENT", 2)
        .start();
    let room = app.create_room("bounded").await;
    let open = |user: &'static str, client: &'static str| {
        let path = format!("/rooms/{room}/ws?user={user}");
        let app = &app;
        async move { upgrade(app, &path, &[("X-Forwarded-For", client)]).await }
    };
    let a1 = open("a1", "198.51.100.1").await;
    let a2 = open("a2", "198.51.100.1").await;
    assert_eq!((a1.status, a2.status), (101, 101));
    let a3 = open("a3", "198.51.100.1").await;
    assert_eq!(a3.status, 429, "{}", a3.head);
    assert_eq!(a3.body()["error"], "rate_limited");
    assert!(
        a3.body()["message"]
            .as_str()
            .is_some_and(|m| m.contains("maximum of 2 open sockets")),
        "{}",
        a3.body()
    );
    let b1 = open("b1", "198.51.100.2").await;
    assert_eq!(b1.status, 101);
    let c1 = open("c1", "198.51.100.3").await;
    assert_eq!(c1.status, 503, "{}", c1.head);
    assert_eq!(c1.body()["error"], "unavailable");
    // The three sockets' joins, and none of the refused.
    eventually("the three sockets to have joined", STEP, || async {
        (participants(&app, &room).await == 3).then_some(())
    })
    .await;

    assert_eq!(
        participants(&app, &room).await,
        3,
        "the refused joined nobody"
    );
    drop(a1);
    let c1 = eventually("a place to free up", STEP, || async {
        let c1 = open("c1", "198.51.100.3").await;
        (c1.status == 101).then_some(c1)
    })
    .await;
    drop((a2, b1, c1));
}
