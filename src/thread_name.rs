//! Names the calling thread for what it does, as `top -H`, `ps -L`, `perf` and
//! `/proc/PID/task/*/comm` show it: `roomstate-http` (the HTTP workers), `roomstate-rooms` (the
//! rooms' threads); the Redis journal's writer is `roomstate-redis`. A profile, or the load
//! tool's CPU per ack split by thread, then says which part of the engine spent it.

/// Names the calling thread `name` (Linux keeps its first 15 bytes). Best effort: where there
/// is no `/proc/thread-self` (not Linux), the thread keeps its name.
pub(crate) fn set(name: &str) {
    if let Err(error) = std::fs::write("/proc/thread-self/comm", name) {
        tracing::debug!(%error, thread = name, "could not name the thread");
    }
}
