//! The big room's open loop: votes at a fixed rate and chat messages at a rate of their own, each
//! due at its moment whatever is still unanswered (latency counts from when a request was due:
//! no coordinated omission), handed to the sockets in turn (round robin over all of them).

use std::{
    cell::RefCell,
    rc::Rc,
    time::{Duration, Instant},
};

use tokio::sync::mpsc::UnboundedSender;

use super::{
    acks::Acks,
    client::{Kind, Request},
};

/// Requests per second of each kind.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub votes: f64,
    pub messages: f64,
}

/// The moment the `n`-th request of a stream at `rate` per second is due (never, at rate 0).
fn due(start: Instant, rate: f64, n: u64) -> Option<Instant> {
    (rate > 0.0).then(|| start + Duration::from_secs_f64(n as f64 / rate))
}

/// Sends from `start` until `end`; returns the requests handed out.
pub async fn run(
    sockets: &[UnboundedSender<Request>],
    rates: Rates,
    start: Instant,
    end: Instant,
    acks: &Rc<RefCell<Acks>>,
) -> u64 {
    if sockets.is_empty() {
        return 0;
    }
    let (mut votes, mut messages, mut turn) = (0u64, 0u64, 0usize);
    loop {
        let next_vote = due(start, rates.votes, votes).filter(|t| *t < end);
        let next_message = due(start, rates.messages, messages).filter(|t| *t < end);
        let (kind, due) = match (next_vote, next_message) {
            (Some(v), Some(m)) if m < v => (Kind::Message, m),
            (Some(v), _) => (Kind::Vote, v),
            (None, Some(m)) => (Kind::Message, m),
            (None, None) => return votes + messages,
        };
        let id = match kind {
            Kind::Vote => {
                votes += 1;
                votes
            }
            Kind::Message => {
                messages += 1;
                messages
            }
        };
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let request = Request { kind, id, due };
        acks.borrow_mut().sent();
        if sockets[turn % sockets.len()].send(request).is_err() {
            // That socket is gone (its loss is reported with it).
            acks.borrow_mut().failed(&request);
        }
        turn += 1;
    }
}
