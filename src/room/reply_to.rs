//! Where a request's answer goes (`Waiter::Reply`): the caller's end of a oneshot channel,
//! answered once. A room that stops with the request still waiting drops it, and it then
//! answers that the room stopped — the same answer a room gives every request it gives up on.

use tokio::sync::oneshot;

use super::{
    failure::{Reply, RoomFailure},
    messages::Applied,
};

pub(super) struct ReplyTo(Option<oneshot::Sender<Reply<Applied>>>);

impl ReplyTo {
    pub(super) fn new(tx: oneshot::Sender<Reply<Applied>>) -> Self {
        Self(Some(tx))
    }

    pub(super) fn send(mut self, reply: Reply<Applied>) {
        if let Some(tx) = self.0.take() {
            // The caller may have gone (a client that hung up): nobody to tell.
            let _ = tx.send(reply);
        }
    }
}

impl Drop for ReplyTo {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(Err(RoomFailure::Unavailable("the room stopped".into())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_once_or_on_drop_that_the_room_stopped() {
        let (tx, mut rx) = oneshot::channel();
        ReplyTo::new(tx).send(Err(RoomFailure::Stopped));
        assert_eq!(
            rx.try_recv().ok().map(|r| r.err()),
            Some(Some(RoomFailure::Stopped))
        );
        let (tx, mut rx) = oneshot::channel();
        drop(ReplyTo::new(tx));
        assert_eq!(
            rx.try_recv().ok().map(|r| r.err()),
            Some(Some(RoomFailure::Unavailable("the room stopped".into())))
        );
    }
}
