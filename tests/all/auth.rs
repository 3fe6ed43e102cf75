//! User tokens (docs/api.md "Users and tokens"), through the real binary: every way a token is
//! refused over HTTP and over the WebSocket — with its status, body code and `WWW-Authenticate`,
//! and no change to the room — the right token, a socket whose token expires (error frame, close
//! 4001), the admin token and user tokens kept apart, `auth.create_rooms`, RS256 and ES256 keys,
//! `GET /auth`, the web page in token mode (headless Chromium), and the settings the binary
//! refuses.

use std::{path::Path, time::Duration};

use roomstate_testkit::engine::run_to_exit;
use serde_json::{json, Value};

use crate::support::{
    app::{self, TestApp, TOKEN},
    auth::{self, call, claims, forged, hs256, refused_upgrade, Answer, KeyPair, SECRET},
    browser::Browser,
    ws::WsClient,
};

const CHALLENGE: &str = "Bearer realm=\"roomstate\"";

/// An engine in token mode with an HS256 secret.
fn hs256_engine() -> TestApp {
    app::builder()
        .setting("AUTH__MODE", "token")
        .setting("AUTH__HS256_SECRET", SECRET)
        .start()
}

/// An engine in token mode with this public key.
fn key_engine(keys: &KeyPair) -> TestApp {
    app::builder()
        .setting("AUTH__MODE", "token")
        .setting("AUTH__PUBLIC_KEY_FILE", keys.public_file.display())
        .start()
}

/// What a refusal must look like: status, code, and the challenge's `error_description` (`None`:
/// no token was judged; for a 403 there is no challenge at all).
#[derive(Debug, Clone, Copy)]
struct Expect {
    status: u16,
    code: &'static str,
    description: Option<&'static str>,
}

const NO_TOKEN: Expect = Expect {
    status: 401,
    code: "unauthorized",
    description: None,
};

const fn invalid(description: &'static str) -> Expect {
    Expect {
        status: 401,
        code: "unauthorized",
        description: Some(description),
    }
}

const FORBIDDEN: Expect = Expect {
    status: 403,
    code: "forbidden",
    description: None,
};

fn assert_refused(answer: &Answer, expect: Expect, what: &str) {
    assert_eq!(
        (answer.status, answer.code()),
        (expect.status, expect.code),
        "{what}: {answer:?}"
    );
    assert!(
        answer.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: a message: {answer:?}"
    );
    let challenge = answer.www_authenticate.as_deref();
    match (expect.status, expect.description) {
        (401, None) => assert_eq!(challenge, Some(CHALLENGE), "{what}"),
        (401, Some(description)) => assert_eq!(
            challenge,
            Some(
                format!(
                    "{CHALLENGE}, error=\"invalid_token\", error_description=\"{description}\""
                )
                .as_str()
            ),
            "{what}"
        ),
        _ => assert_eq!(challenge, None, "{what}: only a 401 challenges"),
    }
}

/// Every token that must not open alice's calls in `room` on an engine with an RSA key, and how
/// each is refused.
fn bad_tokens(keys: &KeyPair, room: &str) -> Vec<(&'static str, Option<String>, Expect)> {
    let alice = claims("alice");
    vec![
        ("no token", None, NO_TOKEN),
        (
            "garbage",
            Some("not-a-jwt".to_owned()),
            invalid("malformed token"),
        ),
        (
            "bad signature",
            Some(KeyPair::rsa().sign(&alice)),
            invalid("bad signature"),
        ),
        (
            "alg none",
            Some(forged(&json!({"alg": "none", "typ": "JWT"}), &alice, b"")),
            invalid("malformed token"),
        ),
        (
            "HS256 signed with the RSA public key",
            Some(auth::hs256_with(&keys.public_pem, &alice)),
            invalid("wrong algorithm"),
        ),
        (
            "expired",
            Some(keys.sign(&json!({"sub": "alice", "exp": auth::now() - 60}))),
            invalid("token expired"),
        ),
        (
            "the admin token",
            Some(TOKEN.to_owned()),
            invalid("malformed token"),
        ),
        (
            "another user's token",
            Some(keys.sign(&claims("mallory"))),
            FORBIDDEN,
        ),
        (
            "a token for other rooms",
            Some(keys.sign(&json!({
                "sub": "alice", "exp": auth::now() + 3600, "rooms": ["r_elsewhere"]
            }))),
            FORBIDDEN,
        ),
        (
            "a token for this room and its rooms",
            Some(keys.sign(&json!({
                "sub": "mallory", "exp": auth::now() + 3600, "rooms": [room]
            }))),
            FORBIDDEN,
        ),
    ]
}

