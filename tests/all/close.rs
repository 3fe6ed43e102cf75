//! Closing a room writes its final record to the SQL store (SQLite and a real MariaDB), once,
//! equal to what was acknowledged — also when many admins close it at once, and while clients
//! keep mutating it — and then the room's journal log is gone (read in the journal file itself).

use std::{cell::Cell, collections::BTreeMap, path::Path, rc::Rc, time::Duration};

use diesel::{
    connection::SimpleConnection,
    prelude::*,
    sql_query,
    sql_types::{BigInt, Text},
    SqliteConnection,
};
use futures_util::future::join_all;
use roomstate_core::room::RoomId;
use roomstate_store::{DbConnection, Store};
use serde_json::{json, Value};

use crate::support::{
    app::{self, eventually, TestApp},
    mysql::TestDatabase,
    ws::WsClient,
};

/// Drives a room through joins, votes, switches, retracts and messages; returns the
/// acknowledged final votes and transcript.
async fn debate(app: &TestApp, room: &str) -> (BTreeMap<String, String>, Vec<(u64, String)>) {
    let mut votes = BTreeMap::new();
    let mut transcript = Vec::new();
    for i in 0..6 {
        app.join(room, &format!("u{i}")).await;
    }
    for i in 0..6 {
        let user = format!("u{i}");
        let side = if i % 3 == 0 { "con" } else { "pro" };
        let (status, _) = app.vote(room, &user, side).await;
        assert_eq!(status, 200);
        votes.insert(user.clone(), side.to_owned());
        let text = format!("{user} says ünïcode ✓ {i}");
        let (status, body) = app.say(room, &user, &text).await;
        assert_eq!(status, 201);
        transcript.push((body["seq"].as_u64().unwrap(), text));
    }
    let (status, _) = app.vote(room, "u1", "con").await;
    assert_eq!(status, 200);
    votes.insert("u1".into(), "con".into());
    let (status, _) = app.delete(&format!("/rooms/{room}/votes/u2")).await;
    assert_eq!(status, 200);
    votes.remove("u2");
    (votes, transcript)
}

