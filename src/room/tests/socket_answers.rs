//! A socket's commands (`SocketMutate`) are answered through the socket's worker queue, like
//! the frames the room sends it: only once durable, a repeated idempotency key with the first
//! message's seq, a refused command with the room's reason — and the message a socket sent
//! reaches it before its answer, in the same queue (the room's own; a mirror's answers come
//! from the room's owner, apart from its frames).

use actix::Addr;
use roomstate_core::room::{Command, IdempotencyKey, RoomError};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{log_seqs, settings, user, within, Setup, PATIENCE};
use crate::room::{
    actor::RoomActor,
    failure::{Reply, RoomFailure},
    messages::{Connect, SocketMutate},
    outbound::Outbound,
    outlet::{AnswerTo, Delivery, Outlet, To, WorkerQueue},
};

fn say(who: &str, key: Option<&str>, outlet: &Outlet, tag: u64) -> SocketMutate {
    SocketMutate {
        command: Command::Say {
            user: user(who),
            text: "hello".into(),
            key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
        },
        session: outlet.session,
        answer: AnswerTo::new(outlet.clone(), tag),
    }
}

/// Alice's socket (session 1) joined to `room`: its place on a worker queue, and the queue.
async fn alices_socket(room: &Addr<RoomActor>) -> (Outlet, UnboundedReceiver<Delivery>) {
    let (queue, rx) = WorkerQueue::new();
    let outlet = Outlet { queue, session: 1 };
    let connect = Connect {
        id: 1,
        user: user("alice"),
        session: outlet.clone(),
    };
    room.send(connect).await.unwrap().unwrap();
    (outlet, rx)
}

/// The next answer in `rx` (skipping frames), with the tag it answers.
async fn next_answer(rx: &mut UnboundedReceiver<Delivery>) -> (u64, Reply<u64>) {
    loop {
        let delivery = within(PATIENCE, "an answer", rx.recv()).await;
        if let Some(Delivery {
            what: Outbound::Answer { tag, outcome },
            ..
        }) = delivery
        {
            return (tag, outcome);
        }
    }
}

#[actix_rt::test]
async fn a_socket_is_answered_through_its_queue_once_durable() {
    let setup = Setup::new();
    let journal = &setup.journal;
    let registry = setup.registry(settings());
    let (id, room) = setup.room_with_alice(&registry, "answers").await;
    let (queue, mut rx) = WorkerQueue::new();
    let outlet = Outlet { queue, session: 1 };

    journal.set_down(true);
    room.do_send(say("alice", Some("k-1"), &outlet, 10));
    room.do_send(say("alice", Some("k-1"), &outlet, 11));
    roomstate_testkit::eventually("the journal to refuse the message", PATIENCE, || async {
        (journal.refused_appends(&id) >= 1).then_some(())
    })
    .await;
    assert!(
        rx.try_recv().is_err(),
        "nothing is answered before it is durable"
    );

    journal.set_down(false);
    assert_eq!(next_answer(&mut rx).await, (10, Ok(3)));
    assert_eq!(
        next_answer(&mut rx).await,
        (11, Ok(3)),
        "a repeat gets the first seq"
    );
    assert_eq!(log_seqs(journal, &id), [1, 2, 3]);

    room.do_send(say("mallory", None, &outlet, 12));
    let refused = Err(RoomFailure::Rule(RoomError::NotJoined(user("mallory"))));
    assert_eq!(next_answer(&mut rx).await, (12, refused));
}

#[actix_rt::test]
async fn a_socket_gets_its_own_message_before_the_answer_to_it() {
    let setup = Setup::new();
    let registry = setup.registry(settings());
    let (_, room) = setup.room_with_alice(&registry, "order").await;
    let (outlet, mut rx) = alices_socket(&room).await;

    room.do_send(say("alice", None, &outlet, 20));
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let delivery = within(PATIENCE, "the message and its answer", rx.recv()).await;
        match delivery {
            Some(Delivery {
                to: To::Many(ids),
                what: Outbound::Message(message),
            }) => {
                assert_eq!(*ids, vec![1]);
                seen.push(format!("message {}", message.text(|m| m.seq.to_string())));
            }
            Some(Delivery {
                to: To::One(1),
                what: Outbound::Answer { tag, outcome },
            }) => seen.push(format!("answer {tag} {outcome:?}")),
            Some(_) => {}
            None => panic!("the queue closed"),
        }
    }
    // The socket joined at seq 3 (alice's second link changes no one's presence: no event), so
    // her message is seq 3 or 4: whichever, the message comes first and the answer names it.
    let seq = seen[0].trim_start_matches("message ").to_owned();
    assert_eq!(seen[1], format!("answer 20 Ok({seq})"));
}

#[actix_rt::test]
async fn a_request_that_reaches_a_closed_room_is_answered_stopped_after_its_last_frames() {
    let setup = Setup::new();
    let registry = setup.registry(settings());
    let (id, room) = setup.room_with_alice(&registry, "closed").await;
    let (outlet, mut rx) = alices_socket(&room).await;
    registry.close(&id).await.unwrap();
    roomstate_testkit::eventually("the closed room's actor to stop", PATIENCE, || async {
        (!room.connected()).then_some(())
    })
    .await;

    room.do_send(say("alice", None, &outlet, 30));
    let mut seen = Vec::new();
    loop {
        match within(PATIENCE, "the last frames and the answer", rx.recv()).await {
            Some(Delivery {
                what: Outbound::Closed(_),
                ..
            }) => seen.push("closed".to_owned()),
            Some(Delivery {
                what: Outbound::End(reason),
                ..
            }) => seen.push(format!("end {reason:?}")),
            Some(Delivery {
                what: Outbound::Answer { tag, outcome },
                ..
            }) => {
                seen.push(format!("answer {tag} {outcome:?}"));
                break;
            }
            Some(_) => {}
            None => panic!("the queue closed"),
        }
    }
    // The socket hears the close before the answer, so it can tell the client `room_closed`.
    assert_eq!(
        seen,
        ["closed", "end RoomClosed", "answer 30 Err(Stopped)"],
        "{seen:?}"
    );
}
