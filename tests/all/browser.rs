//! The web page (`/`, `/r/{id}`) in a real headless Chromium against the real engine: two users
//! in one room see each other's votes and messages live, see the admin close the room, the room
//! list shows and creates rooms, bad names are refused, and a dropped socket comes back by
//! itself. Plus the plain HTTP side: content types, cache headers, no shadowed API routes.

use std::time::Duration;

use awc::{http::header, Client};
use serde_json::{json, Value};

use crate::support::{
    app::{self, TestApp},
    browser::{Browser, Session, ENTER},
};

/// One browser test at a time: each starts one or two Chromiums, and the machine is small.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Opens the room page and joins as `name`; waits until the socket is live.
async fn join(session: &Session, app: &TestApp, room: &str, name: &str) {
    session.goto(&app.url(&format!("/r/{room}"))).await;
    session.type_into("#user", &format!("{name}{ENTER}")).await;
    session.wait_attr("#conn", "data-state", "live").await;
    session.wait_text("#me", name).await;
}

/// The transcript as the page shows it: "seq user: text" per message, in page order.
async fn transcript(session: &Session) -> Vec<String> {
    let value = session
        .eval(
            "return [...document.querySelectorAll('#messages li')].map(li =>
                 li.dataset.seq + ' ' + li.querySelector('.who').textContent + ': ' +
                 li.querySelector('.text').textContent);",
            json!([]),
        )
        .await;
    serde_json::from_value(value).expect("a list of strings")
}

fn texts(transcript: &[String]) -> Vec<String> {
    transcript
        .iter()
        .map(|line| line.split_once(' ').map_or("", |(_, rest)| rest).to_owned())
        .collect()
}

/// Keeps a screenshot as `NAME.png` under the target dir (`target/tmp/browser/`), and the room
/// page's also at `$ROOMSTATE_SCREENSHOT` when that is set: `docs/room.png` is made that way.
fn save_screenshot(name: &str, png: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("writing the screenshot");
    if name == "room" {
        if let Some(path) = std::env::var_os("ROOMSTATE_SCREENSHOT") {
            std::fs::write(&path, png).expect("writing $ROOMSTATE_SCREENSHOT");
        }
    }
}

