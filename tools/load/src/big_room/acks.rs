//! The answers to the big room's requests, shared by its sockets (one thread): every
//! acknowledged vote and message with its seq and when its ack arrived — what the visibility and
//! delivery of each is measured from — and the ack latency of the requests due in the window.

use std::time::Instant;

use hdrhistogram::Histogram;

use super::client::{Kind, Request, Window};

/// One acknowledged request.
#[derive(Debug, Clone, Copy)]
pub struct Acked {
    pub seq: u64,
    pub due: Instant,
    pub at: Instant,
}

pub struct Acks {
    /// Set once every socket is connected.
    pub window: Option<Window>,
    pub votes: Vec<Acked>,
    pub messages: Vec<Acked>,
    /// Request (due) → ack, microseconds, for requests due in the window.
    pub latency: Histogram<u64>,
    pub sent: u64,
    pub answered: u64,
    /// Acks that arrived in the window (what CPU per ack divides by).
    pub acked_in_window: u64,
    /// Refused (`error` frames) and failed (socket lost) requests due in the window.
    pub refused: u64,
    pub failed: u64,
}

impl Default for Acks {
    fn default() -> Self {
        Self {
            window: None,
            votes: Vec::new(),
            messages: Vec::new(),
            // 1 µs to 10 min at 3 significant figures (constant, valid bounds).
            latency: Histogram::new_with_bounds(1, 600_000_000, 3)
                .expect("constant histogram bounds"),
            sent: 0,
            answered: 0,
            acked_in_window: 0,
            refused: 0,
            failed: 0,
        }
    }
}

impl Acks {
    fn due_in_window(&self, request: &Request) -> bool {
        self.window.is_some_and(|w| w.holds(request.due))
    }

    pub fn sent(&mut self) {
        self.sent += 1;
    }

    pub fn outstanding(&self) -> u64 {
        self.sent - self.answered
    }

    pub fn acked(&mut self, request: &Request, seq: u64, at: Instant) {
        self.answered += 1;
        let acked = Acked {
            seq,
            due: request.due,
            at,
        };
        match request.kind {
            Kind::Vote => self.votes.push(acked),
            Kind::Message => self.messages.push(acked),
        }
        if self.window.is_some_and(|w| w.holds(at)) {
            self.acked_in_window += 1;
        }
        if self.due_in_window(request) {
            let micros = u64::try_from(at.saturating_duration_since(request.due).as_micros())
                .unwrap_or(u64::MAX)
                .max(1);
            self.latency.saturating_record(micros);
        }
    }

    pub fn refused(&mut self, request: &Request) {
        self.answered += 1;
        self.refused += u64::from(self.due_in_window(request));
    }

    pub fn failed(&mut self, request: &Request) {
        self.answered += 1;
        self.failed += u64::from(self.due_in_window(request));
    }
}
