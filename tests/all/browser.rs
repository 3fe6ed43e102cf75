//! The web page (`/`, `/r/{id}`) in a real headless Chromium against the real engine: two users
//! in one Korean room see each other's votes and messages live, in Korean, and see the admin
//! close the room; the room list shows and creates rooms; bad names are refused; a dropped socket
//! comes back by itself, and the page's JavaScript client (clients/js/roomstate.js) loses and
//! repeats no message across drops, even one in the middle of its catch-up; the page speaks
//! Korean or English as the browser prefers, and its language switch is remembered. Plus the
//! plain HTTP side: content types, cache headers, no shadowed API routes.

use std::time::Duration;

use awc::{http::header, Client};
use serde_json::{json, Value};

use crate::support::{
    app::{self, TestApp},
    auth::{hs256, now, SECRET},
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

/// The messages of `room` as the API has them, as `transcript` shows them.
async fn server_transcript(app: &TestApp, room: &str) -> Vec<String> {
    let (status, body) = app
        .get(&format!("/rooms/{room}/messages?after=0&limit=500"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            format!(
                "{} {}: {}",
                m["seq"],
                m["user"].as_str().unwrap(),
                m["text"].as_str().unwrap()
            )
        })
        .collect()
}

/// A browser that prefers Korean.
const KOREAN: &str = "ko-KR,ko";

#[actix_rt::test]
async fn two_users_vote_chat_and_see_the_room_close() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app::start();
    let room = app.create_room("금요일에 배포해도 될까요?").await;
    let browser = Browser::start().await;
    let alice = browser.session_in("alice", KOREAN).await;
    let bob = browser.session_in("bob", KOREAN).await;

    join(&alice, &app, &room, "alice").await;
    join(&bob, &app, &room, "bob").await;
    assert_eq!(
        alice
            .eval("return document.documentElement.lang", json!([]))
            .await,
        "ko"
    );
    alice.wait_text("#count", "지금 2명 참여 중").await;
    alice.wait_text("#title", "금요일에 배포해도 될까요?").await;
    alice.wait_text("#conn", "실시간").await;
    alice
        .wait_text("#my-vote", "아직 투표하지 않았습니다.")
        .await;
    assert_eq!(alice.text("#vote-pro").await, "찬성");
    assert_eq!(alice.text("#vote-con").await, "반대");
    // A third user over plain HTTP counts too.
    app.join(&room, "carol").await;
    bob.wait_text("#count", "지금 3명 참여 중").await;

    // Alice votes; Bob sees the bar move, and only Alice's button is pressed.
    alice.click("#vote-pro").await;
    alice.wait_attr("#vote-pro", "aria-pressed", "true").await;
    alice.wait_text("#my-vote", "찬성에 투표했습니다.").await;
    bob.wait_text("#tally", "찬성 1 (100%) · 반대 0 (0%)").await;
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
    alice
        .wait_text("#tally", "찬성 1 (50%) · 반대 1 (50%)")
        .await;
    // Alice switches, then retracts, then comes back to pro.
    alice.click("#vote-con").await;
    alice.wait_attr("#vote-con", "aria-pressed", "true").await;
    alice.wait_attr("#vote-pro", "aria-pressed", "false").await;
    bob.wait_text("#tally", "찬성 0 (0%) · 반대 2 (100%)").await;
    alice.click("#retract").await;
    alice
        .wait_text("#my-vote", "아직 투표하지 않았습니다.")
        .await;
    alice.wait_attr("#vote-con", "aria-pressed", "false").await;
    bob.wait_text("#tally", "찬성 0 (0%) · 반대 1 (100%)").await;
    alice.click("#vote-pro").await;
    alice.wait_text("#my-vote", "찬성에 투표했습니다.").await;
    let (status, _) = app.vote(&room, "carol", "pro").await;
    assert_eq!(status, 200);
    for s in [&alice, &bob] {
        s.wait_text("#tally", "찬성 2 (67%) · 반대 1 (33%)").await;
    }

    // Chat both ways (Enter sends), plus a message over HTTP; same order on both pages.
    alice
        .type_into(
            "#say",
            &format!("기능 플래그 뒤라면 금요일도 괜찮아요.{ENTER}"),
        )
        .await;
    bob.wait_text("#messages", "기능 플래그 뒤라면 금요일도 괜찮아요.")
        .await;
    bob.type_into("#say", "새벽 2시에 호출기가 울리기 전까지는요.")
        .await;
    bob.click("#send").await;
    alice
        .wait_text("#messages", "새벽 2시에 호출기가 울리기 전까지는요.")
        .await;
    let (status, _) = app
        .say(&room, "carol", "둘 다 일리 있네요. 목요일에 배포할까요?")
        .await;
    assert_eq!(status, 201);
    for s in [&alice, &bob] {
        s.wait_text("#messages", "둘 다 일리 있네요. 목요일에 배포할까요?")
            .await;
    }
    let seen_by_alice = transcript(&alice).await;
    assert_eq!(seen_by_alice, transcript(&bob).await);
    assert_eq!(seen_by_alice, server_transcript(&app, &room).await);
    assert_eq!(
        texts(&seen_by_alice),
        [
            "alice: 기능 플래그 뒤라면 금요일도 괜찮아요.",
            "bob: 새벽 2시에 호출기가 울리기 전까지는요.",
            "carol: 둘 다 일리 있네요. 목요일에 배포할까요?",
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
        s.wait_text("#conn", "토론 종료").await;
        s.wait_text("#result", "최종 결과: 찬성 승리, 2대 1.").await;
        assert!(s.visible("#closed").await);
        assert!(
            !s.visible("#vote-controls").await,
            "no voting in a closed room"
        );
        assert!(!s.visible("#say-form").await, "no chat in a closed room");
        assert_eq!(transcript(s).await, seen_by_alice, "the transcript stays");
        s.wait_text("#closed-detail", "메시지 3개, 동시 참여 최대 3명.")
            .await;
    }
    alice
        .wait_text("#closed-detail", "찬성에 투표했습니다.")
        .await;
    bob.wait_text("#closed-detail", "반대에 투표했습니다.")
        .await;
    alice
        .wait_text("#me-line", "alice 님으로 참여했습니다.")
        .await;
    save_screenshot("room-closed", &bob.screenshot().await);

    // Opening the closed room afresh shows the same final view, from GET alone.
    bob.goto(&app.url(&format!("/r/{room}"))).await;
    bob.wait_text("#result", "최종 결과: 찬성 승리, 2대 1.")
        .await;
    bob.wait_text("#messages", "둘 다 일리 있네요. 목요일에 배포할까요?")
        .await;
    assert_eq!(transcript(&bob).await, seen_by_alice);
    assert!(
        !bob.visible("#join").await,
        "no name prompt for a closed room"
    );
    bob.wait_text("#count", "최대 참여자: 3명").await;
    // The same in English, at the click of the switch.
    bob.click("#lang-switch button[data-lang='en']").await;
    bob.wait_text("#result", "Final result: Pro wins, 2–1.")
        .await;
    bob.wait_text("#count", "Peak: 3 participants").await;
    bob.wait_text(
        "#closed-detail",
        "3 messages, at most 3 participants at once.",
    )
    .await;

    alice.quit().await;
    bob.quit().await;
}

#[actix_rt::test]
async fn room_list_shows_rooms_and_creates_one() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app::start();
    let room = app.create_room("탭이냐 스페이스냐?").await;
    app.join(&room, "dora").await;
    let (status, _) = app.vote(&room, "dora", "con").await;
    assert_eq!(status, 200);
    let browser = Browser::start().await;
    let s = browser.session("lister").await;

    s.goto(&app.url("/")).await;
    let item = format!("#rooms li[data-id='{room}']");
    s.wait_text(&item, "탭이냐 스페이스냐?").await;
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
    s.type_into("#title", &format!("핫도그는 샌드위치인가?{ENTER}"))
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
    s.wait_text("#title", "핫도그는 샌드위치인가?").await;
    assert_eq!(app.room(&id).await["title"], "핫도그는 샌드위치인가?");

    // Back on the list, both rooms are there.
    s.goto(&app.url("/")).await;
    s.wait_text(
        &format!("#rooms li[data-id='{id}']"),
        "핫도그는 샌드위치인가?",
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

    for bad in ["bob smith", "émile", "a/b", "김민수"] {
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
/// `__blockSockets` is set, points new ones at a closed port so they fail at once; while
/// `__holdHistory` is set, holds every `GET .../messages?` (the client's catch-up) until
/// `__releaseHistory()`.
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
  const nativeFetch = window.fetch.bind(window);
  window.__holdHistory = false;
  window.__held = [];
  window.fetch = (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    if (!window.__holdHistory || !url.includes("/messages?")) return nativeFetch(input, init);
    return new Promise((go) => window.__held.push(go)).then(() => nativeFetch(input, init));
  };
  window.__releaseHistory = () => {
    window.__holdHistory = false;
    const held = window.__held;
    window.__held = [];
    held.forEach((go) => go());
    return held.length;
  };
})();
"#;

#[actix_rt::test]
async fn the_page_reconnects_after_the_socket_drops() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app::start();
    let room = app.create_room("다시 연결").await;
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
    alice.type_into("#say", &format!("끊기기 전{ENTER}")).await;
    bob.wait_text("#messages", "끊기기 전").await;

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
    bob.type_into("#say", &format!("자리 비운 사이에{ENTER}"))
        .await;
    bob.wait_text("#messages", "자리 비운 사이에").await;

    alice
        .eval("window.__blockSockets = false; return true;", json!([]))
        .await;
    alice.wait_attr("#conn", "data-state", "live").await;
    bob.wait_text("#count", "2 participants here now").await;
    alice.wait_text("#messages", "자리 비운 사이에").await;
    alice.wait_attr("#vote-pro", "aria-pressed", "true").await;
    let attempts = alice
        .eval("return window.__sockets.length", json!([]))
        .await;
    assert!(attempts.as_u64() >= Some(2), "{attempts}");

    // Live again both ways, no message twice.
    alice
        .type_into("#say", &format!("다시 왔어요{ENTER}"))
        .await;
    bob.wait_text("#messages", "다시 왔어요").await;
    alice.wait_text("#messages", "다시 왔어요").await;
    let expected = [
        "alice: 끊기기 전",
        "bob: 자리 비운 사이에",
        "alice: 다시 왔어요",
    ];
    assert_eq!(texts(&transcript(&alice).await), expected);
    assert_eq!(texts(&transcript(&bob).await), expected);

    alice.quit().await;
    bob.quit().await;
}