#[actix_rt::test]
async fn two_users_vote_chat_and_see_the_room_close() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app::start();
    let room = app.create_room("Should we ship on Friday?").await;
    let browser = Browser::start().await;
    let alice = browser.session("alice").await;
    let bob = browser.session("bob").await;

    join(&alice, &app, &room, "alice").await;
    join(&bob, &app, &room, "bob").await;
    alice.wait_text("#count", "2 participants here now").await;
    alice.wait_text("#title", "Should we ship on Friday?").await;
    // A third user over plain HTTP counts too.
    app.join(&room, "carol").await;
    bob.wait_text("#count", "3 participants here now").await;

    // Alice votes; Bob sees the bar move, and only Alice's button is pressed.
    alice.click("#vote-pro").await;
    alice.wait_attr("#vote-pro", "aria-pressed", "true").await;
    bob.wait_text("#tally", "Pro 1 (100%) · Con 0 (0%)").await;
    bob.wait_attr("#bar", "data-pro", "1").await;
    assert_eq!(
        bob.eval(
            "return document.getElementById('bar-pro').style.width",
            json!([])
        )
        .await,
        "100%"
    );
    assert_eq!(
        bob.eval(
            "return document.getElementById('vote-pro').getAttribute('aria-pressed')",
            json!([])
        )
        .await,
        "false"
    );

    bob.click("#vote-con").await;
    alice.wait_text("#tally", "Pro 1 (50%) · Con 1 (50%)").await;
    // Alice switches, then retracts, then comes back to pro.
    alice.click("#vote-con").await;
    alice.wait_attr("#vote-con", "aria-pressed", "true").await;
    alice.wait_attr("#vote-pro", "aria-pressed", "false").await;
    bob.wait_text("#tally", "Pro 0 (0%) · Con 2 (100%)").await;
    alice.click("#retract").await;
    alice.wait_text("#my-vote", "You have not voted.").await;
    alice.wait_attr("#vote-con", "aria-pressed", "false").await;
    bob.wait_text("#tally", "Pro 0 (0%) · Con 1 (100%)").await;
    alice.click("#vote-pro").await;
    alice.wait_text("#my-vote", "You voted pro.").await;
    let (status, _) = app.vote(&room, "carol", "pro").await;
    assert_eq!(status, 200);
    for s in [&alice, &bob] {
        s.wait_text("#tally", "Pro 2 (67%) · Con 1 (33%)").await;
    }

    // Chat both ways (Enter sends), plus a message over HTTP; same order on both pages.
    alice
        .type_into(
            "#say",
            &format!("Friday is fine behind a feature flag.{ENTER}"),
        )
        .await;
    bob.wait_text("#messages", "Friday is fine behind a feature flag.")
        .await;
    bob.type_into("#say", "Until the pager goes off at 2 a.m.")
        .await;
    bob.click("#send").await;
    alice
        .wait_text("#messages", "Until the pager goes off at 2 a.m.")
        .await;
    let (status, _) = app.say(&room, "carol", "Both fair: ship Thursday?").await;
    assert_eq!(status, 201);
    for s in [&alice, &bob] {
        s.wait_text("#messages", "Both fair: ship Thursday?").await;
    }
    let seen_by_alice = transcript(&alice).await;
    assert_eq!(seen_by_alice, transcript(&bob).await);
    assert_eq!(
        texts(&seen_by_alice),
        [
            "alice: Friday is fine behind a feature flag.",
            "bob: Until the pager goes off at 2 a.m.",
            "carol: Both fair: ship Thursday?",
        ]
    );
    assert_eq!(
        alice
            .eval("return document.activeElement.id", json!([]))
            .await,
        "say"
    );
    save_screenshot("room", &alice.screenshot().await);

    // The admin closes the room: both pages show the final view and stop taking input.
    let (status, last) = app.close_room(&room).await;
    assert_eq!(status, 200, "{last}");
    for s in [&alice, &bob] {
        s.wait_attr("#conn", "data-state", "closed").await;
        s.wait_text("#result", "Final result: Pro wins, 2–1.").await;
        assert!(s.visible("#closed").await);
        assert!(
            !s.visible("#vote-controls").await,
            "no voting in a closed room"
        );
        assert!(!s.visible("#say-form").await, "no chat in a closed room");
        assert_eq!(transcript(s).await, seen_by_alice, "the transcript stays");
    }
    alice.wait_text("#closed-detail", "You voted pro.").await;
    bob.wait_text("#closed-detail", "You voted con.").await;
    save_screenshot("room-closed", &bob.screenshot().await);

    // Opening the closed room afresh shows the same final view, from GET alone.
    bob.goto(&app.url(&format!("/r/{room}"))).await;
    bob.wait_text("#result", "Final result: Pro wins, 2–1.")
        .await;
    bob.wait_text("#messages", "Both fair: ship Thursday?")
        .await;
    assert_eq!(transcript(&bob).await, seen_by_alice);
    assert!(
        !bob.visible("#join").await,
        "no name prompt for a closed room"
    );
    bob.wait_text("#count", "Peak: 3 participants").await;

    alice.quit().await;
    bob.quit().await;
}

#[actix_rt::test]
async fn room_list_shows_rooms_and_creates_one() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app::start();
    let room = app.create_room("Tabs or spaces?").await;
    app.join(&room, "dora").await;
    let (status, _) = app.vote(&room, "dora", "con").await;
    assert_eq!(status, 200);
    let browser = Browser::start().await;
    let s = browser.session("lister").await;

    s.goto(&app.url("/")).await;
    let item = format!("#rooms li[data-id='{room}']");
    s.wait_text(&item, "Tabs or spaces?").await;
    s.wait_text(&item, "1 participant").await;
    s.wait_text(&item, "Pro 0 (0%) · Con 1 (100%)").await;
    let href = s
        .eval(
            "return document.querySelector(arguments[0] + ' a').getAttribute('href')",
            json!([item]),
        )
        .await;
    assert_eq!(href, format!("/r/{room}"));

    // A blank title is refused on the page, with a message.
    s.type_into("#title", &format!("   {ENTER}")).await;
    s.wait_text("#create-error", "Type a question").await;

    // Creating a room opens it.
    s.type_into("#title", &format!("Is a hot dog a sandwich?{ENTER}"))
        .await;
    let path = s
        .wait_for(
            "the new room's page",
            "return location.pathname.startsWith('/r/') ? location.pathname : null",
            json!([]),
        )
        .await;
    let id = path
        .as_str()
        .and_then(|p| p.strip_prefix("/r/"))
        .expect("a room path")
        .to_owned();
    s.wait_text("#title", "Is a hot dog a sandwich?").await;
    assert_eq!(app.room(&id).await["title"], "Is a hot dog a sandwich?");

    // Back on the list, both rooms are there.
    s.goto(&app.url("/")).await;
    s.wait_text(
        &format!("#rooms li[data-id='{id}']"),
        "Is a hot dog a sandwich?",
    )
    .await;
    s.wait_text("#rooms-status", "2 open rooms").await;
    s.quit().await;
}

