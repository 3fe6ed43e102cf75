//! CPU time of other processes over the measured window of a run (the engine, the Redis
//! servers): user + system seconds from `/proc/PID/stat` when measuring starts and when it ends.
//! Divided by the acks of the window it is the figure the targets are set in — CPU per
//! acknowledged mutation — which a noisy shared machine distorts far less than throughput.

use std::{collections::BTreeMap, time::Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

/// A process to watch, as given on the command line (`NAME=PID`).
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
}

impl std::str::FromStr for Watched {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let Some((name, pid)) = s.split_once('=') else {
            bail!("expected NAME=PID, got {s:?}");
        };
        Ok(Watched {
            name: name.to_owned(),
            pid: pid.parse().with_context(|| format!("pid in {s:?}"))?,
        })
    }
}

/// CPU one process used over the window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    pub pid: u32,
    pub cpu_s: f64,
    /// Microseconds of CPU per acknowledged mutation.
    pub us_per_ack: f64,
}

/// User + system CPU seconds `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its closing paren are plain.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("odd /proc/PID/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the paren: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse::<f64>()?)
    };
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok((ticks(11)? + ticks(12)?) / hz)
}

/// Samples every watched process at `from` and at `until` (sleeping in between), so the figure
/// covers exactly the measured window of a run.
pub async fn over_window(
    watched: &[Watched],
    from: Instant,
    until: Instant,
) -> anyhow::Result<BTreeMap<String, (u32, f64)>> {
    actix_rt::time::sleep_until(from.into()).await;
    let start: Vec<f64> = watched
        .iter()
        .map(|w| cpu_seconds(w.pid))
        .collect::<anyhow::Result<_>>()?;
    actix_rt::time::sleep_until(until.into()).await;
    let mut used = BTreeMap::new();
    for (w, start) in watched.iter().zip(start) {
        used.insert(w.name.clone(), (w.pid, cpu_seconds(w.pid)? - start));
    }
    Ok(used)
}

/// CPU per ack for each watched process.
pub fn per_ack(used: BTreeMap<String, (u32, f64)>, acked: u64) -> BTreeMap<String, CpuUse> {
    used.into_iter()
        .map(|(name, (pid, cpu_s))| {
            let us_per_ack = if acked > 0 {
                cpu_s * 1e6 / acked as f64
            } else {
                0.0
            };
            (
                name,
                CpuUse {
                    pid,
                    cpu_s,
                    us_per_ack,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_time() {
        let before = cpu_seconds(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_seconds(std::process::id()).unwrap() >= before);
        assert!("engine=12".parse::<Watched>().is_ok());
        assert!("engine".parse::<Watched>().is_err());
    }
}
