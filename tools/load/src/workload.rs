//! The shape of a run, shared by every target: how many clients, for how long, closed or open
//! loop, and the clock that decides which results count (after the warm-up, before the end).

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    time::{Duration, Instant},
};

use crate::{room_acks::RoomAcks, stats::Recorder};

#[derive(Debug, Clone)]
pub struct Workload {
    pub rooms: usize,
    pub users: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub message_percent: u32,
    /// Total requests per second (open loop); `None` is closed loop (each client sends its next
    /// request when the previous one is answered).
    pub rate: Option<f64>,
    pub seed: u64,
}

impl Workload {
    pub fn clients(&self) -> usize {
        self.rooms * self.users
    }

    pub fn mode(&self) -> &'static str {
        if self.rate.is_some() {
            "open"
        } else {
            "closed"
        }
    }

    /// Seconds between two requests of one client in open loop.
    pub fn client_interval(&self) -> Option<Duration> {
        self.rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(self.clients() as f64 / r))
    }
}

/// The run's clock and shared results, for clients on one thread.
#[derive(Clone)]
pub struct Run {
    pub measure_from: Instant,
    pub end: Instant,
    pub recorder: Rc<RefCell<Recorder>>,
    /// Acks so far, for the progress bar.
    pub acks: Rc<Cell<u64>>,
    /// Per room, when it took writes again after a mark (only runs that ask for it).
    pub room_acks: Option<RoomAcks>,
}

impl Run {
    pub fn start(w: &Workload) -> Self {
        let now = Instant::now();
        Self {
            measure_from: now + w.warmup,
            end: now + w.warmup + w.duration,
            recorder: Rc::new(RefCell::new(Recorder::new())),
            acks: Rc::new(Cell::new(0)),
            room_acks: None,
        }
    }

    /// Also keeps, per room, when it first acknowledged a request sent after a mark.
    pub fn with_room_acks(mut self, room_acks: RoomAcks) -> Self {
        self.room_acks = Some(room_acks);
        self
    }

    pub fn over(&self) -> bool {
        Instant::now() >= self.end
    }

    /// Records an answer to a request sent (or due) at `sent`.
    pub fn answered(&self, sent: Instant, kind: crate::mix::Kind, ok: bool) {
        self.acks.set(self.acks.get() + u64::from(ok));
        if sent < self.measure_from || sent >= self.end {
            return;
        }
        let mut recorder = self.recorder.borrow_mut();
        if ok {
            recorder.ack(kind, sent.elapsed());
        } else {
            recorder.refuse();
        }
    }

    /// Records that room `room` (its index in the run) acknowledged a request sent at `sent`.
    pub fn room_acked(&self, room: usize, sent: Instant) {
        if let Some(room_acks) = &self.room_acks {
            room_acks.acked(room, sent);
        }
    }

    /// An open-loop request due at `due` goes out now.
    pub fn sending(&self, due: Instant) {
        if due >= self.measure_from && due < self.end {
            self.recorder.borrow_mut().sent_late(due.elapsed());
        }
    }

    pub fn failed(&self, sent: Instant) {
        if sent >= self.measure_from && sent < self.end {
            self.recorder.borrow_mut().fail();
        }
    }
}
