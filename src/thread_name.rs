//! Names the calling thread for what it does, as `top -H`, `ps -L`, `perf` and
//! `/proc/PID/task/*/comm` show it: `roomstate-http` (the HTTP workers), `roomstate-rooms` (the
//! rooms' threads). The journal names its own: `roomstate-redis` (the Redis journal's writer),
//! `roomstate-tail` (a cluster node's journal tail), `roomstate-local` (the local journal's
//! writer). A profile, or the load tool's CPU per ack split by thread, then says which part of
//! the engine spent it.

/// Names the calling thread `name` (Linux keeps its first 15 bytes). Best effort: where there
/// is no `/proc/thread-self` (not Linux), the thread keeps its name.
pub(crate) fn set(name: &str) {
    if let Err(error) = std::fs::write("/proc/thread-self/comm", name) {
        tracing::debug!(%error, thread = name, "could not name the thread");
    }
}
