//! A mirror's sockets, against a room owned on this node (a `Router` with no cluster reaches the
//! room directly, as a forwarded call would on its owner) and a tail the test plays itself.

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use roomstate_core::{
    room::{Command, Event, EventKind, RoomId, RoomView, Side, Via},
    time,
};
use roomstate_journal::{redis::TailUpdate, Epoch, RoomLog};
use roomstate_testkit::eventually;
use tokio::sync::mpsc::UnboundedReceiver;

use super::{RoomMirror, Update};
use crate::{
    cluster::{metrics::ClusterMetrics, router::Router},
    room::{
        messages::Connect,
        outbound::{Outbound, Shared},
        outlet::{Delivery, Outlet, WorkerQueue},
        registry::Registry,
        tests::{settings, user, Setup, PATIENCE},
    },
};

/// The seq of a state as a socket would read it.
fn seq_of(state: &Shared<RoomView>) -> u64 {
    let text = state.text(|view| serde_json::to_string(view).unwrap());
    let view: serde_json::Value = serde_json::from_str(text).unwrap();
    view["seq"].as_u64().unwrap()
}

/// `user`'s socket `session` arriving through `mirror`, and its queue.
fn socket(
    mirror: &Addr<RoomMirror>,
    session: u64,
    name: &str,
) -> (Request<RoomMirror, Connect>, UnboundedReceiver<Delivery>) {
    let (queue, frames) = WorkerQueue::new();
    let connect = Connect {
        id: session,
        user: user(name),
        session: Outlet { queue, session },
    };
    (mirror.send(connect), frames)
}

/// A mirror of room `id` (owned by `registry`), not loaded yet, that resyncs only when
/// something calls for it (its periodic resync is an hour apart).
fn unloaded_mirror(registry: &Arc<Registry>, id: &RoomId) -> Addr<RoomMirror> {
    let metrics = ClusterMetrics::register(&prometheus::Registry::new()).unwrap();
    let router = Router::new(registry.clone(), None);
    let mut mirror = RoomMirror::new(id.clone(), router, Box::new(|_, _| {}), metrics, 1000);
    mirror.resync_every = Duration::from_secs(3600);
    mirror.start()
}

/// The room's log as the journal holds it now, under `epoch`.
async fn load(setup: &Setup, mirror: &Addr<RoomMirror>, id: &RoomId, epoch: Epoch) {
    let log = RoomLog {
        room: id.clone(),
        snapshot: None,
        events: setup.journal.events(id),
        epoch,
    };
    let messages = Vec::new();
    mirror
        .send(Update(TailUpdate::Reload { log, messages }))
        .await
        .unwrap();
}

/// A mirror of room `id`, loaded from the room's log as it is now.
async fn mirror_of(setup: &Setup, registry: &Arc<Registry>, id: &RoomId) -> Addr<RoomMirror> {
    let mirror = unloaded_mirror(registry, id);
    load(setup, &mirror, id, Epoch::NONE).await;
    mirror
}

#[actix_rt::test]
async fn a_socket_that_arrives_behind_the_mirror_gets_its_newer_state_at_once() {
    let setup = Setup::new();
    let registry = Arc::new(setup.registry(settings()));
    let (id, _room) = setup.room_with_alice(&registry, "mirrored").await;
    let mirror = mirror_of(&setup, &registry, &id).await;

    // Carol's socket is there first (her join is seq 3).
    let (arriving, mut carols) = socket(&mirror, 1, "carol");
    let first = arriving.await.unwrap().unwrap();
    assert_eq!(seq_of(&first), 3);

    // Bob's socket arrives while the journal is down: the owner applied his join (seq 4) and
    // answers once it is durable.
    setup.journal.set_down(true);
    let (arriving, mut bobs) = socket(&mirror, 2, "bob");
    let arriving = actix_rt::spawn(arriving);
    eventually("the journal to refuse bob's join", PATIENCE, || async {
        (setup.journal.refused_appends(&id) >= 1).then_some(())
    })
    .await;
    // Meanwhile the tail takes the mirror past the owner's answer to come: up to a vote at 5
    // (as when the owner's answer is slower on the way than the journal), which carol gets.
    let event = |seq, kind| {
        let event = Event {
            room: id.clone(),
            seq,
            at: time::now(),
            kind,
        };
        (event, None)
    };
    let mut events = vec![event(
        3,
        EventKind::Joined {
            user: user("carol"),
            participants: 2,
        },
    )];
    events.push(event(
        4,
        EventKind::Joined {
            user: user("bob"),
            participants: 3,
        },
    ));
    events.push(event(
        5,
        EventKind::Voted {
            user: user("alice"),
            side: Side::Pro,
        },
    ));
    let room = id.clone();
    mirror
        .send(Update(TailUpdate::Events { room, events }))
        .await
        .unwrap();
    let carol_is_at_5 = async {
        loop {
            let delivery = carols.recv().await.expect("carol's queue is open");
            if matches!(&delivery.what, Outbound::State(state) if seq_of(state) == 5) {
                break;
            }
        }
    };
    tokio::time::timeout(PATIENCE, carol_is_at_5)
        .await
        .expect("carol to get state 5");

    setup.journal.set_down(false);
    let first = tokio::time::timeout(PATIENCE, arriving)
        .await
        .expect("bob's socket to be answered")
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seq_of(&first), 4, "the owner's answer: bob's first state");
    // Queued for him with his answer: after his first state, the session sends the mirror's.
    let next = bobs.try_recv().map(|delivery| delivery.what);
    assert!(
        matches!(&next, Ok(Outbound::State(state)) if seq_of(state) == 5),
        "bob got state 5 right after his first: {:?}",
        next.as_ref().map(|what| match what {
            Outbound::State(state) => format!("state {}", seq_of(state)),
            _ => "another frame".to_owned(),
        })
    );
}