/// The counters a refused call must not move.
async fn counters(app: &TestApp, room: &str) -> Value {
    let view = app.room(room).await;
    json!({
        "seq": view["seq"], "participants": view["participants"], "pro": view["pro"],
        "con": view["con"], "messages": view["messages"],
    })
}

/// alice's user calls in `room`: (what, method, path, body).
fn user_calls(room: &str) -> Vec<(&'static str, &'static str, String, Option<Value>)> {
    let alice = json!({"user": "alice"});
    vec![
        (
            "join",
            "POST",
            format!("/rooms/{room}/join"),
            Some(alice.clone()),
        ),
        (
            "vote",
            "PUT",
            format!("/rooms/{room}/votes/alice"),
            Some(json!({"side": "pro"})),
        ),
        (
            "retract",
            "DELETE",
            format!("/rooms/{room}/votes/alice"),
            None,
        ),
        (
            "message",
            "POST",
            format!("/rooms/{room}/messages"),
            Some(json!({"user": "alice", "text": "hi"})),
        ),
        ("leave", "POST", format!("/rooms/{room}/leave"), Some(alice)),
    ]
}

#[actix_rt::test]
async fn open_mode_believes_clients_and_says_so() {
    let app = app::start();
    let answer = call(&app, "GET", "/auth", None, None, &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        json!({"mode": "open", "create_rooms": "anyone"})
    );
    let room = app.create_room("open").await;
    app.join(&room, "alice").await;
    // A token is no use in open mode, and no harm either.
    let answer = call(
        &app,
        "PUT",
        &format!("/rooms/{room}/votes/alice"),
        Some(&json!({"side": "pro"})),
        Some("whatever"),
        &[],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        app.log()
            .contains("auth.mode = open: clients name their user and are believed (dev default)"),
        "{}",
        app.log()
    );
}

