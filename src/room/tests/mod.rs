//! The room actors and the registry on the durable paths of the commit pipeline, driven directly
//! with the in-memory journal (feature `testing`), which can be switched down, made to lose the
//! reply of a written batch, report corruption or fail snapshots. Whatever the journal does,
//! nothing is acknowledged or shown until it is durable, and everything held goes through, in
//! order and once, when the journal comes back.
//!
//! One file per topic: `outage` (appends failing and recovering), `snapshots`, `closing`,
//! `recovery` (the registry at start), `shutdown`, `cancelled` (a request its caller gave up
//! on). This file holds what they share.

mod cancelled;
mod closing;
mod idempotency;
mod outage;
mod recovery;
mod remote;
mod shutdown;
mod snapshots;
mod socket_answers;
mod transcript;

use std::{future::Future, sync::Arc, time::Duration};

use actix::prelude::*;
use roomstate_core::room::{Command, RoomId, UserName, Via};
use roomstate_journal::memory::MemoryJournal;
use roomstate_store::Store;

use tokio::sync::oneshot;

use super::{
    actor::RoomActor,
    deps::{RoomDeps, RoomSettings},
    failure::{Reply, RoomFailure},
    messages::{Applied, Mutate},
    registry::Registry,
};
use crate::metrics::Metrics;

/// How long a test waits for anything the engine does on its own. Far above what it takes on an
/// idle machine: the 2-core test machines are shared and slow.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A client's command, as a test sends it to a room (`ask`).
struct Request {
    command: Command,
    via: Via,
}

/// Sends `request` to `room` as the registry does; the room's answer, or `Err` when the room
/// stopped before it took the request.
fn ask(room: &Addr<RoomActor>, request: Request) -> oneshot::Receiver<Reply<Applied>> {
    let (reply, answer) = oneshot::channel();
    room.do_send(Mutate {
        command: request.command,
        via: request.via,
        reply,
    });
    answer
}

pub(crate) fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

fn say(text: &str) -> Request {
    Request {
        command: Command::Say {
            user: user("alice"),
            text: text.into(),
            key: None,
        },
        via: Via::Http,
    }
}

fn join_alice() -> Request {
    Request {
        command: Command::Join {
            user: user("alice"),
            via: Via::Http,
        },
        via: Via::Http,
    }
}

/// Settings for a test room: a roomy backlog, no snapshots (so the journal's log holds every
/// event for the test to read), and a close timeout no slow machine reaches.
pub(crate) fn settings() -> RoomSettings {
    RoomSettings {
        max_pending: 100,
        http_ttl: Duration::from_secs(300),
        snapshot_every: 1_000_000,
        close_timeout: Duration::from_secs(60),
        max_messages: 1000,
    }
}

/// The seqs of a room's log in the journal, in the order the journal holds them.
fn log_seqs(journal: &MemoryJournal, room: &RoomId) -> Vec<u64> {
    journal.events(room).iter().map(|e| e.seq).collect()
}

/// Awaits what a room answered a spawned request, failing the test if no answer comes.
async fn answered<T: 'static, E: std::fmt::Debug + 'static>(
    request: actix_rt::task::JoinHandle<Result<Reply<T>, E>>,
) -> Reply<T> {
    within(PATIENCE, "a room's answer", request)
        .await
        .expect("the request task panicked")
        .expect("the room's mailbox closed before it answered")
}

/// `future`'s output, or a failed test naming `what` if it takes longer than `limit`.
async fn within<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("no {what} within {limit:?}"),
    }
}

/// Whether `failure` is the refusal a room gives once the engine is shutting down.
fn is_shutdown_refusal<E>(failure: &Result<Reply<impl Sized>, E>) -> bool {
    matches!(failure, Ok(Err(RoomFailure::Unavailable(m))) if m.contains("shutting down"))
}

/// A command that changes nothing whether or not it is taken (a user who never joined speaks),
/// to ask a room whether it takes commands at all.
fn probe() -> Request {
    Request {
        command: Command::Say {
            user: user("nobody"),
            text: "probe".into(),
            key: None,
        },
        via: Via::Socket,
    }
}

/// Waits until `room` refuses new commands because the engine is shutting down: the room has
/// handled the registry's `Shutdown` (its mailbox is in order).
async fn until_room_is_shutting_down(room: &Addr<RoomActor>) {
    roomstate_testkit::eventually("the room to take the shutdown", PATIENCE, || async {
        is_shutdown_refusal(&ask(room, probe()).await).then_some(())
    })
    .await;
}

/// A SQLite store in a temp dir, an in-memory journal and metrics, shared by the registries a
/// test builds on them.
pub(crate) struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    pub(crate) journal: MemoryJournal,
    metrics: Metrics,
}

impl Setup {
    pub(crate) fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        Setup {
            store: Store::open(&url).unwrap(),
            _dir: dir,
            journal: MemoryJournal::new(),
            metrics: Metrics::new().unwrap(),
        }
    }

    pub(crate) fn registry(&self, settings: RoomSettings) -> Registry {
        Registry::new(
            RoomDeps {
                journal: Arc::new(self.journal.clone()),
                store: self.store.clone(),
                metrics: self.metrics.clone(),
                settings,
            },
            0,
        )
    }

    /// While `refuse`, the store refuses every final record (a trigger in its SQLite file makes
    /// the record's transaction fail), as a store that cannot take it would.
    fn refuse_records(&self, refuse: bool) {
        use diesel::{Connection as _, RunQueryDsl as _};
        let path = self._dir.path().join("s.db");
        let mut db = diesel::SqliteConnection::establish(&path.display().to_string()).unwrap();
        let sql = if refuse {
            "CREATE TRIGGER IF NOT EXISTS test_refuses_records BEFORE INSERT ON rooms \
             BEGIN SELECT RAISE(ABORT, 'the test refuses final records'); END"
        } else {
            "DROP TRIGGER IF EXISTS test_refuses_records"
        };
        diesel::sql_query(sql).execute(&mut db).unwrap();
    }

    /// A new room in `registry` that alice has joined (seq 2): the usual start of a test.
    pub(crate) async fn room_with_alice(
        &self,
        registry: &Registry,
        title: &str,
    ) -> (RoomId, Addr<RoomActor>) {
        let created = registry.create(title.into()).await.unwrap();
        let room = registry.get(&created.id).unwrap();
        let joined = ask(&room, join_alice()).await.unwrap().unwrap();
        assert_eq!(joined.seq, 2);
        (created.id, room)
    }
}