async fn closes_once_with_the_acknowledged_record(app: &TestApp, store_url: &str) {
    let room = app.create_room("final record").await;
    let (votes, transcript) = debate(app, &room).await;
    let before = app.room(&room).await;

    let (status, first) = app.close_room(&room).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "closed");
    assert!(first["closed_at"].is_string());
    for key in [
        "pro",
        "con",
        "messages",
        "seq",
        "participants_peak",
        "title",
        "created_at",
    ] {
        assert_eq!(first[key], before[key], "{key}");
    }
    let (status, second) = app.close_room(&room).await;
    assert_eq!(status, 200);
    assert_eq!(second, first, "closing twice returns the same record");
    assert_eq!(
        app.room(&room).await,
        first,
        "GET reads the closed room from the store"
    );

    let (status, listed) = app.get("/rooms").await;
    assert_eq!(status, 200);
    assert!(listed["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["id"] != room.as_str()));

    let (status, err) = app.vote(&room, "u0", "pro").await;
    assert_eq!(
        (status.as_u16(), err["error"].as_str()),
        (409, Some("room_closed"))
    );
    let (status, err) = app
        .post(&format!("/rooms/{room}/join"), json!({"user": "late"}))
        .await;
    assert_eq!(
        (status.as_u16(), err["error"].as_str()),
        (409, Some("room_closed"))
    );

    let (_, msgs) = app.get(&format!("/rooms/{room}/messages?limit=500")).await;
    let got: Vec<(u64, String)> = msgs["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m: &Value| {
            (
                m["seq"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, transcript);

    // The store itself, read directly.
    let store = Store::open(store_url).expect("opening the store the engine used");
    let id = RoomId::parse(&room).unwrap();
    let stored: BTreeMap<String, String> = store
        .votes(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|(u, s)| (u.to_string(), s.as_str().to_owned()))
        .collect();
    assert_eq!(stored, votes);
    assert_eq!(
        store.messages(&id, 0, 500).await.unwrap().len(),
        transcript.len()
    );
}

#[actix_rt::test]
async fn close_writes_the_final_record_to_sqlite() {
    let app = app::start();
    let url = format!("sqlite://{}", app.data_dir().join("roomstate.db").display());
    closes_once_with_the_acknowledged_record(&app, &url).await;
}

#[actix_rt::test]
async fn close_writes_the_final_record_to_mariadb() {
    let db = TestDatabase::create();
    let app = app::builder().setting("STORE__URL", db.url()).start();
    closes_once_with_the_acknowledged_record(&app, &db.url()).await;
}

/// Rows of `room` in the local journal (`<data_dir>/journal.db`): (events, snapshots). Opened
/// read-only, beside the running engine (WAL lets a reader in while the writer works).
///
/// diesel's own SQLite connection with the pragma that matters to a reader (`busy_timeout`), not
/// `roomstate_sqlite::connect`: that crate is not a dependency of these tests, and its other
/// pragmas are for writers.
pub(crate) fn journal_rows(data_dir: &Path, room: &str) -> (i64, i64) {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let path = data_dir.join("journal.db");
    assert!(path.is_file(), "no local journal at {}", path.display());
    // diesel opens SQLite with URIs allowed: `mode=ro` makes the connection unable to write.
    let uri = format!("file:{}?mode=ro", path.display());
    let mut conn = SqliteConnection::establish(&uri)
        .unwrap_or_else(|e| panic!("opening {} read-only: {e}", path.display()));
    conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")
        .expect("reader pragmas");
    let mut count = |table: &str| {
        sql_query(format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE room_id = ?"
        ))
        .bind::<Text, _>(room)
        .get_result::<Count>(&mut conn)
        .unwrap_or_else(|e| panic!("counting {table} of {room}: {e}"))
        .n
    };
    (count("events"), count("snapshots"))
}

/// The rows the SQL store holds for `room`: (room rows, vote rows, message rows), read with a
/// connection of the test's own (`store_url` as the engine got it).
pub(crate) fn store_rows(store_url: &str, room: &str) -> (i64, i64, i64) {
    use roomstate_store::schema::{room_messages, room_votes, rooms};
    let address = store_url.strip_prefix("sqlite://").unwrap_or(store_url);
    let mut conn = DbConnection::establish(address)
        .unwrap_or_else(|e| panic!("connecting to the store {address}: {e}"));
    let rooms = rooms::table
        .filter(rooms::id.eq(room))
        .count()
        .get_result::<i64>(&mut conn)
        .expect("counting room rows");
    let votes = room_votes::table
        .filter(room_votes::room_id.eq(room))
        .count()
        .get_result::<i64>(&mut conn)
        .expect("counting vote rows");
    let messages = room_messages::table
        .filter(room_messages::room_id.eq(room))
        .count()
        .get_result::<i64>(&mut conn)
        .expect("counting message rows");
    (rooms, votes, messages)
}

/// A stored room's whole transcript, (seq, text) oldest first.
pub(crate) async fn stored_transcript(store: &Store, id: &RoomId) -> Vec<(u64, String)> {
    let mut transcript = Vec::new();
    loop {
        let after = transcript.last().map_or(0, |(seq, _)| *seq);
        let page = store
            .messages(id, after, 500)
            .await
            .expect("reading the transcript");
        if page.is_empty() {
            return transcript;
        }
        transcript.extend(page.into_iter().map(|m| (m.seq, m.text)));
    }
}

/// The value of the sample `name` (with its labels, e.g. `roomstate_rooms_closed_total` or
/// `roomstate_mutations_total{kind="voted"}`) on `/metrics`; 0 when it is not there yet (a
/// labelled counter shows up with its first count).
pub(crate) async fn metric(app: &TestApp, name: &str) -> f64 {
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200, "{text}");
    let text = text.as_str().unwrap_or_default();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (sample, value) = line.rsplit_once(' ')?;
            (sample == name).then(|| value.parse::<f64>().expect("a metric value"))
        })
        .unwrap_or(0.0)
}

#[actix_rt::test]
async fn closed_rooms_survive_a_restart_and_the_log_is_gone() {
    // Snapshots every 3 events, so the closed room has rows in both journal tables.
    let mut app = app::builder().setting("JOURNAL__SNAPSHOT_EVERY", 3).start();
    let data = app.data_dir();
    let room = app.create_room("closed then restarted").await;
    app.join(&room, "alice").await;
    // Seq 3: three events since the room began (it has no snapshot before), so one is due.
    app.vote(&room, "alice", "pro").await;
    eventually("the room's snapshot", Duration::from_secs(20), || async {
        (journal_rows(&data, &room).1 == 1).then_some(())
    })
    .await;
    app.say(&room, "alice", "after the snapshot").await;
    app.vote(&room, "alice", "con").await;
    // The check below can fail: while the room is open its log is there, in both tables.
    assert_eq!(
        journal_rows(&data, &room),
        (2, 1),
        "events 4 and 5 after the snapshot at 3"
    );
    let open = app.create_room("stays open").await;
    app.join(&open, "bob").await;
    let open_rows = journal_rows(&data, &open);
    assert_eq!(open_rows, (2, 0), "created and joined");

    let (status, closed) = app.close_room(&room).await;
    assert_eq!(status, 200, "{closed}");
    // The log goes right after the close is answered.
    eventually(
        "the closed room's log to go",
        Duration::from_secs(20),
        || async { (journal_rows(&data, &room) == (0, 0)).then_some(()) },
    )
    .await;
    assert_eq!(
        journal_rows(&data, &open),
        open_rows,
        "other rooms keep theirs"
    );

    assert!(app.stop().success());
    app.restart();
    assert_eq!(app.room(&room).await, closed);
    let (_, listed) = app.get("/rooms").await;
    let listed: Vec<&str> = listed["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(
        listed,
        [open.as_str()],
        "a closed room is not recovered as open; the open one is"
    );
    assert_eq!(journal_rows(&data, &room), (0, 0));
    assert_eq!(journal_rows(&data, &open), open_rows);
}