#[actix_rt::test]
async fn every_bad_token_is_refused_over_http_and_changes_nothing() {
    let keys = KeyPair::rsa();
    let app = key_engine(&keys);
    let room = app.create_room("matrix").await;
    let good = keys.sign(&claims("alice"));
    let joined = call(
        &app,
        "POST",
        &format!("/rooms/{room}/join"),
        Some(&json!({"user": "alice"})),
        Some(&good),
        &[],
    )
    .await;
    assert_eq!(joined.status, 200, "{joined:?}");
    let before = counters(&app, &room).await;
    assert_eq!(before["participants"], 1);

    for (what, token, expect) in bad_tokens(&keys, &room) {
        for (call_name, method, path, body) in user_calls(&room) {
            let answer = call(&app, method, &path, body.as_ref(), token.as_deref(), &[]).await;
            assert_refused(&answer, expect, &format!("{call_name} with {what}"));
        }
    }
    assert_eq!(
        counters(&app, &room).await,
        before,
        "refused calls changed nothing"
    );
    let (_, listing) = app.get(&format!("/rooms/{room}/messages")).await;
    assert_eq!(listing["messages"], json!([]));

    // The right token opens every call; reads stay public.
    let mut seq = before["seq"].as_u64().unwrap();
    for (call_name, method, path, body) in user_calls(&room) {
        let answer = call(&app, method, &path, body.as_ref(), Some(&good), &[]).await;
        assert!(
            answer.status == 200 || answer.status == 201,
            "{call_name}: {answer:?}"
        );
        if let Some(new) = answer.body["seq"].as_u64() {
            assert!(new >= seq, "{call_name}: seq {new} after {seq}");
            seq = new;
        }
    }
    let after = counters(&app, &room).await;
    assert!(after["seq"].as_u64().unwrap() > before["seq"].as_u64().unwrap());
    assert_eq!(after["messages"], 1, "{after}");
    assert_eq!(after["participants"], 0, "{after}");
    let (status, _) = app.get(&format!("/rooms/{room}/messages")).await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn every_bad_token_is_refused_before_the_socket_opens() {
    let keys = KeyPair::rsa();
    let app = key_engine(&keys);
    let room = app.create_room("sockets").await;
    let before = counters(&app, &room).await;
    for (what, token, expect) in bad_tokens(&keys, &room) {
        // In the query, as a browser sends it, and in the header, as other clients may.
        let path = match &token {
            Some(token) => format!("/rooms/{room}/ws?user=alice&token={token}"),
            None => format!("/rooms/{room}/ws?user=alice"),
        };
        let answer = refused_upgrade(&app, &path, None).await;
        assert_refused(&answer, expect, &format!("socket with {what} (query)"));
        let path = format!("/rooms/{room}/ws?user=alice");
        let answer = refused_upgrade(&app, &path, token.as_deref()).await;
        assert_refused(&answer, expect, &format!("socket with {what} (header)"));
    }
    // A right token with another `user`.
    let good = keys.sign(&claims("alice"));
    let answer = refused_upgrade(
        &app,
        &format!("/rooms/{room}/ws?user=bob&token={good}"),
        None,
    )
    .await;
    assert_refused(&answer, FORBIDDEN, "user= is not the token's sub");
    let answer = refused_upgrade(
        &app,
        &format!("/rooms/{room}/ws?user=b%20b&token={good}"),
        None,
    )
    .await;
    assert_eq!((answer.status, answer.code()), (400, "bad_request"));
    // A malformed query (a key given twice) is a 400 only after the credentials: without a
    // token it is the 401 of any tokenless request, with a good one in the header the 400.
    let twice = format!("/rooms/{room}/ws?user=alice&user=alice&token={good}");
    let answer = refused_upgrade(&app, &twice, None).await;
    assert_refused(&answer, NO_TOKEN, "a malformed query's token is not read");
    let answer = refused_upgrade(&app, &twice, Some(&good)).await;
    assert_eq!((answer.status, answer.code()), (400, "bad_request"));
    assert_eq!(
        counters(&app, &room).await,
        before,
        "no refusal joined anyone"
    );

    // The right token, with `user` left out or equal to `sub`.
    let mut alice = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?token={good}")))
        .await
        .expect("upgrade");
    assert_eq!(alice.next_of("state").await["participants"], 1);
    alice
        .send_json(&json!({"type": "vote", "side": "con", "req": "v"}))
        .await;
    assert_eq!(alice.answer_to("v").await.expect("answer")["type"], "ack");
    let url = app.ws_url(&format!("/rooms/{room}/ws?user=alice&token={good}"));
    let mut second = WsClient::connect(&url).await.expect("upgrade");
    let state = second.next_of("state").await;
    assert_eq!(
        (state["participants"].clone(), state["con"].clone()),
        (json!(1), json!(1))
    );
    let (_, listing) = app.get(&format!("/rooms/{room}/messages")).await;
    assert_eq!(listing["messages"], json!([]));
}

#[actix_rt::test]
async fn a_socket_whose_token_expires_gets_an_error_then_close_4001() {
    let app = hs256_engine();
    let room = app.create_room("expiry").await;
    // Expires in 3 s; with the 5 s leeway the socket ends about 8 s from now.
    let token = hs256(&json!({"sub": "alice", "exp": auth::now() + 3}));
    let mut alice = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?token={token}")))
        .await
        .expect("upgrade");
    assert_eq!(alice.next_of("state").await["participants"], 1);
    // `until_closed` waits with the client's deadline (20 s), well past the expiry.
    let (code, frames) = alice.until_closed().await;
    assert_eq!(code, Some(4001), "frames before the close: {frames:?}");
    let error = frames
        .iter()
        .find(|f| f["type"] == "error")
        .unwrap_or_else(|| panic!("an error frame before the close: {frames:?}"));
    assert_eq!(error["req"], Value::Null, "{error}");
    assert_eq!(error["error"], "unauthorized", "{error}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    app::eventually("alice to have left", Duration::from_secs(10), || async {
        (app.room(&room).await["participants"] == 0).then_some(())
    })
    .await;
    // A fresh token lets the client back in.
    let fresh = hs256(&claims("alice"));
    let mut again = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?token={fresh}")))
        .await
        .expect("upgrade with a fresh token");
    assert_eq!(again.next_of("state").await["participants"], 1);
}

