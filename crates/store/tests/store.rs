//! The SQL store against both backends: every case is written once, over a
//! URL, and run on SQLite (in a temp dir) and on MariaDB (a database of its own).

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use chrono::Duration as ChronoDuration;
use diesel::{connection::SimpleConnection, prelude::*, sql_types::Text};
use roomstate_core::{
    room::{ChatMessage, Counters, RoomId, RoomStatus, RoomView, Side, UserName},
    time::{self, Timestamp},
};
use roomstate_store::{
    schema::{room_messages, room_votes, rooms},
    DbConnection, FinalRecord, Store, StoreError,
};
use roomstate_testkit::mysql::{self, TestDatabase};

/// A database for one test, and what keeps it alive.
struct TestDb {
    url: String,
    _keep: Keep,
}

enum Keep {
    Sqlite { _dir: tempfile::TempDir },
    Mysql { _db: TestDatabase },
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        // A parent that does not exist yet: open must create it.
        let url = format!("sqlite://{}/nested/store.db", dir.path().display());
        TestDb {
            url,
            _keep: Keep::Sqlite { _dir: dir },
        }
    }

    fn mysql() -> TestDb {
        let db = TestDatabase::create();
        TestDb {
            url: db.url(),
            _keep: Keep::Mysql { _db: db },
        }
    }

    fn is_mysql(&self) -> bool {
        matches!(self._keep, Keep::Mysql { .. })
    }

    fn open(&self) -> Store {
        Store::open(&self.url).unwrap()
    }

    /// A connection outside the store, for poking at rows directly. On SQLite it waits for
    /// the store's connections' locks like they wait for each other (the store's pool may still
    /// be setting up a connection), instead of failing at once with "database is locked".
    fn raw(&self) -> DbConnection {
        let mut conn = DbConnection::establish(&self.url).unwrap();
        if !self.is_mysql() {
            conn.batch_execute("PRAGMA busy_timeout = 5000").unwrap();
        }
        conn
    }
}

/// Runs each case once per backend: `case::sqlite` and `case::mysql`.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[actix_rt::test]
            async fn sqlite() {
                super::$case(super::TestDb::sqlite()).await;
            }

            #[actix_rt::test]
            async fn mysql() {
                super::$case(super::TestDb::mysql()).await;
            }
        }
    )*};
}

on_both_backends!(
    final_record_round_trips,
    closing_twice_returns_the_first_record,
    a_record_of_a_later_seq_replaces_an_earlier_one,
    a_stale_record_is_forgotten_only_below_the_logs_seq,
    unknown_rooms_are_absent,
    messages_page_by_seq,
    reopening_is_idempotent,
    concurrent_closes_all_land,
    check_answers,
    undecodable_rows_are_corrupt,
    schema_matches_migrations,
);

fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

fn at(base: Timestamp, millis: i64) -> Timestamp {
    base + ChronoDuration::milliseconds(millis)
}

/// A closed room with `messages` messages (seq 3, 5, 7, ...: votes and joins sit in between) and
/// a few votes, some of them differing only in case.
fn record(id: RoomId, messages: usize) -> FinalRecord {
    let created = time::now() - ChronoDuration::hours(2);
    let transcript: Vec<ChatMessage> = (0..messages)
        .map(|i| ChatMessage {
            seq: 3 + 2 * i as u64,
            user: user(["alice", "Bob_2", "x.y-z"][i % 3]),
            text: match i {
                0 => "🦀".repeat(2000),
                1 => "x".repeat(2000),
                2 => "é ünïcödé 中文 \u{1F600} \"quotes\" 'single' \\ back; DROP TABLE rooms; --"
                    .into(),
                _ => format!("message {i}"),
            },
            sent_at: at(created, 7 * i as i64 + 999),
        })
        .collect();
    let seq = transcript.last().map_or(2, |m| m.seq + 1);
    FinalRecord {
        room: RoomView {
            id,
            title: format!("Ship on Friday? 🚀 {}", "é".repeat(182)),
            status: RoomStatus::Closed,
            counters: Counters {
                participants: 0,
                participants_peak: u32::MAX,
                pro: 2,
                con: 2,
                messages: u32::try_from(messages).unwrap(),
                seq,
            },
            created_at: created,
            closed_at: Some(time::now()),
        },
        votes: vec![
            (user("zed"), Side::Pro),
            (user("alice"), Side::Con),
            (user("Alice"), Side::Pro),
            (user("a.b-c_d"), Side::Con),
        ],
        messages: transcript,
    }
}