#[actix_rt::test]
async fn a_resync_while_a_socket_arrives_keeps_its_user_present() {
    let setup = Setup::new();
    let registry = Arc::new(setup.registry(settings()));
    let (id, _room) = setup.room_with_alice(&registry, "mirrored").await;
    let mirror = mirror_of(&setup, &registry, &id).await;

    // Bob's socket arrives while the journal is down: the owner took his arrival (seq 3) and
    // answers once it is durable.
    setup.journal.set_down(true);
    let (arriving, _bobs) = socket(&mirror, 2, "bob");
    let arriving = actix_rt::spawn(arriving);
    eventually("the journal to refuse bob's join", PATIENCE, || async {
        (setup.journal.refused_appends(&id) >= 1).then_some(())
    })
    .await;
    // Meanwhile the mirror tells the owner every socket here (as after an owner change).
    let owner = TailUpdate::Owner {
        room: id.clone(),
        epoch: Epoch(1),
        node: "elsewhere".into(),
    };
    mirror.send(Update(owner)).await.unwrap();

    setup.journal.set_down(false);
    tokio::time::timeout(PATIENCE, arriving)
        .await
        .expect("bob's socket to be answered")
        .unwrap()
        .unwrap()
        .unwrap();
    // Ordered after whatever the resync did there.
    let vote = Command::Vote {
        user: user("alice"),
        side: Side::Con,
    };
    registry.mutate(&id, vote, Via::Http).await.unwrap();
    let view = registry.view(&id).await.unwrap();
    assert_eq!(view.counters.participants, 2, "alice and bob: {view:?}");
}

/// Carol's socket here, in the room; then the room goes to an owner that knows nobody here
/// (played by the room forgetting this node's sockets); then the mirror reads the room's log under
/// that owner's epoch: carol must be back in the room without waiting for a periodic resync.
async fn a_new_owner_then_a_load(setup: &Setup, registry: &Arc<Registry>, loaded: bool) {
    let id = setup.room_with_alice(registry, "mirrored").await.0;
    let mirror = if loaded {
        mirror_of(setup, registry, &id).await
    } else {
        unloaded_mirror(registry, &id)
    };
    let (arriving, _carols) = socket(&mirror, 1, "carol");
    arriving.await.unwrap().unwrap();
    let present = || async { registry.view(&id).await.unwrap().counters.participants };
    assert_eq!(present().await, 2, "alice and carol");

    registry.forget_node("");
    eventually("carol to be gone", PATIENCE, || async {
        (present().await == 1).then_some(())
    })
    .await;
    load(setup, &mirror, &id, Epoch(1)).await;
    eventually("carol to be back", PATIENCE, || async {
        (present().await == 2).then_some(())
    })
    .await;
}

/// The mirror learns of the new owner from a reload of the log (the log was trimmed past it,
/// say) rather than from an event.
#[actix_rt::test]
async fn a_reload_under_a_new_owner_tells_it_of_the_sockets_here_at_once() {
    let setup = Setup::new();
    let registry = Arc::new(setup.registry(settings()));
    a_new_owner_then_a_load(&setup, &registry, true).await;
}

/// Carol's socket arrives before the mirror has read the log, and the log it then reads first
/// is already the new owner's.
#[actix_rt::test]
async fn a_first_load_tells_the_owner_of_the_log_of_the_sockets_here() {
    let setup = Setup::new();
    let registry = Arc::new(setup.registry(settings()));
    a_new_owner_then_a_load(&setup, &registry, false).await;
}