#[actix_rt::test]
async fn a_bad_user_name_is_refused_with_a_message() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app::start();
    let room = app.create_room("Names").await;
    let browser = Browser::start().await;
    let s = browser.session("namer").await;
    s.goto(&app.url(&format!("/r/{room}"))).await;

    for bad in ["bob smith", "émile", "a/b"] {
        s.type_into("#user", &format!("{bad}{ENTER}")).await;
        s.wait_text("#user-error", "cannot be used").await;
        s.wait_attr("#user", "aria-invalid", "true").await;
        assert!(s.text("#user-error").await.contains(bad));
        assert!(
            !s.visible("#live").await,
            "{bad:?} must not get into the room"
        );
    }
    s.type_into("#user", ENTER).await;
    s.wait_text("#user-error", "Type a name first.").await;
    assert_eq!(app.room(&room).await["participants"], 0);

    // Fixing it gets in.
    s.type_into("#user", &format!("bob_smith{ENTER}")).await;
    s.wait_attr("#conn", "data-state", "live").await;
    s.wait_text("#count", "1 participant here now").await;
    assert!(!s.visible("#user-error").await);
    assert_eq!(app.room(&room).await["participants"], 1);
    s.quit().await;
}

#[actix_rt::test]
async fn a_room_closed_while_the_name_prompt_is_up_shows_the_final_view() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app::start();
    let room = app.create_room("Too late").await;
    app.join(&room, "early").await;
    let (status, _) = app.vote(&room, "early", "con").await;
    assert_eq!(status, 200);
    let browser = Browser::start().await;
    let s = browser.session("late").await;
    s.goto(&app.url(&format!("/r/{room}"))).await;
    s.wait_for(
        "the name prompt",
        "return document.getElementById('join').hidden === false",
        json!([]),
    )
    .await;
    let (status, _) = app.close_room(&room).await;
    assert_eq!(status, 200);

    // The socket is refused (409 before the upgrade); the page asks the API and shows why.
    s.type_into("#user", &format!("late{ENTER}")).await;
    s.wait_attr("#conn", "data-state", "closed").await;
    s.wait_text("#result", "Final result: Con wins, 1–0.").await;
    assert!(!s.visible("#vote-controls").await);
    s.quit().await;
}

/// Installed before any page script: records every socket the page opens, and while
/// `__blockSockets` is set, points new ones at a closed port so they fail at once.
const SOCKET_HOOK: &str = r#"
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.__blockSockets = false;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(window.__blockSockets ? "ws://127.0.0.1:9/blocked" : url, protocols);
      window.__sockets.push(this);
    }
  };
})();
"#;