/// Many admins close one room at the same moment: every one of them gets the same final view,
/// and the record is written once.
async fn concurrent_closes_write_once(app: &TestApp, store_url: &str) {
    let room = app.create_room("closed by many").await;
    let (votes, transcript) = debate(app, &room).await;
    let closes = join_all((0..16).map(|_| app.close_room(&room))).await;
    let (_, first) = &closes[0];
    assert_eq!(first["status"], "closed", "{first}");
    for (status, view) in &closes {
        assert_eq!(*status, 200, "{view}");
        assert_eq!(view, first, "every close answers the same final view");
    }
    assert_eq!(app.room(&room).await, *first);

    assert_eq!(
        metric(app, "roomstate_rooms_closed_total").await,
        1.0,
        "one final record written"
    );
    let written = app
        .log()
        .matches("room closed; final record stored")
        .count();
    assert_eq!(written, 1, "the engine wrote the record once");
    assert_eq!(
        store_rows(store_url, &room),
        (1, votes.len() as i64, transcript.len() as i64),
        "one room row, the final votes, the transcript once"
    );
    let store = Store::open(store_url).expect("opening the store the engine used");
    let id = RoomId::parse(&room).unwrap();
    let stored: Vec<(u64, String)> = store
        .messages(&id, 0, 500)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.seq, m.text))
        .collect();
    assert_eq!(stored, transcript);
}

#[actix_rt::test]
async fn concurrent_closes_write_the_record_once_to_sqlite() {
    let app = app::start();
    let url = format!("sqlite://{}", app.data_dir().join("roomstate.db").display());
    concurrent_closes_write_once(&app, &url).await;
}

#[actix_rt::test]
async fn concurrent_closes_write_the_record_once_to_mariadb() {
    let db = TestDatabase::create();
    let app = app::builder().setting("STORE__URL", db.url()).start();
    concurrent_closes_write_once(&app, &db.url()).await;
}

/// What one client of `closing_while_mutations_arrive` saw.
#[derive(Debug, Default)]
struct ClientLog {
    user: String,
    /// The side of the user's last acknowledged vote.
    last_vote: Option<String>,
    /// Acknowledged chat messages: (seq, text).
    said: Vec<(u64, String)>,
    /// Requests answered with 503 (nothing applied).
    unavailable: u64,
    /// Requests sent that got no answer because the server closed the socket first (a socket's
    /// last frame may cross the server's `closed` frame). They must not be in the record.
    unanswered: Vec<Value>,
    acked: u64,
}

/// The `n`th request of a client: a vote that switches sides, every third one a message.
fn nth_mutation(user: &str, n: u64) -> (Option<&'static str>, Option<String>) {
    if n.is_multiple_of(3) {
        (None, Some(format!("{user} line {n}")))
    } else if n.is_multiple_of(2) {
        (Some("pro"), None)
    } else {
        (Some("con"), None)
    }
}

/// An HTTP client mutating the room until the room refuses it as closed.
async fn http_client(base: String, room: String, user: String, acks: Rc<Cell<u64>>) -> ClientLog {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let mut log = ClientLog {
        user: user.clone(),
        ..ClientLog::default()
    };
    for n in 1.. {
        let (side, text) = nth_mutation(&user, n);
        let sent = match (&side, &text) {
            (Some(side), _) => {
                client
                    .put(format!("{base}/rooms/{room}/votes/{user}"))
                    .send_json(&json!({ "side": side }))
                    .await
            }
            (None, Some(text)) => {
                client
                    .post(format!("{base}/rooms/{room}/messages"))
                    .send_json(&json!({ "user": user, "text": text }))
                    .await
            }
            (None, None) => unreachable!(),
        };
        let mut response = sent.unwrap_or_else(|e| panic!("{user}: request {n}: {e}"));
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match (response.status().as_u16(), body["error"].as_str()) {
            (200 | 201, _) => {
                log.acked += 1;
                acks.set(acks.get() + 1);
                match (side, text) {
                    (Some(side), _) => log.last_vote = Some(side.to_owned()),
                    (None, Some(text)) => log.said.push((body["seq"].as_u64().unwrap(), text)),
                    (None, None) => unreachable!(),
                }
            }
            (409, Some("room_closed")) => return log,
            (503, Some("unavailable")) => log.unavailable += 1,
            (status, _) => panic!("{user}: request {n} answered {status}: {body}"),
        }
    }
    unreachable!()
}