fn sorted_votes(record: &FinalRecord) -> Vec<(UserName, Side)> {
    let mut votes = record.votes.clone();
    votes.sort_by(|a, b| a.0.cmp(&b.0));
    votes
}

async fn all_messages(store: &Store, id: &RoomId) -> Vec<ChatMessage> {
    store.messages(id, 0, usize::MAX).await.unwrap()
}

async fn final_record_round_trips(db: TestDb) {
    let store = db.open();
    assert_eq!(
        store.backend(),
        if db.is_mysql() { "mysql" } else { "sqlite" }
    );
    let rec = record(RoomId::generate(), 3000);
    assert_eq!(rec.room.title.chars().count(), 200);

    let written = store.write_final(rec.clone()).await.unwrap();
    assert_eq!(written, rec.room);

    let id = &rec.room.id;
    assert_eq!(store.room(id).await.unwrap(), Some(rec.room.clone()));
    assert_eq!(store.votes(id).await.unwrap(), sorted_votes(&rec));
    assert_eq!(all_messages(&store, id).await, rec.messages);

    // An empty room (no votes, no messages) round-trips too.
    let empty = FinalRecord {
        votes: Vec::new(),
        ..record(RoomId::generate(), 0)
    };
    assert_eq!(store.write_final(empty.clone()).await.unwrap(), empty.room);
    assert_eq!(
        store.room(&empty.room.id).await.unwrap(),
        Some(empty.room.clone())
    );
    assert!(store.votes(&empty.room.id).await.unwrap().is_empty());
    assert!(all_messages(&store, &empty.room.id).await.is_empty());
}

async fn closing_twice_returns_the_first_record(db: TestDb) {
    let store = db.open();
    let first = record(RoomId::generate(), 10);
    let stored = store.write_final(first.clone()).await.unwrap();

    // The same close again, or a stale writer's record of the room at an earlier seq: the
    // stored record stands.
    for seq in [first.room.counters.seq, first.room.counters.seq - 1] {
        let mut second = record(first.room.id.clone(), 4);
        second.room.title = "another title".into();
        second.room.counters.pro = 99;
        second.room.counters.seq = seq;
        second.votes = vec![(user("mallory"), Side::Pro)];
        assert_ne!(second.room, first.room);
        assert_eq!(store.write_final(second).await.unwrap(), stored);
    }
    assert_eq!(
        store.room(&first.room.id).await.unwrap(),
        Some(first.room.clone())
    );
    assert_eq!(
        store.votes(&first.room.id).await.unwrap(),
        sorted_votes(&first)
    );
    assert_eq!(all_messages(&store, &first.room.id).await, first.messages);
}

async fn a_record_of_a_later_seq_replaces_an_earlier_one(db: TestDb) {
    // A close whose answer was lost after its commit: reported failed, the room opened again
    // and took more mutations; its next close's record holds them all and replaces the first.
    let store = db.open();
    let first = record(RoomId::generate(), 4);
    store.write_final(first.clone()).await.unwrap();
    let mut later = record(first.room.id.clone(), 10);
    later.room.counters.seq = first.room.counters.seq + 100;
    later.votes = vec![(user("mallory"), Side::Pro)];
    let stored = store.write_final(later.clone()).await.unwrap();
    assert_eq!(stored.counters.seq, later.room.counters.seq);
    assert_eq!(store.room(&first.room.id).await.unwrap(), Some(stored));
    assert_eq!(
        store.votes(&first.room.id).await.unwrap(),
        sorted_votes(&later)
    );
    assert_eq!(all_messages(&store, &first.room.id).await, later.messages);
}

