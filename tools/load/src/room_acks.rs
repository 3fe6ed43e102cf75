//! When each room took writes again after a moment (the kill of a node in the takeover
//! measurement): per room of a run, the time of the first acknowledgement of a request sent after
//! the mark. A request sent before the mark and acknowledged after it does not count — it may
//! have been made durable by the node that was killed. Shared by the clients of one thread.

use std::{cell::RefCell, collections::HashMap, rc::Rc, time::Instant};

/// Cheap to clone; clones share the clock.
#[derive(Clone, Default)]
pub struct RoomAcks(Rc<RefCell<Marked>>);

#[derive(Default)]
struct Marked {
    mark: Option<Instant>,
    /// Room index -> when its first request sent after `mark` was acknowledged.
    first: HashMap<usize, Instant>,
}

impl RoomAcks {
    /// Starts the clock at `at`, forgetting what came before.
    pub fn mark(&self, at: Instant) {
        let mut marked = self.0.borrow_mut();
        marked.mark = Some(at);
        marked.first.clear();
    }

    /// A request to room `room` sent (or due) at `sent` was acknowledged now.
    pub fn acked(&self, room: usize, sent: Instant) {
        let mut marked = self.0.borrow_mut();
        if marked.mark.is_some_and(|mark| sent >= mark) {
            marked.first.entry(room).or_insert_with(Instant::now);
        }
    }

    /// When room `room` first acknowledged a request sent after the mark, if it has.
    pub fn first_after_mark(&self, room: usize) -> Option<Instant> {
        self.0.borrow().first.get(&room).copied()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_requests_sent_after_the_mark_count() {
        let acks = RoomAcks::default();
        let before = Instant::now();
        acks.acked(0, before);
        assert_eq!(acks.first_after_mark(0), None, "no mark yet");
        let mark = before + Duration::from_millis(1);
        acks.mark(mark);
        acks.acked(0, before);
        assert_eq!(acks.first_after_mark(0), None, "sent before the mark");
        acks.acked(0, mark);
        let first = acks.first_after_mark(0);
        assert!(first.is_some());
        acks.acked(0, mark + Duration::from_millis(5));
        assert_eq!(acks.first_after_mark(0), first, "the first one stays");
        assert_eq!(acks.first_after_mark(1), None);
    }
}
