//! Starting an engine binary for a measurement (the test kit's `EngineProcess`, stopped with
//! SIGTERM when the measurement ends) and reading its resident memory.

use std::{path::Path, time::Duration};

use anyhow::Context as _;
use roomstate_testkit::engine::{DropPolicy, EngineProcess};

/// How long an engine may take to print its listening line (recovering many rooms is slow).
const START_DEADLINE: Duration = Duration::from_secs(300);

/// Spawns `bin` with `env` (plus a free port and `RUST_LOG=warn`) and waits for it to listen.
pub fn spawn_engine(
    bin: &Path,
    env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<EngineProcess> {
    let mut all = vec![("RUST_LOG".to_owned(), "warn".to_owned())];
    all.extend(env.iter().cloned());
    Ok(EngineProcess::spawn(
        bin,
        &all,
        log,
        START_DEADLINE,
        DropPolicy::Terminate,
    )?)
}

/// The engine's resident set size in bytes.
pub fn rss(engine: &EngineProcess) -> anyhow::Result<u64> {
    rss_of(engine.pid().context("the engine is not running")?)
}

/// Resident set size in bytes (`VmRSS`).
pub fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(kb * 1024)
}
