//! The Redis journal on a sentinel set locked as production is (roomstate-testkit's `Security`:
//! passwords on servers and sentinels, an ACL user, TLS with a private CA): every connection it
//! opens gets in — the writer's to the primary the sentinels name, the sentinel look-ups, and
//! the failover watcher's subscriptions on every sentinel — and a wrong password is reported as
//! an authentication failure that names the settings and not the password.

use std::time::Duration;

use roomstate_core::{
    room::{Event, EventKind, RoomId, UserName},
    time,
};
use roomstate_journal::{
    access::{Access, Credentials, Role},
    redis::{RedisJournal, RedisJournalConfig, RedisTarget},
    Epoch, Journal, JournalMetrics,
};
use roomstate_testkit::{
    redis_admin::{command, wait_until},
    redis_security::Security,
    sentinel_set::{SentinelSet, MASTER_NAME},
};

const DEADLINE: Duration = Duration::from_secs(30);
const SENTINEL_PW: &str = "Sentinel-Secret-0a7e4";
const WRONG_PW: &str = "Wrong-Secret-2f9c1";

fn events(room: &RoomId, n: u64) -> Vec<Event> {
    (1..=n)
        .map(|seq| Event {
            room: room.clone(),
            seq,
            at: time::now(),
            kind: match seq {
                1 => EventKind::Created {
                    title: "locked".into(),
                },
                _ => EventKind::Joined {
                    user: UserName::parse(&format!("u{seq}")).unwrap(),
                    participants: seq as u32,
                },
            },
        })
        .collect()
}

fn open(set: &SentinelSet, sentinels: Access) -> RedisJournal {
    let target = RedisTarget::Sentinels {
        addrs: set.sentinels(),
        master_name: MASTER_NAME.into(),
    };
    let mut config = RedisJournalConfig::new(target, 1);
    config.access = set.journal_access();
    config.access.sentinels = sentinels;
    RedisJournal::open(config, JournalMetrics::detached().unwrap()).unwrap()
}

#[actix_rt::test]
async fn on_a_locked_tls_set_the_journal_writes_reads_and_watches_every_sentinel() {
    let set = SentinelSet::builder()
        .security(
            Security::none()
                .requirepass("Admin-Secret-77d1")
                .acl_user("app", "App-Secret-13b8")
                .sentinel_requirepass(SENTINEL_PW)
                .tls(),
        )
        .start()
        .await;
    let journal = open(&set, set.journal_access().sentinels);
    let room = RoomId::parse("locked").unwrap();
    journal.append(Epoch::NONE, events(&room, 3)).await.unwrap();
    journal.check().await.unwrap();
    let logs = journal.recover().await.unwrap();
    assert_eq!(logs.len(), 1);
    let seqs: Vec<u64> = logs[0].events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(
        journal.status().target.contains("127.0.0.1:"),
        "{:?}",
        journal.status()
    );

    // The watcher subscribed to the failover events on every sentinel (TLS, password).
    for sentinel in set.sentinels() {
        let result = wait_until(
            &format!("the watcher's subscription on {sentinel}"),
            DEADLINE,
            || async {
                let clients = command(&sentinel, &["CLIENT", "LIST"]).await?;
                clients
                    .lines()
                    .any(|line| {
                        line.split_whitespace()
                            .any(|f| f.starts_with("psub=") && f != "psub=0")
                    })
                    .then_some(())
                    .ok_or_else(|| format!("no pattern subscriber: {clients}"))
            },
        )
        .await;
        if let Err(e) = result {
            panic!("{e}\n{}", set.logs());
        }
    }
}

#[actix_rt::test]
async fn a_wrong_sentinel_password_is_an_authentication_failure_without_the_password() {
    let set = SentinelSet::builder()
        .security(Security::none().sentinel_requirepass(SENTINEL_PW))
        .start()
        .await;
    let wrong =
        Access::plain(Role::Sentinel).with_credentials(Some(Credentials::new(None, WRONG_PW)));
    let journal = open(&set, wrong);
    let error = journal.check().await.unwrap_err().to_string();
    assert!(
        error.contains("no sentinel named a primary")
            && error.contains("authentication failed (WRONGPASS")
            && error.contains("redis.sentinel_password"),
        "{error}"
    );
    assert!(
        !error.contains(WRONG_PW) && !error.contains(SENTINEL_PW),
        "{error}"
    );

    let none = open(&set, Access::plain(Role::Sentinel));
    let error = none.check().await.unwrap_err().to_string();
    assert!(error.contains("authentication failed (NOAUTH"), "{error}");
}