#[actix_rt::test]
async fn admin_and_user_tokens_open_only_their_own_routes() {
    let app = hs256_engine();
    let room = app.create_room("apart").await;
    let user = hs256(&claims("alice"));
    let admin_routes = [
        ("POST", format!("/admin/rooms/{room}/close")),
        ("GET", "/admin/stats".to_owned()),
    ];
    for (method, path) in &admin_routes {
        let answer = call(&app, method, path, None, Some(&user), &[]).await;
        assert_refused(
            &answer,
            invalid("wrong admin token"),
            &format!("{path} with a user token"),
        );
        let answer = call(&app, method, path, None, None, &[]).await;
        assert_refused(&answer, NO_TOKEN, &format!("{path} with no token"));
    }
    assert_eq!(app.room(&room).await["status"], "open");
    for (call_name, method, path, body) in user_calls(&room) {
        let answer = call(&app, method, &path, body.as_ref(), Some(TOKEN), &[]).await;
        assert_refused(
            &answer,
            invalid("malformed token"),
            &format!("{call_name} with the admin token"),
        );
    }
    let answer = refused_upgrade(&app, &format!("/rooms/{room}/ws?token={TOKEN}"), None).await;
    assert_refused(
        &answer,
        invalid("malformed token"),
        "socket with the admin token",
    );
    let answer = call(&app, "GET", "/admin/stats", None, Some(TOKEN), &[]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[actix_rt::test]
async fn create_rooms_users_needs_a_user_token() {
    let app = app::builder()
        .setting("AUTH__MODE", "token")
        .setting("AUTH__HS256_SECRET", SECRET)
        .setting("AUTH__CREATE_ROOMS", "users")
        .start();
    let title = json!({"title": "who may"});
    let answer = call(&app, "POST", "/rooms", Some(&title), None, &[]).await;
    assert_refused(&answer, NO_TOKEN, "create with no token");
    for (what, token, description) in [
        ("garbage", "x.y.z".to_owned(), "malformed token"),
        ("the admin token", TOKEN.to_owned(), "malformed token"),
        (
            "an expired token",
            hs256(&json!({"sub": "alice", "exp": auth::now() - 60})),
            "token expired",
        ),
    ] {
        let answer = call(&app, "POST", "/rooms", Some(&title), Some(&token), &[]).await;
        assert_refused(
            &answer,
            invalid(description),
            &format!("create with {what}"),
        );
    }
    let (_, rooms) = app.get("/rooms").await;
    assert_eq!(rooms["rooms"], json!([]), "no refused create made a room");
    // Any valid user token, whatever rooms it names (the new room has no id yet).
    let token = hs256(&json!({"sub": "alice", "exp": auth::now() + 60, "rooms": []}));
    let answer = call(&app, "POST", "/rooms", Some(&title), Some(&token), &[]).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let answer = call(&app, "GET", "/auth", None, None, &[]).await;
    assert_eq!(
        answer.body,
        json!({"mode": "token", "create_rooms": "users", "algorithm": "HS256"})
    );
}

#[actix_rt::test]
async fn create_rooms_admin_needs_the_admin_token() {
    let app = app::builder()
        .setting("AUTH__MODE", "token")
        .setting("AUTH__HS256_SECRET", SECRET)
        .setting("AUTH__CREATE_ROOMS", "admin")
        .start();
    let title = json!({"title": "admins only"});
    let answer = call(&app, "POST", "/rooms", Some(&title), None, &[]).await;
    assert_refused(&answer, NO_TOKEN, "create with no token");
    let user = hs256(&claims("alice"));
    let answer = call(&app, "POST", "/rooms", Some(&title), Some(&user), &[]).await;
    assert_refused(
        &answer,
        invalid("wrong admin token"),
        "create with a user token",
    );
    let answer = call(&app, "POST", "/rooms", Some(&title), Some(TOKEN), &[]).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    // Open mode may keep room creation to the admin too.
    let open = app::builder()
        .setting("AUTH__CREATE_ROOMS", "admin")
        .start();
    let answer = call(&open, "POST", "/rooms", Some(&title), None, &[]).await;
    assert_refused(&answer, NO_TOKEN, "open mode, create with no token");
    let answer = call(&open, "POST", "/rooms", Some(&title), Some(TOKEN), &[]).await;
    assert_eq!(answer.status, 201, "{answer:?}");
}

#[actix_rt::test]
async fn an_es256_key_works_and_refuses_other_algorithms() {
    let keys = KeyPair::ec();
    let app = key_engine(&keys);
    let room = app.create_room("ec").await;
    let join = |token: String| {
        let path = format!("/rooms/{room}/join");
        let app = &app;
        async move {
            call(
                app,
                "POST",
                &path,
                Some(&json!({"user": "bob"})),
                Some(&token),
                &[],
            )
            .await
        }
    };
    let answer = join(KeyPair::rsa().sign(&claims("bob"))).await;
    assert_refused(
        &answer,
        invalid("wrong algorithm"),
        "an RS256 token on an EC key",
    );
    let answer = join(auth::hs256_with(&keys.public_pem, &claims("bob"))).await;
    assert_refused(
        &answer,
        invalid("wrong algorithm"),
        "HS256 with the EC public key",
    );
    let answer = join(KeyPair::ec().sign(&claims("bob"))).await;
    assert_refused(&answer, invalid("bad signature"), "another EC key's token");
    assert_eq!(app.room(&room).await["participants"], 0);
    let answer = join(keys.sign(&claims("bob"))).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["participants"], 1);
    let socket = keys.sign(&claims("carol"));
    let mut carol = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?token={socket}")))
        .await
        .expect("upgrade");
    assert_eq!(carol.next_of("state").await["participants"], 2);
}

#[actix_rt::test]
async fn get_auth_tells_a_client_what_its_token_is_worth() {
    let keys = KeyPair::rsa();
    let app = key_engine(&keys);
    let answer = call(&app, "GET", "/auth", None, None, &[]).await;
    assert_eq!(
        answer.body,
        json!({"mode": "token", "create_rooms": "anyone", "algorithm": "RS256"})
    );
    let exp = auth::now() + 600;
    let token = keys.sign(&json!({"sub": "alice", "exp": exp, "rooms": ["r_one"]}));
    let answer = call(&app, "GET", "/auth?room=r_one", None, Some(&token), &[]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["user"], "alice");
    assert_eq!(answer.body["rooms"], json!(["r_one"]));
    assert!(answer.body["expires_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let answer = call(&app, "GET", "/auth?room=r_two", None, Some(&token), &[]).await;
    assert_refused(&answer, FORBIDDEN, "GET /auth for another room");
    let expired = keys.sign(&json!({"sub": "alice", "exp": auth::now() - 60}));
    let answer = call(&app, "GET", "/auth", None, Some(&expired), &[]).await;
    assert_refused(
        &answer,
        invalid("token expired"),
        "GET /auth with an expired token",
    );
}

#[actix_rt::test]
async fn the_page_takes_its_token_from_the_link_and_explains_a_missing_or_stale_one() {
    let app = hs256_engine();
    let room = app.create_room("Tokens in the page?").await;
    let browser = Browser::start().await;

    let alice = browser.session("alice").await;
    let token = hs256(&claims("alice"));
    alice
        .goto(&app.url(&format!("/r/{room}#token={token}")))
        .await;
    alice.wait_attr("#conn", "data-state", "live").await;
    alice.wait_text("#me", "alice").await;
    assert!(!alice.visible("#join").await, "no name is asked for");
    let href = alice.eval("return window.location.href", json!([])).await;
    assert_eq!(
        href,
        json!(app.url(&format!("/r/{room}"))),
        "the token left the address bar"
    );
    alice.click("#vote-pro").await;
    app::eventually("alice's vote", Duration::from_secs(20), || async {
        (app.room(&room).await["pro"] == 1).then_some(())
    })
    .await;
    // A reload keeps the tab's token (sessionStorage), not the address bar.
    alice.goto(&app.url(&format!("/r/{room}"))).await;
    alice.wait_attr("#conn", "data-state", "live").await;
    alice.wait_text("#me", "alice").await;

    let nobody = browser.session("nobody").await;
    nobody.goto(&app.url(&format!("/r/{room}"))).await;
    nobody.wait_text("#signin-text", "personal link").await;
    assert!(!nobody.visible("#join").await && !nobody.visible("#live").await);

    let late = browser.session("late").await;
    let expired = hs256(&json!({"sub": "bob", "exp": auth::now() - 60}));
    late.goto(&app.url(&format!("/r/{room}#token={expired}")))
        .await;
    late.wait_text("#signin-text", "expired").await;
    let elsewhere = hs256(&json!({"sub": "bob", "exp": auth::now() + 60, "rooms": ["r_x"]}));
    late.goto(&app.url(&format!("/r/{room}#token={elsewhere}")))
        .await;
    late.wait_text("#signin-text", "not for this room").await;
    assert_eq!(
        app.room(&room).await["participants"],
        1,
        "only alice got in"
    );
    for session in [alice, nobody, late] {
        session.quit().await;
    }
}

/// How long a run of the binary that should exit by itself may take.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// Runs the binary with `file` as its config file (if any) and `env`; expects exit code 2 and
/// returns stderr.
fn refusal(file: Option<&str>, env: &[(&str, String)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![(
        "ROOMSTATE__DATA_DIR".to_owned(),
        dir.path().join("data").display().to_string(),
    )];
    if let Some(text) = file {
        let config = dir.path().join("roomstate.toml");
        std::fs::write(&config, text).unwrap();
        all.push(("ROOMSTATE_CONFIG".to_owned(), config.display().to_string()));
    }
    all.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let run = run_to_exit(Path::new(app::ENGINE), &[], &all, EXIT_DEADLINE)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.status.code(), Some(2), "{file:?} {env:?}: {run:?}");
    assert!(run.stdout.is_empty(), "it never listened: {run:?}");
    run.stderr
}

#[test]
fn a_config_file_with_admin_routes_must_choose_auth_mode() {
    let stderr = refusal(Some("[admin]\ntoken = \"file-token\"\n"), &[]);
    assert!(
        stderr.contains("auth.mode") && stderr.contains("[auth]"),
        "says what to add: {stderr}"
    );
}

#[test]
fn bad_keys_are_refused_at_start_naming_the_key() {
    let token = ("ROOMSTATE__AUTH__MODE", "token".to_owned());
    let stderr = refusal(
        None,
        &[
            token.clone(),
            ("ROOMSTATE__AUTH__HS256_SECRET", "too-short".into()),
        ],
    );
    assert!(
        stderr.contains("auth.hs256_secret") && stderr.contains("32"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.pem").display().to_string();
    let stderr = refusal(
        None,
        &[
            token.clone(),
            ("ROOMSTATE__AUTH__PUBLIC_KEY_FILE", missing.clone()),
        ],
    );
    assert!(
        stderr.contains("auth.public_key_file") && stderr.contains(&missing),
        "{stderr}"
    );
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let stderr = refusal(
        None,
        &[
            token.clone(),
            (
                "ROOMSTATE__AUTH__PUBLIC_KEY_FILE",
                garbage.display().to_string(),
            ),
        ],
    );
    assert!(stderr.contains("auth.public_key_file"), "{stderr}");
    let stderr = refusal(None, &[token]);
    assert!(
        stderr.contains("auth.hs256_secret") && stderr.contains("auth.public_key_file"),
        "token mode with no key: {stderr}"
    );
}
