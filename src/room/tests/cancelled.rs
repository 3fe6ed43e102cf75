//! An HTTP request's command that its caller gave up on (the client hung up, a cluster forward
//! timed out) before the room took it from its mailbox is not applied: nothing becomes durable
//! for nobody.

use tokio::sync::oneshot;

use super::{ask, log_seqs, say, settings, within, Setup, PATIENCE};
use crate::room::messages::{GetView, Mutate};

#[actix_rt::test]
async fn a_command_whose_caller_gave_up_is_not_applied() {
    let setup = Setup::new();
    let registry = setup.registry(settings());
    let (id, room) = setup.room_with_alice(&registry, "cancelled").await;

    let (reply, answer) = oneshot::channel();
    drop(answer);
    let given_up = say("nobody is waiting for this");
    room.do_send(Mutate {
        command: given_up.command,
        via: given_up.via,
        reply,
    });
    // Sent after it, answered after it: once this is durable, the room has dealt with both.
    let after = within(PATIENCE, "the room's answer", ask(&room, say("still here")))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(after.seq, 3, "the given-up message took no seq");
    assert_eq!(log_seqs(&setup.journal, &id), vec![1, 2, 3]);
    let view = room.send(GetView).await.unwrap();
    assert_eq!(view.counters.seq, 3);
}