/// A WebSocket client mutating the room until the room refuses it as closed or ends the socket.
async fn ws_client(mut ws: WsClient, user: String, acks: Rc<Cell<u64>>) -> ClientLog {
    let mut log = ClientLog {
        user: user.clone(),
        ..ClientLog::default()
    };
    for n in 1.. {
        let req = format!("{user}-{n}");
        let (side, text) = nth_mutation(&user, n);
        let frame = match (&side, &text) {
            (Some(side), _) => json!({"type": "vote", "side": side, "req": req}),
            (None, Some(text)) => json!({"type": "say", "text": text, "req": req}),
            (None, None) => unreachable!(),
        };
        if !ws.try_send_json(&frame).await {
            log.unanswered.push(frame);
            return log;
        }
        let Some(answer) = ws.answer_to(&req).await else {
            log.unanswered.push(frame);
            return log;
        };
        match (answer["type"].as_str(), answer["error"].as_str()) {
            (Some("ack"), _) => {
                log.acked += 1;
                acks.set(acks.get() + 1);
                match (side, text) {
                    (Some(side), _) => log.last_vote = Some(side.to_owned()),
                    (None, Some(text)) => log.said.push((answer["seq"].as_u64().unwrap(), text)),
                    (None, None) => unreachable!(),
                }
            }
            (_, Some("room_closed")) => return log,
            (_, Some("unavailable")) => log.unavailable += 1,
            _ => panic!("{user}: request {n} answered {answer}"),
        }
    }
    unreachable!()
}

#[actix_rt::test]
async fn closing_while_mutations_arrive_loses_no_acknowledged_one() {
    let app = app::start();
    let store_url = format!("sqlite://{}", app.data_dir().join("roomstate.db").display());
    let room = app.create_room("closed mid-flight").await;
    let acks = Rc::new(Cell::new(0u64));
    let mut clients = Vec::new();
    for i in 0..3 {
        let user = format!("h{i}");
        app.join(&room, &user).await;
        let task = http_client(app.base.clone(), room.clone(), user, acks.clone());
        clients.push(actix_rt::spawn(task));
    }
    for i in 0..3 {
        let user = format!("w{i}");
        let mut ws = WsClient::connect(&app.ws_url(&format!("/rooms/{room}/ws?user={user}")))
            .await
            .unwrap();
        ws.next_of("state").await;
        clients.push(actix_rt::spawn(ws_client(ws, user, acks.clone())));
    }
    // Close once every client is well under way, while they all keep sending.
    eventually(
        "60 acknowledged mutations",
        Duration::from_secs(60),
        || async { (acks.get() >= 60).then_some(()) },
    )
    .await;
    let (status, closed) = app.close_room(&room).await;
    assert_eq!(status, 200, "{closed}");
    let logs: Vec<ClientLog> = actix_rt::time::timeout(Duration::from_secs(60), join_all(clients))
        .await
        .expect("every client is refused or disconnected within 60 s of the close")
        .into_iter()
        .map(|task| task.expect("client task"))
        .collect();

    let store = Store::open(&store_url).expect("the engine's store");
    let id = RoomId::parse(&room).unwrap();
    let stored: BTreeMap<String, String> = store
        .votes(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|(user, side)| (user.to_string(), side.as_str().to_owned()))
        .collect();
    let acknowledged: BTreeMap<String, String> = logs
        .iter()
        .filter_map(|log| Some((log.user.clone(), log.last_vote.clone()?)))
        .collect();
    assert_eq!(
        stored, acknowledged,
        "the final votes are each user's last acknowledged vote: {logs:#?}"
    );
    let mut said: Vec<(u64, String)> = logs.iter().flat_map(|l| l.said.clone()).collect();
    said.sort();
    let transcript = stored_transcript(&store, &id).await;
    assert_eq!(
        transcript, said,
        "the transcript is exactly the acknowledged messages"
    );
    let (pro, con) = stored
        .values()
        .fold((0, 0), |(p, c), side| match side.as_str() {
            "pro" => (p + 1, c),
            _ => (p, c + 1),
        });
    assert_eq!(
        (closed["pro"].as_u64(), closed["con"].as_u64()),
        (Some(pro), Some(con))
    );
    assert_eq!(closed["messages"].as_u64(), Some(said.len() as u64));
    assert!(
        logs.iter().all(|l| l.acked > 0),
        "every client got through before the close: {logs:#?}"
    );
    assert_eq!(store_rows(&store_url, &room).0, 1);
}
