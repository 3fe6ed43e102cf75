//! Repeated idempotency keys through the room actor: a repeat that arrives while the first
//! message is still waiting for the journal is answered only once that message is durable, with
//! its seq, and adds nothing; a repeat after the first was answered gets the same seq at once.

use roomstate_core::room::{Command, IdempotencyKey, Via};

use super::{answered, ask, log_seqs, settings, user, Request, Setup};

fn say_keyed(text: &str, key: &str) -> Request {
    Request {
        command: Command::Say {
            user: user("alice"),
            text: text.into(),
            key: Some(IdempotencyKey::parse(key).unwrap()),
        },
        via: Via::Http,
    }
}

#[actix_rt::test]
async fn a_repeat_while_the_first_is_pending_waits_for_it_and_gets_its_seq() {
    let setup = Setup::new();
    let journal = &setup.journal;
    let registry = setup.registry(settings());
    let (id, room) = setup.room_with_alice(&registry, "retries").await;

    journal.set_down(true);
    let first = actix_rt::spawn(ask(&room, say_keyed("hello", "k-1")));
    let repeat = actix_rt::spawn(ask(&room, say_keyed("hello", "k-1")));
    // Both are held: neither is answered while the message is not durable.
    roomstate_testkit::eventually(
        "the journal to refuse the message twice",
        super::PATIENCE,
        || async { (journal.refused_appends(&id) >= 2).then_some(()) },
    )
    .await;
    assert!(!first.is_finished() && !repeat.is_finished());

    journal.set_down(false);
    let first = answered(first).await.unwrap();
    let repeat = answered(repeat).await.unwrap();
    assert_eq!(first.seq, 3);
    assert_eq!(
        repeat.seq, 3,
        "the repeat answers with the first message's seq"
    );
    assert_eq!(log_seqs(journal, &id), [1, 2, 3], "one message in the log");

    // Answered already: a later repeat gets the same seq at once; a new key is a new message.
    let later = ask(&room, say_keyed("hello", "k-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((later.seq, later.view.counters.messages), (3, 1));
    let other = ask(&room, say_keyed("hello", "k-2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.seq, 4);
}