/// Posts `texts` as `user` over HTTP, one after the other.
async fn say_all(app: &TestApp, room: &str, user: &str, texts: &[&str]) {
    for text in texts {
        let (status, body) = app.say(room, user, text).await;
        assert_eq!(status, 201, "{body}");
    }
}

/// A message over the engine's frame limit (`limits.max_frame_bytes`, here 1 KiB; the page's
/// input takes 2000 characters): the engine refuses it unread and closes the socket with 1009.
/// The page's client rejects that message with `too_large` and does not send it again — it
/// reconnects once and gets on — where it used to send it on every new socket, one 1009 after
/// another.
#[actix_rt::test]
async fn the_client_rejects_a_message_over_the_frame_limit_and_gets_back_on() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app::builder()
        .setting("LIMITS__MAX_FRAME_BYTES", 1024)
        .start();
    let room = app.create_room("frame limit").await;
    let browser = Browser::start().await;
    let alice = browser.session_in("alice", KOREAN).await;
    join(&alice, &app, &room, "alice").await;
    alice
        .eval(
            "const c = window.roomstate.client;
             window.__retries = 0;
             c.addEventListener('retry', () => { window.__retries += 1; });
             window.__refused = null;
             c.say('x'.repeat(2000)).then(
               () => { window.__refused = 'acknowledged'; },
               (e) => { window.__refused = e.code; });
             return true;",
            json!([]),
        )
        .await;
    let refused = alice
        .wait_for(
            "the oversize message's refusal",
            "return window.__refused",
            json!([]),
        )
        .await;
    assert_eq!(refused, "too_large");
    alice.wait_attr("#conn", "data-state", "live").await;
    let said = alice
        .eval(
            "window.__said = null;
             window.roomstate.client.say('작은 글').then((a) => { window.__said = a.seq; });
             return true;",
            json!([]),
        )
        .await;
    assert_eq!(said, true);
    alice
        .wait_for("the next message's ack", "return window.__said", json!([]))
        .await;
    let retries = alice.eval("return window.__retries;", json!([])).await;
    assert_eq!(
        retries, 1,
        "one reconnect after the 1009, not one per attempt"
    );
    let server = server_transcript(&app, &room).await;
    assert_eq!(server.len(), 1, "{server:?}");
}

