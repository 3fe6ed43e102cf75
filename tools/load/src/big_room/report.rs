//! What one big-room run found, as the line it prints and the JSON line it writes
//! (`scripts/bench` → `target/bench/big-room.jsonl` → the "Big room" table of
//! `scripts/bench_report.py`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{client::FrameCount, visibility::DelaySummary};
use crate::stats::LatencyMs;

/// CPU of one watched process over the measured window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuShare {
    pub pid: u32,
    pub cpu_s: f64,
    /// Share of one core over the window.
    pub cores: f64,
    /// Microseconds per ack that arrived in the window.
    pub us_per_ack: f64,
    /// Microseconds per frame the sockets received in the window.
    pub us_per_frame: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BigRoomSummary {
    pub kind: &'static str,
    pub target: String,
    pub sockets: usize,
    /// Offered votes and chat messages per second.
    pub vote_rate: f64,
    pub message_rate: f64,
    pub duration_s: f64,
    /// Seconds to connect every socket (each waits for its first `state`).
    pub connect_s: f64,
    /// Acknowledged votes and messages due in the window.
    pub votes_acked: u64,
    pub messages_acked: u64,
    /// Acks that arrived in the window.
    pub acked_in_window: u64,
    pub refused: u64,
    pub failed: u64,
    /// Request (due) → ack.
    pub ack_latency_ms: LatencyMs,
    /// Vote ack → the first `state` at a socket showing it, over every (vote, socket) pair.
    pub state_visibility: DelaySummary,
    /// The same from when the vote was due (an upper bound: the change became durable between).
    pub state_visibility_since_request: DelaySummary,
    /// Message ack → its `message` frame at a socket, over every (message, socket) pair.
    pub message_delivery: DelaySummary,
    /// The same from when the message was due.
    pub message_delivery_since_request: DelaySummary,
    /// `state` frames older than one a socket had already (the contract says never).
    pub state_regressions: u64,
    /// Sockets that ended before the run did (closed by the server, or broken).
    pub sockets_lost: usize,
    /// Frames the sockets received in the window, by type, and per second.
    pub frames: FrameCount,
    pub frames_delivered: u64,
    pub frames_per_s: f64,
    /// CPU of the watched processes (`--cpu`, and this load generator as `load-generator`).
    pub cpu: BTreeMap<String, CpuShare>,
}

impl BigRoomSummary {
    pub fn line(&self) -> String {
        let cpu: String = self
            .cpu
            .iter()
            .map(|(name, c)| {
                format!(
                    "\n  {name}: {:.2} cores, {:.1} µs/ack, {:.2} µs/frame",
                    c.cores, c.us_per_ack, c.us_per_frame
                )
            })
            .collect();
        let v = &self.state_visibility;
        let vr = &self.state_visibility_since_request;
        let m = &self.message_delivery;
        let mr = &self.message_delivery_since_request;
        format!(
            "{}: {} sockets, {:.0} votes/s + {:.0} messages/s offered ({} + {} acked, {} refused, {} failed; ack p50 {:.2} ms p99 {:.2} ms)\n  \
             state visibility over {} (vote, socket) pairs: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({:.2} % over 100 ms, {} never seen, {} regressions); since the request: p50 {:.2} ms  p99 {:.2} ms\n  \
             message delivery over {} (message, socket) pairs: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} missing on {} sockets); since the request: p50 {:.2} ms  p99 {:.2} ms\n  \
             {} frames delivered ({:.0}/s: {} state, {} message, {} ack); {} sockets lost; connected in {:.1} s{cpu}",
            self.target,
            self.sockets,
            self.vote_rate,
            self.message_rate,
            self.votes_acked,
            self.messages_acked,
            self.refused,
            self.failed,
            self.ack_latency_ms.p50,
            self.ack_latency_ms.p99,
            v.pairs,
            v.p50_ms,
            v.p99_ms,
            v.max_ms,
            v.over_100ms_share * 100.0,
            v.missing,
            self.state_regressions,
            vr.p50_ms,
            vr.p99_ms,
            m.pairs,
            m.p50_ms,
            m.p99_ms,
            m.max_ms,
            m.missing,
            m.sockets_missing,
            mr.p50_ms,
            mr.p99_ms,
            self.frames_delivered,
            self.frames_per_s,
            self.frames.state,
            self.frames.message,
            self.frames.ack,
            self.sockets_lost,
            self.connect_s,
        )
    }
}