#[actix_rt::test]
async fn the_page_reconnects_after_the_socket_drops() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app::start();
    let room = app.create_room("Reconnecting").await;
    let browser = Browser::start().await;
    let alice = browser.session("alice").await;
    let bob = browser.session("bob").await;
    alice
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": SOCKET_HOOK }),
        )
        .await;
    join(&alice, &app, &room, "alice").await;
    join(&bob, &app, &room, "bob").await;
    alice.click("#vote-pro").await;
    alice.wait_attr("#vote-pro", "aria-pressed", "true").await;
    alice
        .type_into("#say", &format!("before the drop{ENTER}"))
        .await;
    bob.wait_text("#messages", "before the drop").await;

    // Drop Alice's socket and keep her offline for a moment.
    alice
        .eval(
            "window.__blockSockets = true; window.__sockets.forEach(s => s.close()); return true;",
            json!([]),
        )
        .await;
    alice.wait_attr("#conn", "data-state", "reconnecting").await;
    alice.wait_text("#conn", "Reconnecting").await;
    alice.wait_for(
        "the vote buttons to be disabled while offline",
        "return document.getElementById('vote-pro').disabled && document.getElementById('send').disabled",
        json!([]),
    )
    .await;
    bob.wait_text("#count", "1 participant here now").await;
    // Said while Alice is away: she must get it from the history when she is back.
    bob.type_into("#say", &format!("while you were away{ENTER}"))
        .await;
    bob.wait_text("#messages", "while you were away").await;

    alice
        .eval("window.__blockSockets = false; return true;", json!([]))
        .await;
    alice.wait_attr("#conn", "data-state", "live").await;
    bob.wait_text("#count", "2 participants here now").await;
    alice.wait_text("#messages", "while you were away").await;
    alice.wait_attr("#vote-pro", "aria-pressed", "true").await;
    let attempts = alice
        .eval("return window.__sockets.length", json!([]))
        .await;
    assert!(attempts.as_u64() >= Some(2), "{attempts}");

    // Live again both ways, no message twice.
    alice.type_into("#say", &format!("back again{ENTER}")).await;
    bob.wait_text("#messages", "back again").await;
    alice.wait_text("#messages", "back again").await;
    let expected = [
        "alice: before the drop",
        "bob: while you were away",
        "alice: back again",
    ];
    assert_eq!(texts(&transcript(&alice).await), expected);
    assert_eq!(texts(&transcript(&bob).await), expected);

    alice.quit().await;
    bob.quit().await;
}

/// A header's value as text ("" when missing).
fn value(headers: &awc::http::header::HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The plain HTTP side of the pages, no browser needed.
#[actix_rt::test]
async fn pages_and_assets_have_types_and_cache_headers_and_shadow_no_api_route() {
    let app = app::start();
    let room = app.create_room("headers").await;
    let client = Client::builder().timeout(Duration::from_secs(30)).finish();
    let get = |path: String| {
        let request = client.get(app.url(&path));
        async move {
            let mut response = request.send().await.expect("GET");
            let body = response.body().limit(1 << 20).await.expect("body");
            (response.status(), response.headers().clone(), body)
        }
    };

    let (status, headers, body) = get("/".into()).await;
    assert_eq!(status, 200);
    assert_eq!(
        value(&headers, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(value(&headers, header::CACHE_CONTROL), "no-cache");
    assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
    let html = String::from_utf8_lossy(&body).into_owned();
    let css = html
        .split('"')
        .find(|s| s.starts_with("/assets/app.css?v="))
        .expect("a versioned stylesheet link")
        .to_owned();

    let (status, headers, _) = get(css.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        value(&headers, header::CONTENT_TYPE),
        "text/css; charset=utf-8"
    );
    assert_eq!(
        value(&headers, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    let etag = headers.get(header::ETAG).expect("an ETag").clone();
    let (status, headers, _) = get("/assets/room.js".into()).await;
    assert_eq!(status, 200);
    assert_eq!(
        value(&headers, header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        value(&headers, header::CACHE_CONTROL),
        "no-cache",
        "unversioned"
    );
    let revalidated = client
        .get(app.url(&css))
        .insert_header((header::IF_NONE_MATCH, etag))
        .send()
        .await
        .expect("conditional GET");
    assert_eq!(revalidated.status(), 304);

    let (status, headers, _) = get(format!("/r/{room}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        value(&headers, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );

    // Everything else is still the API's JSON.
    for path in ["/assets/nope.js", "/r/not%20a%20room", "/nope", "/r"] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"], "not_found", "{path}: {body}");
    }
    let (status, body) = app.post("/", json!({})).await;
    assert_eq!(
        (status.as_u16(), &body["error"]),
        (404, &Value::from("not_found"))
    );
    let (status, body) = app.get("/rooms").await;
    assert_eq!(status, 200);
    assert_eq!(body["rooms"][0]["id"], room.as_str());
}