/// The page's client (`window.roomstate.client`, clients/js/roomstate.js) across two drops,
/// one of them in the middle of its catch-up, while another user keeps posting: every message
/// reaches the page once, in seq order — both the client's `message` events and the list the
/// page shows — and a message said while offline is sent once the socket is back.
#[actix_rt::test]
async fn the_client_loses_and_repeats_no_message_across_drops() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app::start();
    let room = app.create_room("끊겨도 메시지는 한 번씩").await;
    app.join(&room, "carol").await;
    say_all(&app, &room, "carol", &["첫째", "둘째", "셋째"]).await;
    let browser = Browser::start().await;
    let alice = browser.session_in("alice", KOREAN).await;
    alice
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": SOCKET_HOOK }),
        )
        .await;
    join(&alice, &app, &room, "alice").await;
    alice.wait_text("#messages", "셋째").await;
    // From here on, what the client delivers, and the newest state it reported.
    alice
        .eval(
            "const c = window.roomstate.client;
             window.__delivered = [];
             c.addEventListener('message', (e) => window.__delivered.push(e.detail.seq));
             c.addEventListener('state', (e) => { window.__view = e.detail; });
             return true;",
            json!([]),
        )
        .await;

    // 1. The socket drops (closed from the page through the client's handle) and stays down
    // while Carol posts.
    alice
        .eval(
            "window.__blockSockets = true; window.roomstate.client.socket.close(3000); return true;",
            json!([]),
        )
        .await;
    alice.wait_attr("#conn", "data-state", "reconnecting").await;
    alice.wait_text("#conn", "다시 연결합니다").await;
    say_all(
        &app,
        &room,
        "carol",
        &["넷째", "다섯째", "여섯째", "일곱째", "여덟째"],
    )
    .await;

    // 2. It comes back, but its catch-up (GET /messages?after=) is held; Carol posts more, which
    // the new socket brings while the catch-up waits.
    alice
        .eval(
            "window.__holdHistory = true; window.__blockSockets = false; return true;",
            json!([]),
        )
        .await;
    alice
        .wait_for(
            "a live socket whose catch-up is held",
            "return window.roomstate.client.status === 'live' && window.__held.length === 1",
            json!([]),
        )
        .await;
    say_all(&app, &room, "carol", &["아홉째", "열째", "열한째"]).await;
    alice
        .wait_for(
            "a state with 11 messages",
            "return window.__view && window.__view.messages === 11",
            json!([]),
        )
        .await;
    assert!(
        !transcript(&alice).await.iter().any(|l| l.ends_with("넷째")),
        "nothing after the gap is shown before the gap is filled"
    );

    // 3. The socket drops again in the middle of that catch-up; Carol posts, and Alice says
    // something while offline (the client keeps it until a socket is live).
    alice
        .eval(
            "window.__blockSockets = true; window.roomstate.client.socket.close(3000);
             window.__said = null;
             window.roomstate.client.say('오프라인에서 쓴 글').then((a) => { window.__said = a.seq; });
             return true;",
            json!([]),
        )
        .await;
    alice.wait_attr("#conn", "data-state", "reconnecting").await;
    say_all(&app, &room, "carol", &["열두째", "열셋째"]).await;
    let held = alice
        .eval(
            "window.__blockSockets = false; return window.__releaseHistory();",
            json!([]),
        )
        .await;
    assert_eq!(held, 1, "the first catch-up was still waiting");

    let said = alice
        .wait_for(
            "the offline message's ack",
            "return window.__said",
            json!([]),
        )
        .await;
    alice.wait_text("#messages", "오프라인에서 쓴 글").await;
    alice.wait_attr("#conn", "data-state", "live").await;
    let server = server_transcript(&app, &room).await;
    assert_eq!(server.len(), 14, "{server:?}");
    assert!(
        server[13].starts_with(&format!("{said} alice: ")),
        "{server:?}"
    );
    alice
        .wait_for(
            "all 14 messages on the page",
            "return document.querySelectorAll('#messages li').length >= 14",
            json!([]),
        )
        .await;
    // Exactly the server's transcript, once each, in seq order.
    assert_eq!(transcript(&alice).await, server);
    let delivered: Vec<u64> =
        serde_json::from_value(alice.eval("return window.__delivered", json!([])).await).unwrap();
    let expected: Vec<u64> = server[3..]
        .iter()
        .map(|line| line.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        delivered, expected,
        "the client's message events after the first three"
    );
    // Still live both ways.
    alice.type_into("#say", &format!("끝{ENTER}")).await;
    alice.wait_text("#messages", "끝").await;
    assert_eq!(
        transcript(&alice).await,
        server_transcript(&app, &room).await
    );
    alice.quit().await;
}