async fn a_stale_record_is_forgotten_only_below_the_logs_seq(db: TestDb) {
    let store = db.open();
    let first = record(RoomId::generate(), 4);
    let id = first.room.id.clone();
    store.write_final(first.clone()).await.unwrap();
    let seq = first.room.counters.seq;
    assert!(
        !store.forget_stale(&id, seq).await.unwrap(),
        "the log holds no more"
    );
    assert_eq!(store.room(&id).await.unwrap(), Some(first.room.clone()));
    assert!(store.forget_stale(&id, seq + 1).await.unwrap());
    assert_eq!(store.room(&id).await.unwrap(), None);
    assert!(store.votes(&id).await.unwrap().is_empty());
    assert!(all_messages(&store, &id).await.is_empty());
}

async fn unknown_rooms_are_absent(db: TestDb) {
    let store = db.open();
    store
        .write_final(record(RoomId::generate(), 5))
        .await
        .unwrap();
    let unknown = RoomId::generate();
    assert_eq!(store.room(&unknown).await.unwrap(), None);
    assert!(store.votes(&unknown).await.unwrap().is_empty());
    assert!(all_messages(&store, &unknown).await.is_empty());
}

async fn messages_page_by_seq(db: TestDb) {
    let store = db.open();
    let rec = record(RoomId::generate(), 1200);
    let other = record(RoomId::generate(), 50);
    store.write_final(rec.clone()).await.unwrap();
    store.write_final(other).await.unwrap();
    let id = &rec.room.id;

    let mut pages = Vec::new();
    let mut after = 0;
    loop {
        let page = store.messages(id, after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        pages.push(page);
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert_eq!(
        pages.concat(),
        rec.messages,
        "pages join up to the transcript"
    );

    // `after` need not be a message's seq (4 is between 3 and 5).
    let page = store.messages(id, 4, 2).await.unwrap();
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [5, 7]);
    assert!(store.messages(id, 3, 0).await.unwrap().is_empty());
    assert!(store.messages(id, u64::MAX, 10).await.unwrap().is_empty());
    let last = rec.messages.last().unwrap().seq;
    assert!(store.messages(id, last, 10).await.unwrap().is_empty());
}

async fn reopening_is_idempotent(db: TestDb) {
    let first = db.open();
    let a = record(RoomId::generate(), 3);
    first.write_final(a.clone()).await.unwrap();

    let second = db.open();
    assert_eq!(second.room(&a.room.id).await.unwrap(), Some(a.room.clone()));
    let b = record(RoomId::generate(), 3);
    second.write_final(b.clone()).await.unwrap();
    assert_eq!(first.room(&b.room.id).await.unwrap(), Some(b.room));
}

async fn concurrent_closes_all_land(db: TestDb) {
    let store = db.open();
    let records: Vec<FinalRecord> = (0..8).map(|_| record(RoomId::generate(), 300)).collect();
    // Every room once, and the first one a second time at the same moment.
    let writes = records
        .iter()
        .chain(records.first())
        .map(|r| store.write_final(r.clone()));
    let results = futures_util::future::join_all(writes).await;
    for (result, rec) in results.iter().zip(records.iter().chain(records.first())) {
        assert_eq!(result.as_ref().unwrap(), &rec.room);
    }
    for rec in &records {
        assert_eq!(
            store.room(&rec.room.id).await.unwrap(),
            Some(rec.room.clone())
        );
        assert_eq!(all_messages(&store, &rec.room.id).await, rec.messages);
    }
}

async fn check_answers(db: TestDb) {
    db.open().check().await.unwrap();
}

async fn undecodable_rows_are_corrupt(db: TestDb) {
    let store = db.open();
    let rec = record(RoomId::generate(), 1);
    store.write_final(rec.clone()).await.unwrap();
    db.raw()
        .batch_execute(&format!(
            "INSERT INTO room_votes (room_id, user_name, side) VALUES ('{}', 'not a name', 'pro')",
            rec.room.id
        ))
        .unwrap();
    let err = store.votes(&rec.room.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[derive(QueryableByName)]
struct ColumnName {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Column names of `table` in `schema.rs`, in order.
fn schema_columns(select: String) -> Vec<String> {
    // "SELECT `t`.`a`, `t`.`b` FROM `t` -- binds: []"
    let list = select
        .strip_prefix("SELECT ")
        .and_then(|s| s.split(" FROM ").next())
        .unwrap();
    list.split(", ")
        .map(|c| c.rsplit('.').next().unwrap().trim_matches('`').to_owned())
        .collect()
}

async fn schema_matches_migrations(db: TestDb) {
    drop(db.open()); // runs the migrations
    let expected = [
        (
            "rooms",
            schema_columns(
                diesel::debug_query::<diesel::sqlite::Sqlite, _>(
                    &rooms::table.select(rooms::all_columns),
                )
                .to_string(),
            ),
        ),
        (
            "room_votes",
            schema_columns(
                diesel::debug_query::<diesel::sqlite::Sqlite, _>(
                    &room_votes::table.select(room_votes::all_columns),
                )
                .to_string(),
            ),
        ),
        (
            "room_messages",
            schema_columns(
                diesel::debug_query::<diesel::sqlite::Sqlite, _>(
                    &room_messages::table.select(room_messages::all_columns),
                )
                .to_string(),
            ),
        ),
    ];
    let mut conn = db.raw();
    for (table, columns) in expected {
        let query = if db.is_mysql() {
            format!(
                "SELECT column_name AS name FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = '{table}' \
                 ORDER BY ordinal_position"
            )
        } else {
            format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid")
        };
        let found: Vec<String> = diesel::sql_query(query)
            .load::<ColumnName>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            found, columns,
            "columns of {table}: migrations vs schema.rs"
        );
    }
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[actix_rt::test]
async fn a_dead_mysql_server_is_unavailable_quickly() {
    mysql::require_feature();
    let url = format!(
        "mysql://roomstate:sekrit@127.0.0.1:{}/roomstate",
        closed_port()
    );
    let started = Instant::now();
    let err = Store::open(&url).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let StoreError::Unavailable(message) = err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(!message.contains("sekrit"), "password leaked: {message}");
}

#[actix_rt::test]
async fn garbage_urls_are_config_errors() {
    for url in ["postgres://x", "", "sqlite://", "just-a-file.db"] {
        let err = Store::open(url).unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{url:?}: {err:?}");
    }
}

#[actix_rt::test]
async fn a_timeout_under_a_second_is_a_config_error() {
    let db = TestDb::sqlite();
    let err = Store::open_with_timeout(&db.url, Duration::from_millis(500)).unwrap_err();
    assert!(
        matches!(&err, StoreError::Config(m) if m.contains("at least a second")),
        "{err:?}"
    );
}

/// A table someone else locked: the write fails as the server's own lock wait timeout, a second
/// before the store's deadline (so the statement ends on the server and its connection is free),
/// and once the lock is gone the same record is written, once.
#[actix_rt::test]
async fn a_write_to_a_locked_table_fails_at_the_servers_lock_wait_and_works_once_unlocked() {
    mysql::require_feature();
    let db = TestDb::mysql();
    let store = Store::open_with_timeout(&db.url, Duration::from_secs(3)).unwrap();
    let id = RoomId::generate();
    let mut locker = db.raw();
    locker.batch_execute("LOCK TABLES rooms WRITE").unwrap();

    let started = Instant::now();
    let err = store.write_final(record(id.clone(), 3)).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("Lock wait timeout")),
        "the server's lock wait, not the store's deadline: {err:?}"
    );
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "the lock wait is the deadline less a second: {waited:?}"
    );

    locker.batch_execute("UNLOCK TABLES").unwrap();
    let written = record(id.clone(), 3);
    assert_eq!(
        store.write_final(written.clone()).await.unwrap(),
        written.room
    );
    assert_eq!(all_messages(&store, &id).await, written.messages);
    let rows: i64 = rooms::table
        .filter(rooms::id.eq(id.as_str()))
        .count()
        .get_result(&mut db.raw())
        .unwrap();
    assert_eq!(rows, 1);
}