/// Token mode: the page joins with the link's token; when the token expires in the room (the
/// engine closes the socket with 4001), the client's check before reconnecting (`GET /auth`)
/// gets the 401, and the page asks for a fresh link — in Korean — instead of retrying.
#[actix_rt::test]
async fn a_token_that_expires_in_the_room_ends_in_a_request_for_a_fresh_link() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app::builder()
        .setting("AUTH__MODE", "token")
        .setting("AUTH__HS256_SECRET", SECRET)
        .start();
    let room = app.create_room("링크는 언제까지?").await;
    let browser = Browser::start().await;
    let s = browser.session_in("dana", KOREAN).await;
    // Past `exp` plus the engine's 5 s of leeway, the socket is closed.
    let token = hs256(&json!({"sub": "dana", "exp": now() + 2}));
    s.goto(&app.url(&format!("/r/{room}#token={token}"))).await;
    s.wait_attr("#conn", "data-state", "live").await;
    s.wait_text("#me", "dana").await;
    s.type_into("#say", &format!("아직 유효해요{ENTER}")).await;
    s.wait_text("#messages", "아직 유효해요").await;
    s.wait_text("#signin-text", "링크가 만료되었습니다.").await;
    assert!(!s.visible("#live").await && !s.visible("#join").await);
    assert_eq!(
        s.eval("return window.roomstate.client.status", json!([]))
            .await,
        "closed",
        "the page stopped its client"
    );
    app::eventually("dana's socket gone", Duration::from_secs(20), || async {
        (app.room(&room).await["participants"] == 0).then_some(())
    })
    .await;
    s.quit().await;
}

/// What the page says at `/` in each language.
const LIST_HEADING: [(&str, &str); 2] = [("ko", "토론방"), ("en", "Debate rooms")];

fn heading(lang: &str) -> &'static str {
    LIST_HEADING.iter().find(|(l, _)| *l == lang).unwrap().1
}

/// Waits until the page is in `lang`: `<html lang>`, the switch, and the list's heading.
async fn wait_list_in(s: &Session, lang: &str) {
    s.wait_attr("html", "lang", lang).await;
    s.wait_text("main h1", heading(lang)).await;
    s.wait_attr(
        &format!("#lang-switch button[data-lang='{lang}']"),
        "aria-pressed",
        "true",
    )
    .await;
}

#[actix_rt::test]
async fn the_page_speaks_the_browsers_language_and_remembers_the_switch() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = app::start();
    let room = app.create_room("존댓말이냐 반말이냐?").await;
    let browser = Browser::start().await;

    // A browser that prefers Korean gets Korean; one that prefers English, English; one that
    // prefers German, then Korean, gets Korean (the first of its languages the page has).
    let ko = browser.session_in("ko", KOREAN).await;
    let en = browser.session("en").await;
    let de = browser.session_in("de", "de-DE,de,ko").await;
    for (s, lang) in [(&ko, "ko"), (&en, "en"), (&de, "ko")] {
        s.goto(&app.url("/")).await;
        wait_list_in(s, lang).await;
    }
    let item = format!("#rooms li[data-id='{room}']");
    ko.wait_text(&item, "존댓말이냐 반말이냐?").await;
    ko.wait_text(&item, "참여자 0명").await;
    ko.wait_text(&item, "찬성 0 · 반대 0 (아직 투표 없음)")
        .await;
    ko.wait_text("#rooms-status", "진행 중인 토론방 1개").await;
    assert_eq!(ko.text("#create-h").await, "새 토론 시작");
    assert_eq!(
        ko.eval("return document.title", json!([])).await,
        "토론방 · roomstate"
    );
    en.wait_text(&item, "0 participants").await;
    en.wait_text(&item, "Pro 0 · Con 0 (no votes yet)").await;
    en.wait_text("#rooms-status", "1 open room").await;
    assert_eq!(en.text("#create-h").await, "Start a debate");
    assert_eq!(
        en.eval("return document.title", json!([])).await,
        "Debate rooms · roomstate"
    );
    for s in [&ko, &en] {
        assert_eq!(
            s.text("#lang-switch button[data-lang='ko']").await,
            "한국어"
        );
        assert_eq!(
            s.text("#lang-switch button[data-lang='en']").await,
            "English"
        );
    }

    // The switch: the Korean browser chooses English, and keeps it across a reload and on the
    // room page; the other browsers are not affected.
    ko.click("#lang-switch button[data-lang='en']").await;
    wait_list_in(&ko, "en").await;
    ko.wait_text("#rooms-status", "1 open room").await;
    ko.wait_text(&item, "0 participants").await;
    ko.reload().await;
    wait_list_in(&ko, "en").await;
    ko.goto(&app.url(&format!("/r/{room}"))).await;
    ko.wait_attr("html", "lang", "en").await;
    ko.wait_text("#join-h", "Join the debate").await;
    de.reload().await;
    wait_list_in(&de, "ko").await;

    // Back to Korean on the room page, with the name prompt up, then live.
    ko.click("#lang-switch button[data-lang='ko']").await;
    ko.wait_attr("html", "lang", "ko").await;
    ko.wait_text("#join-h", "토론 참여하기").await;
    ko.type_into("#user", &format!("김민수{ENTER}")).await;
    ko.wait_text("#user-error", "“김민수”은(는) 쓸 수 없습니다.")
        .await;
    // The error follows the language too.
    ko.click("#lang-switch button[data-lang='en']").await;
    ko.wait_text("#user-error", "“김민수” cannot be used").await;
    ko.click("#lang-switch button[data-lang='ko']").await;
    ko.type_into("#user", &format!("minsu{ENTER}")).await;
    ko.wait_attr("#conn", "data-state", "live").await;
    ko.wait_text("#conn", "실시간").await;
    ko.wait_text("#me-line", "minsu 님으로 참여 중입니다.")
        .await;
    ko.wait_text("#count", "지금 1명 참여 중").await;
    ko.wait_text("#tally", "찬성 0 · 반대 0 (아직 투표 없음)")
        .await;
    ko.click("#vote-con").await;
    ko.wait_text("#my-vote", "반대에 투표했습니다.").await;
    ko.type_into("#say", &format!("반말은 친구끼리만요.{ENTER}"))
        .await;
    ko.wait_text("#messages", "반말은 친구끼리만요.").await;
    assert_eq!(
        ko.eval("return document.title", json!([])).await,
        "존댓말이냐 반말이냐? · roomstate"
    );

    // Live, every word changes at once, and the room stays live.
    ko.click("#lang-switch button[data-lang='en']").await;
    ko.wait_text("#count", "1 participant here now").await;
    ko.wait_text("#tally", "Pro 0 (0%) · Con 1 (100%)").await;
    ko.wait_text("#my-vote", "You voted con.").await;
    ko.wait_text("#me-line", "You are minsu.").await;
    assert_eq!(ko.text("#conn").await, "Live");
    assert_eq!(ko.text("#vote-pro").await, "Pro");
    assert_eq!(ko.text("#chat-h").await, "Chat");
    assert_eq!(
        ko.eval(
            "return document.getElementById('vote-controls').getAttribute('aria-label')",
            json!([])
        )
        .await,
        "Your vote"
    );
    ko.click("#vote-pro").await;
    ko.wait_text("#my-vote", "You voted pro.").await;
    ko.reload().await;
    ko.wait_attr("html", "lang", "en").await;
    ko.wait_text("#join-h", "Join the debate").await;
    assert_eq!(app.room(&room).await["pro"], 1);

    for s in [ko, en, de] {
        s.quit().await;
    }
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

    let (status, headers, body) = get(format!("/r/{room}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        value(&headers, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );

    // The room page loads the JavaScript client of clients/js, versioned, byte for byte.
    let html = String::from_utf8_lossy(&body).into_owned();
    let client_url = html
        .split('"')
        .find(|s| s.starts_with("/assets/roomstate.js?v="))
        .expect("a versioned link to the client")
        .to_owned();
    let (status, headers, served) = get(client_url).await;
    assert_eq!(status, 200);
    assert_eq!(
        value(&headers, header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        value(&headers, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(&served[..], include_bytes!("../../clients/js/roomstate.js"));
    // And the words: the strings module, with both languages.
    let i18n = html
        .split('"')
        .find(|s| s.starts_with("/assets/i18n.js?v="))
        .expect("a versioned link to i18n.js")
        .to_owned();
    let (status, _, words) = get(i18n).await;
    assert_eq!(status, 200);
    let words = String::from_utf8_lossy(&words).into_owned();
    assert!(words.contains("const ko = {") && words.contains("const en = {"));

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
